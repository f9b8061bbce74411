"""Hugging Face datasets reader: ``load_dataset(..., streaming=True)``, hub names or local data files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from preprocessing.readers.base import ColumnsConfig, InputError, Reader
from preprocessing.readers.jsonl import row_to_record
from preprocessing.record import CodeFile, Rejected


@dataclass
class HFUnit:
    source: str
    first_row: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def head(self, n: int) -> HFUnit:
        return HFUnit(self.source, self.first_row, self.rows[:n])


class HFDatasetReader(Reader):
    """Streams a dataset through ``datasets.load_dataset(name, streaming=True)``.

    Rows are batched in the main process (the iterable dataset is not splittable by line) and
    mapped onto CodeFile records in the workers. Only a hub name downloads anything.
    """

    name = "hf"

    def __init__(self, dataset: str, config: str | None = None, split: str = "train",
                 data_files: list[str] | None = None, columns: ColumnsConfig | None = None,
                 batch_records: int = 256, max_file_bytes: int = 10 << 20):
        self.dataset = dataset
        self.config = config
        self.split = split
        self.data_files = list(data_files or [])
        self.columns = columns or ColumnsConfig()
        self.batch_records = batch_records
        self.max_file_bytes = max_file_bytes
        self._warnings: list[str] = []

    @property
    def source(self) -> str:
        return f"hf:{self.dataset}" + (f"/{self.config}" if self.config else "") + f"[{self.split}]"

    def fingerprint(self) -> str:
        from preprocessing.runner.manifest import fingerprint_files

        key = f"{self.source}|{fingerprint_files(self.data_files) if self.data_files else ''}"
        import hashlib  # here: importing it costs every process ~4 ms (OpenSSL)

        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def units(self) -> Iterator[HFUnit]:
        import datasets

        kwargs: dict[str, Any] = {"split": self.split, "streaming": True}
        if self.config:
            kwargs["name"] = self.config
        if self.data_files:
            kwargs["data_files"] = self.data_files
        try:
            ds = datasets.load_dataset(self.dataset, **kwargs)
        except Exception as exc:  # datasets raises many types; all mean "cannot open"
            raise InputError(f"{self.source}: cannot open dataset ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        unit = HFUnit(self.source, 0)
        n = 0
        try:
            for row in ds:
                unit.rows.append(row)
                n += 1
                if len(unit.rows) >= self.batch_records:
                    yield unit
                    unit = HFUnit(self.source, n)
        except Exception as exc:
            raise InputError(f"{self.source}: read failed after {n} rows ({type(exc).__name__}: {exc})") from None
        if unit.rows:
            yield unit
        if n == 0:
            self._warnings.append(f"{self.source}: empty dataset (no records)")

    def decode(self, unit: HFUnit) -> Iterator[CodeFile | Rejected]:
        for i, row in enumerate(unit.rows):
            content = row.get(self.columns.content)
            nbytes = len(content) if isinstance(content, (str, bytes)) else 0
            yield row_to_record(row, self.columns, unit.source, unit.first_row + i + 1, nbytes, self.max_file_bytes)
