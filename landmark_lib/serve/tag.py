"""Tag a folder of photos: landmark tag PHOTO_DIR --out tags.csv|tags.json [--model SPEC] [--batch-size N] [--overwrite]

Every photo (recursively, following symlinked folders once each) gets its top-5 landmarks and the best one's place;
unreadable files, broken links and folders that cannot be listed are kept in the output with an error, so the list
accounts for every file. The output appears complete or not at all, and an existing one is kept unless --overwrite.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

from tqdm import tqdm

from .. import atomic
from ..data.folder import IMAGE_EXTENSIONS
from ..data.images import ImageLoadError
from ..errors import LandmarkError
from .photos import Photo, read_photo
from .service import TOP_K, LandmarkService, Prediction

FORMATS = (".csv", ".json")
NO_LANDMARK = "no known landmark"  # the answer when the best landmark is below the threshold (never a place)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell starting with these as a formula


def display(path: Path | str) -> str:
    """PATH as text that can always be written: bytes of non-UTF-8 file names become \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def csv_cell(value: object) -> object:
    """VALUE, with text that a spreadsheet would run as a formula (=, +, -, @) prefixed by a quote (numbers stay)."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def find_photos(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Image files under FOLDER in path order, and (path, why) for what cannot be tagged: broken links, folders that
    cannot be listed. Symlinked folders are followed, each real folder once (a link loop ends there)."""
    photos: list[Path] = []
    problems: list[tuple[Path, str]] = []
    seen = {(folder.stat().st_dev, folder.stat().st_ino)}

    def unlistable(error: OSError) -> None:
        reason = "permission denied" if isinstance(error, PermissionError) else error.strerror or type(error).__name__
        problems.append(
            (Path(error.filename or folder), f"this folder cannot be listed ({reason}); its photos were not tagged.")
        )

    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True, onerror=unlistable):
        kept = []
        for name in sorted(dirnames):
            try:
                info = os.stat(os.path.join(dirpath, name))
            except OSError as error:
                unlistable(error)
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            path = Path(dirpath, name)
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            if path.is_symlink() and not path.exists():
                problems.append((path, f"{display(name)} is a broken symbolic link (its target does not exist)."))
            else:
                photos.append(path)
    return sorted(photos), problems


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
        "top5": [
            {"name": g.name, "display_name": g.display_name, "probability": g.probability} for g in prediction.top
        ],
        "place": {
            "city": place.city,
            "country": place.country,
            "lat": place.lat,
            "lon": place.lon,
            "map_url": place.map_url,
        }
        if prediction.recognised
        else None,
        "photo_gps": None if location is None else {"lat": location[0], "lon": location[1]},
        "error": "",
    }


def flat(record: dict) -> dict:
    """A CSV row: the nested top-5, place and GPS spread over columns (blank for unreadable files)."""
    out = {
        "path": record["path"],
        "landmark": record.get("landmark", ""),
        "probability": record.get("probability", ""),
        "recognised": record.get("recognised", ""),
        "closest_landmark": record.get("closest_landmark", ""),
    }
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


def _decode(service: LandmarkService, path: Path) -> Photo | str:
    """The decoded photo, or why it cannot be tagged: one odd file (even one that breaks the decoder) never stops a run."""
    try:
        return read_photo(path, min_short_side=service.max_short_side)
    except ImageLoadError as error:
        return display(str(error).replace(str(path), path.name))
    except Exception as error:  # noqa: BLE001 - a decoder bug on one file must not lose the tags of all the others
        return f"{display(path.name)} could not be decoded ({type(error).__name__}: {display(str(error))})."


def _predict(service: LandmarkService, batch: list[Photo]) -> list[Prediction | str]:
    """Predictions for BATCH; if the batch call fails, one photo at a time, so only the photo at fault gets an error."""
    try:
        return list(service.predict_photos(batch))
    except Exception:  # noqa: BLE001 - find which photo it was below
        if len(batch) == 1:
            return ["the model failed on this photo; tag it on its own to see the error."]
        return [answer for photo in batch for answer in _predict(service, [photo])]


def tag_folder(service: LandmarkService, folder: Path, batch_size: int = 16) -> list[dict]:
    """Records for every photo under FOLDER (and every problem find_photos met), in path order; decoded and run
    BATCH_SIZE at a time (forward_batch)."""
    paths, problems = find_photos(folder)
    records: dict[Path, dict] = {path: row(display(path.relative_to(folder)), error=why) for path, why in problems}
    for path, why in problems:
        tqdm.write(f"skipped {display(path.relative_to(folder))}: {why}")
    with tqdm(total=len(paths), unit="photo", desc="Tagging") as progress:
        for start in range(0, len(paths), batch_size):
            batch: list[tuple[Path, Photo]] = []
            for path in paths[start : start + batch_size]:
                photo = _decode(service, path)
                if isinstance(photo, str):
                    records[path] = row(display(path.relative_to(folder)), error=photo)
                    tqdm.write(f"skipped {display(path.relative_to(folder))}: {photo}")
                else:
                    batch.append((path, photo))
            for (path, _), answer in zip(batch, _predict(service, [photo for _, photo in batch])):
                name = display(path.relative_to(folder))
                records[path] = row(name, error=answer) if isinstance(answer, str) else row(name, answer)
            progress.update(len(paths[start : start + batch_size]))
    return [records[p] for p in sorted(records)]


def write(records: list[dict], out: Path, overwrite: bool = False) -> None:
    """OUT (CSV or JSON) complete or not at all (temp file + rename); an existing OUT only replaced with OVERWRITE."""
    with atomic.atomic_path(out, replace=overwrite) as tmp:
        if out.suffix.lower() == ".json":
            tmp.write_text(json.dumps(records, indent=2, ensure_ascii=False), encoding="utf-8")
            return
        rows = [{key: csv_cell(value) for key, value in flat(r).items()} for r in records]
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(flat(row("", error=""))))
            writer.writeheader()
            writer.writerows(rows)


def run(args: argparse.Namespace) -> None:
    """`landmark tag PHOTO_DIR --out FILE [--overwrite]`: every photo's record, then one summary line."""
    if args.out.exists() and not args.overwrite:
        raise LandmarkError(f"{args.out} already exists; pass --overwrite to replace it, or choose another --out")
    service = LandmarkService.from_spec(args.model, threshold=args.threshold, gallery=getattr(args, "gallery", None))
    records = tag_folder(service, args.photo_dir, args.batch_size)
    try:
        write(records, args.out, args.overwrite)
    except FileExistsError:
        raise LandmarkError(
            f"{args.out} appeared while tagging; nothing was written over it (pass --overwrite to replace it)."
        ) from None
    except OSError as error:  # a full disk (atomic.NoSpaceError names the folder), a read-only folder, ...
        raise LandmarkError(f"could not write {args.out}: {error.strerror or error}.") from None
    failed = sum(1 for r in records if r["error"])
    print(f"Tagged {len(records) - failed} photos ({failed} unreadable, listed with an error) -> {args.out}")
