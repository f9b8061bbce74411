"""Filter base class: a predicate over a CodeFile that returns a drop reason or None (or also rewrites it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from preprocessing.record import CodeFile

if TYPE_CHECKING:
    from preprocessing.filters.joined import Batch


@dataclass
class Edit:
    """What a content-rewriting step did to one record it kept: findings per kind, one example per kind.

    The examples are lines of the rewritten content (already redacted), safe to publish in the report.
    """

    step: str
    counts: dict[str, int]
    examples: dict[str, str]


class Filter:
    """Subclasses implement :meth:`filter`; the pipeline does the counting.

    ``filter`` returns ``None`` to keep the record, or a short reason string
    (``"<filter>:<rule>"``, e.g. ``"quality:max_line_length"``) to drop it.
    Filters must be pure functions of the record (and their config) so that the
    outcome does not depend on arrival order or on the number of workers.
    """

    name: str = "filter"

    def filter(self, record: CodeFile) -> str | None:  # pragma: no cover - interface
        raise NotImplementedError

    batch_words: tuple[str, ...] = ()
    """The words :meth:`filter_batch` looks for in the records' lowercased texts (through its
    ``batch``): :func:`~preprocessing.filters.apply_filters_batch` searches the union of every
    filter's words in one pass over a chunk."""

    def filter_batch(self, records: list[CodeFile], batch: Batch | None = None) -> list[str | None]:
        """``[self.filter(r) for r in records]``: a subclass may decide many records at once
        (a vectorised pass over a work unit's records), giving exactly that answer. ``batch``:
        what the filters of one chunk share about ``records`` (:class:`~preprocessing.filters.joined.Batch`,
        a view aligned with ``records``), or None (the filter builds its own)."""
        return [self.filter(r) for r in records]

    def explain(self, record: CodeFile) -> str | None:
        """One line saying what in ``record`` made it dropped, for the report's examples; None: the reason says it all."""
        return None

    def summary(self) -> dict[str, Any] | None:
        """What the filter matched against, for stats.json (``filters.<name>``); None: its config says it all."""
        return None

    def rewrite_key(self, record: CodeFile) -> Any:
        """What, besides ``record.content`` and the config, :meth:`rewrite` depends on: two records
        with the same content and the same key get the same rewritten content (stream relies on it
        to skip the filters of a record that repeats one it kept). None for a step that rewrites
        nothing; the record's names for one that does, unless it overrides this to say less."""
        if type(self).rewrite is Filter.rewrite:
            return None
        return (record.repo_name, record.path, record.license)

    def rewrite(self, record: CodeFile) -> tuple[str | None, Edit | None]:
        """:meth:`filter` for steps that may also rewrite ``record.content`` (redaction) before exact dedup.

        Returns (drop reason or None, what was rewritten or None). The default rewrites nothing. A
        rewriting step replaces ``record.content`` deterministically (a function of the record and the
        config); the pipeline recomputes ``record.metrics`` when the content changed, and the rewritten
        content is what exact dedup hashes and the writer writes.
        """
        return self.filter(record), None
