"""What the tagger writes for one file: its identity (relative path, size, mtime: what a resumed run skips by) and
the answer's flattened columns (artifacts/answer.py COLUMNS, the same in every format and engine), or why it could
not be tagged. The local and the Ray engine build rows here, so they write the same."""

from __future__ import annotations

import pyarrow as pa

from ..artifacts.answer import COLUMNS, Prediction

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell starting with these as a formula
# Part of every output's identity (tagging/state.py): a resumed run never appends rows of another layout.
ROW_FORMAT = 2
NO_ANSWER = dict.fromkeys(name for name, _, _ in COLUMNS)
_ARROW = {str: pa.string(), float: pa.float64(), bool: pa.bool_()}
# The Parquet schema (both engines), from the one definition of the columns.
SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        *((name, _ARROW[kind]) for name, kind, _ in COLUMNS),
        ("error", pa.string()),
    ]
)
CSV_COLUMNS = SCHEMA.names


def row(
    path: str, size: int | None, mtime_ns: int | None, prediction: Prediction | None = None, error: str = ""
) -> dict:
    """One output record: the file, and its answer's columns (landmark or "no known landmark", the five closest
    landmarks, the named landmark's place, the photo's EXIF GPS) or, with every answer column None, why it could not
    be read."""
    answer = NO_ANSWER if prediction is None else prediction.answer().columns()
    return {"path": path, "size": size, "mtime_ns": mtime_ns, **answer, "error": error}


def key(record: dict) -> tuple[str, int | None, int | None]:
    """What identifies a tagged file: a rerun skips it while its relative path, size and mtime are unchanged."""
    return record["path"], record["size"], record["mtime_ns"]


def csv_cell(value: object) -> object:
    """VALUE as a safe CSV cell: blank for None, line breaks escaped (every row is one line, so a torn last line can
    be found), and text that a spreadsheet would run as a formula (=, +, -, @) prefixed by a quote (numbers stay
    numbers)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    value = value.replace("\r", "\\r").replace("\n", "\\n")
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value
