"""What the report needs, recorded while streaming: histograms, examples, licenses, top repositories.

Everything here merges by summing (or by a deterministic rule), so the result does not depend on
how records were split across workers.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np
import xxhash

if TYPE_CHECKING:
    from collections.abc import Sequence


    from preprocessing.filters.base import Edit

# Fixed bin edges, so histograms of different workers and runs add up.
HISTOGRAM_EDGES: dict[str, list[float]] = {
    "size": [0, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288,
             1048576, float("inf")],
    "max_line_length": [0, 20, 40, 60, 80, 100, 120, 160, 200, 300, 500, 1000, 2000, 5000, float("inf")],
    "mean_line_length": [0, 5, 10, 15, 20, 25, 30, 35, 40, 50, 60, 80, 100, 150, float("inf")],
    "alnum_fraction": [0, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9, 1.0001],
}
# Characters per token of one file, recorded by the tokenizer stage on held-out files.
CHARS_PER_TOKEN_EDGES = [0, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 8, float("inf")]
EXAMPLES_PER_REASON = 3
EXAMPLE_LINES = 8
TOP_REPOS = 50
_REPO_COUNTER_CAP = 200_000


@dataclass
class Histograms:
    """Counts per fixed bin for each metric of HISTOGRAM_EDGES."""

    counts: dict[str, list[int]] = field(default_factory=lambda: {k: [0] * (len(v) - 1) for k, v in HISTOGRAM_EDGES.items()})

    def add(self, metrics: dict[str, float], n: int = 1) -> None:
        """Count ``n`` records with these ``metrics``."""
        for name, edges in HISTOGRAM_EDGES.items():
            value = metrics.get(name)
            if value is None:
                continue
            self.counts[name][bin_index(edges, value)] += n

    def add_batch(self, batch: Sequence[dict[str, float]], repeats: Sequence[int] | None = None) -> None:
        """:meth:`add` of each of ``batch`` (a work unit's records; ``repeats``: how many records
        each stands for, default 1), binned by numpy in one pass per metric rather than per record
        (the same counts: ``searchsorted(side="right")`` is ``bisect_right``). Every record must
        have every metric (``file_metrics`` gives them)."""
        if len(batch) < 8:
            for i, metrics in enumerate(batch):
                self.add(metrics, 1 if repeats is None else repeats[i])
            return
        weights = None if repeats is None else np.asarray(repeats, dtype=np.int64)
        for name, edges in _EDGES_NP.items():
            values = np.fromiter(map(itemgetter(name), batch), dtype=np.float64, count=len(batch))
            idx = edges.searchsorted(values, side="right") - 1
            np.minimum(np.maximum(idx, 0, out=idx), edges.size - 2, out=idx)  # (np.clip: 3x the time on small arrays)
            mine = self.counts[name]
            counts = np.bincount(idx, minlength=edges.size - 1) if weights is None else \
                np.bincount(idx, weights=weights, minlength=edges.size - 1).astype(np.int64)
            for i, c in enumerate(counts.tolist()):
                if c:
                    mine[i] += c

    def add_columns(self, columns: Any) -> None:
        """:meth:`add_batch` of the records whose metrics are ``columns`` (a
        :class:`~preprocessing.filters.quality.MetricColumns`: one array per metric), without a
        dict per record: the same counts."""
        n = len(columns)
        if n == 0:
            return
        for name, edges in _EDGES_NP.items():
            idx = edges.searchsorted(columns.column(name), side="right") - 1
            np.minimum(np.maximum(idx, 0, out=idx), edges.size - 2, out=idx)
            mine = self.counts[name]
            for i, c in enumerate(np.bincount(idx, minlength=edges.size - 1).tolist()):
                if c:
                    mine[i] += c

    def merge(self, other: Histograms) -> None:
        for name, counts in other.counts.items():
            mine = self.counts[name]
            for i in compress(range(len(counts)), counts):  # (the bins counted)
                mine[i] += counts[i]

    def to_dict(self) -> dict[str, Any]:
        return {name: histogram_dict(HISTOGRAM_EDGES[name], c) for name, c in self.counts.items()}


_EDGES_NP = {name: np.asarray(edges, dtype=np.float64) for name, edges in HISTOGRAM_EDGES.items()}


def bin_index(edges: list[float], value: float) -> int:
    """The bin of ``value`` among ``edges`` (bin i holds edges[i] <= v < edges[i + 1]); values
    outside fall in the first or last bin."""
    return min(max(bisect_right(edges, value) - 1, 0), len(edges) - 2)


def histogram_dict(edges: list[float], counts: list[int]) -> dict[str, Any]:
    """The stats.json shape of a histogram (an infinite last edge is written as null)."""
    return {"edges": [e if e != float("inf") else None for e in edges], "counts": counts}


def example_of(repo_name: str, path: str, content: str, where: str = "") -> dict[str, Any]:
    """A short example for the report: where it came from and its first lines."""
    from preprocessing.filters.quality import head_lines

    head = "\n".join(head_lines(content, EXAMPLE_LINES))[:1000]
    return {"repo_name": repo_name, "path": path, "where": where, "head": head}


@dataclass
class CorpusProfile:
    """Recorded by the stream stage for the report; never holds the corpus."""

    before: Histograms = field(default_factory=Histograms)
    after: Histograms = field(default_factory=Histograms)
    licenses: Counter = field(default_factory=Counter)
    repos: Counter = field(default_factory=Counter)
    examples: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    edit_findings: Counter = field(default_factory=Counter)  # "<step>:<kind>" -> findings rewritten (kept files)
    edit_files: Counter = field(default_factory=Counter)  # "<step>:<kind>" -> kept files with such a rewrite

    def add_example(self, reason: str, key: bytes, example: dict[str, Any]) -> None:
        """Keep the EXAMPLES_PER_REASON examples with the smallest hash of their key (deterministic)."""
        self._offer(reason, xxhash.xxh3_64_intdigest(key), example)

    def example_rank(self, reason: str, key: bytes) -> int | None:
        """The rank of ``key`` for :meth:`offer_example` when its example would be kept now, else
        None: a caller builds an example only then (most dropped records are never examples)."""
        rank = xxhash.xxh3_64_intdigest(key)
        bucket = self.examples.get(reason)
        if bucket is None or len(bucket) < EXAMPLES_PER_REASON or rank < bucket[-1][0]:
            return rank
        return None

    def chosen_examples(self, offers: Sequence[tuple[str, int]], floor: dict[str, int] | None = None) -> list[int]:
        """The indices, in order, of the ``offers`` ((reason, rank), in the order they come) whose
        examples the buckets hold once all of them were offered in that order: offering those
        alone, in order (:meth:`offer_example`), leaves the same buckets, so a caller builds only
        those examples. A bucket keeps the EXAMPLES_PER_REASON smallest by (rank, arrival).
        ``floor`` (optional): per reason, the largest rank worth offering (a larger one is left
        out: ``stream``'s :class:`~preprocessing.stages.stream.ExampleFloor`)."""
        # an offer ranked at or past a full bucket's last cannot get in (a tie goes to the one held)
        limit = {reason: bucket[-1][0] for reason, bucket in self.examples.items()
                 if len(bucket) >= EXAMPLES_PER_REASON}
        unbounded = 1 << 64
        floor = floor or {}
        by_reason: dict[str, list[tuple[int, int, int]]] = {}
        for i, (reason, rank) in enumerate(offers):
            if rank < limit.get(reason, unbounded) and rank <= floor.get(reason, unbounded):
                by_reason.setdefault(reason, []).append((rank, 1, i))
        chosen: list[int] = []
        for reason, items in by_reason.items():
            held = [(rank, 0, j) for j, (rank, _) in enumerate(self.examples.get(reason, ()))]
            chosen.extend(i for _, new, i in sorted(held + items)[:EXAMPLES_PER_REASON] if new)
        chosen.sort()
        return chosen

    def chosen_of(self, reasons: Sequence[str], ranks: Sequence[int], floor: dict[str, int] | None = None) -> list[int]:
        """:meth:`chosen_examples` of the offers ``zip(reasons, ranks)`` (and ``floor``), the same
        indices, with numpy for many offers: the offers past the floor left out at once; per
        reason, its EXAMPLES_PER_REASON first offers by (rank, arrival) (a stable argsort) are the
        only ones that can get in; those meet the bucket."""
        n = len(ranks)
        present = dict.fromkeys(reasons)
        if floor and n and all(reason in floor for reason in present) and \
                min(ranks) > max(floor[reason] for reason in present):
            return []  # (a process past its first units: every offer is past the floor)
        if n < 64:
            return self.chosen_examples(list(zip(reasons, ranks)), floor)
        ranked = np.fromiter(ranks, dtype=np.uint64, count=n)
        ids = {reason: k for k, reason in enumerate(present)}
        code = np.fromiter(map(ids.__getitem__, reasons), dtype=np.int64, count=n) if len(ids) > 1 else None
        live = None  # the offers at or below the floor of their reason (None: all)
        if floor and any(reason in floor for reason in ids):
            top = np.array([floor.get(reason, (1 << 64) - 1) for reason in ids], dtype=np.uint64)
            live = ranked <= (top[0] if code is None else top[code])
            if not live.any():
                return []
        chosen: list[int] = []
        for reason, k in ids.items():
            if code is None:
                idx = np.arange(n) if live is None else live.nonzero()[0]  # in arrival order
            else:
                idx = ((code == k) if live is None else ((code == k) & live)).nonzero()[0]
            if idx.size == 0:
                continue
            if idx.size > EXAMPLES_PER_REASON:
                idx = idx[np.argsort(ranked[idx], kind="stable")[:EXAMPLES_PER_REASON]]
            items = [(ranks[i], 1, i) for i in idx.tolist()]
            held = [(rank, 0, j) for j, (rank, _) in enumerate(self.examples.get(reason, ()))]
            chosen.extend(i for _, new, i in sorted(held + items)[:EXAMPLES_PER_REASON] if new)
        chosen.sort()
        return chosen

    def offer_example(self, reason: str, rank: int, example: dict[str, Any]) -> None:
        """:meth:`add_example` with the rank :meth:`example_rank` gave."""
        self._offer(reason, rank, example)

    def add_edit(self, edit: Edit, key: bytes, repo_name: str, path: str) -> None:
        """Count a content rewrite and offer its (already redacted) example lines."""
        for kind, n in edit.counts.items():
            name = f"{edit.step}:{kind}"
            self.edit_findings[name] += n
            self.edit_files[name] += 1
            self.add_example(f"edited:{name}", key, {"repo_name": repo_name, "path": path, "where": "",
                                                      "head": edit.examples.get(kind, "")[:1000]})

    def _offer(self, reason: str, rank: int, example: dict[str, Any]) -> None:
        bucket = self.examples.setdefault(reason, [])
        if len(bucket) < EXAMPLES_PER_REASON or rank < bucket[-1][0]:
            bucket.append((rank, example))
            bucket.sort(key=lambda t: t[0])
            del bucket[EXAMPLES_PER_REASON:]

    def merge(self, other: CorpusProfile) -> None:
        self.before.merge(other.before)
        self.after.merge(other.after)
        self.licenses.update(other.licenses)
        self.repos.update(other.repos)
        self.edit_findings.update(other.edit_findings)
        self.edit_files.update(other.edit_files)
        if len(self.repos) > _REPO_COUNTER_CAP:
            # bounded memory on dumps with millions of repositories: keep the heaviest half
            self.repos = Counter(dict(self.repos.most_common(_REPO_COUNTER_CAP // 2)))
        for reason, items in other.examples.items():
            for rank, ex in items:
                self._offer(reason, rank, ex)

    def to_dict(self) -> dict[str, Any]:
        return {
            "histograms_before_filters": self.before.to_dict(),
            "histograms_kept": self.after.to_dict(),
            "licenses_kept": dict(self.licenses.most_common()),
            "top_repos_kept": dict(self.repos.most_common(TOP_REPOS)),
            "edits": {"findings": dict(sorted(self.edit_findings.items())),
                      "files": dict(sorted(self.edit_files.items()))},
            "examples": {r: [ex for _, ex in items] for r, items in sorted(self.examples.items())},
        }

