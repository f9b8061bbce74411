"""Many records' texts as one string, searched at once, for the filters that decide a work unit's records together."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Any

import numpy as np

SEP = "\x00"
"""What separates the records in :class:`JoinedText`: no pattern searched holds it, so no match
spans two records."""
BATCH_MAX_CHARS = 4096
"""The filters decide together the records up to this many characters; longer ones one by one:
their cost is the scans of their text, which a joined search does not cut (one Aho-Corasick pass
reads every byte, where ``in`` stops at the first hit and a file's head is all some rules read)."""


@dataclass
class JoinedText:
    """``texts`` joined by :data:`SEP`; record ``i`` is ``text[starts[i]:ends[i]]``, ``text``
    being bytes when all are ASCII and str otherwise."""

    text: bytes | str
    starts: np.ndarray
    ends: np.ndarray

    @classmethod
    def of(cls, texts: list[str], lower: bool = False) -> JoinedText:
        """The joined ``texts``; with ``lower``, each lowercased (``str.lower``, text by text, so
        the offsets stay right whatever the text)."""
        joined = SEP.join(texts)
        pieces: list[str] = texts
        text: bytes | str
        if joined.isascii():  # ASCII: bytes, lowercased at once (as str.lower: no length changes)
            if lower and (ascii_lower := _ascii_lower_kernel()) is not None:
                text = ascii_lower(joined)  # (one pass over the str's buffer: no encoded copy)
            else:
                text = joined.encode("ascii")
                if lower:
                    text = text.lower()
        elif lower:
            pieces = [t.lower() for t in texts]
            text = SEP.join(pieces)
        else:
            text = joined
        lens = np.fromiter(map(len, pieces), dtype=np.int64, count=len(texts))
        ends = (lens + 1).cumsum() - 1
        return cls(text, ends - lens, ends)

    def __len__(self) -> int:
        return len(self.starts)

    def char_count(self, char: str) -> np.ndarray:
        """Per record, ``text_i.count(char)`` for one ASCII character (numpy over the bytes)."""
        if len(char) != 1 or char == SEP or not char.isascii():
            raise ValueError(f"char_count counts one ASCII character other than {SEP!r}, not {char!r}")
        if type(self.text) is bytes:
            pos = (np.frombuffer(self.text, dtype=np.uint8) == ord(char)).nonzero()[0]
        else:
            pos = np.asarray(_positions(self.text, char, 1), dtype=np.int64)
        return np.bincount(self.record_of(pos), minlength=len(self))[: len(self)]

    def record_of(self, positions: np.ndarray) -> np.ndarray:
        """The record of each position of ``text`` (not a separator's)."""
        return self.ends.searchsorted(positions, side="right")


_ASCII_LOWER: list[Any] = []


def _ascii_lower_kernel() -> Any:
    """The C ``ascii_lower`` (preprocessing/dedup/_cminhash.c), or None: then a RuntimeWarning,
    once, and ``bytes.lower`` of the encoded text (the same bytes, slower)."""
    if not _ASCII_LOWER:
        from preprocessing.dedup import native

        _ASCII_LOWER.append(native.optional_kernel("ascii_lower", "the filters' joined texts are lowercased "
                                                   "by bytes.lower (the same bytes, slower)"))
    return _ASCII_LOWER[0]


class PatternSet:
    """Literal patterns found all at once in a :class:`JoinedText`: one Aho-Corasick pass (the
    ``aho-corasick`` crate, as the decontamination filter) over ASCII text, ``find`` per pattern
    over other text. Answers per record equal ``p in text_i`` and ``text_i.count(p)``."""

    def __init__(self, patterns: tuple[str, ...] | list[str]) -> None:
        self.patterns = tuple(patterns)
        for p in self.patterns:
            if not searchable(p):
                raise ValueError(f"cannot search joined records for {p!r}: a pattern must be non-empty and hold no {SEP!r}")
        self._ascii = [i for i, p in enumerate(self.patterns) if p.isascii()]
        self._automaton: Any = None
        self._dfa: tuple | None = None  # word_automaton's arrays, for the C ascii_word_counts

    def __getstate__(self) -> dict[str, Any]:
        return {"patterns": self.patterns}  # the automaton is rebuilt where it is used

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["patterns"])  # type: ignore[misc]

    def counts(self, texts: list[str]) -> np.ndarray | None:
        """Per text (ASCII str) and per pattern, ``text.lower().count(pattern)`` (int64, texts x
        patterns), by the C ``ascii_word_counts``: one pass over each str's own buffer, no joined
        or lowercased copy. None without the C kernel (a RuntimeWarning, once): then
        :meth:`search` over the joined texts answers, the same counts."""
        kernel = _word_counts_kernel()
        if kernel is None:
            return None
        if self._dfa is None:
            self._dfa = word_automaton(self.patterns)
        out = np.empty((len(texts), len(self.patterns)), dtype=np.int64)
        kernel(texts, *self._dfa, out)
        return out

    def search(self, text: JoinedText) -> Matches:
        """Where each pattern occurs in ``text`` (every occurrence, overlapping ones included)."""
        n = len(self.patterns)
        if type(text.text) is bytes:
            if not self._ascii:
                return Matches(self, text, [np.zeros(0, dtype=np.int64) for _ in range(n)])
            if self._automaton is None:
                from ahocorasick_rs import MATCHKIND_STANDARD, BytesAhoCorasick, Implementation

                self._automaton = BytesAhoCorasick([self.patterns[i].encode("ascii") for i in self._ascii],
                                                   matchkind=MATCHKIND_STANDARD, implementation=Implementation.DFA)
            found = self._automaton.find_matches_as_indexes(text.text, overlapping=True)
            if found:  # (pattern, start, end) tuples: flattened by fromiter (asarray's shape discovery costs 2x)
                arr = np.fromiter(chain.from_iterable(found), dtype=np.int64, count=3 * len(found)).reshape(-1, 3)
                ids, starts = arr[:, 0], arr[:, 1]
                # in the order of their ends: for one pattern (one length) the order of their starts
                per = [np.zeros(0, dtype=np.int64) for _ in range(n)]
                for k, i in enumerate(self._ascii):
                    per[i] = starts[ids == k]
            else:
                per = [np.zeros(0, dtype=np.int64) for _ in range(n)]
        else:
            per = [np.asarray(_positions(text.text, p, 1), dtype=np.int64) for p in self.patterns]
        return Matches(self, text, per)


@dataclass
class Counts:
    """A :class:`PatternSet`'s patterns counted per record (:meth:`PatternSet.counts`), answering
    as :class:`Matches` does."""

    patterns: PatternSet
    table: np.ndarray  # records x patterns: ``text_i.count(pattern)``

    def contains(self, which: tuple[str, ...] | list[str]) -> np.ndarray:
        """Per record, whether any of the patterns ``which`` occurs in it."""
        index = self.patterns.patterns.index
        return (self.table[:, [index(p) for p in which]] > 0).any(axis=1)

    def count(self, pattern: str) -> np.ndarray:
        """Per record, ``text_i.count(pattern)``."""
        return self.table[:, self.patterns.patterns.index(pattern)]


@dataclass
class Matches:
    """The occurrences of a :class:`PatternSet`'s patterns in a :class:`JoinedText`."""

    patterns: PatternSet
    text: JoinedText
    starts: list[np.ndarray]  # per pattern, its occurrences' start offsets, ascending

    def contains(self, which: tuple[str, ...] | list[str]) -> np.ndarray:
        """Per record, whether any of the patterns ``which`` occurs in it."""
        hit = np.zeros(len(self.text), dtype=bool)
        for p in which:
            hit[self.text.record_of(self.starts[self.patterns.patterns.index(p)])] = True
        return hit

    def count(self, pattern: str) -> np.ndarray:
        """Per record, ``text_i.count(pattern)``: occurrences without overlaps, left to right."""
        pos = self.starts[self.patterns.patterns.index(pattern)]
        rec = self.text.record_of(pos)
        counts = np.bincount(rec, minlength=len(self.text))[: len(self.text)]
        if pos.size > 1 and _overlaps_itself(pattern):
            # two occurrences of one record closer than the pattern's length overlap: str.count there
            close = (np.diff(pos) < len(pattern)) & (rec[1:] == rec[:-1])
            t = self.text
            for i in (np.unique(rec[1:][close]).tolist() if close.any() else ()):
                piece = t.text[t.starts[i]:t.ends[i]]
                counts[i] = piece.count(pattern.encode("ascii") if type(piece) is bytes else pattern)  # type: ignore[arg-type]
        return counts


def word_automaton(patterns: tuple[str, ...]) -> tuple:
    """The arguments of the C ``ascii_word_counts`` after the texts, for ``patterns``: an
    Aho-Corasick automaton as a DFA over byte classes (each character of a pattern one class, every
    other byte class 0; A-Z in the class of a-z: the texts are lowercased as they are read), with
    every pattern that ends in each state (its own, and those its suffixes end: the failure links
    followed). A pattern that is not lowercase ASCII cannot occur in a lowercased ASCII text: it
    is left out (its count stays 0). Returns (classes uint8[256], table int32[states << shift],
    out_start int32[states + 1], out_ids int32, lengths int32[len(patterns)], shift); an entry of
    the table is the next state << shift (the start of its row), the states where patterns end
    numbered last (0 is the start state: no pattern is empty)."""
    kept = [i for i, p in enumerate(patterns) if p and p.isascii() and p == p.lower()]
    chars = sorted({c for i in kept for c in patterns[i]})
    klass = {c: k + 1 for k, c in enumerate(chars)}
    width = len(chars) + 1
    shift = max(width - 1, 1).bit_length()
    goto: list[dict[int, int]] = [{}]
    ends: list[list[int]] = [[]]
    for i in kept:
        s = 0
        for c in patterns[i]:
            nxt = goto[s].get(klass[c])
            if nxt is None:
                nxt = goto[s][klass[c]] = len(goto)
                goto.append({})
                ends.append([])
            s = nxt
        ends[s].append(i)
    # breadth first: a state's failure link (its longest proper suffix that is a state) is shallower
    delta = [[0] * width for _ in goto]
    fail = [0] * len(goto)
    queue: deque[int] = deque()
    for c, nxt in goto[0].items():
        delta[0][c] = nxt
        queue.append(nxt)
    while queue:
        s = queue.popleft()
        ends[s] = ends[s] + ends[fail[s]]
        for c in range(width):
            nxt = goto[s].get(c)
            if nxt is None:
                delta[s][c] = delta[fail[s]][c]
            else:
                fail[nxt] = delta[fail[s]][c] if s else 0
                delta[s][c] = nxt
                queue.append(nxt)
    # numbered anew: the states where patterns end last (the kernel tells them by their number)
    order = sorted(range(len(goto)), key=lambda q: (bool(ends[q]), q))
    number = {q: k for k, q in enumerate(order)}
    table = np.zeros(len(goto) << shift, dtype=np.int32)
    for q, row in enumerate(delta):
        base = number[q] << shift
        for c, nxt in enumerate(row):
            table[base + c] = number[nxt] << shift
    ends = [ends[q] for q in order]
    classes = np.zeros(256, dtype=np.uint8)
    for c, k in klass.items():
        classes[ord(c)] = k
        if "a" <= c <= "z":
            classes[ord(c.upper())] = k
    out_start = np.zeros(len(goto) + 1, dtype=np.int32)
    out_start[1:] = np.cumsum([len(e) for e in ends])
    out_ids = np.array([i for e in ends for i in e], dtype=np.int32)
    lengths = np.array([max(len(p), 1) for p in patterns], dtype=np.int32)
    return classes, table, out_start, out_ids, lengths, shift


_WORD_COUNTS: list[Any] = []


def _word_counts_kernel() -> Any:
    """The C ``ascii_word_counts`` (preprocessing/dedup/_cminhash.c), or None: then a
    RuntimeWarning, once, and the ``aho-corasick`` crate's search of the joined texts (the same
    counts, slower)."""
    if not _WORD_COUNTS:
        from preprocessing.dedup import native

        _WORD_COUNTS.append(native.optional_kernel("ascii_word_counts", "the filters' words are found by "
                                                   "searching the joined texts (the same answers, slower)"))
    return _WORD_COUNTS[0]


def _overlaps_itself(p: str) -> bool:
    """Whether two occurrences of ``p`` can overlap (a proper prefix of it is also a suffix)."""
    return any(p[:k] == p[-k:] for k in range(1, len(p)))


def _positions(text: bytes | str, sub: Any, step: int) -> list[int]:
    """The start of every occurrence of ``sub`` in ``text`` (``step`` 1: overlapping ones too)."""
    out = []
    find = text.find
    pos = find(sub)
    while pos >= 0:
        out.append(pos)
        pos = find(sub, pos + step)
    return out


def searchable(sub: str) -> bool:
    """Whether a :class:`PatternSet` can hold ``sub``: non-empty and without SEP."""
    return bool(sub) and SEP not in sub


_PATTERN_SETS: dict[tuple[str, ...], PatternSet] = {}


def pattern_set(words: tuple[str, ...]) -> PatternSet:
    """The :class:`PatternSet` of ``words``, one per process (its automaton built once)."""
    found = _PATTERN_SETS.get(words)
    if found is None:
        if len(_PATTERN_SETS) >= 64:
            _PATTERN_SETS.clear()
        found = _PATTERN_SETS[words] = PatternSet(words)
    return found


class Batch:
    """What the batch filters share about one chunk of records (``filter_batch(records, batch)``,
    :func:`preprocessing.filters.apply_filters_batch`), each part computed once, when first asked:
    which records are small ASCII texts (:attr:`small`: at most :data:`BATCH_MAX_CHARS` characters,
    ASCII), their metric columns (``metrics``, given by the caller, or None), and the small texts
    lowercased, joined (:class:`JoinedText`) and searched in one Aho-Corasick pass for ``words``,
    the union of what the filters look for (:attr:`Filter.batch_words`). A word asked for that is
    not in ``words`` is searched for on its own (same answers, one more pass).

    A filter gets a view (:meth:`view`) on the records it decides (those the filters before it
    kept); the answers are per record of the view, computed over the whole chunk once."""

    def __init__(self, contents: list[str], words: tuple[str, ...] = (), metrics: Any = None,
                 keys: list[bytes] | None = None) -> None:
        self._contents: list[str] | None = contents
        self.words = tuple(dict.fromkeys(w for w in words if searchable(w)))
        self._metrics = metrics  # a MetricColumns aligned with contents, or None
        self._keys = keys  # the records' record_key (repo_name, path), aligned with contents, or None
        self._root = self
        self._rows: np.ndarray | None = None
        self._small: np.ndarray | None = None
        self._text: JoinedText | None = None
        self._idx: np.ndarray | None = None  # the small records, in order (records of the joined text)
        self._found: dict[tuple[str, ...], Matches] = {}
        self._cache: dict[tuple, np.ndarray] = {}

    @property
    def contents(self) -> list[str]:
        """The records' texts (of a view: taken from the root's when first asked)."""
        if self._contents is None:
            root = self._root.contents
            self._contents = [root[i] for i in self._rows.tolist()]  # type: ignore[union-attr]
        return self._contents

    @property
    def metrics(self) -> Any:
        """The records' metric columns (a MetricColumns), or None."""
        if self._metrics is None and self._rows is not None and self._root._metrics is not None:
            self._metrics = self._root._metrics.take(self._rows)
        return self._metrics

    def keys_of(self, positions: list[int]) -> list[bytes] | None:
        """The :func:`~preprocessing.hashing.record_key` of the records at ``positions`` (of this
        batch or view), when the batch was given them (else None)."""
        keys = self._root._keys
        if keys is None:
            return None
        rows = self._rows
        return [keys[i] for i in (positions if rows is None else rows[positions].tolist())]

    @classmethod
    def of(cls, records: list[Any], words: tuple[str, ...] = (), metrics: Any = None,
           keys: list[bytes] | None = None) -> Batch:
        return cls(list(map(attrgetter("content"), records)), words, metrics, keys)

    def __len__(self) -> int:
        return len(self._root.contents) if self._rows is None else len(self._rows)

    def view(self, rows: list[int] | np.ndarray) -> Batch:
        """The same chunk seen through ``rows`` (positions in this batch, in order)."""
        rows = np.fromiter(rows, dtype=np.int64, count=len(rows)) if type(rows) is list else \
            np.asarray(rows, dtype=np.int64)
        out = Batch.__new__(Batch)
        out._root = self._root
        out._rows = rows if self._rows is None else self._rows[rows]
        out._contents = out._metrics = None
        out.words = self._root.words
        return out

    def _pick(self, arr: np.ndarray) -> np.ndarray:
        return arr if self._rows is None else arr[self._rows]

    @property
    def small(self) -> np.ndarray:
        """Per record, whether its text is searched in the joined text (small and ASCII)."""
        root = self._root
        if root._small is None:
            cols = root._metrics
            if cols is not None and getattr(cols, "ascii", None) is not None:  # (an ASCII text's size is its length)
                small = cols.ascii & (cols.size <= BATCH_MAX_CHARS)
            else:
                n = len(root.contents)
                small = np.fromiter(map(len, root.contents), dtype=np.int64, count=n) <= BATCH_MAX_CHARS
                small &= np.fromiter(map(str.isascii, root.contents), dtype=bool, count=n)
            root._small = small
        return self._pick(root._small)

    def _small_texts(self) -> list[str]:
        """The root's small texts, in order (the records of its joined text)."""
        root = self._root
        if root._idx is None:
            root._idx = root.small.nonzero()[0]
        contents = root.contents
        return contents if len(root._idx) == len(contents) else [contents[i] for i in root._idx.tolist()]

    def _joined(self) -> JoinedText:
        """The root's small texts lowercased and joined, built once when first asked."""
        root = self._root
        if root._text is None:
            root._text = JoinedText.of(self._small_texts(), lower=True)
        return root._text

    def _matches(self, which: tuple[str, ...]) -> Counts | Matches:
        """Where the words ``which`` (all of the batch's, in one pass, when they are among them)
        occur in the root's small texts: counted per text by the C kernel (no joined text), else
        searched in the joined text."""
        root = self._root
        words = root.words if all(w in root.words for w in which) else tuple(dict.fromkeys(which))
        found = root._found.get(words)
        if found is None:
            patterns = pattern_set(words)
            table = patterns.counts(self._small_texts())
            found = root._found[words] = Counts(patterns, table) if table is not None else \
                patterns.search(self._joined())
        return found

    def _per_record(self, key: tuple, dtype: Any, compute: Any) -> np.ndarray:
        root = self._root
        arr = root._cache.get(key)
        if arr is None:
            arr = np.zeros(len(root.contents), dtype=dtype)
            if root.small.any():
                found = self._matches(key[1]) if key[0] != "char" else self._joined()
                arr[root._idx] = compute(found)
            root._cache[key] = arr
        return self._pick(arr)

    def contains(self, which: tuple[str, ...] | list[str]) -> np.ndarray:
        """Per record, whether its lowercased text holds one of ``which`` (False where not :attr:`small`)."""
        which = tuple(which)
        return self._per_record(("contains", which), bool, lambda found: found.contains(which))

    def count(self, word: str) -> np.ndarray:
        """Per record, ``text.lower().count(word)`` (0 where not :attr:`small`)."""
        return self._per_record(("count", (word,)), np.int64, lambda found: found.count(word))

    def char_count(self, char: str) -> np.ndarray:
        """Per record, ``text.lower().count(char)`` for one ASCII character (0 where not :attr:`small`)."""
        return self._per_record(("char", char), np.int64, lambda text: text.char_count(char))
