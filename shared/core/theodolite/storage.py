"""Object storage on any S3-compatible server (MinIO, SeaweedFS), through the ``minio`` client.

The client is blocking: async callers run these methods with ``asyncio.to_thread``.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

from minio import Minio
from minio.error import S3Error

from theodolite.settings import StorageSettings


class ObjectNotFound(LookupError):
    pass


class IntegrityError(ValueError):
    """Stored bytes whose sha256 is not the one they are addressed by."""


class ObjectStore:
    def __init__(self, settings: StorageSettings) -> None:
        self._client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=settings.secure,
            region=settings.region,
        )

    def ensure_bucket(self, bucket: str) -> None:
        if not self._client.bucket_exists(bucket):
            try:
                self._client.make_bucket(bucket)
            except S3Error as exc:  # another process made it first
                if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise

    def ping(self) -> None:
        """Raise unless the server answers an authenticated request."""
        self._client.list_buckets()

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        self._client.put_object(bucket, key, io.BytesIO(data), len(data), content_type=content_type)

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self._client.stat_object(bucket, key)
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject", "NotFound"}:
                return False
            raise
        return True

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        return [
            obj.object_name
            for obj in self._client.list_objects(bucket, prefix=prefix or None, recursive=True)
            if obj.object_name is not None
        ]

    def list_etags(self, bucket: str) -> dict[str, str]:
        """Every key with its etag (changes whenever the bytes do)."""
        return {
            obj.object_name: (obj.etag or "").strip('"')
            for obj in self._client.list_objects(bucket, recursive=True)
            if obj.object_name is not None
        }

    def get_bytes(self, bucket: str, key: str) -> bytes:
        return b"".join(self.iter_chunks(bucket, key))

    def delete(self, bucket: str, key: str) -> None:
        self._client.remove_object(bucket, key)

    def iter_chunks(self, bucket: str, key: str, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        try:
            response = self._client.get_object(bucket, key)
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject", "NotFound"}:
                raise ObjectNotFound(f"{bucket}/{key}") from exc
            raise
        try:
            yield from response.stream(chunk_size)
        finally:
            response.close()
            response.release_conn()

    def download_verified(self, bucket: str, key: str, sha256: str, destination: Path) -> None:
        """Download to ``destination`` atomically, refusing bytes whose sha256 differs."""
        digest = hashlib.sha256()
        partial = destination.with_name(destination.name + ".partial")
        destination.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("wb") as out:
            for chunk in self.iter_chunks(bucket, key):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            partial.unlink(missing_ok=True)
            raise IntegrityError(f"{bucket}/{key} has sha256 {digest.hexdigest()}, not {sha256}")
        partial.replace(destination)


def entrypoint_archive_key(sha256: str) -> str:
    return f"entrypoints/{sha256}"
