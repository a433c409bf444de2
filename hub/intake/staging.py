"""Rows to staging CSV: the hot loop of a large import.

A million-row import cannot afford a Python object per verdict: each data row becomes one CSV line
for Postgres' ``COPY`` into the import's staging table, written by the C ``csv`` writer. Python
decides what needs Python or only the chunk (the phone number, via :func:`normalise_phone`, and
whether it repeats a phone earlier in the chunk); Postgres decides the rest across the whole file
and the database (earlier chunks, do-not-call, existing leads). The columns, in order:

``row_number, phone_e164, repeat, name, area, property, extras, cells``

- ``phone_e164`` is empty (NULL) when the phone cell is not a valid number;
- ``repeat`` is ``t`` when an earlier row of the same chunk has the same phone, else ``f``;
- ``property`` and ``extras`` are empty (NULL) when blank; ``extras`` is the JSON object of the
  non-blank cells of the other columns, keyed by their header text (``column_N`` for a blank
  header or a cell beyond the header): the lead's ``attributes``;
- ``cells`` is the row as read, joined with U+001F (the unit separator), for the rejected-rows
  download.

Blank rows are skipped but still advance ``row_number`` (spreadsheet row numbers, header = 1).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hub.intake.phones import normalise_phone
from hub.intake.template import ColumnMap

STAGING_COLUMNS = ("row_number", "phone_e164", "repeat", "name", "area", "property", "extras", "cells")
CELL_SEPARATOR = "\x1f"


# Lines per piece of a chunk: pieces stay small (~50 KB), below the size at which the C allocator
# switches to mmap and starts to fragment the heap when megabyte buffers come and go.
PIECE_ROWS = 500


@dataclass(frozen=True, slots=True)
class StagingChunk:
    """One chunk of staging CSV, in pieces of whole lines, and how many file rows it covers."""

    pieces: list[bytes]
    rows_read: int  # data rows read, blank ones included
    staged: int  # non-blank rows, each one CSV line


def staging_chunks(
    rows: Iterable[list[str]],
    columns: ColumnMap,
    *,
    region: str,
    chunk_rows: int,
    first_row_number: int = 2,
) -> Iterator[StagingChunk]:
    """Encode data rows (header excluded) as staging CSV, ``chunk_rows`` file rows per chunk.

    The last chunk may be empty (no pieces, ``staged == 0``) when the file ends on a chunk boundary.
    """
    phone_at, name_at, area_at, property_at = columns.phone, columns.name, columns.area, columns.property
    extras = sorted(columns.extras.items())
    mapped = (phone_at, name_at, area_at, property_at, columns.index)
    width = max({*columns.extras, *(c for c in mapped if c is not None)}) + 1  # the header's width
    buffer = io.StringIO()
    # "\r\n" ends lines so that the writer quotes a cell holding a bare "\r" too (Postgres' CSV
    # reader takes any line ending, but an unquoted "\r" inside a line is an error).
    write = csv.writer(buffer, lineterminator="\r\n").writerow
    row_number, read, staged = first_row_number - 1, 0, 0
    pieces: list[bytes] = []
    phones: set[str] = set()  # this chunk's

    def cut() -> None:
        if text := buffer.getvalue():
            pieces.append(text.encode())
            buffer.seek(0)
            buffer.truncate()

    for row in rows:
        row_number += 1
        read += 1
        if "".join(row).strip():
            n = len(row)
            phone = normalise_phone(row[phone_at], region) if phone_at < n else None
            repeat = phone in phones
            if phone and not repeat:
                phones.add(phone)
            write(
                (
                    row_number,
                    phone,
                    "t" if repeat else "f",
                    row[name_at].strip() if name_at is not None and name_at < n else "",
                    row[area_at].strip() if area_at is not None and area_at < n else "",
                    row[property_at].strip() if property_at is not None and property_at < n else "",
                    _extras(row, extras, width) if extras or n > width else "",
                    _joined(row),
                )
            )
            staged += 1
            if staged % PIECE_ROWS == 0:
                cut()
        if read == chunk_rows:
            cut()
            yield StagingChunk(pieces, read, staged)
            pieces, read, staged = [], 0, 0
            phones.clear()
    cut()
    yield StagingChunk(pieces, read, staged)


def _joined(row: list[str]) -> str:
    """The row's cells as one text; a separator typed into a cell becomes a space."""
    joined = CELL_SEPARATOR.join(row)
    if joined.count(CELL_SEPARATOR) >= len(row):
        return CELL_SEPARATOR.join(cell.replace(CELL_SEPARATOR, " ") for cell in row)
    return joined


def _extras(row: list[str], extras: list[tuple[int, str]], width: int) -> str:
    """The JSON object of the row's non-blank extra cells, "" when there are none."""
    found: dict[str, str] | None = None
    n = len(row)
    for column, key in extras:
        if column < n and (value := row[column].strip()):
            found = found or {}
            found[key] = value
    # Cells beyond the header (rows longer than the header) would otherwise be dropped silently.
    for column in range(width, n):
        if value := row[column].strip():
            found = found or {}
            found.setdefault(f"column_{column + 1}", value)
    return json.dumps(found, ensure_ascii=False) if found else ""
