"""The MinHash kernels, written for numba (``numba.njit``; :mod:`.native` compiles them with
``cache=True``, numba's on-disk cache).

The kernels allocate nothing: the caller passes every buffer (scratch sized by
:func:`preprocessing.dedup._scratch.scratch_words`), and nothing in them can raise.

Results are bit-identical to the numpy reference in :mod:`preprocessing.dedup.minhash` (tests
check it): a token is a maximal run of ``[A-Za-z_0-9]`` bytes, its hash ``xxh64(token)``, an
n-gram's hash ``xxh64`` of the little-endian bytes of its n token hashes, permutation k maps h to
``((a_k * h + b_k) mod 2**64) >> 32``.

The signatures kernel also reads contents still escaped as JSON string bodies (``escaped``): the
bytes after the opening quote of ``"content": "..."`` in a JSON line, up to the closing quote it
finds, so that pass 1 of `dedup` need not decode, re-encode and copy each file. It decodes the
escapes as it goes (every escape JSON has: the two-byte ones, ``\\uXXXX`` in either case,
surrogate pairs), so the tokens and hashes are those of the decoded text: a ``\\u`` escape of a
letter, digit or underscore is part of its token. It checks that the body is valid JSON (no raw
control character, no malformed escape, no lone surrogate: the readers reject those lines) and
well-formed UTF-8 without NUL (content no reader accepts), and reports the decoded size (-1 when a
check fails: the caller then decodes the line as usual), where the body ends and whether every
escape is one ``orjson.dumps`` writes (then the body is byte for byte orjson's).
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

# JSON's two-byte escapes, by the byte after the backslash: the byte they stand for (0: none).
# orjson writes all of them but \/ (it leaves "/" as it is).
_SHORT_ESCAPE = np.zeros(256, dtype=np.uint8)
for _c, _v in zip(b'"\\/bfnrt', b'"\\/\b\f\n\r\t'):
    _SHORT_ESCAPE[_c] = _v
# Hex digit values (either case; orjson writes lowercase) and whether a digit is lowercase-canonical.
_HEX = np.full(256, -1, dtype=np.int16)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i
_UPPER_HEX = np.zeros(256, dtype=np.bool_)
for _c in b"ABCDEF":
    _UPPER_HEX[_c] = True
# Control characters orjson writes as a two-byte escape (all others below 0x20 as \u00xx).
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


@numba.njit(**_JIT)
def _hex4(buf, i, end):
    """The value of the four hex digits buf[i:i + 4] (-1 if they are not four hex digits), and
    whether one is an uppercase letter (orjson writes lowercase)."""
    if i + _U(4) > end:
        return -1, False
    v = 0
    upper = False
    for k in range(4):
        h = _HEX[buf[i + _U(k)]]
        if h < 0:
            return -1, False
        v = v * 16 + h
        upper = upper or _UPPER_HEX[buf[i + _U(k)]]
    return v, upper


@numba.njit(**_JIT)
def _token_escape(buf, i, end, lower):
    """The token byte that the escape at buf[i] (a backslash) stands for: a \\uXXXX of an ASCII
    letter, digit or underscore, lowercased when ``lower``; 0 for any other escape."""
    if i + _U(6) > end or buf[i + _U(1)] != 117:  # "u"
        return 0
    v, _upper = _hex4(buf, i + _U(2), end)
    if v < 0 or v >= 128 or _CLASS_RAW[v] != 1:
        return 0
    if lower and 65 <= v <= 90:
        v += 32
    return v


@numba.njit(**_JIT)
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
def _shingles(buf, low, start, end, ngram, escaped, lower, scratch):
    """Distinct shingle hashes of the text at buf[start:end], in first-seen order, in scratch[:m];
    returns (m, number of distinct tokens, decoded size, end of the text, canonical).

    Token bytes are read from ``low`` (``buf`` itself, or its lowercased copy), everything else
    from ``buf``. Not ``escaped``: the text is buf[start:end] as it is. ``escaped``: a JSON string
    body starts at buf[start] and ends at the first unescaped quote before ``end`` (its position
    is returned: the text's end); its escapes are decoded (a \\uXXXX of a token character is
    part of the token, lowercased when ``lower``; surrogate pairs are one character of four UTF-8
    bytes) and the decoded UTF-8 size is returned, or -1 unless the body is valid JSON (closing
    quote, no raw control character, every escape well-formed, no lone surrogate), well-formed
    UTF-8 (Python's strict rules) and free of NUL (which the readers reject as binary).
    ``canonical``: every escape is one orjson writes (the body is byte for byte orjson's).
    ``scratch`` holds scratch_words(end - start) words."""
    start, end = _U(start), _U(end)
    n = (end - start) // _U(2) + _U(2)
    out = scratch[:n]
    toks = scratch[n : _U(2) * n]
    grams = scratch[_U(2) * n : _U(3) * n]  # (before the n-grams) the bytes of a token with escapes
    table = scratch[_U(3) * n :]
    tokbuf = grams.view(np.uint8)
    cls = _CLASS_ESCAPED if escaped else _CLASS_RAW
    nt = _U(0)
    size = np.int64(end - start)
    close = np.int64(-1)
    canonical = True
    i = start
    while i < end:
        c = buf[i]
        k = cls[c]
        if k == 0:
            i += _U(1)
        elif k == 1 or (c == 92 and _token_escape(buf, i, end, lower) != 0):
            j = i
            while j < end and cls[buf[j]] == 1:
                j += _U(1)
            if j < end and buf[j] == 92 and escaped and _token_escape(buf, j, end, lower) != 0:
                # a token with escaped characters: its decoded bytes, gathered in tokbuf
                t = _U(0)
                for p in range(i, j):
                    tokbuf[t] = low[p]
                    t += _U(1)
                while j < end:
                    if cls[buf[j]] == 1:
                        tokbuf[t] = low[j]
                        j += _U(1)
                    elif buf[j] == 92:
                        v = _token_escape(buf, j, end, lower)
                        if v == 0:
                            break
                        tokbuf[t] = v
                        j += _U(6)
                        size -= 5
                        canonical = False
                    else:
                        break
                    t += _U(1)
                toks[nt] = _token_hash(tokbuf, _U(0), t)
            else:
                toks[nt] = _token_hash(low, i, j)
            nt += _U(1)
            i = j  # the byte at j is not a token byte: the next round looks at it
        elif c == 92:  # a backslash: an escape of a non-token character
            e = _SHORT_ESCAPE[buf[i + _U(1)]] if i + _U(1) < end else 0
            if e != 0:
                i += _U(2)
                size -= 1
                canonical = canonical and e != 47  # orjson writes "/" unescaped
            elif i + _U(1) < end and buf[i + _U(1)] == 117:  # \uXXXX
                v, upper = _hex4(buf, i + _U(2), end)
                i += _U(6)
                if v < 0 or v == 0 or 0xDC00 <= v <= 0xDFFF:  # malformed, NUL, a lone low surrogate
                    size = -1
                    break
                if 0xD800 <= v <= 0xDBFF:  # a high surrogate: a low one must follow
                    lo = -1
                    if i + _U(1) < end and buf[i] == 92 and buf[i + _U(1)] == 117:
                        lo, _upper = _hex4(buf, i + _U(2), end)
                    if not 0xDC00 <= lo <= 0xDFFF:
                        size = -1
                        break
                    i += _U(6)
                    size -= 8  # twelve bytes for four
                    canonical = False
                elif v < 0x20:
                    size -= 5
                    canonical = canonical and not upper and not _U_SHORT[v]
                else:  # orjson writes these characters as their UTF-8 bytes
                    size -= 5 if v < 0x80 else 4 if v < 0x800 else 3
                    canonical = False
            else:  # not an escape JSON has, or cut
                size = -1
                break
        elif c >= 128:  # a non-ASCII character (never a token byte): its bytes must be UTF-8
            n_utf8 = _utf8_length(buf, i, end)
            if n_utf8 == 0:
                size = -1
                break
            i += _U(n_utf8)
        elif c == 34:  # the closing quote
            close = np.int64(i)
            break
        else:  # a raw control character
            size = -1
            break
    if escaped:
        if close < 0:
            size = -1
        else:
            size -= np.int64(end - _U(close))
    ndistinct = _distinct(toks, nt, table, out)
    if ngram == 1:
        return ndistinct, ndistinct, size, close, canonical
    if nt < _U(ngram):
        return _U(0), ndistinct, size, close, canonical
    raw = toks.view(np.uint8)  # little-endian lanes of the token hashes
    ng = nt - _U(ngram) + _U(1)
    for g in range(ng):
        grams[g] = xxh64(raw, _U(8) * g, _U(8) * (g + _U(ngram)), 0)
    return _distinct(grams, ng, table, out), ndistinct, size, close, canonical


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
SIGNATURES = types.void(_bytes, _bytes, _i64, _i64, types.int64, types.int64, types.int64, _u64, _u64,
                        types.Array(types.uint32, 2, "C"), _i64, _i64, _i64, types.Array(types.uint8, 1, "C"), _u64)
BAND_KEYS = types.void(types.Array(types.uint32, 2, "C"), types.int64, types.int64, types.Array(types.uint64, 2, "C"))
SHINGLES = types.int64(_bytes, types.int64, _u64, _u64)


def signatures_kernel(buf, low, starts, ends, ngram, escaped, lower, a, b, sig, ntok, size, close, canonical,
                      scratch):
    """Signatures of len(starts) files: file d is the text at buf[starts[d]:ends[d]] (a JSON string
    body when ``escaped``; token bytes read from ``low``, see _shingles); its signature goes to
    sig[d], its number of distinct tokens to ntok[d], its decoded size (or -1) to size[d], where
    the text ends to close[d] (escaped: its closing quote, or -1) and whether its escapes are
    orjson's to canonical[d]. A file whose size is -1 gets no signature (the caller decodes it)."""
    for d in range(starts.shape[0]):
        m, nd, sz, cl, canon = _shingles(buf, low, starts[d], ends[d], ngram, escaped != 0, lower != 0, scratch)
        ntok[d] = nd
        size[d] = sz
        close[d] = cl
        canonical[d] = canon
        if sz >= 0:
            _minhash_into(scratch, m, a, b, sig[d])


def band_keys_kernel(sig, bands, rows, keys):
    """keys[d, i] = xxh64(bytes of band i of signature d, seed=i)."""
    for d in range(sig.shape[0]):
        raw = sig[d].view(np.uint8)
        for i in range(bands):
            keys[d, i] = xxh64(raw, 4 * i * rows, 4 * (i + 1) * rows, i)


def shingles_kernel(buf, ngram, scratch, out):
    """The distinct shingle hashes of buf, in first-seen order, into out; returns how many."""
    m, _nd, _size, _close, _canon = _shingles(buf, buf, 0, buf.shape[0], ngram, False, False, scratch)
    for i in range(m):
        out[i] = scratch[i]
    return m


KERNELS = {
    "signatures": (signatures_kernel, SIGNATURES),
    "band_keys": (band_keys_kernel, BAND_KEYS),
    "shingles": (shingles_kernel, SHINGLES),
}
"""name -> (Python function, numba signature) of each kernel :mod:`.native` compiles."""
