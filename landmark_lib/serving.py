"""Serving: find an exported model (local, hf://, env, repo default), load it once, and turn photos into answers.

Shared by the Gradio app, the batch tagger and the benchmarks, so all three give the same answer for a photo.
"""
from __future__ import annotations

import io
import json
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import ExifTags, Image

from . import checksums
from .data.folder import BACKGROUND_CLASS
from .data.images import (
    FORMATS,
    decode_short_side,
    load_rgb,
    load_rgb_bytes,
    pil_to_uint8_chw,
)
from .export import EXPORT_FILE, LABELS_FILE, MODEL_FILE
from .onnx_model import INT8_FILE, ONNX_FILE, OnnxPredictor
from .preprocess import PreprocessConfig
from .recognition import best_landmarks

HF_FILES = (MODEL_FILE, LABELS_FILE, EXPORT_FILE)
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "default" / MODEL_FILE
DEFAULT_THRESHOLD = 0.35
TOP_K = 5
BACKENDS = ("auto", "onnx-int8", "onnx", "torchscript")
ONNX_BACKENDS = {"onnx-int8": ("onnx_int8", INT8_FILE), "onnx": ("onnx", ONNX_FILE)}  # backend (= export.py --format) -> export.json key, file

log = logging.getLogger(__name__)
ImageInput = Image.Image | str | os.PathLike | bytes


class ModelNotFoundError(FileNotFoundError):
    """A model spec that points at nothing loadable; the message says what was tried and how to fix it."""


class ModelFolderError(ModelNotFoundError):
    """An export folder whose files are damaged, mixed from several exports or do not fit each other."""


def check_threshold(value: float) -> float:
    """VALUE if it is a probability in [0, 1]; a threshold outside that would name every or no landmark."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"the recognition threshold must be a probability between 0 and 1, got {value}")
    return float(value)


def threshold_arg(text: str) -> float:
    """argparse type for --threshold: a number in [0, 1], else a one-line usage error."""
    import argparse

    try:
        return check_threshold(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a probability between 0 and 1 (e.g. 0.35), got {text!r}") from None


def _resolve_hf(spec: str) -> Path:
    """hf://OWNER/NAME[@REVISION] -> local model.pt, downloading the export folder (or reading the HF cache offline)."""
    from huggingface_hub import hf_hub_download  # only needed for hf:// specs

    repo, _, revision = spec[len("hf://") :].partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ModelNotFoundError(f"{spec} is not a Hub model spec; write hf://OWNER/NAME or hf://OWNER/NAME@REVISION.")
    try:
        paths = [hf_hub_download(repo_id=repo, filename=name, revision=revision or None) for name in HF_FILES]
        info = json.loads(Path(paths[HF_FILES.index(EXPORT_FILE)]).read_text(encoding="utf-8"))
        for key, _ in ONNX_BACKENDS.values():  # the faster files the export verified, so choose_backend finds them
            if info.get(key):
                hf_hub_download(repo_id=repo, filename=info[key]["file"], revision=revision or None)
    except Exception as error:  # network, auth, missing repo/file, offline without a cached copy: one clear message
        raise ModelNotFoundError(
            f"Could not get {', '.join(HF_FILES)} of {spec} from the Hugging Face Hub ({type(error).__name__}: {error}). "
            "Check the repository name and revision, the network or HF_TOKEN, or pre-download it and set HF_HUB_OFFLINE=1."
        ) from error
    return Path(paths[0])


def resolve_model_path(spec: str | os.PathLike | None) -> Path:
    """The TorchScript file to serve: SPEC (file, export folder or hf://...), else $LANDMARK_MODEL, else the repo's model."""
    if spec is None or str(spec) == "":
        env = os.environ.get("LANDMARK_MODEL")
        if env:
            return resolve_model_path(env)
        if DEFAULT_MODEL.is_file():
            return DEFAULT_MODEL
        raise ModelNotFoundError(
            f"No model given and {DEFAULT_MODEL} does not exist; pass --model (an export folder, a model.pt or "
            "hf://OWNER/NAME[@REVISION]) or set LANDMARK_MODEL."
        )
    text = str(spec)
    if text.startswith("hf://"):
        return _resolve_hf(text)
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"{path} does not exist; pass an export folder holding {MODEL_FILE}, a .pt file or hf://OWNER/NAME.")
    return path


def _gps_degrees(value: tuple, ref: object, hemispheres: str, limit: float) -> float | None:
    """Signed decimal degrees from EXIF (degrees, minutes, seconds) and its N/S or E/W reference; None unless all are
    valid (three finite rationals with non-zero denominators, minutes and seconds below 60, within LIMIT)."""
    ref = ref.decode("ascii", "replace") if isinstance(ref, bytes) else str(ref)
    ref = ref.strip("\x00 ").upper()
    if ref not in hemispheres or len(ref) != 1 or len(value) != 3:
        return None
    if any(getattr(v, "denominator", 1) == 0 for v in value):
        return None
    degrees, minutes, seconds = (float(v) for v in value)
    if not all(math.isfinite(v) and v >= 0 for v in (degrees, minutes, seconds)) or minutes >= 60 or seconds >= 60:
        return None
    decimal = degrees + minutes / 60.0 + seconds / 3600.0
    if decimal > limit:
        return None
    return -decimal if ref == hemispheres[1] else decimal


def gps_from_exif(image: Image.Image) -> tuple[float, float] | None:
    """(lat, lon) in decimal degrees from the EXIF GPS block, or None when absent or not a valid position.

    Shown to users as "where your photo was taken", so a missing or odd hemisphere reference, a zero denominator or
    an out-of-range value gives no position rather than a wrong one. Read from the image as opened: exif_transpose
    and RGB conversion may drop the EXIF block.
    """
    try:
        gps = image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
        lat = _gps_degrees(gps[ExifTags.GPS.GPSLatitude], gps.get(ExifTags.GPS.GPSLatitudeRef, ""), "NS", 90.0)
        lon = _gps_degrees(gps[ExifTags.GPS.GPSLongitude], gps.get(ExifTags.GPS.GPSLongitudeRef, ""), "EW", 180.0)
    except Exception:  # noqa: BLE001 - missing tags, malformed rationals, odd containers: the photo is still usable without a position
        return None
    if lat is None or lon is None or (lat == 0 and lon == 0):
        return None
    return lat, lon


def map_url(lat: float, lon: float, zoom: int = 15) -> str:
    return f"https://www.openstreetmap.org/?mlat={lat:.5f}&mlon={lon:.5f}#map={zoom}/{lat:.5f}/{lon:.5f}"


@dataclass(frozen=True)
class Photo:
    """A decoded photo: upright RGB pixels and where it was taken (EXIF GPS), if known."""

    image: Image.Image
    location: tuple[float, float] | None


def read_photo(source: ImageInput, name: str = "image", min_short_side: int | None = None) -> Photo:
    """Decode SOURCE with load_rgb (orientation, odd modes, bomb refusal); raises ImageLoadError with a clear message.

    NAME labels raw bytes in error messages (e.g. the uploaded file's name); MIN_SHORT_SIDE lets big JPEGs decode at
    a reduced scale (see load_rgb).
    """
    if isinstance(source, bytes):
        image = load_rgb_bytes(source, name, min_short_side)
        with Image.open(io.BytesIO(source), formats=FORMATS) as original:
            return Photo(image, gps_from_exif(original))
    image = load_rgb(source, min_short_side)
    if isinstance(source, Image.Image):
        return Photo(image, gps_from_exif(source))
    with Image.open(source, formats=FORMATS) as original:
        return Photo(image, gps_from_exif(original))


@dataclass(frozen=True)
class Guess:
    name: str
    display_name: str
    probability: float


@dataclass(frozen=True)
class Place:
    city: str
    country: str
    lat: float | None
    lon: float | None

    @property
    def label(self) -> str:
        return ", ".join(p for p in (self.city, self.country) if p)

    @property
    def map_url(self) -> str | None:
        return None if self.lat is None or self.lon is None else map_url(self.lat, self.lon)


@dataclass(frozen=True)
class Prediction:
    """The answer for one photo: the five closest landmarks, where the best one is, where the photo was taken, and
    whether it is recognised (the best landmark's probability reaches the threshold; else "no known landmark")."""

    top: list[Guess]
    place: Place
    photo_location: tuple[float, float] | None
    recognised: bool
    threshold: float

    @property
    def best(self) -> Guess:
        return self.top[0]


def _read_json(path: Path, what: str) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelFolderError(f"{path} is damaged ({what} cannot be read: {error}); restore the export folder or export it again.") from None


def _export_info(model_path: Path) -> dict:
    path = model_path.parent / EXPORT_FILE
    info = _read_json(path, "the export record") if path.is_file() else {}
    if not isinstance(info, dict):
        raise ModelFolderError(f"{path} is not an export record (a JSON object); restore the export folder or export it again.")
    return info


def _threshold_from_export(model_path: Path, backend: str) -> float | None:
    """The threshold chosen on validation for the file BACKEND serves (int8 probabilities differ slightly from fp32)."""
    info = _export_info(model_path)
    value = (info.get("onnx_int8") or {}).get("threshold") if backend == "onnx-int8" else info.get("threshold")
    return None if value is None else float(value)


def default_num_threads(concurrent_requests: int = 1) -> int:
    """Split the cores between concurrent requests: oversubscribed intra-op threads make every request slower."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, concurrent_requests))


def _has_verified(model_path: Path, backend: str) -> bool:
    """The export wrote this backend's ONNX file and recorded its check in export.json (a stray file is not used)."""
    key, file = ONNX_BACKENDS[backend]
    folder = model_path.parent
    return (folder / file).is_file() and (folder / LABELS_FILE).is_file() and bool(_export_info(model_path).get(key))


def choose_backend(model_path: Path, backend: str = "auto") -> str:
    """'onnx-int8', 'onnx' or 'torchscript' for the export holding MODEL_PATH.

    auto picks the fastest file the exporter wrote and verified: the int8 ONNX model (kept by the exporter only within
    one point of fp32 validation top-1), else the fp32 ONNX model, else TorchScript. On CPU, ONNX Runtime answers
    about 1.7x faster than TorchScript and int8 another 1.6x (benchmarks/serving_speed.py).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend in ONNX_BACKENDS:
        if not _has_verified(model_path, backend):
            raise ModelNotFoundError(
                f"{model_path.parent / ONNX_BACKENDS[backend][1]} (with {EXPORT_FILE} and {LABELS_FILE} recording it) does not exist; "
                f"export with `python export.py RUN --out DIR --format {backend}`."
            )
        return backend
    if backend == "auto":
        return next((name for name in ONNX_BACKENDS if _has_verified(model_path, name)), "torchscript")
    return "torchscript"


def _check_file(folder: Path, name: str, info: dict) -> None:
    """FOLDER/NAME is the file the export wrote (sha256 in export.json), else ModelFolderError."""
    problem = checksums.problem(folder, name, info.get(checksums.FILES_KEY))
    if problem:
        raise ModelFolderError(problem)


def _labels(folder: Path, info: dict) -> list[dict] | None:
    path = folder / LABELS_FILE
    if not path.is_file():
        return None
    _check_file(folder, LABELS_FILE, info)
    labels = _read_json(path, "the class list")
    if not isinstance(labels, list) or not all(isinstance(e, dict) and isinstance(e.get("name"), str) for e in labels):
        raise ModelFolderError(f"{path} is not a list of {{name, display_name, ...}} entries; restore the export folder or export it again.")
    return labels


def _preprocess(info: dict) -> PreprocessConfig | None:
    if "preprocess" not in info:
        return None
    try:
        return PreprocessConfig.from_dict(info["preprocess"])
    except (KeyError, TypeError, ValueError):
        raise ModelFolderError(f"the preprocessing in {EXPORT_FILE} is malformed ({info['preprocess']!r:.80}); export the model again.") from None


def _check_fits(model, file: Path, info: dict, labels: list[dict] | None) -> None:
    """One blank photo through MODEL: as many outputs as classes, and the preprocessing export.json describes."""
    names = list(model.class_names)
    if labels is not None and [e["name"] for e in labels] != names:
        raise ModelFolderError(f"{file.parent / LABELS_FILE} lists other classes than {file.name}: the folder mixes files of two exports; export it again.")
    expected = _preprocess(info)
    if expected and (expected.input_size, expected.resize_size) != (int(model.preprocess.input_size), int(model.preprocess.resize_size)):
        raise ModelFolderError(f"{file.name} preprocesses photos differently from what {EXPORT_FILE} records; the folder mixes two exports: export it again.")
    size = int(model.preprocess.input_size)
    try:
        with torch.inference_mode():
            outputs = model.forward_batch([torch.zeros(3, size, size, dtype=torch.uint8)]).shape[-1]
    except Exception as error:  # noqa: BLE001 - wrong input size, broken graph: whatever the runtime says, in one line
        raise ModelFolderError(f"{file} does not run on a {size}x{size} photo ({type(error).__name__}); export it again.") from None
    if outputs != len(names) or (info.get("num_classes") is not None and int(info["num_classes"]) != outputs):
        raise ModelFolderError(
            f"{file} has {outputs} outputs but its export lists {len(names)} classes (export.json: {info.get('num_classes')}); "
            "the folder mixes files of two exports: export it again."
        )


def _load_backend(model_path: Path, backend: str, threads: int, info: dict):
    """The model of one backend, after checking its file, the labels and that they fit; ModelFolderError if not."""
    folder = model_path.parent
    labels = _labels(folder, info)
    if backend in ONNX_BACKENDS:
        file = folder / ONNX_BACKENDS[backend][1]
        _check_file(folder, file.name, info)
        preprocess = _preprocess(info)
        if preprocess is None:
            raise ModelFolderError(f"{folder / EXPORT_FILE} records no preprocessing for {file.name}; export it again.")
        try:
            model = OnnxPredictor(file, preprocess, labels, threads)
        except Exception as error:  # noqa: BLE001 - ONNX Runtime's own errors (invalid protobuf, ...) have no common base class
            raise ModelFolderError(f"{file} cannot be loaded by ONNX Runtime ({type(error).__name__}); export it again.") from None
    else:
        file = model_path
        if model_path.name == MODEL_FILE:
            _check_file(folder, MODEL_FILE, info)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch marks TorchScript deprecated; it is our export format
                model = torch.jit.load(str(model_path), map_location="cpu").eval()
        except Exception as error:  # noqa: BLE001 - a truncated or foreign file: torch raises RuntimeError, pickle errors, ...
            raise ModelFolderError(f"{model_path} is not a loadable TorchScript model ({type(error).__name__}); restore it or export it again.") from None
    _check_fits(model, file, info, labels)
    return model


def load_verified(model_path: Path, backend: str = "auto", threads: int = 1):
    """(backend, model) for the export holding MODEL_PATH, every file checked against export.json before use.

    With 'auto', an ONNX file that fails its checks (damaged, from another export, not loadable) is skipped with a
    warning and the next verified file is served; a file asked for by name, model.pt and labels.json are required:
    their failure is a ModelFolderError in one sentence.
    """
    info = _export_info(model_path)
    if info and checksums.FILES_KEY not in info:
        log.warning(f"{model_path.parent / EXPORT_FILE} records no checksums (an export from before they were recorded), "
                    "so its files are not verified; export it again or run `python -m landmark_lib.checksums FOLDER`.")
    first, order = choose_backend(model_path, backend), [*ONNX_BACKENDS, "torchscript"]
    candidates = [first] if backend != "auto" else [
        b for b in order[order.index(first):] if b == "torchscript" or _has_verified(model_path, b)
    ]
    for candidate in candidates:
        try:
            return candidate, _load_backend(model_path, candidate, threads, info)
        except ModelFolderError as error:
            if candidate == candidates[-1]:
                raise
            log.warning(f"{error} Serving the next verified file instead.")
    raise AssertionError("unreachable: the last candidate returns or raises")


class LandmarkService:
    """The exported model, loaded once; thread-safe predictions for the app, the tagger and benchmarks.

    BACKEND: 'auto' (the fastest verified file of the export, see choose_backend), 'onnx-int8', 'onnx' or 'torchscript'.
    All run the same torch preprocessing and expose the same class metadata; fp32 ONNX and TorchScript agree within
    1e-4, int8 within the exporter's validation check (and it brings its own threshold).
    """

    def __init__(self, model_path: str | os.PathLike, threshold: float | None = None, num_threads: int | None = None, backend: str = "auto"):
        self.model_path = Path(model_path)
        threads = num_threads or default_num_threads()
        torch.set_num_threads(threads)
        self.backend, self.model = load_verified(self.model_path, backend, threads)
        if threshold is None:
            threshold = _threshold_from_export(self.model_path, self.backend)
        self.threshold = DEFAULT_THRESHOLD if threshold is None else check_threshold(threshold)
        self.class_names: list[str] = list(self.model.class_names)
        self.display_names: list[str] = list(self.model.display_names)
        self.landmark_names = [d for n, d in zip(self.class_names, self.display_names) if n != BACKGROUND_CLASS]
        self.places = [
            Place(city, country, None if math.isnan(lat) else lat, None if math.isnan(lon) else lon)
            for city, country, lat, lon in zip(self.model.cities, self.model.countries, self.model.latitudes, self.model.longitudes)
        ]
        # Big photos are decoded (JPEG: DCT scaling) or shrunk in PIL to about this short side first, which bounds memory
        # and time; the model's own antialiased resize then works as usual.
        self.max_short_side = decode_short_side(self.model.preprocess.resize_size)

    @classmethod
    def from_spec(
        cls, spec: str | os.PathLike | None, threshold: float | None = None, num_threads: int | None = None, backend: str = "auto"
    ) -> LandmarkService:
        return cls(resolve_model_path(spec), threshold=threshold, num_threads=num_threads, backend=backend)

    def _to_tensor(self, image: Image.Image) -> torch.Tensor:
        factor = min(image.size) // self.max_short_side
        return pil_to_uint8_chw(image.reduce(factor) if factor >= 2 else image)

    def predict_photos(self, photos: list[Photo]) -> list[Prediction]:
        """Several decoded photos in one network call (forward_batch)."""
        if not photos:
            return []
        with torch.inference_mode():
            probs = self.model.forward_batch([self._to_tensor(p.image) for p in photos])
        values, indices = best_landmarks(probs, self.class_names, TOP_K)  # the background class is never an answer
        predictions = []
        for photo, row_values, row_indices in zip(photos, values.tolist(), indices.tolist()):
            top = [Guess(self.class_names[i], self.display_names[i], float(v)) for v, i in zip(row_values, row_indices)]
            predictions.append(
                Prediction(top, self.places[row_indices[0]], photo.location, top[0].probability >= self.threshold, self.threshold)
            )
        return predictions

    def predict(self, source: ImageInput, name: str = "image") -> Prediction:
        """One photo (PIL image, path or bytes) -> Prediction; raises ImageLoadError for files that are not usable photos."""
        return self.predict_photos([read_photo(source, name, self.max_short_side)])[0]

