"""Lists of phone numbers as people type or upload them (do-not-call lists): parse, normalise, report.

Pure functions, no I/O beyond reading the given file.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.intake.phones import normalise_phone
from hub.intake.spreadsheet import read_rows
from hub.intake.template import TemplateError, detect_columns

_DIGITS = re.compile(r"[0-9]{1,18}")


def whole_number(value: object, below: int = 2**63) -> int | None:
    """``value`` as a non-negative int below ``below`` if it is one written in ASCII digits, else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        return None
    return number if 0 <= number < below else None


@dataclass
class Numbers:
    """Submitted numbers after normalisation: the valid ones (E.164, unique) and the rest."""

    valid: list[str] = field(default_factory=list)
    invalid: list[dict[str, Any]] = field(default_factory=list)  # {"row"|"index": n, "value": raw}
    total: int = 0


def normalise_all(values: list[str], region: str, key: str, first: int) -> Numbers:
    """Normalise typed or posted numbers, numbering each from ``first`` under ``key``."""
    numbers = Numbers()
    for position, raw in enumerate(values, first):
        numbers.total += 1
        phone = normalise_phone(raw, region)
        if phone is None:
            numbers.invalid.append({key: position, "value": raw[:40]})
        else:
            numbers.valid.append(phone)
    numbers.valid = list(dict.fromkeys(numbers.valid))
    return numbers


def read_number_file(path: Path, region: str, max_rows: int) -> Numbers:
    """Numbers from an uploaded sheet (runs in a thread): one per row, the phone column or the first.

    Rows are numbered as the spreadsheet shows them when the file has no blank leading rows.
    A first row without a phone header is data when its first cell has a digit, else a header.
    Raises SpreadsheetError for files that cannot be read.
    """
    rows = read_rows(path, max_rows=max_rows)
    header = next(rows)
    try:
        column, data = detect_columns(header).phone, []
    except TemplateError:
        first = header[0] if header else ""
        column, data = 0, ([header] if any(ch.isdigit() for ch in first) else [])
    numbers = Numbers()
    for row_number, row in enumerate(itertools.chain(data, rows), 1 if data else 2):
        if not any(cell.strip() for cell in row):
            continue
        raw = row[column].strip() if column < len(row) else ""
        numbers.total += 1
        phone = normalise_phone(raw, region)
        if phone is None:
            numbers.invalid.append({"row": row_number, "value": raw[:40]})
        else:
            numbers.valid.append(phone)
    numbers.valid = list(dict.fromkeys(numbers.valid))
    return numbers
