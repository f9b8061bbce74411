"""RUN/manifest.json: which stage finished with which config, versions and input fingerprint."""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from common.config import ConfigError
from common.io import Location, exists, file_info, join, read_json, write_json_atomic

MANIFEST_VERSION = 1
_TRACKED_PACKAGES = (
    "codeparrot-toolkit", "datasets", "pyarrow", "datasketch", "zstandard", "tokenizers", "torch",
    "transformers", "accelerate", "click", "numpy", "xxhash",
)


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape the outputs."""
    from importlib import metadata  # ~17 ms: only runs that write a manifest pay it

    out = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def config_hash(config: Any) -> str:
    import hashlib  # here: ~4 ms to import (OpenSSL), and a stage run without a run directory never needs it

    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint_files(paths: Iterable[str | Path]) -> str:
    """A cheap fingerprint of input files (paths or URLs): name, size and mtime of each (not their bytes)."""
    import hashlib

    h = hashlib.sha256()
    for p in paths:
        try:
            size, stamp = file_info(p)  # a local file's mtime in ns; a URL's mtime, LastModified or ETag
            h.update(f"{p}\0{size}\0{stamp}\n".encode())
        except OSError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()[:16]


class RunManifest:
    """The run directory's record of finished stages (restartability and config safety).

    A stage is finished when its entry has ``finished: true``; a re-run with the same config and
    input fingerprint skips it. A re-run with a different config refuses to mix outputs.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir: Location = join(run_dir)  # a local Path, or a URL (read and written through fsspec)
        self.path = join(self.run_dir, "manifest.json")

    def load(self) -> dict[str, Any]:
        if not exists(self.path):
            return {"version": MANIFEST_VERSION, "stages": {}}
        try:
            data = read_json(self.path)
        except (OSError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError
            raise ConfigError(f"{self.path}: unreadable manifest ({exc}); delete it to start the run over") from None
        if data.get("version") != MANIFEST_VERSION:
            raise ConfigError(f"{self.path}: manifest version {data.get('version')} is not {MANIFEST_VERSION}")
        return data

    def entry(self, stage: str) -> dict[str, Any] | None:
        return self.load()["stages"].get(stage)

    def check(self, stage: str, config: dict[str, Any], force: bool = False) -> None:
        """Refuse to write ``stage`` into a run that holds its outputs made with another config."""
        entry = self.entry(stage)
        if entry is None or force:
            return
        if entry.get("config_hash") != config_hash(config):
            raise ConfigError(
                f"{self.run_dir} already holds '{stage}' outputs made with another config "
                f"(config hash {entry.get('config_hash')} != {config_hash(config)}); "
                "use a new run directory or pass --force to overwrite"
            )

    def is_done(self, stage: str, config: dict[str, Any], input_fingerprint: str) -> bool:
        entry = self.entry(stage)
        return bool(
            entry
            and entry.get("finished")
            and entry.get("config_hash") == config_hash(config)
            and entry.get("input_fingerprint") == input_fingerprint
        )

    def mark_started(self, stage: str, config: dict[str, Any], input_fingerprint: str) -> None:
        self._write_entry(stage, config, input_fingerprint, finished=False)

    def mark_done(
        self,
        stage: str,
        config: dict[str, Any],
        input_fingerprint: str,
        outputs: list[str] | None = None,
        wall_time_s: float | None = None,
        **extra: Any,
    ) -> None:
        self._write_entry(stage, config, input_fingerprint, finished=True, outputs=outputs or [],
                          wall_time_s=wall_time_s, **extra)

    def _write_entry(self, stage: str, config: dict[str, Any], input_fingerprint: str, **fields: Any) -> None:
        data = self.load()
        data["stages"][stage] = {
            "config": config,
            "config_hash": config_hash(config),
            "input_fingerprint": input_fingerprint,
            "versions": package_versions(),
            "argv": sys.argv,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **fields,
        }
        write_json_atomic(self.path, data)
