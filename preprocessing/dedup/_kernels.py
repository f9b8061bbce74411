"""The MinHash kernels, written for numba and compiled as C-ABI functions (``numba.cfunc``).

Imported only to compile them: :mod:`preprocessing.dedup.native` keeps their machine code on disk
and later processes load it without importing numba (numba's import and its first dispatch cost
~0.6 s of CPU per process; loading the cached code costs ~0.04 s). The kernels allocate nothing:
the caller passes every buffer (scratch sized by :func:`preprocessing.dedup._scratch.scratch_words`),
and nothing in them can raise.

Results are bit-identical to the numpy reference in :mod:`preprocessing.dedup.minhash` (tests
check it): a token is a maximal run of ``[A-Za-z_0-9]`` bytes, its hash ``xxh64(token)``, an
n-gram's hash ``xxh64`` of the little-endian bytes of its n token hashes, permutation k maps h to
``((a_k * h + b_k) mod 2**64) >> 32``.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import carray, types

_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_P5 = np.uint64(0x27D4EB2F165667C5)
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)

_TOKEN_BYTE = np.zeros(256, dtype=np.bool_)
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_":
    _TOKEN_BYTE[_c] = True

_JIT = {"cache": False, "error_model": "numpy"}


@numba.njit(inline="always", **_JIT)
def _rotl(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@numba.njit(inline="always", **_JIT)
def _round(acc, lane):
    acc = acc + lane * _P2
    acc = _rotl(acc, 31)
    return acc * _P1


@numba.njit(inline="always", **_JIT)
def _lane(buf, i, nbytes):
    v = np.uint64(0)
    for k in range(nbytes):
        v |= np.uint64(buf[i + k]) << np.uint64(8 * k)
    return v


@numba.njit(**_JIT)
def xxh64(buf, start, end, seed):
    """xxh64 of buf[start:end] (a uint8 array), bit-identical to xxhash.xxh64_intdigest."""
    n = end - start
    seed = np.uint64(seed)
    i = start
    if n >= 32:
        v1 = seed + _P1 + _P2
        v2 = seed + _P2
        v3 = seed
        v4 = seed - _P1
        limit = end - 32
        while i <= limit:
            v1 = _round(v1, _lane(buf, i, 8))
            v2 = _round(v2, _lane(buf, i + 8, 8))
            v3 = _round(v3, _lane(buf, i + 16, 8))
            v4 = _round(v4, _lane(buf, i + 24, 8))
            i += 32
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        for v in (v1, v2, v3, v4):
            h ^= _round(np.uint64(0), v)
            h = h * _P1 + _P4
    else:
        h = seed + _P5
    h += np.uint64(n)
    while i + 8 <= end:
        h ^= _round(np.uint64(0), _lane(buf, i, 8))
        h = _rotl(h, 27) * _P1 + _P4
        i += 8
    if i + 4 <= end:
        h ^= _lane(buf, i, 4) * _P1
        h = _rotl(h, 23) * _P2 + _P3
        i += 4
    while i < end:
        h ^= np.uint64(buf[i]) * _P5
        h = _rotl(h, 11) * _P1
        i += 1
    h ^= h >> np.uint64(33)
    h *= _P2
    h ^= h >> np.uint64(29)
    h *= _P3
    h ^= h >> np.uint64(32)
    return h


@numba.njit(**_JIT)
def _distinct(values, n, table, out):
    """Writes the distinct values of values[:n] to out in first-seen order; returns their number.
    Open addressing in ``table`` (zeroed here, first power of two >= 2n slots used)."""
    cap = 16
    while cap < 2 * n:
        cap *= 2
    for i in range(cap):
        table[i] = 0  # 0 marks an empty slot; the value 0 is tracked apart
    mask = np.uint64(cap - 1)
    m = 0
    seen_zero = False
    for t in range(n):
        h = values[t]
        if h == 0:
            if not seen_zero:
                seen_zero = True
                out[m] = h
                m += 1
            continue
        i = h & mask  # xxh64 output is uniformly mixed: its low bits index the table
        while True:
            v = table[i]
            if v == 0:
                table[i] = h
                out[m] = h
                m += 1
                break
            if v == h:
                break
            i = (i + np.uint64(1)) & mask
    return m


@numba.njit(**_JIT)
def _shingles(buf, start, end, ngram, scratch):
    """Distinct shingle hashes of buf[start:end], in first-seen order, in scratch[:m]; returns
    (m, number of distinct tokens). ``scratch`` holds scratch_words(end - start) words."""
    n = (end - start) // 2 + 2
    out = scratch[:n]
    toks = scratch[n : 2 * n]
    grams = scratch[2 * n : 3 * n]
    table = scratch[3 * n :]
    is_tok = _TOKEN_BYTE
    nt = 0
    i = start
    while i < end:
        if is_tok[buf[i]]:
            j = i + 1
            while j < end and is_tok[buf[j]]:
                j += 1
            toks[nt] = xxh64(buf, i, j, 0)
            nt += 1
            i = j + 1  # buf[j] is not a token byte
        else:
            i += 1
    ndistinct = _distinct(toks, nt, table, out)
    if ngram == 1:
        return ndistinct, ndistinct
    if nt < ngram:
        return 0, ndistinct
    raw = toks.view(np.uint8)  # little-endian lanes of the token hashes
    ng = nt - ngram + 1
    for g in range(ng):
        grams[g] = xxh64(raw, 8 * g, 8 * (g + ngram), 0)
    return _distinct(grams, ng, table, out), ndistinct


@numba.njit(**_JIT)
def _minhash_into(sh, n, a, b, out):
    # Permutation outside, shingles inside: the inner loop is a min-reduction over the
    # shingles, which vectorises without loading and storing an accumulator row (~12%
    # faster for the whole kernel than the shingle-outer order).
    for k in range(a.shape[0]):
        ak, bk = a[k], b[k]
        m = _ONES
        for i in range(n):
            m = min(m, ak * sh[i] + bk)
        out[k] = np.uint32(m >> np.uint64(32))


_u8p, _u32p, _u64p, _i64p = (types.CPointer(t) for t in (types.uint8, types.uint32, types.uint64, types.int64))

SIGNATURES = types.void(_u8p, types.int64, _i64p, types.int64, types.int64, _u64p, _u64p, types.int64,
                        _u32p, _i64p, _u64p, types.int64)
BAND_KEYS = types.void(_u32p, types.int64, types.int64, types.int64, types.int64, _u64p)
SHINGLES = types.int64(_u8p, types.int64, types.int64, _u64p, types.int64, _u64p)


def signatures_kernel(buf_p, nbuf, offsets_p, ndocs, ngram, a_p, b_p, nperm, sig_p, ntok_p, scratch_p, nscratch):
    """Signatures of ndocs files: file d is buf[offsets[d]:offsets[d + 1]]; its signature goes to
    sig[d * nperm : (d + 1) * nperm] and its number of distinct tokens to ntok[d]."""
    buf = carray(buf_p, (nbuf,))
    offsets = carray(offsets_p, (ndocs + 1,))
    a = carray(a_p, (nperm,))
    b = carray(b_p, (nperm,))
    sig = carray(sig_p, (ndocs, nperm))
    ntok = carray(ntok_p, (ndocs,))
    scratch = carray(scratch_p, (nscratch,))
    for d in range(ndocs):
        m, nd = _shingles(buf, offsets[d], offsets[d + 1], ngram, scratch)
        ntok[d] = nd
        _minhash_into(scratch, m, a, b, sig[d])


def band_keys_kernel(sig_p, ndocs, nperm, bands, rows, keys_p):
    """keys[d, i] = xxh64(bytes of band i of signature d, seed=i)."""
    sig = carray(sig_p, (ndocs, nperm))
    keys = carray(keys_p, (ndocs, bands))
    for d in range(ndocs):
        raw = sig[d].view(np.uint8)
        for i in range(bands):
            keys[d, i] = xxh64(raw, 4 * i * rows, 4 * (i + 1) * rows, i)


def shingles_kernel(buf_p, nbuf, ngram, scratch_p, nscratch, out_p):
    """The distinct shingle hashes of buf[:nbuf], in first-seen order, into out; returns how many."""
    buf = carray(buf_p, (nbuf,))
    scratch = carray(scratch_p, (nscratch,))
    out = carray(out_p, (nbuf // 2 + 2,))
    m, _nd = _shingles(buf, 0, nbuf, ngram, scratch)
    for i in range(m):
        out[i] = scratch[i]
    return m


KERNELS = {
    "signatures": (signatures_kernel, SIGNATURES),
    "band_keys": (band_keys_kernel, BAND_KEYS),
    "shingles": (shingles_kernel, SHINGLES),
}
"""name -> (Python function, numba signature) of each C-ABI entry point."""


def compile_kernels() -> dict:
    """name -> compiled ``numba.cfunc`` of each kernel (each holds its machine code and address)."""
    return {name: numba.cfunc(sig, nopython=True, error_model="numpy", cache=False)(fn)
            for name, (fn, sig) in KERNELS.items()}
