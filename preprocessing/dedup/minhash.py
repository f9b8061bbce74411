"""Shingling and MinHash signatures: xxh64 shingle hashes, 256 multiply-shift permutations, uint32 values.

A file's shingles are the distinct n-grams of its tokens, a token being a maximal run of
``[A-Za-z_0-9]`` (CodeParrot's ``NON_ALPHA`` split; n=1 gives CodeParrot's token sets, n=5
BigCode's 5-gram shingles). Tokens are found in the UTF-8 bytes of the content (token
characters are ASCII, so this equals tokenizing the text), a token's hash is ``xxh64(token)``
and an n-gram's hash is ``xxh64`` of the little-endian bytes of its n token hashes.

Permutation k maps a shingle hash h to ``((a_k * h + b_k) mod 2**64) >> 32`` (Dietzfelbinger's
multiply-shift family, ``a_k`` odd, drawn from ``seed``); the signature is the minimum over the
shingles, one uint32 per permutation (``4 * num_perm`` bytes per file).

Two implementations give bit-identical results (tests check it): native kernels in C (the
default: they tokenize, hash and min-reduce in one pass over the bytes, about 10x the numpy path,
see docs/dedup.md; a C extension compiled when the package is installed, see
:mod:`preprocessing.dedup.native`) and a reference over ``re`` + the ``xxhash`` package + numpy,
which is also the fallback (with a warning) where the extension was not built.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xxhash

from preprocessing.dedup import native
from preprocessing.dedup._scratch import scratch_words

# The C kernels are built at install (setup.py); the numpy path is the reference and the fallback.
_HAVE_NATIVE = native.available()

_KEEP_RULES = ("first", "longest", "license", "stars")
_VERIFY_MODES = ("signature", "exact")
_BACKENDS = ("auto", "native", "numpy")


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
    """'native' (the C kernels, built when the package is installed), 'numpy' or 'auto' (native;
    where the extension was not built, a warning and numpy); both give identical signatures."""
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
        if self.backend == "numba":  # the former name of the native kernels (they were numba's)
            self.backend = "native"
        if self.backend not in _BACKENDS:
            raise ValueError(f"near_dedup.backend must be one of {_BACKENDS}, got {self.backend!r}")
        if self.backend == "native" and not _HAVE_NATIVE:
            raise ValueError(f"near_dedup.backend is 'native' but the C kernels are not built: {native.BUILD_HINT}")
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
    def use_native(self) -> bool:
        """Whether the native kernels are asked for (whether they work here: MinHashSignature.native;
        with ``auto`` and no built extension, a warning and the numpy reference)."""
        return self.backend != "numpy"


def _lsh_cache_path() -> Path:
    """Where datasketch's (bands, rows) choices are kept across processes."""
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


def cache_dir() -> Path:
    """Where the permutations are kept: $CODEPARROT_CACHE_DIR if set, else beside this module
    (``__pycache__``) when writable, else the user's cache directory."""
    if os.environ.get("CODEPARROT_CACHE_DIR"):
        return Path(os.environ["CODEPARROT_CACHE_DIR"])
    here = Path(__file__).with_name("__pycache__")
    try:
        here.mkdir(exist_ok=True)
        if os.access(here, os.W_OK):
            return here
    except OSError:
        pass
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "codeparrot-toolkit"


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The multiply-shift parameters (a odd, b) of the permutations, uint64 each: drawn with
    numpy's default generator, kept in :func:`cache_dir` (importing numpy.random costs a process
    ~10 ms; reading the 4 KB file, well under 1 ms)."""
    path = cache_dir() / f"minhash-permutations-{num_perm}-{seed}-numpy{np.__version__}.npy"
    try:
        ab = np.load(path)
        if ab.shape == (2, num_perm) and ab.dtype == np.uint64:
            return ab[0], ab[1]
    except (OSError, ValueError):
        pass
    rng = np.random.default_rng(seed)
    a = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64, endpoint=True)
    b = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64, endpoint=True)
    a |= np.uint64(1)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.save(f, np.stack([a, b]))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):  # under a path that is no folder, unlink fails too
            tmp.unlink(missing_ok=True)
    return a, b


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


# --------------------------------------------------------------------------- public API


@dataclass
class SignatureBatch:
    """Signatures of consecutive files: ``sig`` uint32[n, num_perm], ``ntokens`` int64[n]."""

    sig: np.ndarray
    ntokens: np.ndarray


@dataclass
class EscapedBatch:
    """What :meth:`MinHashSignature.signatures_escaped` found in each string body: the signatures,
    the decoded UTF-8 size (int64, -1: decode the line instead), the position of the closing quote
    in the buffer (int64) and whether every escape is one orjson writes (bool)."""

    batch: SignatureBatch
    sizes: np.ndarray
    close: np.ndarray
    canonical: np.ndarray


class MinHashSignature:
    """Computes signatures, band keys and shingle sets for one :class:`NearDedupConfig`."""

    def __init__(self, cfg: NearDedupConfig):
        self.cfg = cfg
        self.a, self.b = permutations(cfg.num_perm, cfg.seed)
        self.bands, self.rows = cfg.lsh_params
        self._scratch = np.empty(0, dtype=np.uint64)
        self._use_native: bool | None = None

    @property
    def native(self) -> bool:
        """Whether the native kernels are used: asked for (``cfg.use_native``) and built here.
        Found out on first use; backend ``auto`` falls back to the numpy reference with a warning,
        backend ``native`` raises :class:`~preprocessing.dedup.native.KernelsUnavailable`."""
        if self._use_native is None:
            self._use_native = self.cfg.use_native and native.ready(strict=self.cfg.backend == "native")
        return self._use_native

    def _scratch_for(self, max_bytes: int) -> np.ndarray:
        """Scratch words for the native kernels (kept for the next call unless over 32 MiB)."""
        need = scratch_words(max_bytes)
        if self._scratch.size >= need:
            return self._scratch
        scratch = np.empty(need, dtype=np.uint64)
        if need <= (4 << 20):
            self._scratch = scratch
        return scratch

    def signatures(self, contents: list[bytes]) -> SignatureBatch:
        """Signatures of UTF-8 encoded contents (see :func:`encode_content`)."""
        n, cfg = len(contents), self.cfg
        if self.native:
            sizes = [len(c) for c in contents]
            ends = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(sizes, out=ends[1:])
            joined = b"".join(contents)
            joined = joined.lower() if cfg.lowercase else joined
            return self._native(joined, joined, ends[:-1], ends[1:], escaped=False).batch
        sig = np.empty((n, cfg.num_perm), dtype=np.uint32)
        ntok = np.empty(n, dtype=np.int64)
        for d, data in enumerate(contents):
            sh, ntok[d] = shingle_hashes_reference(data, cfg.ngram, cfg.lowercase)
            sig[d] = minhash_reference(sh, self.a, self.b)
        return SignatureBatch(sig=sig, ntokens=ntok)

    def signatures_escaped(self, buf: bytes, starts: np.ndarray, ends: np.ndarray) -> EscapedBatch:
        """Signatures of contents still escaped as JSON string bodies: body d starts at
        ``buf[starts[d]]`` (after its opening quote) and ends at the first unescaped quote before
        ``ends[d]``. Its escapes are decoded (the tokens are those of the decoded text, lowercased
        when the config lowercases); see :class:`EscapedBatch` for what is reported. A body that
        is not valid JSON, not well-formed UTF-8 or holds NUL has size -1 and no signature: it
        must be decoded as a whole instead. Native kernels only."""
        assert self.native, "escaped contents need the native kernels"
        low = buf.lower() if self.cfg.lowercase else buf
        return self._native(buf, low, np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(ends, np.int64),
                            True)

    def _native(self, data: bytes, low: bytes, starts: np.ndarray, ends: np.ndarray, escaped: bool) -> EscapedBatch:
        n, cfg = len(starts), self.cfg
        sig = np.empty((n, cfg.num_perm), dtype=np.uint32)
        ntok = np.empty(n, dtype=np.int64)
        size = np.empty(n, dtype=np.int64)
        close = np.empty(n, dtype=np.int64)
        canonical = np.empty(n, dtype=np.uint8)
        scratch = self._scratch_for(int((ends - starts).max()) if n else 0)
        native.kernel("signatures")(data, low, starts, ends, cfg.ngram, escaped, cfg.lowercase, self.a, self.b, sig,
                                    ntok, size, close, canonical, scratch)
        return EscapedBatch(SignatureBatch(sig=sig, ntokens=ntok), size, close, canonical.view(np.bool_))

    def band_keys(self, sig: np.ndarray) -> np.ndarray:
        """uint64[n, bands] LSH bucket keys of signature rows."""
        if not self.native:
            return band_keys_reference(sig, self.bands, self.rows)
        sig = np.ascontiguousarray(sig, dtype=np.uint32)
        keys = np.empty((sig.shape[0], self.bands), dtype=np.uint64)
        native.kernel("band_keys")(sig, sig.shape[1], self.bands, self.rows, keys)
        return keys

    def shingles(self, data: bytes) -> np.ndarray:
        """Sorted distinct shingle hashes of one file (used by ``verify: exact``)."""
        if data and self.native:
            out = np.empty(len(data) // 2 + 2, dtype=np.uint64)
            scratch = self._scratch_for(len(data))
            m = native.kernel("shingles")(data.lower() if self.cfg.lowercase else data, self.cfg.ngram, scratch, out)
            return np.sort(out[:m])
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
