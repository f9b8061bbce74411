"""The native MinHash kernels: the C extension ``preprocessing.dedup._cminhash`` (source
``_cminhash.c`` beside this file), compiled once when the package is installed (setup.py; ``pip
install .`` or ``pip install -e .``), imported like any module.

What a process pays: the import of a small shared library (about a millisecond); nothing is
compiled at run time and there is no kernel cache (the numba kernels this replaces cost ~1 s of
numba start-up per process warm and ~10 s cold, docs/benchmarks.md). When the extension is
missing (installed without a C compiler: setup.py builds it as optional) the caller gets a visible
RuntimeWarning and the numpy reference (bit-identical signatures, about 10x slower), or, with
``backend: native``, an error saying how to build it. An editable install whose extension was
built from another version of the source is a warning too (the kernels would be stale).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import warnings
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("_cminhash.c")
BUILD_HINT = "build it with a C compiler: pip install -e . (or pip install .) in the toolkit's checkout"


class KernelsUnavailable(RuntimeError):
    """The C kernels cannot be had here (the reason is the message)."""


@functools.lru_cache(maxsize=1)
def _module() -> Any:
    """The extension module, checked against the source beside it (when there is one)."""
    try:
        mod = importlib.import_module("preprocessing.dedup._cminhash")
    except ImportError as exc:
        raise KernelsUnavailable(f"the C MinHash kernels are not built ({exc}); {BUILD_HINT}") from None
    built = getattr(mod, "SOURCE_SHA256", None)
    if SOURCE.exists() and built is not None and built != hashlib.sha256(SOURCE.read_bytes()).hexdigest():
        warnings.warn(f"the C MinHash kernels ({mod.__file__}) were built from another version of {SOURCE.name}: "
                      f"using them as built; {BUILD_HINT}", RuntimeWarning, stacklevel=4)
    return mod


def available() -> bool:
    """Whether the C extension was built and imports here."""
    try:
        _module()
    except KernelsUnavailable:
        return False
    return True


def kernel(name: str) -> Any:
    """The C function ``name`` (signatures, band_keys, shingles, xxh64) of the extension."""
    return getattr(_module(), name)


def optional_kernel(name: str, without: str) -> Any:
    """The C function ``name``, or None where this build lacks it (no extension, or an older one):
    then a RuntimeWarning that says what runs instead (``without``: the pure-Python or numpy path,
    which gives the same results). Its callers keep the answer, so the warning comes once."""
    try:
        return kernel(name)
    except (KernelsUnavailable, AttributeError) as exc:
        warnings.warn(f"the C kernels have no {name} ({exc}): {without}; {BUILD_HINT}", RuntimeWarning, stacklevel=4)
        return None


@functools.lru_cache(maxsize=4)
def ready(strict: bool) -> bool:
    """Whether the kernels can be had here.

    Not ``strict`` (backend ``auto``): a missing extension is a RuntimeWarning naming the reason
    and False (the caller uses the numpy reference). ``strict`` (backend ``native``): it raises
    :class:`KernelsUnavailable`."""
    try:
        _module()
        return True
    except KernelsUnavailable as exc:
        if strict:
            raise
        warnings.warn(f"{exc}: using the numpy backend (the same signatures, about 10x slower)", RuntimeWarning,
                      stacklevel=2)
        return False
