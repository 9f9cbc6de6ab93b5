"""The build hook that writes ``theodolite/client/sync.py`` from ``aio.py`` (unasync).

sync.py is not committed. A wheel gets it from a scratch folder (the source tree is left as it
was); an editable install gets it in the source tree, where the import, mypy and import-linter
find it (it is gitignored there). scripts/unasync_aio.py does the rewriting.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def _unasync_aio(root: Path) -> ModuleType:
    """scripts/unasync_aio.py (a script beside this one, in no package)."""
    spec = importlib.util.spec_from_file_location("unasync_aio", root / "scripts/unasync_aio.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class SyncClientHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        generator = _unasync_aio(Path(self.root))
        if version == "editable":
            generator.write_sync(Path(self.root))
            return
        self._scratch = Path(tempfile.mkdtemp(prefix="theodolite-client-sync-"))
        written = generator.write_sync(Path(self.root), to=self._scratch / "sync.py")
        build_data["force_include"][str(written)] = generator.SYNC.as_posix()

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
