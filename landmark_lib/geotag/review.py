"""Review before writing: a page (HTML, with thumbnails) or a CSV listing each photo the run would place, with the
landmark, score and level; `--apply REVIEW.csv` writes only the rows marked accepted.

Confident answers and nearby estimates start accepted, suggested ones do not. The page is one self-contained file
(thumbnails embedded as small JPEGs, every text HTML-escaped, no network); its "Save decisions" button downloads the
CSV that --apply reads. CSV cells that a spreadsheet would run as formulas are prefixed with a quote.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

from .. import atomic
from ..data.images import load_rgb
from ..errors import LandmarkError
from ..tagging.rows import FORMULA_STARTS, csv_cell
from ..xmp.fields import LEVELS, Place
from ..xmp.levels import CONFIDENT

COLUMNS = ["accept", "path", "size", "mtime_ns", "level", "landmark", "score", "city", "country", "lat", "lon"]
COLUMNS += ["model", "revision", "estimated_from"]
THUMBNAIL_SIDE = 160
YES = ("yes", "y", "true", "1", "x")


def review_row(record: dict) -> dict:
    """A review row from a log record (a landmark answer, or a nearby estimate with its source photo)."""
    place, model = record["place"], record["model"] or {}
    return {
        "accept": "yes" if record["level"] in (CONFIDENT, "nearby") else "no",
        "path": record["path"],
        "size": record["size"],
        "mtime_ns": record["mtime_ns"],
        "level": record["level"],
        "landmark": record["landmark"],
        "score": f"{record['score']:.4f}",
        "city": place["city"],
        "country": place["country"],
        "lat": place["lat"],
        "lon": place["lon"],
        "model": model.get("id", ""),
        "revision": model.get("revision", ""),
        "estimated_from": record.get("estimated_from", ""),
    }


def thumbnail(photo: Path) -> str | None:
    """A small JPEG of PHOTO as base64 (the bounded decoder, at a reduced JPEG scale), or None if it cannot be read."""
    try:
        image = load_rgb(photo, min_short_side=THUMBNAIL_SIDE)
        image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=70)
        return base64.b64encode(buffer.getvalue()).decode("ascii")
    except Exception:  # noqa: BLE001 - a photo changed or removed since the run gets "no preview", not a lost review
        return None


_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>landmark geotag: review</title>
<style>body{font-family:sans-serif;margin:1em}td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left}
img{max-width:160px;max-height:160px}.nearby{color:#8a5a00}</style></head><body>
<h1>Photos to place on the map</h1>
<p>Tick the photos to place, click <button id="save">Save decisions</button>, then run
<code>landmark geotag LIBRARY --apply DECISIONS.csv</code>. The position written is the landmark's, not the camera's;
<span class="nearby">nearby</span> rows are estimates from a photo of the same trip.</p>
<table><tr><th>place it</th><th>photo</th><th>file</th><th>landmark</th><th>level</th><th>score</th><th>where</th></tr>
"""
_SAVE = """<script>
document.getElementById("save").onclick = () => {
  const rows = JSON.parse(document.getElementById("rows").textContent);
  const boxes = document.querySelectorAll("input.accept");
  const cell = (v) => { v = String(v ?? ""); return /[",\\n\\r]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; };
  const columns = Object.keys(rows[0] || {accept: ""});
  const lines = [columns.join(",")].concat(rows.map((row, i) =>
    columns.map((c) => cell(c === "accept" ? (boxes[i].checked ? "yes" : "no") : row[c])).join(",")));
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([lines.join("\\n") + "\\n"], {type: "text/csv"}));
  link.download = "decisions.csv";
  link.click();
};
</script></body></html>
"""


def _html_row(row: dict, picture: str | None) -> str:
    e = html.escape
    image = f'<img alt="" src="data:image/jpeg;base64,{picture}">' if picture else "no preview"
    where = ", ".join(str(p) for p in (row["city"], row["country"]) if p) + f" ({row['lat']:.5f}, {row['lon']:.5f})"
    landmark = e(str(row["landmark"]))
    if row["estimated_from"]:
        landmark = f"near {landmark}, estimated from {e(row['estimated_from'])}"
    checked = " checked" if row["accept"] == "yes" else ""
    return (
        f'<tr class="{e(row["level"])}"><td><input type="checkbox" class="accept"{checked}></td><td>{image}</td>'
        f"<td>{e(row['path'])}</td><td>{landmark}</td><td>{e(row['level'])}</td><td>{e(row['score'])}</td>"
        f"<td>{e(where)}</td></tr>\n"
    )


def write_review(path: Path, rows: Iterable[dict], library: Path) -> int:
    """ROWS into PATH (.html with thumbnails, or .csv), atomically; the number of rows."""
    count, cells = 0, []
    with atomic.atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
        if path.suffix.lower() == ".csv":
            writer.writeheader()
        else:
            out.write(_HEAD)
        for row in rows:
            count += 1
            safe = {k: csv_cell(v) for k, v in row.items()}
            if path.suffix.lower() == ".csv":
                writer.writerow(safe)
            else:
                out.write(_html_row(row, thumbnail(library / row["path"])))
                cells.append({k: "" if v is None else str(v) for k, v in safe.items()})  # mtime_ns > 2**53
        if path.suffix.lower() != ".csv":
            data = json.dumps(cells, ensure_ascii=False).replace("<", "\\u003c")
            out.write(f'</table>\n<script type="application/json" id="rows">{data}</script>\n{_SAVE}')
    return count


def _plain(cell: str) -> str:
    """A cell as written before csv_cell's formula guard."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS) else cell


def accepted(path: Path) -> Iterator[tuple[dict, Place]]:
    """The accepted rows of a review CSV, each with the place to write; LandmarkError for a file that is not one."""
    if path.suffix.lower() != ".csv":
        raise LandmarkError(
            f"{path.name} is not a review CSV; open the review page, click 'Save decisions' and --apply the CSV it saves."
        )
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not set(COLUMNS) <= set(reader.fieldnames or []):
            raise LandmarkError(f"{path} lacks the review columns ({', '.join(COLUMNS)}); write it with --review.")
        for number, raw in enumerate(reader, 2):
            row = {k: _plain(v or "") for k, v in raw.items() if k}
            if row["accept"].strip().lower() not in YES:
                continue
            try:
                lat, lon, score = float(row["lat"]), float(row["lon"]), float(row["score"])
                row["size"], row["mtime_ns"] = int(row["size"]), int(row["mtime_ns"])
            except ValueError:
                raise LandmarkError(
                    f"line {number} of {path} has a number that is not one; fix or remove it."
                ) from None
            if not (abs(lat) <= 90 and abs(lon) <= 180 and math.isfinite(score)) or row["level"] not in LEVELS:
                raise LandmarkError(f"line {number} of {path} has no valid position or level; fix or remove it.")
            row["score"] = score
            yield row, Place(row["landmark"], row["city"], row["country"], lat, lon)
