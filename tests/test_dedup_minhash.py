"""Tests of preprocessing/dedup/minhash.py: shingling, xxh64, signatures, band keys, config."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np
import pytest
import xxhash

from preprocessing.dedup import minhash as mh
from preprocessing.dedup.minhash import (
    MinHashSignature,
    NearDedupConfig,
    encode_content,
    estimated_jaccard,
    exact_jaccard,
    shingle_hashes_reference,
)

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def stdlib_texts(n: int) -> list[bytes]:
    files = sorted(STDLIB.glob("*.py"))[:n]
    return [encode_content(f.read_text(encoding="utf-8", errors="surrogateescape")) for f in files]


needs_native = pytest.mark.skipif(not mh._HAVE_NATIVE, reason="the C kernels are not built (pip install -e .)")


@needs_native
def test_native_xxh64_matches_xxhash_package():
    from preprocessing.dedup import native

    buf = bytes(range(256)) * 2
    for n in range(80):
        for seed in (0, 3, 2**64 - 1):
            assert native.kernel("xxh64")(buf[5 : 5 + n], seed) == xxhash.xxh64_intdigest(buf[5 : 5 + n], seed=seed)


@needs_native
def test_native_kernels_check_their_arguments():
    """A wrong call is a ValueError naming what is wrong, never a read or write out of bounds."""
    h = MinHashSignature(NearDedupConfig(backend="native", num_perm=8))
    sig_fn = __import__("preprocessing.dedup.native", fromlist=["kernel"]).kernel("signatures")
    n = 1

    def call(buf=b"abc def", starts=(0,), ends=(7,), scratch_words=64, sig_rows=n):
        sig = np.empty((sig_rows, 8), np.uint32)
        out = [np.empty(n, np.int64) for _ in range(3)]
        sig_fn(buf, buf, np.array(starts, np.int64), np.array(ends, np.int64), 1, False, False, h.a, h.b, sig,
               *out, np.empty(n, np.uint8), np.empty(scratch_words, np.uint64))
        return sig

    assert call().shape == (1, 8)
    with pytest.raises(ValueError, match="outside buf"):
        call(ends=(8,))
    with pytest.raises(ValueError, match="scratch"):
        call(scratch_words=4)
    with pytest.raises(ValueError, match="sig is too small"):
        call(sig_rows=0)
    with pytest.raises(ValueError, match="outside buf"):
        call(starts=(5,), ends=(4,))




@needs_native
@pytest.mark.parametrize("ngram,lowercase", [(1, False), (5, True), (3, False)])
def test_native_and_numpy_backends_give_identical_signatures(ngram, lowercase):
    # (with files whose tokens are all distinct, half, or few: the distinct-token table starts small
    # and starts over with a large one when more than half its slots fill)
    spread = [" ".join(f"t{i % k}" for i in range(n)).encode() for n, k in ((3000, 3000), (3000, 1500), (3000, 700),
                                                                          (3000, 40), (200, 90), (60, 60))]
    texts = stdlib_texts(40) + spread + [b"", b"x", "caf\u00e9 \udcff na\u00efve".encode("utf-8", "surrogatepass")]
    kw = {"ngram": ngram, "lowercase": lowercase, "num_perm": 64}
    fast = MinHashSignature(NearDedupConfig(backend="native", **kw))
    ref = MinHashSignature(NearDedupConfig(backend="numpy", **kw))
    a, b = fast.signatures(texts), ref.signatures(texts)
    np.testing.assert_array_equal(a.sig, b.sig)
    np.testing.assert_array_equal(a.ntokens, b.ntokens)
    np.testing.assert_array_equal(fast.band_keys(a.sig), ref.band_keys(a.sig))
    np.testing.assert_array_equal(fast.shingles(texts[3]), ref.shingles(texts[3]))


@needs_native
@pytest.mark.parametrize("num_perm", [256, 13, 2])
def test_every_loop_over_the_permutations_gives_the_reference_bits(num_perm):
    # (the kernel runs the best loop the CPU has: x86-64-v4, AVX2 in 32-bit halves, or the
    # baseline's; each one here against the numpy reference, with files of 0 to 3,000 distinct
    # tokens, not a multiple of the vector width, and permutation counts that are not either)
    from preprocessing.dedup import native

    loop = native.kernel("minhash_loop")
    texts = stdlib_texts(25) + [" ".join(f"t{i}" for i in range(n)).encode() for n in (1, 2, 7, 9, 17, 3000)] + [b""]
    kw = {"num_perm": num_perm, "seed": 7}
    ref = MinHashSignature(NearDedupConfig(backend="numpy", **kw)).signatures(texts)
    fast = MinHashSignature(NearDedupConfig(backend="native", **kw))
    best, ran = loop(), []
    try:
        for name in ("x86-64-v4", "avx2", "baseline"):
            try:
                assert loop(name) == name
            except ValueError:  # (not this CPU's, or not built)
                continue
            ran.append(name)
            got = fast.signatures(texts)
            np.testing.assert_array_equal(got.sig, ref.sig, err_msg=name)
            np.testing.assert_array_equal(got.ntokens, ref.ntokens)
    finally:
        loop(best)
    assert "baseline" in ran and ran[0] == best
    with pytest.raises(ValueError, match="no fast loop"):
        loop("fast")


def _escape_all(text: str, upper: bool) -> bytes:
    r"""A JSON string body with every character escaped as \uXXXX (surrogate pairs above U+FFFF)."""
    out = []
    for unit in memoryview(text.encode("utf-16-le", "surrogatepass")).cast("H"):
        h = f"{unit:04x}"
        out.append("\\u" + (h.upper() if upper else h))
    return "".join(out).encode()


ESCAPE_TEXTS = [
    "", "x", 'say "hi"\\n\tto\x01the\x1fworld\x7f and caf\u00e9 \u2028 na\u00efve\r\n', "a\bb\fc\x0bd",
    "path/to/file.py: http://x.org/a_b", "emoji \U0001F600inside\U0001F600word and \U00010348 gothic",
    "\u00c9t\u00e9 na\u00efve_ABC d\u00e9f \u4e2d\u6587 Caps_Under_9",
]


@needs_native
@pytest.mark.parametrize("ngram,lowercase", [(1, False), (5, False), (1, True)])
def test_escaped_json_bodies_give_the_signatures_of_their_decoded_text(ngram, lowercase):
    r"""signatures_escaped reads a content's JSON string body in its line, undecoded: whatever the
    writer escaped (orjson, json.dumps with ensure_ascii, \/, \uXXXX of letters in either case,
    surrogate pairs), the same signatures, token counts and decoded sizes as from the text, the
    closing quote found, and "canonical" exactly when the body is byte for byte orjson's. Bodies
    the reader rejects (lone surrogates, raw control characters, bad UTF-8, NUL, bad escapes)
    have size -1."""
    import json

    import orjson

    texts = [t.decode("utf-8") for t in stdlib_texts(12)] + ESCAPE_TEXTS
    h = MinHashSignature(NearDedupConfig(backend="native", ngram=ngram, num_perm=64, lowercase=lowercase))
    cases = []  # (body, text, canonical)
    for t in texts:
        mine = orjson.dumps(t)[1:-1]
        for body in {mine, json.dumps(t)[1:-1].encode(), json.dumps(t, ensure_ascii=False)[1:-1].encode(),
                     mine.replace(b"/", b"\\/"), _escape_all(t, upper=False), _escape_all(t, upper=True)}:
            cases.append((body, t, body == mine))
    bad = [b"\\ud800 lone high", b"lone low \\udc00", b"\\ud800\\u0041 high then letter", b"\\ud83d", b"raw\x01control",
           b"nul\\u0000", b"latin1 caf\xe9 x", b"over\xc0\xaflong", b"surrogate\xed\xa0\x80", b"big\xf4\x90\x80\x80",
           b"cut\xe2\x82", b"lone\x80byte", b"bad \\x escape", b"bad \\u12G4 hex", b"cut \\u00"]
    buf = b""
    starts, ends, want_close = [], [], []
    for body, _t, _c in cases + [(b, None, False) for b in bad]:
        buf += b'{"key": "'
        starts.append(len(buf))
        buf += body
        want_close.append(len(buf))
        buf += b'", "more": 1}\n'
        ends.append(len(buf) - 1)
    eb = h.signatures_escaped(buf, np.array(starts), np.array(ends))
    k = len(cases)
    want = h.signatures([t.encode() for _b, t, _c in cases])
    ok = eb.sizes[:k] >= 0
    assert ok.all(), [cases[i][0][:60] for i in np.flatnonzero(~ok)]
    np.testing.assert_array_equal(eb.batch.sig[:k], want.sig)
    np.testing.assert_array_equal(eb.batch.ntokens[:k], want.ntokens)
    assert eb.sizes[:k].tolist() == [len(t.encode()) for _b, t, _c in cases]
    assert eb.close[:k].tolist() == want_close[:k]
    assert eb.canonical[:k].tolist() == [c for _b, _t, c in cases]
    assert eb.sizes[k:].tolist() == [-1] * len(bad), [b for b, s in zip(bad, eb.sizes[k:]) if s != -1]


BLOCK_FRAGMENTS = [
    "tok\\u0041en", "word\\\\nnext", "a\\\\\\\"b", "x\\/y", "end\\n", "\\nstart", "\\u00e9t\\u00e9",
    "\\ud83d\\ude00smile", "k" * 20 + "_" + "q" * 50, "abcdefghijklmnop", "abcdefgh", "abcdefghi", "\\\\", "\\\\\\\\u0041",
    "caf\u00e9_ok", "\\t\\t\\r\\b\\f",
]


@needs_native
@pytest.mark.parametrize("ngram", [1, 3])
def test_escaped_scan_at_every_block_offset_and_with_many_distinct_tokens(ngram):
    r"""The kernel scans 64 bytes at a time by bit masks, with the tokens' hashes kept per file by
    their bytes: a token or an escape at every offset across a block's end (escapes cut by it,
    a \u escape of a letter continuing a token, runs of backslashes), tokens of 1 to 71 bytes,
    files with many distinct tokens (the cache grows, then gives up) and a body that ends at the
    buffer's end, against the numpy reference on the decoded text."""
    import json

    fragments = [f.encode() for f in BLOCK_FRAGMENTS]
    bodies = [(b"a. " * 50)[:pad] + frag + b" tail_" + frag for frag in fragments for pad in range(140)]
    bodies += [b" ".join(b"t%d_%s" % (i, b"x" * (i % 19)) for i in range(n)) for n in (300, 5000, 40000)]
    bodies.append(b"\\n".join(b"w%d" % (i % 700) for i in range(20000)))
    cfg = {"ngram": ngram, "num_perm": 32}
    h = MinHashSignature(NearDedupConfig(backend="native", **cfg))
    ref = MinHashSignature(NearDedupConfig(backend="numpy", **cfg))
    texts = [json.loads(b'"' + b + b'"').encode("utf-8", "surrogatepass") for b in bodies]
    buf = b""
    starts, ends = [], []
    for body in bodies:
        buf += b'{"content": "'
        starts.append(len(buf))
        buf += body + b'"}'
        ends.append(len(buf))
        buf += b"\n" if body is not bodies[-1] else b""  # the last line ends at the buffer's end
    eb = h.signatures_escaped(buf, np.array(starts), np.array(ends))
    want = ref.signatures(texts)
    assert eb.sizes.tolist() == [len(t) for t in texts]
    np.testing.assert_array_equal(eb.batch.ntokens, want.ntokens)
    np.testing.assert_array_equal(eb.batch.sig, want.sig)
    np.testing.assert_array_equal(h.signatures(texts).sig, want.sig)  # and as decoded contents
    for t in texts[-4:]:
        np.testing.assert_array_equal(h.shingles(t), ref.shingles(t))


def test_tokens_are_codeparrot_non_alpha_split():
    import re

    text = "def f(x_1, y):\n    return x_1 + y * 2  # caf\u00e9"
    expected = {t for t in re.split("[^A-Za-z_0-9]", text) if t.strip()}
    sh, ntok = shingle_hashes_reference(text.encode(), 1, False)
    assert ntok == len(expected)
    assert set(sh.tolist()) == {xxhash.xxh64_intdigest(t.encode()) for t in expected}


def test_estimated_jaccard_tracks_exact_jaccard():
    hasher = MinHashSignature(NearDedupConfig(backend="numpy"))
    tokens = [f"tok{i}" for i in range(400)]
    for shift in (0, 20, 60, 150):
        a = " ".join(tokens[:300]).encode()
        b = " ".join(tokens[shift : 300 + shift]).encode()
        sa, sb = hasher.shingles(a), hasher.shingles(b)
        truth = exact_jaccard(sa, sb)
        sig = hasher.signatures([a, b]).sig
        assert abs(estimated_jaccard(sig[0], sig[1]) - truth) < 0.1, shift


def test_signatures_are_a_function_of_content_and_seed():
    texts = stdlib_texts(5)
    h = MinHashSignature(NearDedupConfig())
    s1 = h.signatures(texts).sig
    s2 = h.signatures(list(reversed(texts))).sig[::-1]
    np.testing.assert_array_equal(s1, s2)
    other = MinHashSignature(NearDedupConfig(seed=2)).signatures(texts).sig
    assert not np.array_equal(s1, other)


def test_lsh_params_come_from_datasketch():
    from datasketch.lsh import _optimal_param

    assert NearDedupConfig().lsh_params == _optimal_param(0.85, 256, 0.1, 0.9) == (18, 14)
    assert NearDedupConfig(threshold=0.7, false_positive_weight=0.5, false_negative_weight=0.5).lsh_params == (
        _optimal_param(0.7, 256, 0.5, 0.5)
    )
    assert NearDedupConfig(bands=64, rows=4).lsh_params == (64, 4)


def test_lsh_params_are_memoised_on_disk_without_importing_datasketch_again(tmp_path, monkeypatch):
    import sys

    from datasketch.lsh import _optimal_param

    from preprocessing.dedup import minhash

    cache = tmp_path / "lsh_params.json"
    monkeypatch.setattr(minhash, "_lsh_cache_path", lambda: cache)
    minhash._optimal_lsh_params.cache_clear()
    assert minhash._optimal_lsh_params(0.8, 128, 0.3, 0.7) == _optimal_param(0.8, 128, 0.3, 0.7)
    assert cache.exists()
    # A new process (here: a cleared per-process cache and no importable datasketch) reads it back.
    minhash._optimal_lsh_params.cache_clear()
    monkeypatch.setitem(sys.modules, "datasketch.lsh", None)
    assert minhash._optimal_lsh_params(0.8, 128, 0.3, 0.7) == _optimal_param(0.8, 128, 0.3, 0.7)
    with pytest.raises(ImportError):  # an unseen argument still goes to datasketch
        minhash._optimal_lsh_params(0.9, 128, 0.3, 0.7)
    # A damaged cache is recomputed, not trusted.
    monkeypatch.delitem(sys.modules, "datasketch.lsh")
    cache.write_text("{not json")
    minhash._optimal_lsh_params.cache_clear()
    assert minhash._optimal_lsh_params(0.8, 128, 0.3, 0.7) == _optimal_param(0.8, 128, 0.3, 0.7)
    minhash._optimal_lsh_params.cache_clear()


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"threshold": 1.5}, "threshold must be in"),
        ({"bands": 10}, "set together"),
        ({"bands": 100, "rows": 10}, "bands \\* rows must be <= num_perm"),
        ({"keep": "random"}, "keep must be one of"),
        ({"verify": "maybe"}, "verify must be one of"),
        ({"spill_partitions": 6}, "power of two"),
        ({"memory_budget_mb": 0}, "memory_budget_mb must be > 0"),
    ],
)
def test_config_errors_say_what_to_change(kw, match):
    with pytest.raises(ValueError, match=match):
        NearDedupConfig(**kw)


def test_huge_file_signature_is_bounded_and_correct():
    # 50 MB of generated code: one file, handled in one pass without quadratic behaviour.
    line = "value_{i} = compute(alpha_{j}, beta) + {i}\n"
    text = "".join(line.format(i=i, j=i % 97) for i in range(1_300_000)).encode()
    assert len(text) > 50_000_000
    h = MinHashSignature(NearDedupConfig())
    batch = h.signatures([text])
    assert batch.ntokens[0] > 1_000_000
    assert (batch.sig[0] < np.iinfo(np.uint32).max).all()


def test_permutations_are_kept_in_the_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("CODEPARROT_CACHE_DIR", str(tmp_path))  # where the permutations go
    rng = np.random.default_rng(7)
    want_a = rng.integers(0, 2**64 - 1, size=32, dtype=np.uint64, endpoint=True) | np.uint64(1)
    want_b = rng.integers(0, 2**64 - 1, size=32, dtype=np.uint64, endpoint=True)
    a, b = mh.permutations(32, 7)  # drawn, then stored
    [stored] = list(tmp_path.glob("minhash-permutations-32-7-*.npy"))
    a2, b2 = mh.permutations(32, 7)  # read back
    for got in ((a, b), (a2, b2)):
        np.testing.assert_array_equal(got[0], want_a)
        np.testing.assert_array_equal(got[1], want_b)
    stored.write_bytes(b"garbage")  # a bad file: drawn again
    np.testing.assert_array_equal(mh.permutations(32, 7)[0], want_a)
