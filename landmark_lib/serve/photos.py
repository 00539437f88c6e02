"""A photo as the server sees it: decoded upright (any format, mode or size, with clear errors) and where it was
taken, from its EXIF GPS block."""
from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from typing import Union

from PIL import ExifTags, Image

from ..data.images import load_rgb, load_rgb_bytes

ImageInput = Union[Image.Image, str, os.PathLike, bytes]


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
