"""Quality filter: CodeParrot's heuristics (line lengths, alphanumeric fraction, config/test, keywords, '=' count)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from preprocessing.filters.base import Filter
from preprocessing.filters.joined import Batch, PatternSet
from preprocessing.hashing import keyed_uniform, keyed_uniforms, record_key, record_keys
from preprocessing.record import CodeFile

_ASCII_ALNUM = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# [\W_] is exactly "not str.isalnum()" for every code point (checked in tests).
_NON_ALNUM = re.compile(r"[\W_]+")
_ASCII_RUN = re.compile(r"[\x00-\x7f]+")

_CONFIG_TEST_PHRASES = ("unit tests", "test file", "configuration file")
_KEYWORDS = ("def ", "class ", "for ", "while ")


def utf8_size(content: str) -> int:
    """Size of ``content`` in UTF-8 bytes (no copy for ASCII text)."""
    return len(content) if content.isascii() else len(content.encode("utf-8", "surrogatepass"))


def alnum_count(content: str) -> int:
    """How many characters of ``content`` are alphanumeric (``str.isalnum``), without a per-character loop."""
    if content.isascii():
        raw = content.encode("ascii")
        return len(raw) - len(raw.translate(None, _ASCII_ALNUM))
    # ASCII alphanumerics by bytes.translate on the UTF-8 bytes (multi-byte sequences are never
    # ASCII alphanumerics), then the non-ASCII characters, usually few, by the regex.
    raw = content.encode("utf-8", "surrogatepass")
    non_ascii = _ASCII_RUN.sub("", content)
    return len(raw) - len(raw.translate(None, _ASCII_ALNUM)) + len(_NON_ALNUM.sub("", non_ascii))


def line_lengths(content: str) -> tuple[int, int, float]:
    """(number of lines, max line length, mean line length) over ``str.splitlines()`` lines, as CodeParrot."""
    lines = content.splitlines()
    if not lines:
        return 0, 0, 0.0
    lengths = list(map(len, lines))
    return len(lines), max(lengths), sum(lengths) / len(lines)


def head_lines(content: str, n: int) -> list[str]:
    """``content.splitlines()[:n]`` without splitting the whole file (the text up to its n-th
    "\\n" is found by one ``str.split`` with ``maxsplit``)."""
    rest = content.split("\n", n)
    if len(rest) <= n:
        return content.splitlines()[:n]
    return content[: len(content) - len(rest[-1])].splitlines()[:n]


def file_metrics(content: str) -> dict[str, Any]:
    """Size and the statistics CodeParrot filters on, for reports: size (bytes), lines,
    max_line_length, mean_line_length, alnum_fraction (over characters)."""
    n_lines, line_max, line_mean = line_lengths(content)
    return {
        "size": utf8_size(content),
        "lines": n_lines,
        "max_line_length": line_max,
        "mean_line_length": line_mean,
        "alnum_fraction": alnum_count(content) / len(content) if content else 0.0,
    }


def _byte_classes() -> bytes:
    """A bytes.translate table: 1 alphanumeric, 2 "\\n", 3 "\\r", 4 another break str.splitlines
    splits ASCII text at (\\v \\f \\x1c \\x1d \\x1e), 0 the rest."""
    table = bytearray(256)
    for b in _ASCII_ALNUM:
        table[b] = 1
    table[0x0A], table[0x0D] = 2, 3
    for b in (0x0B, 0x0C, 0x1C, 0x1D, 0x1E):
        table[b] = 4
    return bytes(table)


_CLASS_OF = _byte_classes()

_BATCH_MIN = 16  # fewer ASCII records than this: file_metrics one by one


METRIC_NAMES = ("size", "lines", "max_line_length", "mean_line_length", "alnum_fraction")
"""The metrics of :func:`file_metrics`, in its order (the first three integers, the others floats)."""


@dataclass(slots=True)
class MetricColumns:
    """:func:`file_metrics` of many records as columns (numpy arrays, one value per record):
    ``size``, ``lines``, ``max_line_length`` int64, ``mean_line_length``, ``alnum_fraction``
    float64; a record's dict (:meth:`rows`) only where one is needed, the same values and types
    as :func:`file_metrics`."""

    size: np.ndarray
    lines: np.ndarray
    max_line_length: np.ndarray
    mean_line_length: np.ndarray
    alnum_fraction: np.ndarray
    newlines: np.ndarray | None = None
    """Per record ``content.count("\\n")`` (int64), where the columns were counted with it (the C
    pass of :func:`file_metrics_columns`), else None; not a metric of the report."""
    equals: np.ndarray | None = None
    """Per record ``content.count("=")`` (int64), likewise."""
    ascii: np.ndarray | None = None
    """Per record ``content.isascii()`` (bool), where :func:`file_metrics_columns` knew it, else
    None (then ``size`` is also the record's length where it is True)."""

    def __len__(self) -> int:
        return len(self.size)

    def column(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def take(self, idx: Any) -> MetricColumns:
        """The columns of the records ``idx`` (an index array or list), in that order."""
        if type(idx) is list:  # one conversion for all the columns
            idx = np.fromiter(idx, dtype=np.int64, count=len(idx))
        return MetricColumns(self.size[idx], self.lines[idx], self.max_line_length[idx], self.mean_line_length[idx],
                             self.alnum_fraction[idx], None if self.newlines is None else self.newlines[idx],
                             None if self.equals is None else self.equals[idx],
                             None if self.ascii is None else self.ascii[idx])

    def rows(self, idx: Any = None) -> list[dict[str, Any]]:
        """The :func:`file_metrics` dicts of the records ``idx`` (default: all), in that order."""
        c = self if idx is None else self.take(idx)
        return [{"size": size, "lines": n, "max_line_length": mx, "mean_line_length": mu, "alnum_fraction": fr}
                for size, n, mx, mu, fr in zip(c.size.tolist(), c.lines.tolist(), c.max_line_length.tolist(),
                                                c.mean_line_length.tolist(), c.alnum_fraction.tolist())]

    @classmethod
    def of_rows(cls, rows: list[dict[str, Any]]) -> MetricColumns:
        """The columns of :func:`file_metrics` dicts."""
        n = len(rows)
        return cls(*(np.fromiter(map(itemgetter(name), rows), dtype=np.int64 if k < 3 else np.float64, count=n)
                     for k, name in enumerate(METRIC_NAMES)))


def file_metrics_batch(contents: list[str]) -> list[dict[str, Any]]:
    """``[file_metrics(c) for c in contents]``, equal value for value (:func:`file_metrics_columns`)."""
    if len(contents) < _BATCH_MIN:
        return [file_metrics(c) for c in contents]
    return file_metrics_columns(contents).rows()


def file_metrics_columns(contents: list[str]) -> MetricColumns:
    """:func:`file_metrics` of each of ``contents`` as columns, equal value for value, with the ASCII
    records (most code) done together over their concatenation: one ``bytes.translate`` gives each byte
    its class (alphanumeric, line break), ``add.reduceat`` counts the alphanumerics of each record, numpy finds the
    line breaks as ``str.splitlines`` does (``\\r\\n`` one break; a record's last ``\\r`` and the next
    record's first ``\\n`` two), and the longest line per record by ``maximum.reduceat``. Counts
    are integers; the fractions one IEEE division of exact integers, as in Python. The others
    (non-ASCII or empty; all of a batch of fewer than 16 ASCII records) one by one."""
    if not contents:
        return MetricColumns(*(np.zeros(0, dtype=np.int64 if k < 3 else np.float64) for k in range(5)))
    joined = "".join(contents)
    if len(contents) >= _BATCH_MIN and joined.isascii() and all(contents):
        cols = _ascii_columns(contents, joined)
        cols.ascii = np.ones(len(contents), dtype=bool)
        return cols
    idx = [i for i, c in enumerate(contents) if c and c.isascii()]
    if len(idx) < _BATCH_MIN:
        return MetricColumns.of_rows([file_metrics(c) for c in contents])
    texts = [contents[i] for i in idx]
    part = _ascii_columns(texts, "".join(texts))
    others = [i for i, c in enumerate(contents) if not (c and c.isascii())]
    rest = MetricColumns.of_rows([file_metrics(contents[i]) for i in others])
    out = MetricColumns(*(np.empty(len(contents), dtype=np.int64 if k < 3 else np.float64) for k in range(5)))
    for name in METRIC_NAMES:
        col = out.column(name)
        col[idx] = part.column(name)
        col[others] = rest.column(name)
    if part.newlines is not None and part.equals is not None:
        for name, char in (("newlines", "\n"), ("equals", "=")):
            col = np.empty(len(contents), dtype=np.int64)
            col[idx] = part.column(name)
            col[others] = np.fromiter((contents[i].count(char) for i in others), dtype=np.int64, count=len(others))
            setattr(out, name, col)
    out.ascii = np.fromiter(map(str.isascii, contents), dtype=bool, count=len(contents))
    return out


_TEXT_STATS: list[Any] = []


def _text_stats_kernel() -> Any:
    """The C ``ascii_text_stats`` (preprocessing/dedup/_cminhash.c), or None: then a RuntimeWarning,
    once, and the numpy reference (the same columns, slower)."""
    if not _TEXT_STATS:
        from preprocessing.dedup import native

        _TEXT_STATS.append(native.optional_kernel("ascii_text_stats", "the file metrics are counted "
                                                  "by numpy (the same values, slower)"))
    return _TEXT_STATS[0]


def _ascii_columns(texts: list[str], joined: str) -> MetricColumns:
    """:func:`file_metrics_columns` of non-empty ASCII ``texts`` (``joined``: their concatenation):
    one pass of the C ``ascii_text_stats`` (with the newline and "=" counts), else
    :func:`_ascii_columns_numpy` (without them)."""
    m = len(texts)
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=m)
    stats = _text_stats_kernel()
    if stats is None:
        return _ascii_columns_numpy(texts, joined, lens)
    ends = lens.cumsum()
    alnum, n_lines, line_max, chars, newlines, equals = (np.empty(m, dtype=np.int64) for _ in range(6))
    stats(joined, ends, alnum, n_lines, line_max, chars, newlines, equals)  # (the str's own buffer: no encoded copy)
    # (every text is non-empty: at least one line) one IEEE division of exact integers each, as in Python
    return MetricColumns(lens, n_lines, line_max, chars / n_lines, alnum / lens, newlines, equals)


def _ascii_columns_numpy(texts: list[str], joined: str, lens: np.ndarray) -> MetricColumns:
    """:func:`_ascii_columns` by numpy (the reference of the C pass)."""
    m = len(texts)
    classes = joined.encode("ascii").translate(_CLASS_OF)
    cls = np.frombuffer(classes, dtype=np.uint8)
    ends = lens.cumsum()
    starts = ends - lens
    # alphanumerics per record: one reduceat over the class bytes (every record is non-empty here)
    alnum = np.add.reduceat((cls == 1).view(np.uint8), starts, dtype=np.int64)
    p = (cls >= 2).nonzero()[0]  # line-break characters
    rid = ends.searchsorted(p, side="right")  # the record of each
    # a "\n" right after a "\r" of the same record is the second character of one break
    second = np.zeros(p.size, dtype=bool)
    if p.size > 1:
        second[1:] = (cls[p[1:]] == 2) & (p[1:] - 1 == p[:-1]) & (cls[p[:-1]] == 3) & (rid[1:] == rid[:-1])
    width = np.ones(p.size, dtype=np.int64)
    width[:-1] += second[1:]
    keep = ~second
    pos, width, rid = p[keep], width[keep], rid[keep]
    n_breaks = np.bincount(rid, minlength=m)
    n_second = n_breaks - np.bincount(rid, weights=width, minlength=m).astype(np.int64)  # -(chars beyond one)
    # each break ends a line that starts at the record's start or after the previous break
    first = np.ones(pos.size, dtype=bool)
    first[1:] = rid[1:] != rid[:-1]
    line_start = np.empty(pos.size, dtype=np.int64)
    line_start[1:] = pos[:-1] + width[:-1]
    line_start[first] = starts[rid[first]]
    last_end = starts.copy()  # after the record's last break (its start without one)
    last = np.ones(pos.size, dtype=bool)
    last[:-1] = first[1:]
    last_end[rid[last]] = pos[last] + width[last]
    trailing = ends - last_end  # a last line without a break, when > 0
    n_lines = n_breaks + (trailing > 0)
    line_max = trailing
    if pos.size:
        with_breaks = rid[first]
        line_max = trailing.copy()
        line_max[with_breaks] = np.maximum(np.maximum.reduceat(pos - line_start, first.nonzero()[0]),
                                           trailing[with_breaks])
    mean = (lens - n_breaks + n_second) / n_lines
    frac = alnum / lens
    return MetricColumns(lens, n_lines.astype(np.int64), line_max.astype(np.int64), mean, frac)


@dataclass
class QualityFilterConfig:
    """CodeParrot's heuristics (scripts/preprocessing.py + arguments.py defaults) plus size limits."""

    enabled: bool = True
    """Run this filter."""
    min_size: int = 1
    """Drop files smaller than this many UTF-8 bytes (CodeParrot crashes on empty files)."""
    max_size: int | None = 1_000_000
    """Drop files larger than this many UTF-8 bytes (None = no limit; the GitHub dumps stop at ~1 MB)."""
    max_line_length: int = 1000
    """Drop files with a line longer than this (CodeParrot line_max)."""
    max_mean_line_length: float = 100.0
    """Drop files whose mean line length is above this (CodeParrot line_mean)."""
    min_alnum_fraction: float = 0.25
    """Drop files with a smaller fraction of alphanumeric characters (CodeParrot alpha_frac)."""
    config_or_test_drop_prob: float = 0.7
    """Probability of dropping a config or test file (CodeParrot filter_proba)."""
    config_or_test_scan_lines: int = 5
    """Lines searched for 'unit tests' / 'test file' / 'configuration file' (CodeParrot scan_width)."""
    config_or_test_coeff: float = 0.05
    """A file is config/test when 'config' or 'test' occurs more than int(coeff * newlines) times."""
    no_keywords_drop_prob: float = 0.7
    """Probability of dropping a file without 'def ', 'class ', 'for ', 'while ' (CodeParrot filter_proba)."""
    min_equals: int = 5
    """Drop files with fewer '=' than this (CodeParrot has_few_assignments: <= 4)."""
    tokenizer: str | None = None
    """A tokenizers JSON file (or a directory holding tokenizer.json) for the chars-per-token rule; None = off."""
    min_chars_per_token: float = 1.5
    """Drop files with fewer characters per token (CodeParrot min_token_ratio default 1.5; BigCode used 2.5)."""
    seed: int = 0
    """Seed of the probabilistic drops (keyed by repo_name + path, so independent of order and workers)."""

    def __post_init__(self) -> None:
        for name in ("config_or_test_drop_prob", "no_keywords_drop_prob"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"quality.{name} must be a probability in [0, 1], got {p}")
        if not 0.0 <= self.min_alnum_fraction <= 1.0:
            raise ValueError(f"quality.min_alnum_fraction must be in [0, 1], got {self.min_alnum_fraction}")
        if self.min_size < 0:
            raise ValueError(f"quality.min_size must be >= 0, got {self.min_size}")
        if self.max_size is not None and self.max_size < self.min_size:
            raise ValueError(
                f"quality.max_size ({self.max_size}) is below min_size ({self.min_size}); raise max_size or set it to null"
            )
        if self.max_line_length < 1 or self.max_mean_line_length <= 0:
            raise ValueError("quality.max_line_length and max_mean_line_length must be positive")


_QUALITY_REASONS = (None, "quality:min_size", "quality:max_size", "quality:max_line_length", "quality:mean_line_length",
                    "quality:alnum_fraction", "quality:config_or_test", "quality:no_keywords", "quality:few_assignments",
                    "quality:chars_per_token")


_WORDS = PatternSet(("config", "test", *_CONFIG_TEST_PHRASES, *_KEYWORDS))


def is_config_or_test(content: str, lower: str, head: list[str], coeff: float) -> bool:
    """CodeParrot's is_config_or_test: a phrase in the first lines, or many 'config'/'test' words."""
    low = "\n".join(head).lower()  # the phrases hold no line break: each can only match inside one line
    for p in _CONFIG_TEST_PHRASES:
        if p in low:
            return True
    threshold = int(coeff * content.count("\n"))
    return lower.count("config") > threshold or lower.count("test") > threshold


def has_no_keywords(lower: str) -> bool:
    """CodeParrot's has_no_keywords: none of 'def ', 'class ', 'for ', 'while ' (case-insensitive)."""
    for k in _KEYWORDS:
        if k in lower:
            return False
    return True


def load_tokenizer(path: str) -> Any:
    """A ``tokenizers.Tokenizer`` from a tokenizer.json file or a directory holding one."""
    from tokenizers import Tokenizer

    from common.tokens import find_tokenizer_json

    p = find_tokenizer_json(path)
    if p is None:
        raise ValueError(
            f"quality.tokenizer: {path} is not a tokenizers JSON file nor a directory with tokenizer.json; "
            "train one with `cp-preprocess tokenizer` or set tokenizer to null"
        )
    return Tokenizer.from_file(str(p))


class QualityFilter(Filter):
    """Drops low-quality files; returns ``quality:<rule>`` for the first failing rule, in this order:

    ``min_size``, ``max_size``, ``max_line_length``, ``mean_line_length``, ``alnum_fraction``,
    ``config_or_test`` (p=0.7), ``no_keywords`` (p=0.7), ``few_assignments``, ``chars_per_token``.
    The keep/drop decision equals CodeParrot's; only the token ratio is checked last (it is the
    expensive one), so its files may be attributed to an earlier rule than CodeParrot would.
    """

    name = "quality"

    def __init__(self, config: QualityFilterConfig | None = None) -> None:
        self.config = config or QualityFilterConfig()
        self._tokenizer: Any = None
        if self.config.tokenizer is not None:
            self._tokenizer = load_tokenizer(self.config.tokenizer)

    def __getstate__(self) -> dict[str, Any]:
        # The tokenizer is reloaded in each worker process rather than pickled.
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])  # type: ignore[misc]

    def filter(self, record: CodeFile) -> str | None:
        # The pipeline computes file_metrics once per record (they feed the report too).
        return self.check(record, record.metrics)

    batch_words = _WORDS.patterns

    def filter_batch(self, records: list[CodeFile], batch: Batch | None = None) -> list[str | None]:
        """:meth:`filter` of each record, the rules decided together for the small ASCII records
        with metrics (most code): the metric rules as numpy comparisons (over ``batch``'s metric
        columns when it has them, else the records' dicts), the words counted over their
        lowercased texts joined (:class:`JoinedText`, through ``batch``, shared with the other
        filters), the keyed draws only for the records a probabilistic rule applies to, the phrase
        rule and the token rule record by record for the few records they can concern. The
        others: :meth:`check` one by one."""
        if batch is None:
            batch = Batch.of(records, _WORDS.patterns)
        cols = batch.metrics
        small = batch.small
        if cols is None:
            take = small & np.fromiter((r.metrics is not None for r in records), dtype=bool, count=len(records))
        else:
            take = small
        n_take = int(take.sum())
        if n_take < _BATCH_MIN:
            return self._check_each(records, list(range(len(records))), cols)
        out: list[str | None] = [None] * len(records)
        if n_take == len(records):
            recs, sub = records, batch
            mets = cols if cols is not None else MetricColumns.of_rows([r.metrics for r in records])
        else:
            idx = take.nonzero()[0]
            others = (~take).nonzero()[0].tolist()
            for i, reason in zip(others, self._check_each(records, others, cols)):
                out[i] = reason
            recs = [records[i] for i in idx.tolist()]
            sub = batch.view(idx)
            mets = cols.take(idx) if cols is not None else MetricColumns.of_rows([r.metrics for r in recs])
        codes = self._codes(recs, mets, sub)
        if n_take == len(records):
            return list(map(_QUALITY_REASONS.__getitem__, codes.tolist()))
        for i, c in zip(idx.tolist(), codes.tolist()):
            if c:
                out[i] = _QUALITY_REASONS[c]
        return out

    def _check_each(self, records: list[CodeFile], which: list[int], cols: MetricColumns | None) -> list[str | None]:
        """:meth:`check` of the records ``which``, with their dicts (from ``cols`` for those without one)."""
        if cols is None:
            return [self.check(records[i], records[i].metrics) for i in which]
        return [self.check(records[i], records[i].metrics if records[i].metrics is not None else m)
                for i, m in zip(which, cols.rows(which))]

    def _codes(self, recs: list[CodeFile], mets: MetricColumns, text: Batch) -> np.ndarray:
        """Per record (ASCII, small, metrics ``mets``; ``text``: their batch), the index in
        _QUALITY_REASONS of the first rule it fails (0: none), the rules in :meth:`check`'s order."""
        cfg = self.config
        n = len(recs)
        size = mets.size
        code = np.zeros(n, dtype=np.int8)
        alive = np.ones(n, dtype=bool)

        def fail(mask: np.ndarray, c: int) -> None:
            hit = mask & alive
            code[hit] = c
            alive[hit] = False

        fail(size < cfg.min_size, 1)
        if cfg.max_size is not None:
            fail(size > cfg.max_size, 2)
        alive &= size != 0  # min_size = 0 keeps empty files (ASCII: size = characters)
        fail(mets.max_line_length > cfg.max_line_length, 3)
        fail(mets.mean_line_length > cfg.max_mean_line_length, 4)
        fail(mets.alnum_fraction < cfg.min_alnum_fraction, 5)
        if not alive.any():
            return code
        keys: dict[int, bytes] = {}
        seed = cfg.seed

        def names_of(js: list[int]) -> list[bytes]:
            """The record keys of the records ``js`` (the batch's when it has them)."""
            got = text.keys_of(js)
            return got if got is not None else record_keys([(recs[j].repo_name, recs[j].path) for j in js])
        if cfg.config_or_test_drop_prob > 0:
            newlines = mets.newlines if mets.newlines is not None else text.char_count("\n")
            threshold = (cfg.config_or_test_coeff * newlines).astype(np.int64)  # int(coeff * newlines)
            flag = (text.count("config") > threshold) | (text.count("test") > threshold)
            # a phrase in the first lines: checked record by record where it occurs at all
            for j in (text.contains(_CONFIG_TEST_PHRASES) & alive & ~flag).nonzero()[0].tolist():
                c = recs[j].content
                flag[j] = is_config_or_test(c, c.lower(), head_lines(c, cfg.config_or_test_scan_lines),
                                            cfg.config_or_test_coeff)
            which = (flag & alive).nonzero()[0]
            names = names_of(which.tolist())
            keys.update(zip(which.tolist(), names))
            draws = np.fromiter(keyed_uniforms(names, "config_or_test", seed), dtype=np.float64, count=len(names))
            hit = which[draws <= cfg.config_or_test_drop_prob]
            code[hit] = 6
            alive[hit] = False
        if cfg.no_keywords_drop_prob > 0:
            which = (alive & ~text.contains(_KEYWORDS)).nonzero()[0]
            rest = [j for j in which.tolist() if j not in keys]  # the keys not drawn for config_or_test
            keys.update(zip(rest, names_of(rest)))
            names = [keys[j] for j in which.tolist()]
            draws = np.fromiter(keyed_uniforms(names, "no_keywords", seed), dtype=np.float64, count=len(names))
            hit = which[draws <= cfg.no_keywords_drop_prob]
            code[hit] = 7
            alive[hit] = False
        fail((mets.equals if mets.equals is not None else text.char_count("=")) < cfg.min_equals, 8)
        if self._tokenizer is not None:
            for j in alive.nonzero()[0].tolist():
                content = recs[j].content
                n_tokens = len(self._tokenizer.encode(content, add_special_tokens=False).ids)
                if n_tokens and len(content) / n_tokens < cfg.min_chars_per_token:
                    code[j] = 9
        return code

    def check(self, record: CodeFile, metrics: dict[str, Any] | None = None) -> str | None:
        """:meth:`filter` with ``metrics = file_metrics(record.content)`` given (computed here if None)."""
        cfg = self.config
        content = record.content
        if metrics is None:
            metrics = file_metrics(content)
        size = metrics["size"]
        if size < cfg.min_size:
            return "quality:min_size"
        if cfg.max_size is not None and size > cfg.max_size:
            return "quality:max_size"
        n_chars = len(content)
        if n_chars == 0:
            return None  # min_size = 0 keeps empty files; no statistic is defined for them
        if metrics["max_line_length"] > cfg.max_line_length:
            return "quality:max_line_length"
        if metrics["mean_line_length"] > cfg.max_mean_line_length:
            return "quality:mean_line_length"
        if metrics["alnum_fraction"] < cfg.min_alnum_fraction:
            return "quality:alnum_fraction"
        lines = head_lines(content, cfg.config_or_test_scan_lines)
        lower = content.lower()
        key = None
        if cfg.config_or_test_drop_prob > 0 and is_config_or_test(
            content, lower, lines, cfg.config_or_test_coeff
        ):
            key = record_key(record.repo_name, record.path)
            if keyed_uniform(key, "config_or_test", cfg.seed) <= cfg.config_or_test_drop_prob:
                return "quality:config_or_test"
        if cfg.no_keywords_drop_prob > 0 and has_no_keywords(lower):
            key = key or record_key(record.repo_name, record.path)
            if keyed_uniform(key, "no_keywords", cfg.seed) <= cfg.no_keywords_drop_prob:
                return "quality:no_keywords"
        if content.count("=") < cfg.min_equals:
            return "quality:few_assignments"
        if self._tokenizer is not None:
            n_tokens = len(self._tokenizer.encode(content, add_special_tokens=False).ids)
            if n_tokens and n_chars / n_tokens < cfg.min_chars_per_token:
                return "quality:chars_per_token"
        return None
