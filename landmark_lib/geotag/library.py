"""The first pass over a library: the tagger's walk, decoding threads and model, then one decision per photo, logged.

Every file gets one record in the run log (a JSONL file written batch by batch with fsync, like `landmark tag`'s
output): what was done (`wrote`, `has GPS`, `no landmark`, `left alone`, ...), the answer and when the photo was taken.
A rerun skips the photos the log already has with the same size and mtime, so a killed run loses nothing; the
same-trip spreading and the review are built from the log afterwards.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from tqdm import tqdm

from ..runtime.photos import Photo
from ..serve.service import LandmarkService, Prediction
from ..tagging import state as tag_state
from ..tagging.batch import predict
from ..tagging.command import batches, decoded
from ..tagging.photo_walk import Found, display
from ..xmp import document as xmp
from ..xmp.fields import Place, Provenance, now
from ..xmp.levels import SUGGESTED, level_of, place_of
from . import sidecars

LOG_NAME = ".landmark-geotag.jsonl"
PLACED = ("wrote", "would write", "for review", "unchanged")  # the photo has (or would have) its landmark's place


def log_path(args: argparse.Namespace) -> Path:
    """The run log: beside the review file in review mode, else at the top of the sidecar tree."""
    if args.review:
        return args.review.with_name(f"{args.review.name}.geotag.jsonl")
    return (args.sidecar_dir or args.library) / LOG_NAME


def identity(args: argparse.Namespace, service: LandmarkService) -> dict:
    """What a resumed run must share with the one that started the log (else the log starts again)."""
    options = {"force": args.force, "basename": args.sidecar_name == "basename", "sidecar_dir": str(args.sidecar_dir)}
    return {**tag_state.identity(str(args.library.resolve()), service), "geotag": options}


def resumable(log: Path, wanted: dict) -> bool:
    """True when LOG holds records of the same library, model and options; otherwise it is started again."""
    recorded = tag_state.sidecar(log, folder=False)
    if log.exists() and recorded.exists():
        if json.loads(recorded.read_text(encoding="utf-8")) == wanted:
            return True
    tag_state.remove(log)
    tag_state.record(log, wanted, folder=False)
    return False


def read_log(log: Path) -> dict[str, dict]:
    """The last record of each photo (a changed photo's newer record comes later)."""
    records: dict[str, dict] = {}
    if log.exists():
        with open(log, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                records[record["path"]] = record
    return records


class Decider:
    """One photo's decision in this run's mode ('write', 'dry-run' or 'review')."""

    def __init__(self, service: LandmarkService, args: argparse.Namespace, mode: str):
        self.service, self.args, self.mode = service, args, mode

    def sidecar(self, path: Path) -> Path:
        args = self.args
        return sidecars.sidecar_path(path, args.library, args.sidecar_name == "basename", args.sidecar_dir)

    def record(self, found: Found, photo: Photo | str, answer: Prediction | str | None) -> dict:
        record = {"path": display(found.path.relative_to(self.args.library)), "size": found.size}
        record |= {"mtime_ns": found.mtime_ns, "action": "unreadable", "note": "", "taken": None, "gps": None}
        record |= {"level": None, "landmark": None, "score": None, "place": None, "model": None}
        if isinstance(answer, str) or isinstance(photo, str):
            record["note"] = answer if isinstance(answer, str) else photo
            return record
        record["taken"], record["gps"] = photo.taken, "exif" if photo.location else None
        level, place = level_of(answer), place_of(answer)
        if level:
            record |= {"level": level, "landmark": answer.best.display_name, "score": answer.best.probability}
            record["place"] = None if place is None else place.__dict__
            record["model"] = {"id": answer.model.id, "revision": answer.model.revision or ""}
        path = self.sidecar(found.path)
        try:
            record["action"] = self.decide(found, photo, level, place, path, answer)
        except xmp.NotXmp as error:
            record["action"], record["note"] = "left alone", f"{path.name} was left untouched: {error}."
        except OSError as error:
            record["action"] = "not written"
            record["note"] = f"{path} could not be written ({error.strerror or error}); rerun to try again."
        if record["action"].startswith(("conflict:", "read-only:")):  # the action, and the sentence saying why
            action, _, why = record["action"].partition(": ")
            record["action"], record["note"] = action, f"{path.name}: {why}."
        return record

    def decide(self, found: Found, photo: Photo, level: str | None, place: Place | None, path: Path, answer) -> str:
        if photo.location and not self.args.force:
            return "has GPS"
        if level is None or place is None or (level == SUGGESTED and self.mode == "write"):
            data = sidecars.read(path)  # a real GPS in the sidecar also keeps spreading away from this photo
            if data is not None and not self.args.force and sidecars.packet.user_gps(data):
                return "has GPS"
            return "suggested" if level == SUGGESTED and place else "no landmark"
        if self.mode == "write" and sidecars.read_only(path):
            return f"read-only: {sidecars.read_only(path)}; it was skipped (--sidecar-dir writes elsewhere)"
        model = answer.model
        provenance = Provenance(model.id, model.revision or "", answer.best.probability, level, now(), found.path.name)
        done = sidecars.place_in(path, place, provenance, force=self.args.force, write=self.mode == "write")
        return {"dry-run": "would write", "review": "for review"}.get(self.mode, done) if done == "wrote" else done


def decide_all(service: LandmarkService, decider: Decider, files: Iterable[Found]) -> Iterator[list[dict]]:
    """The records of FILES, a batch at a time: decoded by the tagger's threads, answered in one model call."""
    args = decider.args
    for batch in batches(decoded(service, files, args.workers, ahead=2 * args.batch_size), args.batch_size):
        answers = iter(predict(service, [photo for _, photo in batch if not isinstance(photo, str)]))
        records = []
        for found, photo in batch:
            record = decider.record(found, photo, None if isinstance(photo, str) else next(answers))
            if record["note"]:
                tqdm.write(f"{record['path']}: {record['note']}")
            records.append(record)
        yield records
