"""Filter base class: a predicate over a CodeFile that returns a drop reason or None."""

from __future__ import annotations

from typing import Any

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

    def explain(self, record: CodeFile) -> str | None:
        """One line saying what in ``record`` made it dropped, for the report's examples; None: the reason says it all."""
        return None

    def summary(self) -> dict[str, Any] | None:
        """What the filter matched against, for stats.json (``filters.<name>``); None: its config says it all."""
        return None
