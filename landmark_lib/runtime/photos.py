"""A photo as the server sees it: decoded upright (any format, mode or size, with clear errors) and where it was
taken, from its EXIF GPS block."""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PIL import ExifTags, Image

from ..data.images import FORMATS, load_rgb, load_rgb_bytes, pil_to_uint8_array

ImageInput = Image.Image | str | os.PathLike | bytes


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


def taken_from_exif(image: Image.Image) -> str | None:
    """When the photo was taken (EXIF DateTimeOriginal) as 'YYYY-MM-DDTHH:MM:SS' camera-local time, or None when
    absent or not a valid date (the geotagger's same-trip spreading compares these within one folder)."""
    try:
        value = image.getexif().get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.DateTimeOriginal)
        text = value.decode("ascii") if isinstance(value, bytes) else str(value)
        return datetime.strptime(text.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except Exception:  # noqa: BLE001 - a missing or malformed date only means no spreading for this photo
        return None


@dataclass(frozen=True)
class Photo:
    """A decoded photo: upright RGB pixels, where it was taken (EXIF GPS) and when (EXIF DateTimeOriginal), if known."""

    image: Image.Image
    location: tuple[float, float] | None
    taken: str | None = None


def read_photo(source: ImageInput, name: str = "image", min_short_side: int | None = None) -> Photo:
    """Decode SOURCE with load_rgb (orientation, odd modes, bomb refusal); raises ImageLoadError with a clear message.

    NAME labels raw bytes in error messages (e.g. the uploaded file's name); MIN_SHORT_SIDE lets big JPEGs decode at
    a reduced scale (see load_rgb).
    """
    if isinstance(source, bytes):
        image = load_rgb_bytes(source, name, min_short_side)
        with Image.open(io.BytesIO(source), formats=FORMATS) as original:
            return Photo(image, gps_from_exif(original), taken_from_exif(original))
    image = load_rgb(source, min_short_side)
    if isinstance(source, Image.Image):
        return Photo(image, gps_from_exif(source), taken_from_exif(source))
    with Image.open(source, formats=FORMATS) as original:
        return Photo(image, gps_from_exif(original), taken_from_exif(original))


def model_pixels(image: Image.Image, max_short_side: int) -> np.ndarray:
    """The uint8 [3, H, W] pixels the model is given for a decoded IMAGE: halved (box filter) while still twice
    MAX_SHORT_SIDE, so every way in (a served photo, a gallery photo, the gallery study's) feeds the same pixels."""
    factor = min(image.size) // max_short_side
    return pil_to_uint8_array(image.reduce(factor) if factor >= 2 else image)
