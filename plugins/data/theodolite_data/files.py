"""User data: a CSV or NPZ file shipped in the entry point archive or stored as an artifact."""

from __future__ import annotations

import csv
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from sklearn.model_selection import train_test_split

from theodolite.sdk import task
from theodolite.sdk.checks import bad_input
from theodolite_data._checks import check_size
from theodolite_data.digits import Split

TASK = "data.load_file"
# Schemes MLflow downloads from: a run's or logged model's artifacts, the artifact proxy, S3.
_REMOTE_SCHEMES = {"runs", "models", "mlflow-artifacts", "s3", "http", "https", "dbfs", "gs"}


def _local_file(uri: str) -> Path:
    """A local copy of ``uri``: a path (relative to the job's folder), file:// or MLflow URI."""
    if not uri.strip():
        raise bad_input(TASK, "uri", "is empty: give a path or an artifact URI")
    parsed = urlparse(uri)
    if parsed.scheme in _REMOTE_SCHEMES:
        import mlflow.artifacts

        try:
            return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
        except Exception as exc:
            raise bad_input(TASK, "uri", f"{uri!r} could not be fetched: {exc}") from exc
    path = Path(parsed.path if parsed.scheme == "file" else uri).expanduser()
    if not path.is_file():
        raise bad_input(TASK, "uri", f"{uri!r} is no file (looked at {path.resolve()})")
    return path


def _read_csv(path: Path, label: str) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise bad_input(TASK, "uri", f"{path.name} is empty")
    names = [h.strip() for h in header]
    column = names.index(label) if label in names else len(names) - 1
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise bad_input(TASK, "uri", f"{path.name}: every value must be a number ({exc})") from exc
    if table.shape[1] != len(names) or table.shape[1] < 2:
        raise bad_input(
            TASK, "uri", f"{path.name}: rows have {table.shape[1]} columns, header {len(names)}"
        )
    return np.delete(table, column, axis=1), table[:, column]


def _read_npz(path: Path, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as arrays:
        missing = [k for k in (x_key, y_key) if k not in arrays.files]
        if missing:
            raise bad_input(
                TASK,
                "x_key" if x_key in missing else "y_key",
                f"{path.name} has no array {missing[0]!r} (arrays: {', '.join(arrays.files)})",
            )
        return arrays[x_key], arrays[y_key]


@task
def load_file(
    uri: str,
    label: str = "label",
    x_key: str = "x",
    y_key: str = "y",
    scale: float = 1.0,
    shape: list[int] | None = None,
    test_size: float = 0.25,
    seed: int = 0,
) -> Split:
    """Labelled data from a CSV (a header row; the ``label`` column, else the last one, holds
    the classes) or an NPZ (arrays ``x_key`` and ``y_key``), split in a seeded stratified way.

    Args:
        uri: a path (relative to the job's folder, e.g. a file in the archive), file://, or an
            MLflow artifact URI (runs:/<run id>/data.csv, mlflow-artifacts:/..., s3://...)
        label: the CSV column of the labels
        x_key: the NPZ array of inputs
        y_key: the NPZ array of labels
        scale: every input is divided by it (e.g. 255 for 8-bit images, 16 for raw digits)
        shape: shape of one row afterwards (e.g. [1, 8, 8]); default: as stored
        test_size: share in (0, 1) or count of rows held out for testing
        seed: seed of the split
    """
    path = _local_file(uri)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        x, y = _read_csv(path, label)
    elif suffix == ".npz":
        x, y = _read_npz(path, x_key, y_key)
    else:
        raise bad_input(TASK, "uri", f"{path.name}: only .csv and .npz files are read")
    if scale <= 0 or not np.isfinite(scale):
        raise bad_input(TASK, "scale", f"must be a positive number, got {scale}")
    x = np.asarray(x)
    if x.ndim < 2 or len(x) != len(y) or len(x) < 4:
        raise bad_input(
            TASK,
            "uri",
            f"{path.name}: needs rows of inputs with one label each, got "
            f"inputs {x.shape} and labels {np.shape(y)}",
        )
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise bad_input(TASK, "uri", f"{path.name}: inputs must be finite numbers")
    labels = np.asarray(y)
    if not np.issubdtype(labels.dtype, np.number) or not np.all(np.equal(np.mod(labels, 1), 0)):
        raise bad_input(TASK, "uri", f"{path.name}: labels must be whole numbers (classes)")
    x = (x / scale).astype(np.float32)
    if shape is not None:
        if int(np.prod(shape)) != int(np.prod(x.shape[1:])):
            raise bad_input(TASK, "shape", f"{shape} does not hold a row of {x.shape[1:]}")
        x = x.reshape(len(x), *shape)
    test = check_size(TASK, "test_size", test_size, len(x))
    labels = labels.astype(np.int64)
    _, counts = np.unique(labels, return_counts=True)
    stratify = labels if counts.min() >= 2 else None
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            x, labels, test_size=test, random_state=seed, stratify=stratify
        )
    except ValueError as exc:
        raise bad_input(
            TASK, "test_size", f"{test_size} cannot split {len(x)} rows: {exc}"
        ) from exc
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
