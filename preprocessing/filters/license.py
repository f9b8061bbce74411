"""License filter: keep files whose license is on an allowlist, drop copyleft file headers."""

from __future__ import annotations

from dataclasses import dataclass, field

from preprocessing.filters.base import Filter
from preprocessing.filters.joined import Batch, PatternSet
from preprocessing.licenses import (
    PERMISSIVE_LICENSES,
    file_header_license,
    license_allowed,
    normalize_license,
)
from preprocessing.record import CodeFile

# What a file's lowercased text must hold for file_header_license to find a license in it: a word
# its fast path requires of a notice ("licen" is also in the SPDX tag, SPDX-License-Identifier:).
_HEADER_WORDS = PatternSet(("licen", "redistribut", "permission"))


@dataclass
class LicenseFilterConfig:
    """Which licenses are kept. Expressions: ``A OR B`` passes if any branch is allowed, ``A AND B`` if all are."""

    enabled: bool = True
    """Run this filter."""
    allowed: list[str] = field(default_factory=lambda: sorted(PERMISSIVE_LICENSES))
    """SPDX ids to keep (default: the permissive licenses The Stack kept)."""
    keep_unknown: bool = False
    """Keep files whose license cannot be determined (from the record or the file header)."""
    check_file_headers: bool = True
    """Read the file's own SPDX line / license notice; a not-allowed (copyleft) header overrides the repo license."""
    header_lines: int = 50
    """How many leading lines of a file are searched for a license header."""

    def __post_init__(self) -> None:
        if self.header_lines < 1:
            raise ValueError(f"license.header_lines must be >= 1, got {self.header_lines}; set it to e.g. 50")
        unknown = {a: normalize_license(a) for a in self.allowed if normalize_license(a) != a}
        if unknown:
            hints = ", ".join(f"{a!r} -> {n!r}" if n else f"{a!r} (unknown)" for a, n in unknown.items())
            raise ValueError(
                f"license.allowed has entries that are not SPDX ids: {hints}; write them as current "
                "SPDX ids (e.g. 'MIT', 'Apache-2.0', 'BSD-3-Clause', 'GPL-3.0-only')"
            )


class LicenseFilter(Filter):
    """Drops files whose license is not allowed.

    The license is the record's ``license`` field, normalised to SPDX. A file whose own header
    declares a license that is not allowed (a GPL notice inside an MIT repo) is dropped as
    ``license:copyleft_header``; a file without a repo license takes its header's license.
    Reasons: ``license:unknown``, ``license:not_allowed``, ``license:copyleft_header``.
    """

    name = "license"

    def __init__(self, config: LicenseFilterConfig | None = None) -> None:
        self.config = config or LicenseFilterConfig()
        self._allowed = frozenset(self.config.allowed)

    @property
    def batch_words(self) -> tuple[str, ...]:  # type: ignore[override]
        return _HEADER_WORDS.patterns if self.config.check_file_headers else ()

    def filter_batch(self, records: list[CodeFile], batch: Batch | None = None) -> list[str | None]:
        """:meth:`filter` of each record, equal answer for answer: a file header can only declare
        a license if the file's lowercased text holds ``licen`` (also in the SPDX tag),
        ``redistribut`` or ``permission`` (what :func:`file_header_license` needs); those words are
        searched over the small ASCII texts joined (:class:`JoinedText`, through ``batch``, shared
        with the other filters), and for the records without one the answer is that of their
        ``license`` field alone (once per distinct value)."""
        if not self.config.check_file_headers or len(records) < 16:
            return [self.filter(r) for r in records]
        if batch is None:
            batch = Batch.of(records, _HEADER_WORDS.patterns)
        plain = batch.small & ~batch.contains(_HEADER_WORDS.patterns)  # no header license possible
        by_license: dict[str | None, str | None] = {}
        out: list[str | None] = []
        for r, p in zip(records, plain.tolist()):
            if not p:
                out.append(self.filter(r))
                continue
            lic = r.license
            if lic not in by_license:
                by_license[lic] = self._decide(normalize_license(lic) if lic else None, None)
            out.append(by_license[lic])
        return out

    def filter(self, record: CodeFile) -> str | None:
        cfg = self.config
        license = normalize_license(record.license) if record.license else None
        header = file_header_license(record.content, cfg.header_lines) if cfg.check_file_headers else None
        return self._decide(license, header)

    def _decide(self, license: str | None, header: str | None) -> str | None:
        """The answer for a record of this (normalised) license whose file header declares ``header``."""
        cfg = self.config
        if header is not None and not license_allowed(header, self._allowed):
            if license is not None and license_allowed(license, self._allowed):
                return "license:copyleft_header"
            return "license:not_allowed"
        if license is None:
            license = header
        if license is None:
            return None if cfg.keep_unknown else "license:unknown"
        if not license_allowed(license, self._allowed):
            return "license:not_allowed"
        return None
