"""Tag a folder of photos: landmark tag PHOTO_DIR --out tags.csv|tags.json [--model SPEC] [--batch-size N]

Every photo (recursively) gets its top-5 landmarks and the best one's place; unreadable files are kept in the output
with an error, so the list accounts for every file.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from tqdm import tqdm

from ..data.folder import IMAGE_EXTENSIONS
from ..data.images import ImageLoadError
from .photos import Photo, read_photo
from .service import TOP_K, LandmarkService, Prediction

FORMATS = (".csv", ".json")
NO_LANDMARK = "no known landmark"  # the answer when the best landmark is below the threshold (never a place)


def find_photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def row(path: str, prediction: Prediction | None = None, error: str = "") -> dict:
    """One output record: the photo, its landmark (or "no known landmark"), the five closest landmarks, the recognised
    landmark's place, its EXIF GPS, or why it could not be read."""
    if prediction is None:
        return {"path": path, "error": error}
    place, location = prediction.landmark, prediction.photo_location
    return {
        "path": path,
        "landmark": prediction.best.display_name if prediction.recognised else NO_LANDMARK,
        "probability": prediction.best.probability,
        "recognised": prediction.recognised,
        "closest_landmark": prediction.best.display_name,
        "top5": [{"name": g.name, "display_name": g.display_name, "probability": g.probability} for g in prediction.top],
        "place": {"city": place.city, "country": place.country, "lat": place.lat, "lon": place.lon, "map_url": place.map_url}
        if prediction.recognised else None,
        "photo_gps": None if location is None else {"lat": location[0], "lon": location[1]},
        "error": "",
    }


def flat(record: dict) -> dict:
    """A CSV row: the nested top-5, place and GPS spread over columns (blank for unreadable files)."""
    out = {"path": record["path"], "landmark": record.get("landmark", ""), "probability": record.get("probability", ""),
           "recognised": record.get("recognised", ""), "closest_landmark": record.get("closest_landmark", "")}
    top = record.get("top5", [])
    for i in range(TOP_K):
        out[f"top{i + 1}"] = top[i]["display_name"] if i < len(top) else ""
        out[f"top{i + 1}_probability"] = f"{top[i]['probability']:.6f}" if i < len(top) else ""
    place = record.get("place") or {}
    gps = record.get("photo_gps") or {}
    for key in ("city", "country", "lat", "lon", "map_url"):
        out[key] = "" if place.get(key) is None else place[key]
    out["photo_lat"], out["photo_lon"] = gps.get("lat", ""), gps.get("lon", "")
    out["error"] = record["error"]
    return out


def tag_folder(service: LandmarkService, folder: Path, batch_size: int = 16) -> list[dict]:
    """Records for every photo under FOLDER, in path order; decoded and run BATCH_SIZE at a time (forward_batch)."""
    paths = find_photos(folder)
    records: dict[Path, dict] = {}
    with tqdm(total=len(paths), unit="photo", desc="Tagging") as progress:
        for start in range(0, len(paths), batch_size):
            batch: list[tuple[Path, Photo]] = []
            for path in paths[start : start + batch_size]:
                try:
                    batch.append((path, read_photo(path, min_short_side=service.max_short_side)))
                except ImageLoadError as error:
                    message = str(error).replace(str(path), path.name)
                    records[path] = row(str(path.relative_to(folder)), error=message)
                    tqdm.write(f"skipped {path.relative_to(folder)}: {message}")
            for (path, _), prediction in zip(batch, service.predict_photos([photo for _, photo in batch])):
                records[path] = row(str(path.relative_to(folder)), prediction)
            progress.update(len(paths[start : start + batch_size]))
    return [records[p] for p in paths]


def write(records: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".json":
        out.write_text(json.dumps(records, indent=2, ensure_ascii=False), encoding="utf-8")
        return
    rows = [flat(r) for r in records]
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(flat(row("", error=""))))
        writer.writeheader()
        writer.writerows(rows)


def run(args: argparse.Namespace) -> None:
    """`landmark tag PHOTO_DIR --out FILE`: every photo's record, then one summary line."""
    service = LandmarkService.from_spec(args.model, threshold=args.threshold)
    records = tag_folder(service, args.photo_dir, args.batch_size)
    write(records, args.out)
    failed = sum(1 for r in records if r["error"])
    print(f"Tagged {len(records) - failed} photos ({failed} unreadable, listed with an error) -> {args.out}")
