"""export.json as a type: the one module that reads and writes the file.

An export's record has two parts. `serving` is what a server acts on: the preprocessing, the threshold of each
backend (int8 has its own), which ONNX files were verified and how (`onnx`, `onnx_int8`, `pt2`), the measured speed
that picks the file 'auto' serves, the embedding, the sha256 of every file, and room for operating points and a
retrieval index. `report` is what a reader of the export wants to know: the checks, the test metrics and where the
model came from (run, architecture, training arguments, torch version, time).

On disk the record stays one flat JSON object with the keys it always had (so old exports, the Hub cards and other
readers keep working), plus "format". A file without "format" (every export written before it was recorded) is
format 1 and is read as is; a newer format is refused in one sentence. Keys this code does not know (a newer writer's,
a parallel branch's) are kept in `extra` and written back unchanged, so nothing is lost when formats meet.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .. import atomic
from ..bundle import EXPORT_FILE, LABELS_FILE, ONNX_BACKENDS
from ..errors import LandmarkError
from .train_config import TrainConfig

FORMAT_VERSION = 1  # raise it when a change would make older code misread an export, and migrate the older ones
INT8_BACKEND = "onnx-int8"


class ExportInfoError(LandmarkError, ValueError):
    """An export.json that cannot be used; the message names the file and the fix."""


@dataclass
class Serving:
    """What a server takes from export.json to choose, check and run a file."""

    preprocess: dict | None = None  # PreprocessConfig.to_dict() of every file
    threshold: float | None = None  # fp32 files (model.pt, model.onnx); int8 carries its own in onnx_int8
    onnx: dict | None = None  # model.onnx's check: file, preprocess_file, max_abs_diff, ...
    onnx_int8: dict | None = None  # model.int8.onnx's check, threshold and metrics
    pt2: dict | None = None
    speed: dict | None = None  # {"ms_per_photo": {backend: ms}, "served": backend, "how": ...}
    embedding: dict | None = None  # {"dim": D, ...}
    files: dict[str, dict] | None = None  # {name: {sha256, bytes}}
    operating_points: dict | None = (
        None  # {"score", "confident", "suggested", "calibration"} (evaluation/operating_points.py)
    )
    index: dict | None = None  # index.npz: {"file", "photos", "dim", "dtype", "neighbours", "score"}
    settings_sha256: str | None = None  # of the settings that change answers (SETTINGS), recorded by write()

    def operating_points_of(self, backend: str) -> dict | None:
        """The recognition score and its 'confident' / 'suggested' thresholds for BACKEND's file (None: an export
        without a photo index, or the int8 file, which they were not calibrated for: its probability threshold applies)."""
        return None if backend == INT8_BACKEND else self.operating_points

    def threshold_of(self, backend: str) -> float | None:
        """The recognition threshold recorded for BACKEND's file (int8 probabilities differ slightly from fp32)."""
        value = (self.onnx_int8 or {}).get("threshold") if backend == INT8_BACKEND else self.threshold
        return None if value is None else float(value)

    def fastest(self) -> list[str]:
        """The backends measured at batch 1, fastest first; [] for exports that measured none."""
        times = (self.speed or {}).get("ms_per_photo") or {}
        return sorted(times, key=lambda backend: times[backend])

    @property
    def preprocess_file(self) -> str | None:
        """The ONNX preprocessing graph of the ONNX files (None: old exports, where torch preprocesses)."""
        return (self.onnx or {}).get("preprocess_file")

    def checked(self, backend: str) -> dict | None:
        """The record of BACKEND's ONNX file check (None: the export did not write or did not verify it)."""
        return getattr(self, ONNX_BACKENDS[backend][0])

    def sha256(self, name: str) -> str | None:
        """The sha256 recorded for the file NAME (None: exports from before checksums were recorded)."""
        return ((self.files or {}).get(name) or {}).get("sha256")

    @property
    def embedding_dim(self) -> int | None:
        dim = (self.embedding or {}).get("dim")
        return None if dim is None else int(dim)


@dataclass
class Report:
    """How the files were made and checked, and where the model came from: for people and model cards."""

    source_run: str | None = None
    model: str | None = None
    model_options: dict | None = None
    weights_source: str | None = None
    num_classes: int | None = None
    input: str | None = None
    threshold_calibration: dict | None = None
    max_abs_diff: float | None = None
    check_images: int | None = None
    onnx_int8_refused: str | None = None
    timm: dict | None = None
    check_data: list[str] | None = None
    train_args: dict | None = None
    metrics: dict | None = None
    torch: str | None = None
    created: str | None = None

    def train_config(self) -> TrainConfig | None:
        """The run's options, typed (None: an export that records none)."""
        return None if self.train_args is None else TrainConfig.from_dict(self.train_args)


SERVING_KEYS = tuple(f.name for f in fields(Serving))
# What changes a server's answers (the preprocessing, e.g. crop_pct, sets the decode size; the thresholds and operating
# points name landmarks): its sha256 is recorded beside it by write(), so an edit by hand is refused at load like a
# damaged file. 'speed' only orders verified files, 'files' is verified file by file.
SETTINGS = tuple(k for k in SERVING_KEYS if k not in ("speed", "files", "settings_sha256"))
REPORT_KEYS = tuple(f.name for f in fields(Report))


@dataclass
class ExportInfo:
    serving: Serving = field(default_factory=Serving)
    report: Report = field(default_factory=Report)
    extra: dict[str, Any] = field(default_factory=dict)  # unknown keys, written back as read
    format: int = FORMAT_VERSION
    order: list[str] = field(default_factory=list, compare=False, repr=False)  # the keys' order as read

    @classmethod
    def from_dict(cls, data: dict, source: str | Path = EXPORT_FILE) -> ExportInfo:
        """DATA as read from an export.json (SOURCE names it in errors), older formats migrated in memory."""
        version = data.get("format", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
            raise ExportInfoError(
                f"{source} has export format {version!r}, newer than the {FORMAT_VERSION} this code reads; update landmark-tagger to serve this export."
            )
        known = set(SERVING_KEYS) | set(REPORT_KEYS) | {"format"}
        return cls(
            serving=Serving(**{k: data[k] for k in SERVING_KEYS if k in data}),
            report=Report(**{k: data[k] for k in REPORT_KEYS if k in data}),
            extra={k: v for k, v in data.items() if k not in known},
            format=FORMAT_VERSION,
            order=list(data),
        )

    @property
    def recorded(self) -> bool:
        """True when read from an export.json (a bare model.pt has none)."""
        return bool(self.order)

    def to_dict(self) -> dict:
        """The flat JSON object export.json holds: the keys it was read (or built) with, in their order, then any
        field set since; a field never set stays out, so exports without operating points look as they always did."""
        serving = {f.name: getattr(self.serving, f.name) for f in fields(Serving)}
        report = {f.name: getattr(self.report, f.name) for f in fields(Report)}
        flat = {"format": self.format, **report, **serving, **self.extra}
        kept = [key for key in flat if key == "format" or key in self.order or flat[key] is not None]
        return {key: flat[key] for key in sorted(kept, key=lambda k: self.order.index(k) if k in self.order else -1)}


def settings_sha256(info: ExportInfo) -> str:
    """The sha256 of INFO's serving settings (SETTINGS, and the class count), as canonical JSON."""
    settings = {key: getattr(info.serving, key) for key in SETTINGS} | {"num_classes": info.report.num_classes}
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def has_verified(folder: str | Path, backend: str, info: ExportInfo | None = None) -> bool:
    """The export wrote this ONNX backend's file and recorded its check in export.json (a stray file is not used)."""
    folder = Path(folder)
    info = read(folder) if info is None else info
    file = ONNX_BACKENDS[backend][1]
    return (folder / file).is_file() and (folder / LABELS_FILE).is_file() and bool(info.serving.checked(backend))


def read(folder: str | Path) -> ExportInfo:
    """FOLDER/export.json; an empty record for a folder without one (a bare model.pt); a damaged or newer file is an
    ExportInfoError in one sentence."""
    path = Path(folder) / EXPORT_FILE
    if not path.is_file():
        return ExportInfo()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ExportInfoError(
            f"{path} is damaged (the export record cannot be read: {error}); restore the export folder or export it again."
        ) from None
    if not isinstance(data, dict):
        raise ExportInfoError(
            f"{path} is not an export record (a JSON object); restore the export folder or export it again."
        )
    try:
        return ExportInfo.from_dict(data, path)
    except TypeError as error:  # a field of the wrong shape where a dataclass expected another
        raise ExportInfoError(f"{path} is malformed ({error}); restore the export folder or export it again.") from None


def write(folder: str | Path, info: ExportInfo) -> None:
    """FOLDER/export.json with the checksum of its serving settings, atomically: a kill mid-write must not break the
    export."""
    info.serving.settings_sha256 = settings_sha256(info)
    atomic.write_text(Path(folder) / EXPORT_FILE, json.dumps(info.to_dict(), indent=2, ensure_ascii=False))
