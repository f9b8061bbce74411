"""The MinHash kernels of :mod:`._kernels`, compiled by numba and kept in numba's on-disk cache.

Each kernel is compiled with ``numba.njit(signature, cache=True)``, one explicit signature per
kernel, the first time a process uses it (``shingles`` only for ``verify: exact``). numba writes
the machine code to its cache directory (``$NUMBA_CACHE_DIR`` when set; else ``__pycache__`` beside
``_kernels.py`` when writable, else a per-user cache folder: numba's documented rules) and later
processes load it from there instead of compiling; numba keys the cache by the kernel's source file
and the host CPU, and recompiles when either changes.

What a process pays (docs/benchmarks.md has the measured numbers): importing numba, then loading
the cached kernels (warm), or compiling them (cold: the first run on a machine, or after the
source changed). When numba cannot be imported, cannot compile, or cannot use its cache, the
caller gets a visible warning and the numpy reference (bit-identical signatures, slower), or
compiled kernels without a cache.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import tempfile
import warnings
from typing import Any


class KernelsUnavailable(RuntimeError):
    """numba could not provide the kernels here (the reason is the message)."""


def available() -> bool:
    """Whether numba is installed (found without importing it)."""
    return importlib.util.find_spec("numba") is not None


@functools.lru_cache(maxsize=1)
def _check_cache_dir() -> None:
    """Warn when $NUMBA_CACHE_DIR is set but is no writable folder: numba then silently keeps its
    cache in its default place (or compiles in every process)."""
    path = os.environ.get("NUMBA_CACHE_DIR")
    if not path:
        return
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as exc:
        warnings.warn(f"NUMBA_CACHE_DIR={path} is not a writable folder ({exc.strerror or exc}): numba caches the "
                      "MinHash kernels in its default place, or compiles them in every process", RuntimeWarning,
                      stacklevel=3)


@functools.lru_cache(maxsize=None)
def kernel(name: str) -> Any:
    """The compiled kernel ``name`` of :data:`._kernels.KERNELS` (a numba dispatcher).

    Loaded from numba's cache, else compiled (and cached). A cache numba cannot read is a warning,
    and the kernel is compiled without it (correct, only slower to start); numba failing to
    import or to compile raises :class:`KernelsUnavailable`."""
    try:
        import numba

        from preprocessing.dedup import _kernels
    except Exception as exc:  # noqa: BLE001 - a broken install: the caller falls back, visibly
        raise KernelsUnavailable(f"numba cannot be imported ({type(exc).__name__}: {exc})") from exc
    _check_cache_dir()
    fn, signature = _kernels.KERNELS[name]
    options = {"error_model": "numpy", "nogil": True}
    try:
        return numba.njit(signature, cache=True, **options)(fn)
    except Exception as exc:  # noqa: BLE001 - a cut or stale cache file, or no cache locator
        where = os.environ.get("NUMBA_CACHE_DIR") or "preprocessing/dedup/__pycache__ (numba's default)"
        warnings.warn(f"numba's cache of the MinHash kernel {name!r} is unusable ({type(exc).__name__}: {exc}); "
                      f"compiling it without the cache, in every process (delete the kernel's files in {where} "
                      "to rebuild it)", RuntimeWarning, stacklevel=3)
    try:
        return numba.njit(signature, **options)(fn)
    except Exception as exc:  # noqa: BLE001 - numba's compile errors have many types
        raise KernelsUnavailable(f"numba failed to compile the MinHash kernel {name!r} ({exc})") from exc


@functools.lru_cache(maxsize=4)
def ready(strict: bool) -> bool:
    """Whether the signature and band-key kernels can be had here (loaded or compiled now).

    Not ``strict`` (backend ``auto``): a failure is a RuntimeWarning naming the reason and False
    (the caller uses the numpy reference). ``strict`` (backend ``numba``): a failure raises
    :class:`KernelsUnavailable`."""
    try:
        kernel("signatures")
        kernel("band_keys")
        return True
    except KernelsUnavailable as exc:
        if strict:
            raise
        warnings.warn(f"{exc}: using the numpy backend (the same signatures, about 10x slower)", RuntimeWarning,
                      stacklevel=2)
        return False
