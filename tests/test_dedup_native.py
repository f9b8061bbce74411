"""Loading the native MinHash kernels (the C extension built at install): a fresh process gets them
in milliseconds without compiling anything, and every fallback is a visible warning with the same
signatures as the numpy reference."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from preprocessing.dedup import native

ROOT = Path(__file__).resolve().parent.parent
needs_native = pytest.mark.skipif(not native.available(), reason="the C kernels are not built (pip install -e .)")

CHILD = r"""
import json, sys, sysconfig, time, warnings
from pathlib import Path
warnings.simplefilter("always")
if sys.argv[3] == "hide-native":
    sys.modules["preprocessing.dedup._cminhash"] = None  # the import raises ImportError, as when never built
if sys.argv[3] == "stale-source":  # the checkout's source changed after the build
    import preprocessing.dedup.native as native
    native.SOURCE = Path(sys.argv[4])
with warnings.catch_warnings(record=True) as caught:
    from preprocessing.dedup.minhash import MinHashSignature, NearDedupConfig, encode_content
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:30]
    texts = [encode_content(f.read_text(encoding="utf-8", errors="surrogateescape")) for f in files] + [b"", b"x"]
    out, native_used, load = {}, {}, {}
    for backend in ("auto", "numpy"):
        h = MinHashSignature(NearDedupConfig(backend=backend, ngram=int(sys.argv[1]), num_perm=64, verify=sys.argv[2]))
        t = time.perf_counter()
        native_used[backend] = h.native
        load[backend] = time.perf_counter() - t
        b = h.signatures(texts)
        out[backend] = [b.sig.tolist(), b.ntokens.tolist(), h.band_keys(b.sig).tolist()]
        if sys.argv[2] == "exact":
            out[backend].append(h.shingles(texts[3]).tolist())
print(json.dumps({"same": out["auto"] == out["numpy"], "native": native_used["auto"], "load_s": load["auto"],
                  "numba": "numba" in sys.modules,
                  "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]}))
"""


def child(ngram: int = 1, verify: str = "signature", mode: str = "", *extra: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(ngram), verify, mode, *extra], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@needs_native
@pytest.mark.parametrize("ngram,verify", [(1, "signature"), (5, "exact")])
def test_a_fresh_process_loads_the_kernels_at_once_and_matches_the_reference(ngram, verify):
    got = child(ngram, verify)
    assert got["same"] and got["native"] and got["warnings"] == []
    assert not got["numba"], "nothing of numba is imported"
    assert got["load_s"] < 0.5, got  # an import of a shared library (ms), not a compile (the numba kernels: ~1 s)


@needs_native
def test_the_extension_is_built_from_the_source_beside_it(tmp_path):
    mod = sys.modules.get("preprocessing.dedup._cminhash") or __import__("preprocessing.dedup._cminhash",
                                                                          fromlist=["x"])
    import hashlib

    assert mod.SOURCE_SHA256 == hashlib.sha256(native.SOURCE.read_bytes()).hexdigest(), \
        "the built kernels are older than _cminhash.c: rebuild with pip install -e ."
    changed = tmp_path / "_cminhash.c"
    shutil.copy(native.SOURCE, changed)
    with changed.open("a") as f:
        f.write("/* an edit after the build */\n")
    got = child(1, "signature", "stale-source", str(changed))
    assert got["same"] and got["native"]  # used as built, and said
    assert len(got["warnings"]) == 1 and "built from another version" in got["warnings"][0]
    assert "pip install -e ." in got["warnings"][0]


def test_without_the_extension_auto_uses_the_numpy_reference_with_a_warning():
    got = child(1, "signature", "hide-native")
    assert got["same"] and not got["native"]
    assert len(got["warnings"]) == 1 and "C MinHash kernels are not built" in got["warnings"][0]
    assert "using the numpy backend" in got["warnings"][0] and "pip install -e ." in got["warnings"][0]


def test_string_ends_finds_the_first_unescaped_quote():
    """``string_ends`` (pass 2's search for a content body's closing quote) agrees with a plain
    left-to-right scan (a backslash escapes the byte after it) on random strings of quotes,
    backslashes and letters, from any start; -1 without a closing quote; bad ranges raise."""
    import random

    import numpy as np

    if not native.available():
        pytest.skip("the C kernels are not built here")
    string_ends = native.kernel("string_ends")

    def scan(buf: bytes, i: int, end: int) -> int:
        while i < end:
            if buf[i] == 0x22:
                return i
            i += 2 if buf[i] == 0x5C else 1
        return -1

    rng = random.Random(7)
    bufs = [bytes(rng.choice(b'ab\\"') for _ in range(rng.randint(0, 14))) for _ in range(3000)]
    buf = b"".join(bufs)
    starts, ends, pos = [], [], 0
    for b in bufs:
        starts.append(pos + rng.randint(0, len(b)))
        ends.append(pos + len(b))
        pos += len(b)
    close = np.empty(len(bufs), dtype=np.int64)
    string_ends(buf, np.array(starts, dtype=np.int64), np.array(ends, dtype=np.int64), close)
    assert close.tolist() == [scan(buf, s, e) for s, e in zip(starts, ends)]
    assert -1 in close.tolist() and max(close.tolist()) >= 0
    with pytest.raises(ValueError, match="outside buf"):
        string_ends(b"abc", np.array([0], dtype=np.int64), np.array([4], dtype=np.int64), close)
