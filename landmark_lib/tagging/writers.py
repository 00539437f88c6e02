"""The tagger's output formats, each written batch by batch so that a kill -9 at any moment leaves only whole rows,
and read back for a resumed run (the keys of the rows already written).

- JSONL and CSV: one row per line (CSV cells have their line breaks escaped); a batch is appended with one write and
  fsync'd. A line torn by a kill or a full disk is the last one; it is cut off before resuming (its photos are
  tagged again).
- Parquet: a folder (`tags.parquet/`, readable as one table by pyarrow, pandas, Spark or Ray) with one part file per
  batch, each written to a hidden temp file and renamed, so a part is whole or absent.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .. import atomic
from ..errors import LandmarkError
from .rows import CSV_COLUMNS, SCHEMA, csv_cell, key

Key = tuple[str, int | None, int | None]


def table(records: list[dict]) -> pa.Table:
    """RECORDS as an Arrow table of the one schema (the Parquet files of both engines)."""
    return pa.Table.from_pylist(records, schema=SCHEMA)


def drop_torn_line(path: Path) -> None:
    """Cut PATH after its last line break: what follows is a line a kill or a full disk left half written."""
    with open(path, "rb+") as handle:
        end = position = handle.seek(0, os.SEEK_END)
        cut = 0
        while position > 0:
            step = min(1 << 16, position)
            handle.seek(position - step)
            newline = handle.read(step).rfind(b"\n")
            if newline >= 0:
                cut = position - step + newline + 1
                break
            position -= step
        if cut != end:
            handle.truncate(cut)


class LineWriter:
    """Rows appended to one text file, a batch per write; the base of the JSONL and CSV writers."""

    def __init__(self, path: Path):
        self.path = path
        if path.exists():
            drop_torn_line(path)
        self.handle = open(path, "ab")  # noqa: SIM115 - open for the whole run, closed by close()
        if self.handle.tell() == 0:
            self._append(self.header())

    def header(self) -> bytes:
        return b""

    def lines(self, records: list[dict]) -> bytes:
        raise NotImplementedError

    def write(self, records: list[dict]) -> None:
        """Append RECORDS as one write; on failure (a full disk) the file is cut back to its last whole batch."""
        if records:
            self._append(self.lines(records))

    def _append(self, data: bytes) -> None:
        start = self.handle.tell()
        try:
            self.handle.write(data)
            self.handle.flush()
            os.fsync(self.handle.fileno())
        except OSError as error:
            self.handle = open(self.path, "ab")  # noqa: SIM115 - the failed buffer is dropped with the old handle
            self.handle.truncate(start)
            raise atomic.no_space(error, self.path) or error  # noqa: B904 - ERROR, or the one naming the folder

    def close(self) -> None:
        self.handle.close()


class JsonlWriter(LineWriter):
    def lines(self, records: list[dict]) -> bytes:
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")

    @staticmethod
    def done(path: Path) -> set[Key]:
        keys = set()
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    keys.add(key(json.loads(line)))
                except (ValueError, KeyError, TypeError):
                    raise LandmarkError(
                        f"line {number} of {path} is not a tagging row; pass --overwrite to start it again."
                    ) from None
        return keys


def _int(cell: str) -> int | None:
    return int(cell) if cell else None


class CsvWriter(LineWriter):
    def header(self) -> bytes:
        return (",".join(CSV_COLUMNS) + "\n").encode("utf-8")

    def lines(self, records: list[dict]) -> bytes:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writerows({name: csv_cell(value) for name, value in r.items()} for r in records)
        return text.getvalue().encode("utf-8")

    @staticmethod
    def done(path: Path) -> set[Key]:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames not in (None, CSV_COLUMNS):
                raise LandmarkError(
                    f"{path} has other columns than landmark tag writes; pass --overwrite to replace it."
                )
            return {(r["path"], _int(r["size"]), _int(r["mtime_ns"])) for r in reader}


class ParquetWriter:
    """One part file per batch in the output folder, each complete or absent (temp file + rename)."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob(".part-*.tmp"):  # a part a kill interrupted before its rename
            leftover.unlink()
        self.parts = len(list(folder.glob("part-*.parquet")))

    def write(self, records: list[dict]) -> None:
        if not records:
            return
        part = self.folder / f"part-{self.parts:06d}.parquet"
        with atomic.atomic_path(part, replace=False) as tmp:
            pq.write_table(table(records), tmp)
        self.parts += 1

    def close(self) -> None:
        pass

    @staticmethod
    def done(folder: Path) -> set[Key]:
        keys = set()
        for part in sorted(folder.glob("part-*.parquet")):
            columns = pq.read_table(part, columns=["path", "size", "mtime_ns"]).to_pydict()
            keys |= set(zip(columns["path"], columns["size"], columns["mtime_ns"]))
        return keys


WRITERS: dict[str, type[JsonlWriter | CsvWriter | ParquetWriter]] = {
    ".jsonl": JsonlWriter,
    ".csv": CsvWriter,
    ".parquet": ParquetWriter,
}


def stored_key(out: Path, found_key: Key) -> Key:
    """FOUND_KEY as OUT's format stores it (a CSV path cell is escaped), to look it up among the done keys."""
    path, size, mtime_ns = found_key
    return (str(csv_cell(path)) if out.suffix.lower() == ".csv" else path), size, mtime_ns
