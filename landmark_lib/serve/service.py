"""Serving: find an exported model (local, hf://, env, repo default), load it once, and turn photos into answers.

Shared by the Gradio app, the batch tagger and the benchmarks, so all three give the same answer for a photo.
"""
from __future__ import annotations

import io
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import torch
from PIL import ExifTags, Image

from .data.folder import BACKGROUND_CLASS
from .data.images import load_rgb, load_rgb_bytes, pil_to_uint8_chw
from .export import EXPORT_FILE, LABELS_FILE, MODEL_FILE
from .onnx_model import INT8_FILE, ONNX_FILE, OnnxPredictor
from .recognition import best_landmarks

HF_FILES = (MODEL_FILE, LABELS_FILE, EXPORT_FILE)
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "default" / MODEL_FILE
DEFAULT_THRESHOLD = 0.35
TOP_K = 5
BACKENDS = ("auto", "onnx-int8", "onnx", "torchscript")
ONNX_BACKENDS = {"onnx-int8": ("onnx_int8", INT8_FILE), "onnx": ("onnx", ONNX_FILE)}  # backend (= export.py --format) -> export.json key, file

ImageInput = Union[Image.Image, str, os.PathLike, bytes]


class ModelNotFoundError(FileNotFoundError):
    """A model spec that points at nothing loadable; the message says what was tried and how to fix it."""


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


def _dms_to_degrees(value: tuple, ref: str) -> float:
    degrees, minutes, seconds = (float(v) for v in value)
    decimal = degrees + minutes / 60.0 + seconds / 3600.0
    return -decimal if ref.strip().upper() in ("S", "W") else decimal


def gps_from_exif(image: Image.Image) -> tuple[float, float] | None:
    """(lat, lon) in decimal degrees from the EXIF GPS block, or None when absent or unusable.

    Read from the image as opened: exif_transpose and RGB conversion may drop the EXIF block.
    """
    try:
        gps = image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
        lat = _dms_to_degrees(gps[ExifTags.GPS.GPSLatitude], str(gps.get(ExifTags.GPS.GPSLatitudeRef, "N")))
        lon = _dms_to_degrees(gps[ExifTags.GPS.GPSLongitude], str(gps.get(ExifTags.GPS.GPSLongitudeRef, "E")))
    except Exception:  # missing tags, malformed rationals, odd containers: the photo is still usable without a position
        return None
    if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180) or (lat == 0 and lon == 0):
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
        with Image.open(io.BytesIO(source)) as original:
            return Photo(image, gps_from_exif(original))
    image = load_rgb(source, min_short_side)
    if isinstance(source, Image.Image):
        return Photo(image, gps_from_exif(source))
    with Image.open(source) as original:
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


def _export_info(model_path: Path) -> dict:
    path = model_path.parent / EXPORT_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


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
        self.backend = choose_backend(self.model_path, backend)
        if self.backend in ONNX_BACKENDS:
            self.model = OnnxPredictor.from_export_dir(self.model_path.parent, threads, ONNX_BACKENDS[self.backend][1])
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch marks TorchScript deprecated; it is our export format
                self.model = torch.jit.load(str(self.model_path), map_location="cpu").eval()
        if threshold is None:
            threshold = _threshold_from_export(self.model_path, self.backend)
        self.threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        self.class_names: list[str] = list(self.model.class_names)
        self.display_names: list[str] = list(self.model.display_names)
        self.landmark_names = [d for n, d in zip(self.class_names, self.display_names) if n != BACKGROUND_CLASS]
        self.places = [
            Place(city, country, None if math.isnan(lat) else lat, None if math.isnan(lon) else lon)
            for city, country, lat, lon in zip(self.model.cities, self.model.countries, self.model.latitudes, self.model.longitudes)
        ]
        # Big photos are decoded (JPEG: DCT scaling) or shrunk in PIL to about this short side first, which bounds memory
        # and time; the model's own antialiased resize then works as usual.
        self.max_short_side = 2 * int(self.model.preprocess.resize_size)

    @classmethod
    def from_spec(
        cls, spec: str | os.PathLike | None, threshold: float | None = None, num_threads: int | None = None, backend: str = "auto"
    ) -> "LandmarkService":
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

