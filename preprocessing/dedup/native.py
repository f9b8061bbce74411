"""The MinHash kernels as machine code: compiled by numba once, then loaded without numba.

A process that imports numba and dispatches a cached ``njit`` function pays ~0.6 s of CPU before
the first signature (numba's import, its typing registries, scipy's BLAS probe); for a `dedup` of
a few hundred MB that is a fifth of the whole run. So the kernels of :mod:`._kernels` are compiled
as C-ABI functions (``numba.cfunc``) the first time, and their machine code is kept in two cache
files for later processes, which call it through ctypes without importing numba:

* a shared library (``.so``): the kernels' LLVM IR emitted as position-independent object code
  and linked by the C compiler (``cc``) with stubs for numba's error-path helpers (never reached:
  the kernels allocate nothing and cannot raise). Loading it is one ``dlopen`` (~1 ms), without
  importing llvmlite either (~0.07 s saved per process);
* the object code as numba wrote it (``.bin``), linked at load time by llvmlite's MCJIT (~0.07 s):
  used where no C compiler was found.

The machine code is the same, so the results are too (tests check them against the numpy
reference and across the paths). The cache files are keyed by the kernels' source, the numba and
llvmlite installations, the host CPU (numba compiles for the host: name and features; the
``.so`` key reads them from /proc/cpuinfo, so that finding it needs no llvmlite) and the Python
version. A missing, stale or unloadable cache file is rebuilt by compiling again (~5 s); a cache
directory that cannot be written only costs that compile in every process.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.machinery
import importlib.util
import os
import pickle
import re
import sys
from pathlib import Path
from typing import Any

import xxhash

_c = ctypes
PROTOTYPES = {
    "signatures": _c.CFUNCTYPE(None, _c.c_void_p, _c.c_int64, _c.c_void_p, _c.c_void_p, _c.c_int64, _c.c_int64,
                               _c.c_int64, _c.c_void_p, _c.c_void_p, _c.c_int64, _c.c_void_p, _c.c_void_p, _c.c_void_p,
                               _c.c_void_p, _c.c_int64),
    "band_keys": _c.CFUNCTYPE(None, _c.c_void_p, _c.c_int64, _c.c_int64, _c.c_int64, _c.c_int64, _c.c_void_p),
    "shingles": _c.CFUNCTYPE(_c.c_int64, _c.c_void_p, _c.c_int64, _c.c_int64, _c.c_void_p, _c.c_int64, _c.c_void_p),
}
"""ctypes prototypes of the C-ABI entry points of :mod:`._kernels` (KERNELS there)."""

CACHE_FORMAT = 3
_KEEP: list[Any] = []  # engines / cfuncs whose machine code the returned functions point into
LAST_SOURCE = ""  # "cache" or "compiled": where the kernels of this process came from (for tests)
LAST_LOADER = ""  # "so" (dlopen), "mcjit" (llvmlite) or "numba": what linked them (for tests)


def _log() -> Any:
    import logging  # only on the paths that log (~5 ms to import)

    return logging.getLogger(__name__)


def available() -> bool:
    """Whether the kernels can be had here (numba and llvmlite installed)."""
    return importlib.util.find_spec("numba") is not None and importlib.util.find_spec("llvmlite") is not None


def cache_dir() -> Path:
    """$CP_KERNEL_CACHE_DIR if set; else beside this module (``__pycache__``) when writable, else
    the user's cache directory."""
    if os.environ.get("CP_KERNEL_CACHE_DIR"):
        return Path(os.environ["CP_KERNEL_CACHE_DIR"])
    here = Path(__file__).with_name("__pycache__")
    try:
        here.mkdir(exist_ok=True)
        if os.access(here, os.W_OK):
            return here
    except OSError:
        pass
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "codeparrot-toolkit"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _cache_key(cpu: str, features: str) -> str:
    source = Path(__file__).with_name("_kernels.py").read_bytes()
    parts = [
        str(CACHE_FORMAT), xxhash.xxh3_128_hexdigest(source), sys.version,
        _stamp(_package_dir("numba") / "__init__.py"), _stamp(_package_dir("llvmlite") / "__init__.py"),
        cpu, features,
    ]
    return xxhash.xxh3_128_hexdigest("|".join(parts).encode())


def _cpuinfo() -> str | None:
    """The first CPU's identity and feature flags as /proc/cpuinfo gives them (None elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    keep = ("vendor_id", "cpu family", "model", "model name", "stepping", "flags", "Features", "CPU implementer",
            "CPU architecture", "CPU variant", "CPU part", "isa")
    first = text.split("\n\n", 1)[0]
    lines = [ln for ln in first.splitlines() if ln.split(":", 1)[0].strip() in keep]
    return "\n".join(lines) if any(ln.startswith(("flags", "Features", "isa")) for ln in lines) else None


def _so_path() -> Path | None:
    """Where the shared-library cache of this host lives (None when the host CPU cannot be told
    without llvmlite)."""
    info = _cpuinfo()
    if info is None:
        return None
    return cache_dir() / f"minhash-kernels-{_cache_key('cpuinfo', info)}.so"


def _load_so(path: Path) -> dict[str, Any]:
    lib = ctypes.CDLL(str(path))
    table = (ctypes.c_void_p * len(PROTOTYPES)).in_dll(lib, "cp_kernels")
    if not all(table):
        raise ValueError(f"{path}: a kernel address is missing")
    _KEEP.append(lib)
    return {name: PROTOTYPES[name](address) for name, address in zip(PROTOTYPES, table)}


def _build_so(compiled: dict[str, Any], path: Path) -> None:
    """Link the kernels numba just compiled into the shared-library cache file ``path``: their
    LLVM IR emitted as position-independent code, plus a C file with an address table of the
    kernels (``cp_kernels``, in PROTOTYPES order) and aborting stubs for numba's helpers."""
    import shutil
    import subprocess
    import sysconfig
    import tempfile

    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        cc = "cc"
    if shutil.which(cc) is None:
        raise FileNotFoundError("no C compiler (cc) to link the kernels with")
    llvm, cpu, features = _host()
    tm = llvm.Target.from_default_triple().create_target_machine(
        cpu=cpu, features=features, opt=3, reloc="pic", codemodel="default")
    helpers = ["numba_" + n for n in _extension("numba._helperlib", "_helperlib*.so").c_helpers]
    nrt = _extension("numba.core.runtime._nrt_python", "core/runtime/_nrt_python*.so").c_helpers
    helpers += [n if n.startswith("_") else "NRT_" + n for n in nrt]
    lines = ["#include <stdlib.h>"]
    lines += [f"__attribute__((weak)) void {n}(void) {{ abort(); }}" for n in sorted(set(helpers))]
    lines += [f'extern void cp_kernel_{i}(void) __asm__("{cf.native_name}");' for i, cf in enumerate(compiled.values())]
    lines.append("void *cp_kernels[] = {" + ", ".join(f"(void *)cp_kernel_{i}" for i in range(len(compiled))) + "};")
    with tempfile.TemporaryDirectory() as tmp:
        objects = []
        for name in PROTOTYPES:
            module = llvm.parse_assembly(compiled[name]._library.get_llvm_str())
            obj = Path(tmp) / f"{name}.o"
            obj.write_bytes(tm.emit_object(module))
            objects.append(str(obj))
        stub = Path(tmp) / "table.c"
        stub.write_text("\n".join(lines) + "\n")
        out = Path(tmp) / "kernels.so"
        proc = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wl,-z,noexecstack", "-o", str(out), *objects, str(stub)],
                              capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{cc} failed: {proc.stderr[-500:]}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        shutil.copyfile(out, tmp_path)
        os.replace(tmp_path, path)


def _host() -> tuple[Any, str, str]:
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm, llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


def _extension(name: str, pattern: str) -> Any:
    """One of numba's C extension modules, loaded without importing the numba package."""
    if name in sys.modules:
        return sys.modules[name]
    path = next(_package_dir("numba").glob(pattern))
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, str(path), loader=loader)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    loader.exec_module(module)
    return module


_SYMBOL = re.compile(rb"(?<=\x00)(_?Py[A-Za-z_]+|mem(?:set|cpy|move|cmp))(?=\x00)")


def _define_symbols(llvm: Any, objects: list[bytes]) -> None:
    """Give MCJIT the addresses numba's own JIT gives it: numba's C helpers (``numba_*``, ``NRT_*``,
    used on the kernels' error paths), the Python C API and libc functions the object code names."""
    helpers = _extension("numba._helperlib", "_helperlib*.so").c_helpers
    for name, address in helpers.items():
        llvm.add_symbol("numba_" + name, address)
    nrt = _extension("numba.core.runtime._nrt_python", "core/runtime/_nrt_python*.so").c_helpers
    for name, address in nrt.items():
        llvm.add_symbol(name if name.startswith("_") else "NRT_" + name, address)
    libc = ctypes.CDLL(None)
    names = {m.group(1).decode() for obj in objects for m in _SYMBOL.finditer(obj)}
    for name in sorted(names):
        lib = ctypes.pythonapi if "Py" in name else libc
        if not hasattr(lib, name):
            continue
        if name.startswith(("PyExc_", "_Py_")):  # data: the variable's address
            llvm.add_symbol(name, ctypes.addressof(ctypes.c_void_p.in_dll(lib, name)))
        else:
            llvm.add_symbol(name, ctypes.cast(getattr(lib, name), ctypes.c_void_p).value)


def _load(path: Path, llvm: Any, cpu: str, features: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        blobs = pickle.load(f)
    if set(blobs) != set(PROTOTYPES):
        raise ValueError(f"{path}: not a kernel cache of this version")
    _define_symbols(llvm, [obj for _symbol, obj in blobs.values()])
    target = llvm.Target.from_default_triple()
    tm = target.create_target_machine(cpu=cpu, features=features, opt=3, reloc="default", codemodel="jitdefault")
    fns = {}
    for name, (symbol, obj) in blobs.items():
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), tm)
        engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        engine.finalize_object()
        address = engine.get_function_address(symbol)
        if not address:
            raise ValueError(f"{path}: no symbol {symbol}")
        _KEEP.append(engine)
        fns[name] = PROTOTYPES[name](address)
    return fns


def _compile_and_store(path: Path | None, so_path: Path | None) -> dict[str, Any]:
    from preprocessing.dedup import _kernels

    compiled = _kernels.compile_kernels()
    _KEEP.extend(compiled.values())
    log = _log()
    if path is not None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:  # storing is an optimisation: numba's library API may change, a folder may be read-only
            blobs = {name: (cf.native_name, cf._library.serialize_using_object_code()[2][0])
                     for name, cf in compiled.items()}
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                pickle.dump(blobs, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except Exception as exc:  # noqa: BLE001
            log.debug("kernel cache %s not written (%s)", path, exc)
            tmp.unlink(missing_ok=True)
    if so_path is not None:
        try:
            _build_so(compiled, so_path)
        except Exception as exc:  # noqa: BLE001 - without it, later processes load the .bin file
            log.debug("kernel library %s not built (%s)", so_path, exc)
    return {name: PROTOTYPES[name](cf.address) for name, cf in compiled.items()}


@functools.lru_cache(maxsize=1)
def kernels() -> dict[str, Any]:
    """name -> ctypes function of each kernel: from a cache file, else compiled (and cached)."""
    global LAST_SOURCE, LAST_LOADER
    path = so_path = None
    try:
        so_path = _so_path()
        if so_path is not None and so_path.exists():
            fns = _load_so(so_path)
            LAST_SOURCE, LAST_LOADER = "cache", "so"
            return fns
    except Exception as exc:  # noqa: BLE001 - any failure to load only means another path
        _log().debug("kernel library %s not loaded (%s)", so_path, exc)
    try:
        llvm, cpu, features = _host()
        path = cache_dir() / f"minhash-kernels-{_cache_key(cpu, features)}.bin"
        if path.exists():
            fns = _load(path, llvm, cpu, features)
            LAST_SOURCE, LAST_LOADER = "cache", "mcjit"
            return fns
    except Exception as exc:  # noqa: BLE001 - any failure to load only means compiling again
        _log().debug("kernel cache %s not loaded (%s): compiling", path, exc)
    fns = _compile_and_store(path, so_path)
    LAST_SOURCE, LAST_LOADER = "compiled", "numba"
    return fns
