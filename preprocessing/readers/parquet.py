"""Parquet reader: one row group per work unit, read by record batches (The Stack's schema)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.io import is_url, open_file
from preprocessing.readers.base import FileDumpReader, InputError
from preprocessing.readers.jsonl import row_to_record
from preprocessing.record import CodeFile, Rejected

if TYPE_CHECKING:
    import pyarrow.parquet as pq

PARQUET_SUFFIXES = (".parquet",)


@dataclass
class ParquetUnit:
    source: str
    row_group: int
    first_row: int
    num_rows: int

    def __len__(self) -> int:
        return self.num_rows

    def head(self, n: int) -> ParquetUnit:
        return ParquetUnit(self.source, self.row_group, self.first_row, min(n, self.num_rows))


class ParquetReader(FileDumpReader):
    """Streams Parquet files row group by row group; all columns other than the mapped ones are kept.

    pyarrow is imported on first use (~0.1 s), so commands that read JSONL never load it.
    """

    name = "parquet"

    suffixes = PARQUET_SUFFIXES

    def _open(self, source: str) -> pq.ParquetFile:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:  # a URL: pyarrow reads the file object fsspec opens (footer, then the row group's ranges)
            return pq.ParquetFile(open_file(source) if is_url(source) else source)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{source}: not a readable Parquet file ({exc})") from None

    def units(self) -> Iterator[ParquetUnit]:
        for path in self.paths:
            source = str(path)
            pf = self._open(source)
            names = set(pf.schema_arrow.names)
            if self.columns.content not in names:
                raise InputError(
                    f"{source}: no column {self.columns.content!r} (columns: {', '.join(sorted(names))}); "
                    "set input.columns.content"
                )
            if pf.metadata.num_rows == 0:
                self._warnings.append(f"{source}: empty file (no records)")
            first = 0
            for rg in range(pf.num_row_groups):
                rows = pf.metadata.row_group(rg).num_rows
                yield ParquetUnit(source, rg, first, rows)
                first += rows

    def decode(self, unit: ParquetUnit) -> Iterator[CodeFile | Rejected]:
        import pyarrow as pa

        pf = self._open(unit.source)
        row = unit.first_row
        try:
            for batch in pf.iter_batches(batch_size=self.batch_records, row_groups=[unit.row_group]):
                for rec in batch.to_pylist():
                    if row - unit.first_row >= unit.num_rows:
                        return
                    row += 1
                    content = rec.get(self.columns.content)
                    nbytes = len(content) if isinstance(content, (str, bytes)) else 0
                    yield row_to_record(rec, self.columns, unit.source, row, nbytes, self.max_file_bytes)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{unit.source}: row group {unit.row_group} unreadable ({exc})") from None
