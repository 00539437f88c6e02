"""What the tagger writes for one file: its identity (relative path, size, mtime: what a resumed run skips by) and
the answer, or why it could not be tagged. The local and the Ray engine build rows here, so they write the same."""

from __future__ import annotations

from ..serve.service import TOP_K, Prediction

NO_LANDMARK = "no known landmark"  # the answer when the best landmark is below the threshold (never a place)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell starting with these as a formula
PLACE_KEYS = ("city", "country", "lat", "lon", "map_url")
NO_ANSWER = {
    "landmark": None,
    "probability": None,
    "score": None,
    "level": None,
    "review": None,
    "recognised": None,
    "closest_landmark": None,
    "top5": None,
    "place": None,
    "photo_gps": None,
}


def answer_fields(prediction: Prediction) -> dict:
    """The answer part of a row, from the service's Prediction (the one place that reads it). A 'suggested' answer
    names its landmark and place but is marked for review; below both operating points: no landmark, no place."""
    place, location, named = prediction.landmark, prediction.photo_location, prediction.level is not None
    return {
        "landmark": prediction.best.display_name if named else NO_LANDMARK,
        "probability": prediction.best.probability,
        "score": prediction.score,
        "level": prediction.level or "none",
        "review": prediction.level == "suggested",
        "recognised": prediction.recognised,
        "closest_landmark": prediction.best.display_name,
        "top5": [
            {"name": g.name, "display_name": g.display_name, "probability": g.probability} for g in prediction.top
        ],
        "place": {key: getattr(place, key) for key in PLACE_KEYS} if named else None,
        "photo_gps": None if location is None else {"lat": location[0], "lon": location[1]},
    }


def row(
    path: str, size: int | None, mtime_ns: int | None, prediction: Prediction | None = None, error: str = ""
) -> dict:
    """One output record: the file, and its answer (landmark or "no known landmark", the five closest landmarks, the
    recognised landmark's place, the photo's EXIF GPS) or, with every answer field None, why it could not be read."""
    answer = NO_ANSWER if prediction is None else answer_fields(prediction)
    return {"path": path, "size": size, "mtime_ns": mtime_ns, **answer, "error": error}


def key(record: dict) -> tuple[str, int | None, int | None]:
    """What identifies a tagged file: a rerun skips it while its relative path, size and mtime are unchanged."""
    return record["path"], record["size"], record["mtime_ns"]


def csv_cell(value: object) -> object:
    """VALUE as a safe CSV cell: line breaks escaped (every row is one line, so a torn last line can be found), and
    text that a spreadsheet would run as a formula (=, +, -, @) prefixed by a quote (numbers stay numbers)."""
    if not isinstance(value, str):
        return value
    value = value.replace("\r", "\\r").replace("\n", "\\n")
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def _blank(value: object) -> object:
    return "" if value is None else value


def flat(record: dict) -> dict:
    """A CSV row: the nested top-5, place and GPS spread over columns (blank for unreadable files)."""
    out = {name: _blank(record[name]) for name in ("path", "size", "mtime_ns")}
    answer = ("landmark", "probability", "score", "level", "review", "recognised", "closest_landmark")
    out |= {name: _blank(record[name]) for name in answer}
    top = record["top5"] or []
    for i in range(TOP_K):
        out[f"top{i + 1}"] = top[i]["display_name"] if i < len(top) else ""
        out[f"top{i + 1}_probability"] = f"{top[i]['probability']:.6f}" if i < len(top) else ""
    place = record["place"] or {}
    gps = record["photo_gps"] or {}
    out |= {name: _blank(place.get(name)) for name in PLACE_KEYS}
    out["photo_lat"], out["photo_lon"] = _blank(gps.get("lat")), _blank(gps.get("lon"))
    out["error"] = record["error"]
    return out


CSV_COLUMNS = list(flat(row("", None, None)))
