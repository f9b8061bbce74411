"""The native MinHash kernels: compiled by numba once, then loaded from the cache without numba."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from preprocessing.dedup import native

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, sysconfig
from pathlib import Path
from preprocessing.dedup import native
from preprocessing.dedup.minhash import MinHashSignature, NearDedupConfig, encode_content
files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:30]
texts = [encode_content(f.read_text(encoding="utf-8", errors="surrogateescape")) for f in files] + [b"", b"x"]
out = {}
for backend in ("numba", "numpy"):
    h = MinHashSignature(NearDedupConfig(backend=backend, ngram=int(sys.argv[1]), num_perm=64))
    b = h.signatures(texts)
    out[backend] = [b.sig.tolist(), b.ntokens.tolist(), h.band_keys(b.sig).tolist(), h.shingles(texts[3]).tolist()]
print(json.dumps({"source": native.LAST_SOURCE, "numba_imported": "numba" in sys.modules,
                  "same": out["numba"] == out["numpy"], "loader": native.LAST_LOADER,
                  "llvmlite_imported": "llvmlite" in sys.modules}))
"""


def child(cache: Path, ngram: int = 1) -> dict:
    env = dict(os.environ, CP_KERNEL_CACHE_DIR=str(cache))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(ngram)], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not native.available(), reason="numba not installed")
def test_kernels_compile_once_then_load_without_numba_and_a_bad_cache_recompiles(tmp_path: Path):
    first = child(tmp_path)
    assert first["source"] == "compiled" and first["numba_imported"] and first["same"]
    [cached] = list(tmp_path.glob("minhash-kernels-*.bin"))
    libs = list(tmp_path.glob("minhash-kernels-*.so"))
    if native._so_path() is not None and shutil.which("cc"):
        assert len(libs) == 1, "a C compiler is here: the kernels are linked into a shared library"
        second = child(tmp_path, ngram=5)  # another process: dlopen, neither numba nor llvmlite imported
        assert second == {"source": "cache", "numba_imported": False, "same": True, "loader": "so",
                          "llvmlite_imported": False}
        libs[0].unlink()
    third = child(tmp_path, ngram=5)  # the object code linked by llvmlite's MCJIT
    assert third == {"source": "cache", "numba_imported": False, "same": True, "loader": "mcjit",
                     "llvmlite_imported": True}
    cached.write_bytes(cached.read_bytes()[:100])  # a cut cache file: compiled again, rewritten
    fourth = child(tmp_path)
    assert fourth["source"] == "compiled" and fourth["numba_imported"] and fourth["same"]
    assert child(tmp_path)["source"] == "cache"
    for lib in tmp_path.glob("minhash-kernels-*.so"):
        lib.write_bytes(lib.read_bytes()[:100])  # a cut library: the .bin file instead
        assert child(tmp_path)["loader"] == "mcjit"
