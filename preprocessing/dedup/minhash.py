"""Shingling and MinHash signatures: xxh64 shingle hashes, 256 multiply-shift permutations, uint32 values.

A file's shingles are the distinct n-grams of its tokens, a token being a maximal run of
``[A-Za-z_0-9]`` (CodeParrot's ``NON_ALPHA`` split; n=1 gives CodeParrot's token sets, n=5
BigCode's 5-gram shingles). Tokens are found in the UTF-8 bytes of the content (token
characters are ASCII, so this equals tokenizing the text), a token's hash is ``xxh64(token)``
and an n-gram's hash is ``xxh64`` of the little-endian bytes of its n token hashes.

Permutation k maps a shingle hash h to ``((a_k * h + b_k) mod 2**64) >> 32`` (Dietzfelbinger's
multiply-shift family, ``a_k`` odd, drawn from ``seed``); the signature is the minimum over the
shingles, one uint32 per permutation (``4 * num_perm`` bytes per file).

Two implementations give bit-identical results (tests check it): a numba kernel (the default:
it tokenizes, hashes and min-reduces in one pass over the bytes, about 10x the numpy path, see
docs/dedup.md) and a reference over ``re`` + the ``xxhash`` package + numpy.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xxhash

try:  # numba is a declared dependency; the numpy path is the reference and the fallback.
    import numba

    _HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    _HAVE_NUMBA = False

_KEEP_RULES = ("first", "longest", "license", "stars")
_VERIFY_MODES = ("signature", "exact")
_BACKENDS = ("auto", "numba", "numpy")


@dataclass
class NearDedupConfig:
    """Settings of the MinHash LSH near-dedup stage (defaults: CodeParrot's recipe)."""

    threshold: float = 0.85
    """Jaccard similarity at or above which two files are near-duplicates."""
    num_perm: int = 256
    """Number of MinHash permutations (signature length; 4 bytes each)."""
    ngram: int = 1
    """Tokens per shingle: 1 = set of tokens (CodeParrot), 5 = 5-gram shingles (BigCode)."""
    min_tokens: int = 10
    """Files with fewer distinct tokens are kept and never clustered (CodeParrot: 10)."""
    lowercase: bool = False
    """Lowercase tokens before hashing (BigCode lowercases)."""
    seed: int = 1
    """Seed of the permutations; signatures are a pure function of (content, config)."""
    false_positive_weight: float = 0.1
    """Weight of the false-positive area when choosing LSH bands x rows (datasketch's _optimal_param).
    Low because candidates are verified: a false positive costs one comparison, a false negative a
    missed duplicate (0.1/0.9 -> 18x14 at 0.85: F1 0.964 vs 0.954 with 0.5/0.5, docs/dedup.md)."""
    false_negative_weight: float = 0.9
    """Weight of the false-negative area when choosing LSH bands x rows."""
    bands: int | None = None
    """LSH bands; None chooses (bands, rows) with datasketch.lsh._optimal_param."""
    rows: int | None = None
    """LSH rows per band; set together with ``bands``."""
    verify: str = "signature"
    """How candidate pairs are verified: 'signature' (estimated Jaccard) or 'exact'."""
    keep: str = "first"
    """Which file of a cluster is kept: first (input order), longest, license, stars."""
    preferred_licenses: list[str] = field(
        default_factory=lambda: ["mit", "apache-2.0", "bsd-3-clause", "bsd-2-clause", "isc"]
    )
    """With keep=license: licenses in order of preference (others rank last)."""
    stars_field: str = "stars"
    """With keep=stars: the record field holding the star count (The Stack: max_stars_count)."""
    memory_budget_mb: float = 1024
    """Band tables above this size spill to disk partitions (merged per band and key range)."""
    spill_partitions: int = 16
    """Number of key-range partitions per band when spilling (power of two)."""
    backend: str = "auto"
    """'numba', 'numpy' or 'auto' (numba when importable); both give identical signatures."""
    shard_max_bytes: int = 256 << 20
    """Output shards roll over at this many bytes."""
    compression_level: int = 3
    """zstd level of the output shards (of the rows it compresses: see copy_frames)."""
    copy_frames: bool = True
    """Copy a zstd frame of the input (JSON Lines .zst, as `stream` writes them) with no removed or
    rewritten row into the output as it is, without decompressing or recompressing it; false:
    recompress every kept row at compression_level. The rows written are the same either way."""

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"near_dedup.threshold must be in (0, 1], got {self.threshold}")
        if not 2 <= self.num_perm <= 4096:
            raise ValueError(f"near_dedup.num_perm must be in [2, 4096], got {self.num_perm}")
        if self.ngram < 1:
            raise ValueError(f"near_dedup.ngram must be >= 1, got {self.ngram}")
        if self.min_tokens < 0:
            raise ValueError(f"near_dedup.min_tokens must be >= 0, got {self.min_tokens}")
        if (self.bands is None) != (self.rows is None):
            raise ValueError("near_dedup.bands and near_dedup.rows must be set together (or both left empty)")
        if self.bands is not None and (self.bands < 1 or self.rows < 1 or self.bands * self.rows > self.num_perm):
            raise ValueError(
                f"near_dedup.bands * rows must be <= num_perm ({self.num_perm}), got {self.bands} x {self.rows}"
            )
        if self.verify not in _VERIFY_MODES:
            raise ValueError(f"near_dedup.verify must be one of {_VERIFY_MODES}, got {self.verify!r}")
        if self.keep not in _KEEP_RULES:
            raise ValueError(f"near_dedup.keep must be one of {_KEEP_RULES}, got {self.keep!r}")
        if self.backend not in _BACKENDS:
            raise ValueError(f"near_dedup.backend must be one of {_BACKENDS}, got {self.backend!r}")
        if self.backend == "numba" and not _HAVE_NUMBA:
            raise ValueError("near_dedup.backend is 'numba' but numba is not installed: pip install numba")
        p = self.spill_partitions
        if p < 1 or p & (p - 1):
            raise ValueError(f"near_dedup.spill_partitions must be a power of two, got {p}")
        if self.memory_budget_mb <= 0:
            raise ValueError(f"near_dedup.memory_budget_mb must be > 0, got {self.memory_budget_mb}")

    @property
    def lsh_params(self) -> tuple[int, int]:
        """(bands, rows): explicit, or datasketch's choice minimising the weighted FP/FN areas."""
        if self.bands is not None:
            return self.bands, self.rows  # type: ignore[return-value]
        return _optimal_lsh_params(self.threshold, self.num_perm, self.false_positive_weight, self.false_negative_weight)

    @property
    def use_numba(self) -> bool:
        return self.backend == "numba" or (self.backend == "auto" and _HAVE_NUMBA)


def _lsh_cache_path() -> Path:
    """Where datasketch's (bands, rows) choices are kept across processes: beside the numba kernel cache."""
    return Path(__file__).with_name("__pycache__") / "lsh_params.json"


def _datasketch_stamp() -> str | None:
    """Size and mtime of the installed datasketch/lsh.py (found without importing it), or None."""
    spec = importlib.util.find_spec("datasketch")
    if spec is None or spec.origin is None:
        return None
    try:
        st = os.stat(os.path.join(os.path.dirname(spec.origin), "lsh.py"))
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


@functools.lru_cache(maxsize=64)
def _optimal_lsh_params(threshold: float, num_perm: int, fp_weight: float, fn_weight: float) -> tuple[int, int]:
    """datasketch.lsh._optimal_param, memoised per process and on disk.

    Importing datasketch loads scipy.integrate (~0.6 s) and the integration takes ~0.1 s: a
    process start would pay both for two integers. The on-disk memo is keyed by the arguments and
    the installed datasketch/lsh.py (size, mtime), so a changed datasketch recomputes; a cache that
    cannot be read or written is skipped.
    """
    stamp = _datasketch_stamp()
    key = f"{threshold!r}|{num_perm}|{fp_weight!r}|{fn_weight!r}|{stamp}"
    path = _lsh_cache_path()
    memo: dict = {}
    if stamp is not None:
        try:
            memo = json.loads(path.read_text())
            b, r = memo[key]
            return int(b), int(r)
        except (OSError, ValueError, KeyError, TypeError):
            memo = memo if isinstance(memo, dict) and len(memo) < 256 else {}
    from datasketch.lsh import _optimal_param

    b, r = _optimal_param(threshold, num_perm, fp_weight, fn_weight)
    if stamp is not None:
        memo[key] = [int(b), int(r)]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(exist_ok=True)
            tmp.write_text(json.dumps(memo, sort_keys=True))
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
    return int(b), int(r)


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The multiply-shift parameters (a odd, b) of the permutations, uint64 each."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64, endpoint=True)
    b = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64, endpoint=True)
    return a | np.uint64(1), b


def encode_content(content: str) -> bytes:
    """UTF-8 bytes of a record's content; lone surrogates (undecodable leftovers) pass through."""
    return content.encode("utf-8", "surrogatepass")


# --------------------------------------------------------------------------- numpy reference

_TOKEN_RE = re.compile(rb"[A-Za-z_0-9]+")


def shingle_hashes_reference(data: bytes, ngram: int, lowercase: bool) -> tuple[np.ndarray, int]:
    """(sorted distinct shingle hashes as uint64, number of distinct tokens), via re + xxhash."""
    tokens = _TOKEN_RE.findall(data.lower() if lowercase else data)
    th = np.fromiter(map(xxhash.xxh64_intdigest, tokens), dtype=np.uint64, count=len(tokens))
    distinct = np.unique(th)
    if ngram == 1:
        return distinct, len(distinct)
    if len(th) < ngram:
        return np.empty(0, np.uint64), len(distinct)
    raw = th.astype("<u8").tobytes()
    step, width = 8, 8 * ngram
    grams = np.fromiter(
        (xxhash.xxh64_intdigest(raw[i : i + width]) for i in range(0, len(raw) - width + 1, step)),
        dtype=np.uint64,
        count=len(th) - ngram + 1,
    )
    return np.unique(grams), len(distinct)


def minhash_reference(shingles: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """uint32 signature of a set of shingle hashes (all-ones when the set is empty)."""
    acc = np.full(len(a), np.iinfo(np.uint64).max, dtype=np.uint64)
    for start in range(0, len(shingles), 2048):  # bounded temporaries for huge files
        block = shingles[start : start + 2048, None] * a[None, :] + b[None, :]
        np.minimum(acc, block.min(axis=0), out=acc)
    return (acc >> np.uint64(32)).astype(np.uint32)


def band_keys_reference(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """uint64 key of each band of each signature row: xxh64(band bytes, seed=band)."""
    sig = np.ascontiguousarray(sig, dtype="<u4")
    keys = np.empty((sig.shape[0], bands), dtype=np.uint64)
    for d in range(sig.shape[0]):
        for i in range(bands):
            keys[d, i] = xxhash.xxh64_intdigest(sig[d, i * rows : (i + 1) * rows].tobytes(), seed=i)
    return keys


# --------------------------------------------------------------------------- numba kernels

if _HAVE_NUMBA:
    _P1 = np.uint64(0x9E3779B185EBCA87)
    _P2 = np.uint64(0xC2B2AE3D27D4EB4F)
    _P3 = np.uint64(0x165667B19E3779F9)
    _P4 = np.uint64(0x85EBCA77C2B2AE63)
    _P5 = np.uint64(0x27D4EB2F165667C5)
    _ONES = np.uint64(0xFFFFFFFFFFFFFFFF)

    @numba.njit(cache=True, inline="always")
    def _rotl(x, r):
        return (x << np.uint64(r)) | (x >> np.uint64(64 - r))

    @numba.njit(cache=True, inline="always")
    def _round(acc, lane):
        acc = acc + lane * _P2
        acc = _rotl(acc, 31)
        return acc * _P1

    @numba.njit(cache=True, inline="always")
    def _lane(buf, i, nbytes):
        v = np.uint64(0)
        for k in range(nbytes):
            v |= np.uint64(buf[i + k]) << np.uint64(8 * k)
        return v

    @numba.njit(cache=True)
    def _xxh64(buf, start, end, seed):
        """xxh64 of buf[start:end], bit-identical to xxhash.xxh64_intdigest."""
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

    _TOKEN_BYTE = np.zeros(256, dtype=np.bool_)
    for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_":
        _TOKEN_BYTE[_c] = True

    @numba.njit(cache=True)
    def _distinct(values):
        """The distinct values, in first-seen order (open addressing: linear in len(values))."""
        n = values.shape[0]
        cap = 16
        while cap < 2 * n:
            cap *= 2
        mask = np.uint64(cap - 1)
        table = np.zeros(cap, dtype=np.uint64)  # 0 marks an empty slot; the value 0 is tracked apart
        out = np.empty(n, dtype=np.uint64)
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
        return out[:m]

    @numba.njit(cache=True)
    def _shingles(buf, start, end, ngram):
        """(distinct shingle hashes in first-seen order, distinct token count) of buf[start:end]."""
        is_tok = _TOKEN_BYTE
        toks = np.empty((end - start) // 2 + 1, dtype=np.uint64)
        nt = 0
        i = start
        while i < end:
            if is_tok[buf[i]]:
                j = i + 1
                while j < end and is_tok[buf[j]]:
                    j += 1
                toks[nt] = _xxh64(buf, i, j, 0)
                nt += 1
                i = j + 1  # buf[j] is not a token byte
            else:
                i += 1
        toks = toks[:nt]
        distinct = _distinct(toks)
        if ngram == 1:
            return distinct, distinct.shape[0]
        if nt < ngram:
            return np.empty(0, dtype=np.uint64), distinct.shape[0]
        raw = toks.view(np.uint8)  # little-endian lanes of the token hashes
        grams = np.empty(nt - ngram + 1, dtype=np.uint64)
        for g in range(nt - ngram + 1):
            grams[g] = _xxh64(raw, 8 * g, 8 * (g + ngram), 0)
        return _distinct(grams), distinct.shape[0]

    @numba.njit(cache=True)
    def _minhash_into(sh, a, b, out):
        # Permutation outside, shingles inside: the inner loop is a min-reduction over the
        # shingles, which vectorises without loading and storing an accumulator row (~12%
        # faster for the whole kernel than the shingle-outer order).
        n = sh.shape[0]
        for k in range(a.shape[0]):
            ak, bk = a[k], b[k]
            m = _ONES
            for i in range(n):
                m = min(m, ak * sh[i] + bk)
            out[k] = np.uint32(m >> np.uint64(32))

    @numba.njit(cache=True)
    def _signatures_kernel(buf, offsets, ngram, a, b, sig, ntok):
        for d in range(offsets.shape[0] - 1):
            sh, nd = _shingles(buf, offsets[d], offsets[d + 1], ngram)
            ntok[d] = nd
            _minhash_into(sh, a, b, sig[d])

    @numba.njit(cache=True)
    def _band_keys_kernel(sig, bands, rows, keys):
        for d in range(sig.shape[0]):
            raw = sig[d].view(np.uint8)
            for i in range(bands):
                keys[d, i] = _xxh64(raw, 4 * i * rows, 4 * (i + 1) * rows, i)


# --------------------------------------------------------------------------- public API


@dataclass
class SignatureBatch:
    """Signatures of consecutive files: ``sig`` uint32[n, num_perm], ``ntokens`` int64[n]."""

    sig: np.ndarray
    ntokens: np.ndarray


class MinHashSignature:
    """Computes signatures, band keys and shingle sets for one :class:`NearDedupConfig`."""

    def __init__(self, cfg: NearDedupConfig):
        self.cfg = cfg
        self.a, self.b = permutations(cfg.num_perm, cfg.seed)
        self.bands, self.rows = cfg.lsh_params

    def signatures(self, contents: list[bytes]) -> SignatureBatch:
        """Signatures of UTF-8 encoded contents (see :func:`encode_content`)."""
        n, cfg = len(contents), self.cfg
        sig = np.empty((n, cfg.num_perm), dtype=np.uint32)
        ntok = np.empty(n, dtype=np.int64)
        if cfg.use_numba:
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum([len(c) for c in contents], out=offsets[1:])
            joined = b"".join(contents)
            buf = np.frombuffer(joined.lower() if cfg.lowercase else joined, dtype=np.uint8)  # ASCII-only lower
            if buf.size == 0:
                buf = np.zeros(1, dtype=np.uint8)
            _signatures_kernel(buf, offsets, cfg.ngram, self.a, self.b, sig, ntok)
        else:
            for d, data in enumerate(contents):
                sh, ntok[d] = shingle_hashes_reference(data, cfg.ngram, cfg.lowercase)
                sig[d] = minhash_reference(sh, self.a, self.b)
        return SignatureBatch(sig=sig, ntokens=ntok)

    def band_keys(self, sig: np.ndarray) -> np.ndarray:
        """uint64[n, bands] LSH bucket keys of signature rows."""
        if not self.cfg.use_numba:
            return band_keys_reference(sig, self.bands, self.rows)
        keys = np.empty((sig.shape[0], self.bands), dtype=np.uint64)
        _band_keys_kernel(np.ascontiguousarray(sig), self.bands, self.rows, keys)
        return keys

    def shingles(self, data: bytes) -> np.ndarray:
        """Sorted distinct shingle hashes of one file (used by ``verify: exact``)."""
        if self.cfg.use_numba and data:
            buf = np.frombuffer(data.lower() if self.cfg.lowercase else data, dtype=np.uint8)
            return np.sort(_shingles(buf, 0, len(data), self.cfg.ngram)[0])
        return shingle_hashes_reference(data, self.cfg.ngram, self.cfg.lowercase)[0]


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Fraction of equal MinHash values, row by row (the signature estimate of Jaccard)."""
    return (sig_a == sig_b).mean(axis=-1)


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted distinct hash arrays."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)
