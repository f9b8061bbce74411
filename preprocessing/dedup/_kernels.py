"""The MinHash kernels, written for numba (``numba.njit``; :mod:`.native` compiles them with
``cache=True``, numba's on-disk cache).

The kernels allocate nothing: the caller passes every buffer (scratch sized by
:func:`preprocessing.dedup._scratch.scratch_words`), and nothing in them can raise.

Results are bit-identical to the numpy reference in :mod:`preprocessing.dedup.minhash` (tests
check it): a token is a maximal run of ``[A-Za-z_0-9]`` bytes, its hash ``xxh64(token)``, an
n-gram's hash ``xxh64`` of the little-endian bytes of its n token hashes, permutation k maps h to
``((a_k * h + b_k) mod 2**64) >> 32``.

The signatures kernel also reads contents still escaped as JSON string bodies (``escaped``): the
bytes between the quotes of ``"content":"..."`` in a JSON line, so that pass 1 of `dedup` need not
decode, re-encode and copy each file. An escape stands for one non-token character there, so the
tokens (and hashes) are those of the decoded text as long as every escape is one orjson writes
(``\\" \\\\ \\b \\f \\n \\r \\t``, ``\\u00xx`` for the other control characters) and no quote
is unescaped. The kernel checks that, and that the bytes are well-formed UTF-8 without raw
control characters or NUL: such a body is valid JSON, byte for byte what ``orjson.dumps`` writes
for its decoded text, and content no reader rejects for its bytes. It reports the decoded size,
or -1 when a check fails (the caller then decodes the line as usual).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_P5 = np.uint64(0x27D4EB2F165667C5)
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)

# Byte classes of the scan: 1 token byte, 0 other byte, 2 (JSON string bodies only) a byte to look
# at: a backslash, a quote, a control character or a non-ASCII byte.
_CLASS_RAW = np.zeros(256, dtype=np.uint8)
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_":
    _CLASS_RAW[_c] = 1
_CLASS_ESCAPED = _CLASS_RAW.copy()
_CLASS_ESCAPED[:32] = 2
_CLASS_ESCAPED[128:] = 2
_CLASS_ESCAPED[ord("\\")] = 2
_CLASS_ESCAPED[ord('"')] = 2

# JSON escapes orjson writes as two bytes, by the byte after the backslash: " \ b f n r t
_SHORT_ESCAPE = np.zeros(256, dtype=np.bool_)
for _c in b'"\\bfnrt':
    _SHORT_ESCAPE[_c] = True
# orjson writes \u00xx (lowercase hex) for the control characters without a two-byte escape
_HEX = np.full(256, -1, dtype=np.int16)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
_U_SHORT = np.zeros(32, dtype=np.bool_)
for _c in (8, 9, 10, 12, 13):
    _U_SHORT[_c] = True

_JIT = {"cache": False, "error_model": "numpy"}
_U = np.uint64
# Indices are unsigned throughout: numba wraps a signed index around when it is negative, a test
# and an add on every byte access that cost the token scan ~30% (and can stop vectorisation).
# (Mixing uint64 and int64 in arithmetic gives float64 in numba: every constant is a _U.)


@numba.njit(inline="always", **_JIT)
def _rotl(x, r):
    return (x << _U(r)) | (x >> _U(64 - r))


@numba.njit(inline="always", **_JIT)
def _round(acc, lane):
    acc = acc + lane * _P2
    acc = _rotl(acc, 31)
    return acc * _P1


@numba.njit(inline="always", **_JIT)
def _lane(buf, i, nbytes):
    v = _U(0)
    for k in range(nbytes):
        v |= _U(buf[i + _U(k)]) << _U(8 * k)
    return v


@numba.njit(inline="always", **_JIT)
def _xxh64_tail(buf, i, end, h):
    """xxh64's last steps: the bytes buf[i:end] (under 32) into h, then the final mix."""
    while i + _U(8) <= end:
        h ^= _round(_U(0), _lane(buf, i, 8))
        h = _rotl(h, 27) * _P1 + _P4
        i += _U(8)
    if i + _U(4) <= end:
        h ^= _lane(buf, i, 4) * _P1
        h = _rotl(h, 23) * _P2 + _P3
        i += _U(4)
    while i < end:
        h ^= _U(buf[i]) * _P5
        h = _rotl(h, 11) * _P1
        i += _U(1)
    h ^= h >> _U(33)
    h *= _P2
    h ^= h >> _U(29)
    h *= _P3
    h ^= h >> _U(32)
    return h


@numba.njit(inline="always", **_JIT)
def _token_hash(buf, i, j):
    """xxh64(buf[i:j], seed 0), the short case (most tokens) inlined into the scan loop."""
    if j - i < _U(32):
        return _xxh64_tail(buf, i, j, _P5 + (j - i))
    return xxh64(buf, i, j, 0)


@numba.njit(**_JIT)
def xxh64(buf, start, end, seed):
    """xxh64 of buf[start:end] (a uint8 array), bit-identical to xxhash.xxh64_intdigest."""
    start, end = _U(start), _U(end)
    n = end - start
    seed = _U(seed)
    i = start
    if n >= _U(32):
        v1 = seed + _P1 + _P2
        v2 = seed + _P2
        v3 = seed
        v4 = seed - _P1
        limit = end - _U(32)
        while i <= limit:
            v1 = _round(v1, _lane(buf, i, 8))
            v2 = _round(v2, _lane(buf, i + _U(8), 8))
            v3 = _round(v3, _lane(buf, i + _U(16), 8))
            v4 = _round(v4, _lane(buf, i + _U(24), 8))
            i += _U(32)
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        for v in (v1, v2, v3, v4):
            h ^= _round(_U(0), v)
            h = h * _P1 + _P4
    else:
        h = seed + _P5
    return _xxh64_tail(buf, i, end, h + n)


@numba.njit(**_JIT)
def _distinct(values, n, table, out):
    """Writes the distinct values of values[:n] to out in first-seen order; returns their number.
    Open addressing in ``table`` (zeroed here, first power of two >= 2n slots used)."""
    n = _U(n)
    cap = _U(16)
    while cap < _U(2) * n:
        cap *= _U(2)
    for i in range(cap):
        table[i] = 0  # 0 marks an empty slot; the value 0 is tracked apart
    mask = cap - _U(1)
    m = _U(0)
    seen_zero = False
    for t in range(n):
        h = values[t]
        if h == 0:
            if not seen_zero:
                seen_zero = True
                out[m] = h
                m += _U(1)
            continue
        i = h & mask  # xxh64 output is uniformly mixed: its low bits index the table
        while True:
            v = table[i]
            if v == 0:
                table[i] = h
                out[m] = h
                m += _U(1)
                break
            if v == h:
                break
            i = (i + _U(1)) & mask
    return m


@numba.njit(inline="always", **_JIT)
def _orjson_u_escape(buf, i):
    """Whether buf[i:i + 6] is a \\u00xx escape as orjson writes it (a control character without a
    two-byte form, lowercase hex), NUL excepted (content with NUL is rejected as binary)."""
    if buf[i + _U(2)] != 48 or buf[i + _U(3)] != 48:  # "00"
        return False
    hi, lo = _HEX[buf[i + _U(4)]], _HEX[buf[i + _U(5)]]
    if hi < 0 or hi > 1 or lo < 0:
        return False
    return hi + lo > 0 and not _U_SHORT[hi * 16 + lo]


@numba.njit(inline="always", **_JIT)
def _utf8_length(buf, i, end):
    """The length of the well-formed UTF-8 sequence of a non-ASCII character at buf[i] (Python's
    strict decoder: no overlong forms, no surrogates, nothing above U+10FFFF), 0 if there is none."""
    c = buf[i]
    if c < 0xC2 or c > 0xF4:
        return 0
    if c < 0xE0:
        n, lo, hi = 2, 0x80, 0xBF
    elif c < 0xF0:
        n = 3
        lo = 0xA0 if c == 0xE0 else 0x80
        hi = 0x9F if c == 0xED else 0xBF
    else:
        n = 4
        lo = 0x90 if c == 0xF0 else 0x80
        hi = 0x8F if c == 0xF4 else 0xBF
    if i + _U(n) > end or buf[i + _U(1)] < lo or buf[i + _U(1)] > hi:
        return 0
    for k in range(2, n):
        if buf[i + _U(k)] < 0x80 or buf[i + _U(k)] > 0xBF:
            return 0
    return n


@numba.njit(**_JIT)
def _shingles(buf, start, end, ngram, escaped, scratch):
    """Distinct shingle hashes of buf[start:end], in first-seen order, in scratch[:m]; returns
    (m, number of distinct tokens, decoded size). ``escaped``: buf[start:end] is a JSON string body
    (see the module docstring), whose decoded size is -1 unless it is well-formed UTF-8 without
    raw control characters or unescaped quotes and every escape is one orjson writes (NUL, which
    the readers reject as binary, excepted). ``scratch`` holds scratch_words(end - start) words."""
    start, end = _U(start), _U(end)
    n = (end - start) // _U(2) + _U(2)
    out = scratch[:n]
    toks = scratch[n : _U(2) * n]
    grams = scratch[_U(2) * n : _U(3) * n]
    table = scratch[_U(3) * n :]
    cls = _CLASS_ESCAPED if escaped else _CLASS_RAW
    nt = _U(0)
    size = np.int64(end - start)
    i = start
    while i < end:
        c = buf[i]
        k = cls[c]
        if k == 0:
            i += _U(1)
        elif k == 1:
            j = i + _U(1)
            while j < end and cls[buf[j]] == 1:
                j += _U(1)
            toks[nt] = _token_hash(buf, i, j)
            nt += _U(1)
            i = j  # the byte at j is not a token byte: the next round looks at it
        elif c == 92:  # a backslash: the escape stands for one non-token character
            if i + _U(1) < end and _SHORT_ESCAPE[buf[i + _U(1)]]:
                i += _U(2)
                if size >= 0:
                    size -= 1
            elif i + _U(6) <= end and buf[i + _U(1)] == 117 and _orjson_u_escape(buf, i):  # \u00xx
                i += _U(6)
                if size >= 0:
                    size -= 5
            else:  # \/, \u of a printable character or NUL, a cut escape: not what orjson writes
                size = -1
                i += _U(2) if i + _U(1) < end and buf[i + _U(1)] != 117 else _U(6)
        elif c >= 128:  # a non-ASCII character (never a token byte): its bytes must be UTF-8
            n_utf8 = _utf8_length(buf, i, end)
            if n_utf8 == 0:
                size = -1
                n_utf8 = 1
            i += _U(n_utf8)
        else:  # an unescaped quote (not one string body) or a raw control character
            size = -1
            i += _U(1)
    ndistinct = _distinct(toks, nt, table, out)
    if ngram == 1:
        return ndistinct, ndistinct, size
    if nt < _U(ngram):
        return _U(0), ndistinct, size
    raw = toks.view(np.uint8)  # little-endian lanes of the token hashes
    ng = nt - _U(ngram) + _U(1)
    for g in range(ng):
        grams[g] = xxh64(raw, _U(8) * g, _U(8) * (g + _U(ngram)), 0)
    return _distinct(grams, ng, table, out), ndistinct, size


@numba.njit(**_JIT)
def _minhash_into(sh, n, a, b, out):
    # Permutation outside, shingles inside: the inner loop is a min-reduction over the
    # shingles, which vectorises without loading and storing an accumulator row (~12%
    # faster for the whole kernel than the shingle-outer order).
    for k in range(_U(a.shape[0])):
        ak, bk = a[k], b[k]
        m = _ONES
        for i in range(_U(n)):
            m = min(m, ak * sh[i] + bk)
        out[k] = np.uint32(m >> _U(32))


# One explicit signature per kernel (C-contiguous arrays, int64 scalars): numba compiles exactly
# that specialisation, never another for other argument types; native.py compiles a kernel the
# first time it is used (`verify: exact` alone needs `shingles`).
_bytes = types.Array(types.uint8, 1, "C", readonly=True)  # np.frombuffer of a bytes object
_i64, _u64 = (types.Array(t, 1, "C") for t in (types.int64, types.uint64))
SIGNATURES = types.void(_bytes, _i64, _i64, types.int64, types.int64, _u64, _u64, types.Array(types.uint32, 2, "C"),
                        _i64, _i64, _u64)
BAND_KEYS = types.void(types.Array(types.uint32, 2, "C"), types.int64, types.int64, types.Array(types.uint64, 2, "C"))
SHINGLES = types.int64(_bytes, types.int64, _u64, _u64)


def signatures_kernel(buf, starts, ends, ngram, escaped, a, b, sig, ntok, size, scratch):
    """Signatures of len(starts) files: file d is buf[starts[d]:ends[d]] (a JSON string body when
    ``escaped``); its signature goes to sig[d], its number of distinct tokens to ntok[d] and its
    decoded size (or -1, see _shingles) to size[d]."""
    for d in range(starts.shape[0]):
        m, nd, sz = _shingles(buf, starts[d], ends[d], ngram, escaped != 0, scratch)
        ntok[d] = nd
        size[d] = sz
        _minhash_into(scratch, m, a, b, sig[d])


def band_keys_kernel(sig, bands, rows, keys):
    """keys[d, i] = xxh64(bytes of band i of signature d, seed=i)."""
    for d in range(sig.shape[0]):
        raw = sig[d].view(np.uint8)
        for i in range(bands):
            keys[d, i] = xxh64(raw, 4 * i * rows, 4 * (i + 1) * rows, i)


def shingles_kernel(buf, ngram, scratch, out):
    """The distinct shingle hashes of buf, in first-seen order, into out; returns how many."""
    m, _nd, _size = _shingles(buf, 0, buf.shape[0], ngram, False, scratch)
    for i in range(m):
        out[i] = scratch[i]
    return m


KERNELS = {
    "signatures": (signatures_kernel, SIGNATURES),
    "band_keys": (band_keys_kernel, BAND_KEYS),
    "shingles": (shingles_kernel, SHINGLES),
}
"""name -> (Python function, numba signature) of each kernel :mod:`.native` compiles."""
