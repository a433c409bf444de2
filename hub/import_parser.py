"""The import's parser process: reads a lead file and encodes it as staging CSV, chunk by chunk.

Parsing runs in its own process, not a thread: sharing the interpreter lock with the event loop
that feeds Postgres cost a third of the import's speed (measured with bench/import.py). The child
sends each chunk over a pipe, piece by piece; the pipe's small buffer keeps it at most a chunk
ahead of the reader, so memory stays flat. The child is killed when the reader stops early.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path

from hub.intake import SpreadsheetError, TemplateError, detect_columns, read_rows
from hub.intake.staging import StagingChunk, staging_chunks


class ImportRefused(Exception):
    """The file cannot be imported; ``message`` tells the uploader why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parsed_chunks(
    path: Path, mapping: dict[str, int] | None, *, region: str, max_rows: int, chunk_rows: int
) -> Iterator[StagingChunk]:
    """The file as staging CSV chunks, parsed in a child process (blocking; run it in a thread).

    Raises :class:`ImportRefused` for files that cannot be read, ``RuntimeError`` if the child
    fails otherwise.
    """
    context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_parse,
        args=(sender, str(path), mapping, region, max_rows, chunk_rows),
        name="lineup-import-parser",
        daemon=True,
    )
    child.start()
    sender.close()
    pieces: list[bytes] = []
    try:
        while True:
            try:
                message = receiver.recv()
            except EOFError:
                raise RuntimeError(f"the import parser died (exit code {child.exitcode})") from None
            match message:
                case ("piece", piece):
                    pieces.append(piece)
                case ("chunk", rows_read, staged):
                    yield StagingChunk(pieces, rows_read, staged)
                    pieces = []
                case ("refused", code, text):
                    raise ImportRefused(code, text)
                case ("failed", text):
                    raise RuntimeError(f"the import parser failed: {text}")
                case _:
                    return
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiver.close()


def _parse(
    sender: Connection, path: str, mapping: dict[str, int] | None, region: str, max_rows: int, chunk_rows: int
) -> None:
    """The child's work: every chunk, then ``("end",)``, or why it stopped."""
    try:
        rows = read_rows(Path(path), max_rows=max_rows)
        header = next(rows, None)
        if header is None:
            sender.send(("refused", "empty_file", "The file has no rows."))
            return
        columns = detect_columns(header, mapping)
        for chunk in staging_chunks(rows, columns, region=region, chunk_rows=chunk_rows):
            for piece in chunk.pieces:  # one message each: see PIECE_ROWS
                sender.send(("piece", piece))
            sender.send(("chunk", chunk.rows_read, chunk.staged))
        sender.send(("end",))
    except (SpreadsheetError, TemplateError) as exc:
        sender.send(("refused", exc.code, exc.message))
    except BrokenPipeError:
        pass  # the reader stopped early
    except Exception as exc:
        sender.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        sender.close()
