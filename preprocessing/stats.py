"""Per-stage accounting: records and bytes in/out, counts per drop and reject reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StageStats:
    """What one stage saw. Invariant: ``records_in == kept + sum(dropped) + sum(rejected)``.

    Stats of parallel workers are merged by summing (:meth:`merge`), so the totals do not
    depend on how the input was split.
    """

    name: str
    records_in: int = 0
    kept: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)

    def keep(self, nbytes: int, nbytes_out: int | None = None) -> None:
        """Count a kept record of ``nbytes``; ``nbytes_out`` when the stage rewrote it (redaction)."""
        self.records_in += 1
        self.kept += 1
        self.bytes_in += nbytes
        self.bytes_out += nbytes if nbytes_out is None else nbytes_out

    def drop(self, reason: str, nbytes: int) -> None:
        self.records_in += 1
        self.bytes_in += nbytes
        self.dropped[reason] += 1

    def reject(self, reason: str, nbytes: int) -> None:
        self.records_in += 1
        self.bytes_in += nbytes
        self.rejected[reason] += 1

    def merge(self, other: StageStats) -> StageStats:
        self.records_in += other.records_in
        self.kept += other.kept
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.dropped.update(other.dropped)
        self.rejected.update(other.rejected)
        return self

    @property
    def balanced(self) -> bool:
        return self.records_in == self.kept + sum(self.dropped.values()) + sum(self.rejected.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "records_in": self.records_in,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "rejected": dict(sorted(self.rejected.items())),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> StageStats:
        return cls(
            name=name,
            records_in=d["records_in"],
            kept=d["kept"],
            bytes_in=d.get("bytes_in", 0),
            bytes_out=d.get("bytes_out", 0),
            dropped=Counter(d.get("dropped", {})),
            rejected=Counter(d.get("rejected", {})),
        )
