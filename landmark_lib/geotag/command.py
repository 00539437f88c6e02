"""`landmark geotag LIBRARY`: place the photos of a library on the map through XMP sidecars.

landmark geotag ~/Pictures                         write (or merge) sidecars for confident answers
landmark geotag ~/Pictures --dry-run               print what would change, write nothing
landmark geotag ~/Pictures --review review.html    a page (or .csv) to accept rows, then:
landmark geotag ~/Pictures --apply decisions.csv   write only the accepted rows
landmark geotag ~/Pictures --spread 30m            also nearby photos of the same trip (an estimate)
landmark geotag ~/Pictures --undo                  remove exactly what we wrote
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from ..errors import LandmarkError
from ..serve.service import LandmarkService
from ..tagging.photo_walk import walk_photos
from ..tagging.writers import JsonlWriter
from ..xmp import document as xmp
from ..xmp.fields import Place, Provenance, now
from . import library, review, sidecars, spread

NEARBY = "nearby"


def first_pass(service: LandmarkService, args: argparse.Namespace, mode: str, log: Path) -> Counter:
    """Walk the library (resuming LOG) and decide every photo; counts of the actions."""
    resume = library.resumable(log, library.identity(args, service))
    if resume and mode == "write":  # a run was here before, maybe killed mid-write
        sidecars.remove_leftovers(args.sidecar_dir or args.library)
    writer = JsonlWriter(log)
    done = JsonlWriter.done(log) if resume else set()
    counts: Counter = Counter()

    def todo() -> Iterator:
        for found in walk_photos(args.library):
            key = (library.display(found.path.relative_to(args.library)), found.size, found.mtime_ns)
            if key in done:
                counts["already done"] += 1
            else:
                yield found

    decider = library.Decider(service, args, mode)
    try:
        with tqdm(unit="photo", desc="Geotagging") as progress:
            for records in library.decide_all(service, decider, todo()):
                writer.write(records)
                counts.update(r["action"] for r in records)
                progress.update(len(records))
    finally:
        writer.close()
    return counts


def spread_pass(args: argparse.Namespace, mode: str, log: Path) -> Counter:
    """Nearby estimates from the log (same folder, within --spread of a confidently placed photo), logged too."""
    counts: Counter = Counter()
    pairs = list(spread.estimates(library.read_log(log).values(), spread.window_seconds(args.spread)))
    writer = JsonlWriter(log)
    try:
        for target, source in pairs:
            record = {**target, "level": NEARBY, "landmark": source["landmark"], "score": source["score"]}
            record |= {"place": source["place"], "model": source["model"], "estimated_from": source["path"]}
            record["action"], record["note"] = estimate(args, mode, record)
            writer.write([record])
            counts[record["action"]] += 1
            if record["note"]:
                tqdm.write(f"{record['path']}: {record['note']}")
    finally:
        writer.close()
    return counts


def _write(args: argparse.Namespace, row: dict, place: Place, write: bool) -> tuple[str, str]:
    """Place one photo (a log record or an accepted review row); (action, note)."""
    photo = args.library / row["path"]
    if not photo.is_file():  # moved or deleted since (or a name that is not UTF-8, logged with escapes)
        return "changed", f"{row['path']} is not in the library as logged; it was skipped."
    path = sidecars.sidecar_path(photo, args.library, args.sidecar_name == "basename", args.sidecar_dir)
    model = row["model"] if isinstance(row["model"], dict) else {"id": row["model"], "revision": row["revision"]}
    provenance = Provenance(
        model["id"], model["revision"], row["score"], row["level"], now(), photo.name,
        row.get("estimated_from", ""),
    )  # fmt: skip
    reason = sidecars.read_only(path) if write else None
    if reason:
        return "read-only", f"{path.name}: {reason}; it was skipped (--sidecar-dir writes elsewhere)."
    try:
        done = sidecars.place_in(path, place, provenance, row["level"] == NEARBY, args.force, write)
    except xmp.NotXmp as error:
        return "left alone", f"{path.name} was left untouched: {error}."
    except OSError as error:
        return "not written", f"{path} could not be written ({error.strerror or error}); rerun to try again."
    if done.startswith("conflict"):
        return "conflict", f"{done.partition(': ')[2]}."
    return done, ""


def estimate(args: argparse.Namespace, mode: str, record: dict) -> tuple[str, str]:
    if mode == "review":
        return "estimate for review", ""
    action, note = _write(args, record, Place(**record["place"]), write=mode == "write")
    if action == "wrote":
        action = "estimated" if mode == "write" else "would estimate"
    return action, note


def apply_review(args: argparse.Namespace) -> Counter:
    """--apply: the accepted rows of a review, each checked against the photo as it is now."""
    counts: Counter = Counter()
    for row, place in review.accepted(args.apply):
        photo = args.library / row["path"]
        try:
            info = photo.stat()
            same = (info.st_size, info.st_mtime_ns) == (row["size"], row["mtime_ns"])
        except OSError:
            same = False
        if not same or not photo.resolve().is_relative_to(args.library.resolve()):
            action, note = "changed", f"{row['path']} changed or moved since the review; review it again."
        else:
            action, note = _write(args, row, place, write=not args.dry_run)
        counts[action] += 1
        if note:
            print(f"{row['path']}: {note}")
    return counts


def _undo_one(path: Path) -> str:
    data = sidecars.read(path)
    if data is None or sidecars.packet.read_provenance(data) is None:
        return "not ours"
    reason = sidecars.read_only(path)
    if reason:
        print(f"{path.name}: {reason}; our fields are still in it.")
        return "read-only"
    return sidecars.take_out(path)


def undo(args: argparse.Namespace) -> Counter:
    """--undo: every sidecar under the library (or --sidecar-dir) loses exactly what we wrote; the run log goes."""
    root, counts = args.sidecar_dir or args.library, Counter()
    sidecars.remove_leftovers(root)
    for found in walk_photos(root, extensions=(".xmp",)):
        try:
            action = _undo_one(found.path)
        except xmp.NotXmp as error:
            action = "left alone"
            print(f"{found.path.name} was left untouched: {error}.")
        except OSError as error:
            action = "not written"
            print(f"{found.path} could not be written ({error.strerror or error}); rerun --undo to try again.")
        counts[action] += 1
    library.tag_state.remove(root / library.LOG_NAME)
    return counts


def _mode(args: argparse.Namespace) -> str:
    return "review" if args.review else "dry-run" if args.dry_run else "write"


def run(args: argparse.Namespace) -> None:
    """The command: one of undo, apply, or a run over the library; then one summary line."""
    if sum(bool(x) for x in (args.undo, args.apply, args.review)) > 1:
        raise LandmarkError("use one of --undo, --apply and --review at a time.")
    if args.undo:
        counts = undo(args)
    elif args.apply:
        counts = apply_review(args)
    else:
        service = LandmarkService.from_spec(args.model, threshold=args.threshold, gallery=args.gallery)
        mode = _mode(args)
        with tempfile.TemporaryDirectory() as scratch:
            log = Path(scratch, "dry-run.jsonl") if mode == "dry-run" else library.log_path(args)
            try:
                counts = first_pass(service, args, mode, log)
            except OSError as error:  # the run log's folder is read-only or full; sidecar failures are per photo
                raise LandmarkError(
                    f"could not write the run log {log}: {error.strerror or error}; give --sidecar-dir (or --review) "
                    "a folder you can write to, or free some space there."
                ) from None
            if args.spread:
                counts += spread_pass(args, mode, log)
            records = library.read_log(log).values()
            if mode == "dry-run":
                for r in records:
                    if r["action"] in ("would write", "would estimate"):
                        print(f"{r['action']}: {r['path']} -> {r['landmark']} ({r['level']}, {r['score']:.3f})")
            if args.review:
                rows = (review.review_row(r) for r in records if r["action"] in ("for review", "estimate for review"))
                counts["in the review"] = review.write_review(args.review, rows, args.library)
    print(", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "nothing to do")
