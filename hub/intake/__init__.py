"""Pure lead-import parsing: read rows, map the header, clean and de-duplicate.

Typical use::

    rows = read_rows(path, max_rows=50_000)
    columns = detect_columns(next(rows))
    counts = ImportCounts()
    for result in clean_rows(rows, columns, region="CN", counts=counts):
        ...

Nothing here touches the database or the network.
"""

from hub.intake.cleaning import (
    CandidateLead,
    ImportCounts,
    LeadCleaner,
    RejectedRow,
    RejectReason,
    clean_rows,
)
from hub.intake.phones import mask_national_number, mask_phone, normalise_phone
from hub.intake.spreadsheet import FileKind, SpreadsheetError, detect_kind, estimate_rows, read_rows
from hub.intake.template import ColumnMap, TemplateError, detect_columns

__all__ = [
    "CandidateLead",
    "ColumnMap",
    "FileKind",
    "ImportCounts",
    "LeadCleaner",
    "RejectReason",
    "RejectedRow",
    "SpreadsheetError",
    "TemplateError",
    "clean_rows",
    "detect_columns",
    "detect_kind",
    "estimate_rows",
    "mask_national_number",
    "mask_phone",
    "normalise_phone",
    "read_rows",
]
