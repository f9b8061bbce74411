"""Filter base class: a predicate over a CodeFile that returns a drop reason or None."""

from __future__ import annotations

from preprocessing.record import CodeFile


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
