"""Turn raw spreadsheet rows into candidate leads, rejecting bad and repeated ones."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Literal

from hub.intake.phones import normalise_phone
from hub.intake.template import ColumnMap

RejectReason = Literal["invalid_phone", "duplicate_in_file", "empty_row"]


@dataclass(frozen=True, slots=True)
class CandidateLead:
    """A row that passed cleaning; not yet checked against the database.

    ``row_number`` is 1-based with the header as row 1. ``attributes`` holds the
    non-blank values of the columns that are not imported fields, keyed by
    header text.
    """

    name: str | None
    phone_e164: str
    area: str | None
    attributes: dict[str, str]
    row_number: int
    property: str | None = None


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row that will not be imported, with the cells as read and why."""

    row_number: int
    raw: list[str]
    reason: RejectReason


@dataclass(slots=True)
class ImportCounts:
    """Tallies for one import.

    ``total`` counts non-blank data rows; ``invalid`` and ``duplicate`` are the
    rows rejected for a bad phone or a phone repeated within the file. The
    caller adds database duplicates to ``duplicate`` and fills ``inserted``.
    """

    total: int = 0
    invalid: int = 0
    duplicate: int = 0
    inserted: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counts as a plain dict (for JSON responses and logs)."""
        return asdict(self)


class LeadCleaner:
    """Clean data rows one at a time, keeping counts and the phones already seen.

    Memory grows with the number of distinct phones, not rows. The first
    occurrence of a phone wins; later ones are rejected as
    ``duplicate_in_file``.
    """

    def __init__(
        self, columns: ColumnMap, *, region: str = "CN", first_row_number: int = 2, dedupe: bool = True
    ) -> None:
        self.columns = columns
        self.region = region
        self.counts = ImportCounts()
        # Large imports leave de-duplication to Postgres (dedupe=False) so memory stays flat.
        self._dedupe = dedupe
        self._seen: set[str] = set()
        self._row_number = first_row_number
        # Every header column is either a field or an extra, so this is the
        # header width.
        self._width = max(columns.extras.keys() | _mapped(columns), default=-1) + 1

    def feed(self, row: list[str]) -> CandidateLead | RejectedRow:
        """Clean the next data row.

        A row whose cells are all blank comes back as ``RejectedRow`` with
        reason ``empty_row`` and is not counted; callers normally ignore it.
        """
        row_number = self._row_number
        self._row_number += 1
        cells = [cell.strip() for cell in row]
        if not any(cells):
            return RejectedRow(row_number, list(row), "empty_row")
        self.counts.total += 1
        columns = self.columns
        phone = normalise_phone(_cell(cells, columns.phone), self.region)
        if phone is None:
            self.counts.invalid += 1
            return RejectedRow(row_number, list(row), "invalid_phone")
        if self._dedupe and phone in self._seen:
            self.counts.duplicate += 1
            return RejectedRow(row_number, list(row), "duplicate_in_file")
        if self._dedupe:
            self._seen.add(phone)
        return CandidateLead(
            name=_cell(cells, columns.name) or None,
            phone_e164=phone,
            area=_cell(cells, columns.area) or None,
            attributes=self._attributes(cells),
            row_number=row_number,
            property=_cell(cells, columns.property) or None,
        )

    def _attributes(self, cells: list[str]) -> dict[str, str]:
        attributes = {
            key: cells[column] for column, key in self.columns.extras.items() if _cell(cells, column)
        }
        # Cells beyond the header (rows longer than the header) would otherwise
        # be dropped silently.
        for column in range(self._width, len(cells)):
            if cells[column]:
                attributes.setdefault(f"column_{column + 1}", cells[column])
        return attributes


def clean_rows(
    rows: Iterable[list[str]],
    columns: ColumnMap,
    *,
    region: str = "CN",
    counts: ImportCounts | None = None,
    first_row_number: int = 2,
) -> Iterator[CandidateLead | RejectedRow]:
    """Clean data rows (header excluded), yielding a verdict per non-blank row.

    Blank rows are skipped: not yielded and not counted, though they still
    advance ``row_number``. Pass ``counts`` to have it updated as rows are
    cleaned.
    """
    cleaner = LeadCleaner(columns, region=region, first_row_number=first_row_number)
    if counts is not None:
        cleaner.counts = counts
    for row in rows:
        result = cleaner.feed(row)
        if isinstance(result, RejectedRow) and result.reason == "empty_row":
            continue
        yield result


def _cell(cells: list[str], column: int | None) -> str:
    if column is None or column >= len(cells):
        return ""
    return cells[column]


def _mapped(columns: ColumnMap) -> set[int]:
    return {
        c
        for c in (columns.phone, columns.name, columns.area, columns.property, columns.index)
        if c is not None
    }
