"""Reader base: cheap ordered work units in the main process, decoding in worker processes."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.io import Location, basename, file_info, find_files, glob_files, is_dir, is_file, is_url, location, read_json
from preprocessing.record import CodeFile, Rejected


class InputError(ValueError):
    """Input that cannot be read at all (no file, unreadable file, wrong schema); names the file."""


@dataclass
class ColumnsConfig:
    """Which input column holds each field of a CodeFile (set one to null if the dump lacks it)."""

    content: str = "content"
    """Column with the file's text."""
    repo_name: str | None = "repo_name"
    """Column with the repository name (The Stack: max_stars_repo_name)."""
    path: str | None = "path"
    """Column with the path inside the repository (The Stack: max_stars_repo_path)."""
    license: str | None = "license"
    """Column with the license (a string or a list of strings; The Stack: max_stars_repo_licenses)."""


@dataclass
class InputConfig:
    """Where records come from. With no paths and no hf_dataset: the running Python installation."""

    paths: list[str] = field(default_factory=list)
    """Files, directories or globs (JSONL/.gz/.zst, Parquet, or directories of repositories)."""
    format: str = "auto"
    """auto | jsonl | parquet | hf | local | pyenv (auto: by file suffix, directories as local repos)."""
    hf_dataset: str | None = None
    """A Hugging Face dataset name or builder (e.g. 'json'), read with streaming=True."""
    hf_config: str | None = None
    """The dataset's config name (load_dataset's `name`)."""
    hf_split: str = "train"
    """Split to stream from the HF dataset."""
    hf_data_files: list[str] = field(default_factory=list)
    """Local data files for an HF builder such as 'json' or 'parquet'."""
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    """Column mapping onto CodeFile fields."""
    extensions: list[str] = field(default_factory=lambda: [".py"])
    """File suffixes read from local repositories and the Python installation."""
    max_file_bytes: int = 10 << 20
    """Files larger than this are rejected as 'too_large' without being decoded."""
    batch_records: int = 256
    """Records per work unit shipped to a worker."""
    limit: int | None = None
    """Stop after this many input records (for demos and tests)."""
    strict: bool = False
    """Stop with an error naming the file at a truncated or corrupt .gz/.zst file, instead of a
    warning after reading the lines before the cut (the outputs do not depend on it: not part of
    a stage's config identity)."""
    include_stdlib: bool = True
    """Embedded default: read the standard library as the repository 'python/cpython'."""
    include_site_packages: bool = True
    """Embedded default: read every installed distribution as one repository."""


def expand_paths(patterns: list[str], suffixes: tuple[str, ...] | None = None) -> list[Location]:
    """Files named by paths, directories (recursively) and globs, sorted, de-duplicated: local
    Paths, and URLs (str) for fsspec URLs (``s3://bucket/dump/*.jsonl.zst``, ``memory://in``).

    A pattern that matches nothing is an InputError naming it (a typo must not read as an empty corpus).
    """
    out: list[Location] = []
    for pattern in patterns:
        if is_url(pattern):
            out.extend(_expand_url(pattern, suffixes))
            continue
        if "://" in pattern:
            pattern = str(location(pattern))  # file://x is the local path x
        if any(ch in pattern for ch in "*?["):
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                raise InputError(f"no input files match {pattern!r}")
            out.extend(Path(m) for m in matches if os.path.isfile(m))
        elif os.path.isdir(pattern):
            found = sorted(
                p for p in Path(pattern).rglob("*")
                if p.is_file() and not p.name.startswith(".") and (suffixes is None or p.name.endswith(suffixes))
            )
            found = _stage_shards(found)
            if not found:
                raise InputError(f"input directory {pattern!r} holds no readable input files")
            out.extend(found)
        elif os.path.isfile(pattern):
            out.append(Path(pattern))
        else:
            raise InputError(f"input not found: {pattern!r}")
    seen: set[Location] = set()
    unique = []
    for p in out:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return unique


def _stage_shards(files: list[Location]) -> list[Location]:
    """``files`` found in a directory, less the metadata of this toolkit's stage outputs: in a
    folder that holds a stage's ``stats.json`` (RUN/clean, RUN/dedup), only the ``part-*`` shards
    are records (not ``stats.json`` itself, which ``.json`` would match, nor ``clusters.jsonl.zst``)."""
    def parent(f: Location) -> str:
        return str(f)[: len(str(f)) - len(basename(f))]

    stage_dirs = set()
    for f in files:
        if basename(f) == "stats.json":
            try:
                if file_info(f)[0] > 16 << 20:  # (a stage's stats are a few KB; this is someone's data)
                    continue
                stats = read_json(f)
            except (OSError, ValueError):
                continue  # (not ours: read as input, and rejected line by line if it is no JSONL)
            if isinstance(stats, dict) and "stage" in stats:
                stage_dirs.add(parent(f))
    if not stage_dirs:
        return files
    return [f for f in files if parent(f) not in stage_dirs or basename(f).startswith("part-")]


def _expand_url(pattern: str, suffixes: tuple[str, ...] | None) -> list[str]:
    """expand_paths for one URL (fsspec's glob, find, isfile)."""
    if any(ch in pattern.partition("://")[2] for ch in "*?["):
        matches = glob_files(pattern)
        if not matches:
            raise InputError(f"no input files match {pattern!r}")
        return matches
    if is_dir(pattern):
        found = _stage_shards([u for u in find_files(pattern)
                               if not basename(u).startswith((".", "_")) and (suffixes is None or basename(u).endswith(suffixes))])
        if not found:
            raise InputError(f"input directory {pattern!r} holds no readable input files")
        return found
    if is_file(pattern):
        return [pattern]
    raise InputError(f"input not found: {pattern!r}")


def check_content(content: str, nbytes: int, max_bytes: int) -> str | None:
    """The reject reason shared by all readers for unusable content, or None."""
    if nbytes > max_bytes:
        return "too_large"
    if "\x00" in content:
        return "binary"
    if not content or content.isspace():  # = not content.strip(), without copying the text
        return "empty_content"
    return None


def limit_units(units: Iterator[Any], limit: int) -> Iterator[Any]:
    """The first ``limit`` records of a unit stream (units know their length and can be cut)."""
    left = limit
    for unit in units:
        if left <= 0:
            return
        n = len(unit)
        if n > left:
            yield unit.head(left)
            return
        left -= n
        yield unit


class Reader:
    """A streaming source of CodeFile records.

    ``units()`` runs in the main process and yields cheap, picklable work units in a fixed order;
    ``decode(unit)`` turns one unit into records (or Rejected with a reason) and runs in a worker.
    Units do not depend on the number of workers, so the output does not either.
    """

    name = "reader"
    listing: tuple[str, ...] = ()
    """Attributes that only ``units()`` needs (the file lists of a listed input): not pickled, so a
    reader shipped to workers with their work carries only what ``decode`` needs."""

    def __getstate__(self) -> dict[str, Any]:
        return {k: (None if k in self.listing else v) for k, v in self.__dict__.items()}

    def units(self) -> Iterator[Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def decode(self, unit: Any) -> Iterator[CodeFile | Rejected]:  # pragma: no cover - interface
        raise NotImplementedError

    def work_units(self) -> Iterator[Any]:
        """Units for workers that read their own bytes (their records may be unknown to the driver,
        and ``decode`` may also yield an InputWarning); by default :meth:`units`, which already name
        where the bytes are (files, row groups)."""
        return self.units()

    def records(self) -> Iterator[CodeFile | Rejected]:
        """All records in order, in this process."""
        for unit in self.units():
            yield from self.decode(unit)

    def fingerprint(self) -> str:
        """Identifies the input for the run manifest (names, sizes, mtimes)."""
        raise NotImplementedError

    @property
    def warnings(self) -> list[str]:
        """Problems found while listing units (empty files, truncated archives), for stats.json."""
        return getattr(self, "_warnings", [])

    @property
    def input_files(self) -> list[dict[str, Any]]:
        """Per input file read, for stats.json: ``{"file", "lines", "clean"}`` (empty where a reader does not track it)."""
        return []


class FileDumpReader(Reader):
    """A reader over dump files (JSONL, Parquet): paths, column mapping and limits."""

    suffixes: tuple[str, ...] = ()

    def __init__(self, paths: list[str] | str, columns: ColumnsConfig | None = None,
                 batch_records: int = 256, max_file_bytes: int = 10 << 20):
        self.paths = expand_paths([paths] if isinstance(paths, (str, os.PathLike)) else list(paths), self.suffixes)
        self.columns = columns or ColumnsConfig()
        self.batch_records = batch_records
        self.max_file_bytes = max_file_bytes
        self._warnings: list[str] = []

    def fingerprint(self) -> str:
        from preprocessing.runner.manifest import fingerprint_files

        return fingerprint_files(self.paths)
