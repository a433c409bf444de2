"""Streaming row reader for uploaded lead files (CSV, XLSX, XLS).

The file kind is decided from the content, never from the name: browsers and
users rename files freely, and a ``.xlsx`` that is really a CSV export (or the
other way round) must still import.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import io
import itertools
import zipfile
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, Literal

from python_calamine import CalamineError, CalamineSheet, CalamineWorkbook, SheetVisibleEnum

SpreadsheetErrorCode = Literal["empty_file", "not_a_spreadsheet", "too_many_rows"]
FileKind = Literal["csv", "xlsx", "xls"]

_SNIFF_BYTES = 64 * 1024
_CHUNK_BYTES = 256 * 1024
# A CSV line longer than this is almost certainly not a CSV; the limit keeps a
# newline-free binary file from being read into memory as one "line".
_MAX_LINE_BYTES = 1024 * 1024
_SNIFF_LINES = 50
_DELIMITERS = ",\t;|"

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# Only used to give a friendlier message; unknown binaries are caught by the
# control-character check.
_KNOWN_BINARIES = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"\x1f\x8b": "a gzip archive",
    b"Rar!": "a RAR archive",
    b"7z\xbc\xaf": "a 7-Zip archive",
    b"PK\x05\x06": "an empty zip archive",
}
# Bytes that never occur in a text CSV (tab, LF, FF and CR are excluded).
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F])
_MAX_CONTROL_RATIO = 0.01


class SpreadsheetError(Exception):
    """An uploaded file cannot be read as rows.

    ``code`` is one of ``empty_file``, ``not_a_spreadsheet``, ``too_many_rows``;
    ``message`` is an English sentence that can be shown to the uploader.
    """

    def __init__(self, code: SpreadsheetErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: SpreadsheetErrorCode = code
        self.message = message

    def __repr__(self) -> str:
        return f"SpreadsheetError({self.code!r}, {self.message!r})"


_NOT_A_SPREADSHEET = "The file is not a spreadsheet: upload a CSV, XLSX or XLS file"


def detect_kind(path: Path) -> FileKind:
    """Return the kind of the file at ``path`` judged from its first bytes.

    Raises ``SpreadsheetError`` (``empty_file`` or ``not_a_spreadsheet``) for a
    zero-byte file or binary content that cannot be a CSV.
    """
    with path.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    return _kind_from_head(head)


def _kind_from_head(head: bytes) -> FileKind:
    if not head:
        raise SpreadsheetError("empty_file", "The file is empty")
    if head.startswith(_ZIP_MAGIC):
        return "xlsx"
    if head.startswith(_OLE_MAGIC):
        return "xls"
    if head.startswith(_UTF16_BOMS):
        return "csv"
    for magic, what in _KNOWN_BINARIES.items():
        if head.startswith(magic):
            raise SpreadsheetError("not_a_spreadsheet", f"{_NOT_A_SPREADSHEET} (this looks like {what})")
    if b"\x00" in head or _count_controls(head) > len(head) * _MAX_CONTROL_RATIO:
        raise SpreadsheetError("not_a_spreadsheet", f"{_NOT_A_SPREADSHEET} (it contains binary data)")
    return "csv"


def _count_controls(data: bytes) -> int:
    return len(data) - len(data.translate(None, _CONTROL_BYTES))


def estimate_rows(path: Path) -> int | None:
    """Roughly how many rows a CSV has (its line count; a fast pre-pass), None for workbooks."""
    if detect_kind(path) != "csv":
        return None
    lines = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            lines += chunk.count(b"\n")
    return lines


def read_rows(path: Path, *, max_rows: int) -> Iterator[list[str]]:
    """Yield the rows of a CSV, XLSX or XLS file as lists of cell strings.

    The first row yielded is the header (the first non-blank row); later rows
    are yielded as they are read, blank ones included so that callers can report
    spreadsheet row numbers. Numeric cells holding whole numbers come back
    without a decimal part (``13812345678``), dates and times as ISO strings,
    booleans as ``TRUE``/``FALSE``. Formulas are never evaluated.

    ``max_rows`` caps the number of non-blank rows after the header. The
    returned iterator raises ``SpreadsheetError("too_many_rows", ...)`` when it
    reaches the row past the cap, so callers must treat rows already consumed
    as provisional (e.g. import inside a transaction).

    Raises ``SpreadsheetError`` immediately (``empty_file`` or
    ``not_a_spreadsheet``) when the file has no header row or is not a
    spreadsheet at all.
    """
    kind = detect_kind(path)
    rows = _csv_rows(path) if kind == "csv" else _workbook_rows(path)
    non_blank = (row for row in rows if not _is_blank(row))
    header = next(non_blank, None)
    if header is None:
        rows.close()
        raise SpreadsheetError("empty_file", "The file has no rows")
    # `non_blank` has consumed only up to the header, so `rows` resumes right
    # after it with blank rows intact.
    return _capped(header, rows, max_rows)


def _capped(header: list[str], rows: Iterator[list[str]], max_rows: int) -> Iterator[list[str]]:
    yield header
    seen = 0
    for row in rows:
        if not _is_blank(row):
            seen += 1
            if seen > max_rows:
                raise SpreadsheetError(
                    "too_many_rows",
                    f"The file has more than {max_rows} rows; split it into smaller files",
                )
        yield row


def _is_blank(row: list[str]) -> bool:
    return not "".join(row).strip()


# --- CSV -------------------------------------------------------------------


def _csv_rows(path: Path) -> Generator[list[str], None, None]:
    with path.open("rb") as f:
        if f.read(2) in _UTF16_BOMS:
            f.seek(0)
            # Excel's "Unicode text" export: UTF-16 with a BOM, tab-separated.
            text_lines: Iterable[str] = io.TextIOWrapper(f, encoding="utf-16", newline="")
        else:
            f.seek(0)
            plain_utf8 = _is_plain_utf8(f)
            f.seek(0)
            # The common case decodes in C; a file that needs a closer look goes line by line.
            text_lines = (
                io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
                if plain_utf8
                else _decode_lines(_binary_lines(f))
            )
        yield from _parse_csv(text_lines)


def _is_plain_utf8(f: BinaryIO) -> bool:
    """Whether the whole file is UTF-8 without NUL bytes or over-long lines (one pass)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 0  # length of the line that runs on at the end of the chunk read so far
    try:
        while chunk := f.read(_CHUNK_BYTES):
            decoder.decode(chunk)
            if b"\x00" in chunk:
                return False
            first = chunk.find(b"\n")
            if first < 0:
                line += len(chunk)
            else:  # lines inside a chunk are shorter than a chunk, far below the limit
                line, longest = len(chunk) - chunk.rfind(b"\n") - 1, line + first
                if longest >= _MAX_LINE_BYTES:
                    return False
            if line >= _MAX_LINE_BYTES:
                return False
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _binary_lines(f: BinaryIO) -> Iterator[bytes]:
    # Splitting bytes on LF is safe for both UTF-8 and GB18030: neither uses
    # 0x0A inside a multi-byte character.
    while line := f.readline(_MAX_LINE_BYTES):
        if len(line) == _MAX_LINE_BYTES and not line.endswith(b"\n"):
            raise SpreadsheetError("not_a_spreadsheet", f"{_NOT_A_SPREADSHEET} (a line is too long)")
        if b"\x00" in line:
            raise SpreadsheetError("not_a_spreadsheet", f"{_NOT_A_SPREADSHEET} (it contains binary data)")
        yield line


def _decode_lines(lines: Iterator[bytes]) -> Iterator[str]:
    """Decode each line as UTF-8, else as GB18030.

    Files saved by Chinese Excel are GBK; files that were appended to by
    different tools mix UTF-8 and GBK lines, so each line is tried as UTF-8
    first and GB18030 (a superset of GBK) second.
    """
    for number, line in enumerate(lines):
        if number == 0 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError:
            # `replace` so one corrupt byte costs a character, not the import.
            yield line.decode("gb18030", errors="replace")


def _parse_csv(text_lines: Iterable[str]) -> Iterator[list[str]]:
    lines = iter(text_lines)
    sample = list(itertools.islice(lines, _SNIFF_LINES))
    delimiter = _sniff_delimiter(sample)
    reader = csv.reader(itertools.chain(sample, lines), delimiter=delimiter)
    try:
        yield from reader
    except csv.Error as exc:
        raise SpreadsheetError(
            "not_a_spreadsheet", f"{_NOT_A_SPREADSHEET} (CSV line {reader.line_num}: {exc})"
        ) from exc


def _sniff_delimiter(sample: list[str]) -> str:
    """Pick the delimiter that splits the sample into the most consistent rows.

    ``csv.Sniffer`` guesses wrongly on short or single-column files, so score
    each candidate by how many rows share the most common field count (> 1),
    then by that count; ties go to the earlier candidate.
    """
    best, best_score = ",", (0.0, 0)
    non_blank = [line for line in sample if line.strip()]
    if not non_blank:
        return best
    for delimiter in _DELIMITERS:
        try:
            counts = [len(row) for row in csv.reader(non_blank, delimiter=delimiter)]
        except csv.Error:
            continue
        if not counts:
            continue
        modal = max(set(counts), key=lambda c: (counts.count(c), c))
        if modal <= 1:
            continue
        score = (counts.count(modal) / len(counts), modal)
        if score > best_score:
            best, best_score = delimiter, score
    return best


# --- XLSX / XLS ------------------------------------------------------------


# A workbook is a zip: refuse one that would expand beyond this before any library inflates it.
MAX_WORKBOOK_EXPANDED_BYTES = 400 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200


def check_not_a_zip_bomb(path: Path) -> None:
    """Raise ``not_a_spreadsheet`` for an XLSX whose declared contents are huge or absurdly compressed."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise SpreadsheetError("not_a_spreadsheet", f"{_NOT_A_SPREADSHEET} (a damaged archive)") from exc
    expanded = sum(e.file_size for e in entries)
    packed = sum(e.compress_size for e in entries) or 1
    if expanded > MAX_WORKBOOK_EXPANDED_BYTES or (
        expanded > 10 * 1024 * 1024 and expanded / packed > MAX_COMPRESSION_RATIO
    ):
        raise SpreadsheetError(
            "not_a_spreadsheet",
            f"The workbook would expand to {expanded // (1 << 20)} MB; it is refused as unsafe "
            "(save it as CSV, or split it)",
        )


def _workbook_rows(path: Path) -> Generator[list[str], None, None]:
    if detect_kind(path) == "xlsx":
        check_not_a_zip_bomb(path)
    try:
        workbook = CalamineWorkbook.from_path(path)
    except CalamineError as exc:
        raise _workbook_error(exc) from exc
    with workbook:
        try:
            sheet = _first_sheet(workbook)
            for row in sheet.iter_rows():
                yield [_cell_text(value) for value in row]
        except CalamineError as exc:
            raise _workbook_error(exc) from exc


def _first_sheet(workbook: CalamineWorkbook) -> CalamineSheet:
    # Prefer the first sheet the user can see; templates sometimes hide a
    # lookup sheet in front.
    for index, meta in enumerate(workbook.sheets_metadata):
        if meta.visible == SheetVisibleEnum.Visible:
            return workbook.get_sheet_by_index(index)
    return workbook.get_sheet_by_index(0)


def _workbook_error(exc: CalamineError) -> SpreadsheetError:
    detail = str(exc) or type(exc).__name__
    if "password" in detail.lower() or type(exc).__name__ == "PasswordError":
        return SpreadsheetError(
            "not_a_spreadsheet", "The workbook is password-protected; remove the password"
        )
    return SpreadsheetError(
        "not_a_spreadsheet", f"{_NOT_A_SPREADSHEET} (the workbook cannot be read: {detail})"
    )


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Excel stores every number as a float; without this a phone number
        # would read back as `13812345678.0`.
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return str(value)
    return str(value)
