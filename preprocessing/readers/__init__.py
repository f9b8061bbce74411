"""Streaming readers: JSONL (.gz/.zst), Parquet, HF datasets, local repositories, the Python installation."""

from __future__ import annotations

import os

from preprocessing.readers.base import ColumnsConfig, InputConfig, InputError, Reader, expand_paths, limit_units
from preprocessing.readers.jsonl import JSONL_SUFFIXES, JsonlReader
from preprocessing.readers.parquet import PARQUET_SUFFIXES, ParquetReader

__all__ = [
    "ColumnsConfig", "HFDatasetReader", "InputConfig", "InputError", "JsonlReader", "LocalReposReader",
    "ParquetReader", "PythonEnvReader", "Reader", "limit_units", "open_reader",
]

# The readers only some inputs use are imported when asked for (a dump run does not pay for the
# local reader's email/sysconfig, nor the HF reader); `from preprocessing.readers import X` works as before.
_LAZY = {"HFDatasetReader": "preprocessing.readers.hf", "LocalReposReader": "preprocessing.readers.local",
         "PythonEnvReader": "preprocessing.readers.local"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _guess_format(paths: list[str]) -> str:
    """jsonl or parquet by file names; directories without dump files are local repositories."""
    if all(os.path.isdir(p) for p in paths) and not _has_dump_files(paths):
        return "local"
    names = [str(f).lower() for f in expand_paths(paths, JSONL_SUFFIXES + PARQUET_SUFFIXES)]
    if names and all(n.endswith(PARQUET_SUFFIXES) for n in names):
        return "parquet"
    if names and all(n.endswith(JSONL_SUFFIXES) for n in names):
        return "jsonl"
    raise InputError(
        f"cannot tell the input format of {', '.join(paths)}; set input.format "
        "(jsonl, parquet, hf, local) or use .jsonl/.jsonl.gz/.jsonl.zst/.parquet names"
    )


def _has_dump_files(dirs: list[str]) -> bool:
    for d in dirs:
        for _, _, files in os.walk(d):
            if any(f.endswith(JSONL_SUFFIXES + PARQUET_SUFFIXES) for f in files):
                return True
    return False


def open_reader(cfg: InputConfig) -> Reader:
    """The reader an InputConfig describes; no paths and no HF dataset means the embedded default."""
    common = {"batch_records": cfg.batch_records, "max_file_bytes": cfg.max_file_bytes}
    fmt = cfg.format
    if fmt == "auto":
        if cfg.hf_dataset:
            fmt = "hf"
        elif not cfg.paths:
            fmt = "pyenv"
        else:
            fmt = _guess_format(cfg.paths)
    if fmt == "pyenv":
        from preprocessing.readers.local import PythonEnvReader

        return PythonEnvReader(cfg.extensions, cfg.include_stdlib, cfg.include_site_packages, **common)
    if fmt == "hf":
        if not cfg.hf_dataset:
            raise InputError("input.format is 'hf' but input.hf_dataset is not set")
        from preprocessing.readers.hf import HFDatasetReader

        return HFDatasetReader(cfg.hf_dataset, cfg.hf_config, cfg.hf_split, cfg.hf_data_files, cfg.columns, **common)
    if not cfg.paths:
        raise InputError(f"input.format is {fmt!r} but no input paths were given")
    if fmt == "jsonl":
        return JsonlReader(cfg.paths, cfg.columns, strict=cfg.strict, **common)
    if fmt == "parquet":
        return ParquetReader(cfg.paths, cfg.columns, **common)
    if fmt == "local":
        from preprocessing.readers.local import LocalReposReader

        return LocalReposReader(cfg.paths, cfg.extensions, **common)
    raise InputError(f"unknown input.format {fmt!r} (auto, jsonl, parquet, hf, local, pyenv)")
