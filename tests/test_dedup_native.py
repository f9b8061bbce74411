"""Loading the native MinHash kernels: numba's cache (``cache=True``) reused by later processes,
and every fallback a visible warning with the same signatures as the numpy reference."""

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
needs_numba = pytest.mark.skipif(not native.available(), reason="numba not installed")

CHILD = r"""
import json, resource, sys, sysconfig, warnings
from pathlib import Path
warnings.simplefilter("always")
if sys.argv[3] == "hide-numba":
    sys.modules["numba"] = None  # import numba raises ImportError, as on a broken install
with warnings.catch_warnings(record=True) as caught:
    from preprocessing.dedup.minhash import MinHashSignature, NearDedupConfig, encode_content
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:30]
    texts = [encode_content(f.read_text(encoding="utf-8", errors="surrogateescape")) for f in files] + [b"", b"x"]
    out, native = {}, {}
    for backend in ("auto", "numpy"):
        h = MinHashSignature(NearDedupConfig(backend=backend, ngram=int(sys.argv[1]), num_perm=64, verify=sys.argv[2]))
        b = h.signatures(texts)
        out[backend] = [b.sig.tolist(), b.ntokens.tolist(), h.band_keys(b.sig).tolist()]
        if sys.argv[2] == "exact":
            out[backend].append(h.shingles(texts[3]).tolist())
        native[backend] = h.native
r = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"same": out["auto"] == out["numpy"], "native": native["auto"], "cpu": r.ru_utime + r.ru_stime,
                  "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]}))
"""


def child(cache: Path | str, ngram: int = 1, verify: str = "signature", mode: str = "") -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(ngram), verify, mode], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def snapshot(cache: Path) -> dict[str, tuple[int, bytes]]:
    """numba's cache files (index .nbi, code .nbc) under ``cache``, with mtime and contents."""
    return {str(p.relative_to(cache)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(cache.rglob("*")) if p.suffix in (".nbi", ".nbc")}


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory) -> tuple[Path, dict]:
    """A numba cache directory the kernels were compiled into by a first process (empty before)."""
    cache = tmp_path_factory.mktemp("numba-cache")
    return cache, child(cache)


@needs_numba
def test_first_process_compiles_into_numba_cache_and_later_ones_reuse_it(warm_cache):
    cache, first = warm_cache
    assert first["same"] and first["native"] and first["warnings"] == []
    files = snapshot(cache)
    names = sorted(Path(f).name for f in files)
    # one specialisation of each kernel used, none of `shingles` (only verify: exact compiles it)
    assert [n.split("-")[0] for n in names if n.endswith(".nbi")] == ["_kernels.band_keys_kernel",
                                                                        "_kernels.signatures_kernel"]
    assert sum(n.endswith(".nbc") for n in names) == 2
    second = child(cache, ngram=5)  # another process, another n: the same compiled kernels
    assert second["same"] and second["native"] and second["warnings"] == []
    assert snapshot(cache) == files, "loaded from the cache: nothing compiled or written again"
    assert second["cpu"] < first["cpu"] / 2, (first["cpu"], second["cpu"])
    exact = child(cache, verify="exact")  # `shingles` compiled now, the other two still loaded
    assert exact["same"] and exact["native"]
    after = snapshot(cache)
    assert {k: v for k, v in after.items() if k in files} == files
    assert sorted(Path(f).name.split("-")[0] for f in after if f.endswith(".nbi"))[1] == "_kernels.shingles_kernel"


@needs_numba
@pytest.mark.slow
def test_a_cut_cache_file_is_a_warning_and_the_kernels_compile_without_it(warm_cache, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(warm_cache[0], cache)
    for f in cache.rglob("*.nbi"):
        f.write_bytes(f.read_bytes()[:40])
    got = child(cache)
    assert got["same"] and got["native"]
    assert len(got["warnings"]) == 2 and all("cache of the MinHash kernel" in w and "unusable" in w
                                               for w in got["warnings"])


@needs_numba
def test_a_cache_dir_that_is_no_folder_is_a_warning_and_results_stay_the_same(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    got = child(blocker / "numba")  # numba then caches in its default place (or not at all)
    assert got["same"] and got["native"]
    assert any("is not a writable folder" in w for w in got["warnings"]), got["warnings"]


def test_without_numba_auto_uses_the_numpy_reference_with_a_warning(tmp_path):
    got = child(tmp_path, mode="hide-numba")
    assert got["same"] and not got["native"]
    assert len(got["warnings"]) == 1 and "numba cannot be imported" in got["warnings"][0]
    assert "using the numpy backend" in got["warnings"][0]
