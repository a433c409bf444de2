"""Pure lead-import parsing: read rows, map the header, encode them as staging CSV.

Typical use (``staging_chunks`` lives in :mod:`hub.intake.staging`)::

    rows = read_rows(path, max_rows=50_000)
    columns = detect_columns(next(rows))
    for chunk in staging_chunks(rows, columns, region="CN", chunk_rows=10_000):
        ...  # COPY b"".join(chunk.pieces) into the import's staging table

De-duplication and the do-not-call and existing-lead checks happen in Postgres.
Nothing here touches the database or the network.
"""

from hub.intake.phones import mask_national_number, mask_phone, normalise_phone
from hub.intake.spreadsheet import FileKind, SpreadsheetError, detect_kind, estimate_rows, read_rows
from hub.intake.template import ColumnMap, TemplateError, detect_columns

__all__ = [
    "ColumnMap",
    "FileKind",
    "SpreadsheetError",
    "TemplateError",
    "detect_columns",
    "detect_kind",
    "estimate_rows",
    "mask_national_number",
    "mask_phone",
    "normalise_phone",
    "read_rows",
]
