"""Robust image decoding: every photo a user can throw at us becomes an upright RGB image or a clear error.

This is the one decoding path of the app, the tagger, evaluation, export's checks and training, so it also bounds
what one file may cost: a few hundred bytes can describe a 10000x10000 16-bit PNG or a 1x30000 strip, and without
limits either becomes gigabytes (decoded pixels, or a strip resized on its short side before the model's crop).
"""

from __future__ import annotations

import ctypes
import io
import math
import os
import stat
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import LandmarkError

if TYPE_CHECKING:
    import torch

# Larger than any real photo (a 200 MP phone image is 2e8 px), smaller than a decompression bomb.
MAX_PIXELS = 200_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# Pixel memory one decode may take (~2 s of PNG decoding on one core, see benchmarks/hostile_load.py). JPEGs larger
# than this are decoded at 1/2..1/8 scale (DCT scaling) to fit; other formats are refused with a clear message.
MAX_DECODE_BYTES = 128 * 2**20
# Longest side kept, as a multiple of the short side: every consumer centre-crops a square (the model's crop, the
# cache's resize_square), so the rest of a longer strip is never used, and a 1x30000 strip resized to a 256 px
# short side would be 30 GB of floats.
MAX_ASPECT = 4
# What the messages promise; Image.open would also try EPS (Ghostscript), PSD, ICO and a dozen more.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")  # JPEG includes MPO, the multi-picture JPEG of many phones
FORMAT_NAMES = "JPEG, PNG, WebP, GIF, BMP, TIFF"
# Peak bytes per pixel of decoding and shrinking: PIL stores RGB in 4 bytes, reduces alpha modes premultiplied (a
# second full-size copy), and modes it cannot reduce are converted at full size first (P -> RGBA, I;16 -> L).
_DECODE_BYTES_PER_PIXEL = {
    "1": 2,
    "L": 1,
    "P": 9,
    "PA": 12,
    "LA": 8,
    "RGBA": 8,
    "I;16": 5,
    "I;16L": 5,
    "I;16B": 5,
    "I;16N": 5,
}
# EXIF orientation -> the transposition that makes the photo upright (the table of ImageOps.exif_transpose).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

Source = str | os.PathLike | BinaryIO | Image.Image


class ImageLoadError(LandmarkError, ValueError):
    """A file that cannot be turned into a photo; the message says why in one sentence."""


def decode_short_side(resize_size: int) -> int:
    """The short side photos are decoded (JPEG) or reduced to before a model with this resize side sees them.

    Twice the resize side leaves the model's own antialiased resize its usual work; the app, the tagger, export's
    checks and evaluation all use it, so evaluation measures the pixels the app serves.
    """
    return 2 * int(resize_size)


def _sixteen_bit_to_l(image: Image.Image) -> Image.Image:
    """I;16 -> L with the contrast stretched to the brightest pixel, through a lookup table (1 byte per pixel out)."""
    array = np.asarray(image)
    high = int(array.max()) if array.size else 0
    scale = 255.0 / high if high > 255 else 1.0
    table = np.clip(np.arange(65536, dtype=np.float64) * scale, 0, 255).astype(np.uint8)
    return Image.fromarray(table[array], mode="L")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode (L, LA, P, RGBA, CMYK, I;16, F, ...) to 8-bit RGB, alpha composited on white."""
    if image.mode.startswith("I;16"):
        image = _sixteen_bit_to_l(image)
    if image.mode in ("I", "F"):
        array = np.array(image, dtype=np.float64)
        high = array.max() if array.size else 0.0
        if high > 255:
            array *= 255.0 / high
        image = Image.fromarray(np.clip(array, 0, 255, out=array).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _decode_bytes(image: Image.Image) -> int:
    return image.width * image.height * _DECODE_BYTES_PER_PIXEL.get(image.mode, 4)


def _draft_scale(image: Image.Image, min_short_side: int | None, max_bytes: int) -> int:
    """The JPEG DCT scale (1, 2, 4 or 8) to decode at: as small as MIN_SHORT_SIDE allows, at least what fits MAX_BYTES."""
    scale = 1
    while scale < 8 and min_short_side and min(image.size) // (2 * scale) >= min_short_side:
        scale *= 2
    while scale < 8 and _decode_bytes(image) > max_bytes * scale * scale:
        scale *= 2
    return scale


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a malformed EXIF block (PIL raises many kinds): the photo is still usable, as stored
        return 1


def _shrink(image: Image.Image, min_short_side: int | None) -> Image.Image:
    """Reduce by an integer factor towards MIN_SHORT_SIDE (modes PIL cannot reduce are converted first)."""
    if image.mode.startswith("I;16"):
        image = _sixteen_bit_to_l(image)
    elif image.mode in ("P", "PA", "1"):
        image = image.convert("L" if image.mode == "1" else "RGBA")
    factor = min(image.size) // min_short_side if min_short_side else 1
    return image.reduce(factor) if factor >= 2 else image


def _central_strip(image: Image.Image) -> Image.Image:
    """The centre of a strip longer than MAX_ASPECT times its short side (all a centre-cropping consumer uses)."""
    width, height = image.size
    short = min(width, height)
    if max(width, height) <= MAX_ASPECT * short:
        return image
    keep = MAX_ASPECT * short
    if width > height:
        left = (width - keep) // 2
        return image.crop((left, 0, left + keep, height))
    top = (height - keep) // 2
    return image.crop((0, top, width, top + keep))


def _check_regular_file(path: str | os.PathLike, name: str) -> None:
    """Refuse FIFOs, devices and directories before opening them (a FIFO blocks, /dev/zero never ends)."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ImageLoadError(f"{name} is not a regular file (a folder, device or pipe); pass a photo file.")
    if info.st_size == 0:
        raise ImageLoadError(f"{name} is an empty (zero-byte) file, not an image.")


def load_rgb(source: Source, min_short_side: int | None = None, max_bytes: int = MAX_DECODE_BYTES) -> Image.Image:
    """Decode a file, a file object or a PIL image into an upright RGB PIL image.

    Takes the first frame of animations, applies the EXIF orientation, keeps the centre of very long strips
    (MAX_ASPECT) and refuses zero-byte, truncated, non-image, unadvertised-format (FORMATS) and decompression-bomb
    sized files with ImageLoadError. A decode takes at most MAX_BYTES of pixels: larger JPEGs decode at a reduced
    scale, other formats are refused. With MIN_SHORT_SIDE, a photo at least twice that size is shrunk on the way
    (JPEG: decoded at 1/2, 1/4 or 1/8 scale; others: reduced before any conversion), the short side staying
    >= MIN_SHORT_SIDE: a 12-megapixel phone photo decodes several times faster (benchmarks/jpeg_decode.py).
    """
    name = getattr(source, "name", None) or (str(source) if isinstance(source, (str, os.PathLike)) else "image")
    try:
        if isinstance(source, Image.Image):
            image = source
            if getattr(image, "tell", lambda: 0)() != 0:
                image.seek(0)
        else:
            if isinstance(source, (str, os.PathLike)):
                _check_regular_file(source, name)
            image = Image.open(source, formats=FORMATS)
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImageLoadError(
                f"{name} is {width}x{height} pixels, larger than the {MAX_PIXELS // 1_000_000} megapixel limit; "
                "resize it before uploading."
            )
        if image.format in ("JPEG", "MPO") and not isinstance(source, Image.Image):
            scale = _draft_scale(image, min_short_side, max_bytes)
            if scale > 1:
                image.draft(None, (max(1, width // scale), max(1, height // scale)))
        if _decode_bytes(image) > max_bytes and not isinstance(source, Image.Image):
            megapixels = max_bytes / _DECODE_BYTES_PER_PIXEL.get(image.mode, 4) / 1e6
            raise ImageLoadError(
                f"{name} is {width}x{height} pixels of {image.mode}, {math.ceil(_decode_bytes(image) / 2**20)} MB to decode, "
                f"more than the {max_bytes // 2**20} MB limit; save it as a JPEG or shrink it below {megapixels:.0f} megapixels."
            )
        orientation = _orientation(image)
        image.load()
        image = _central_strip(_shrink(image, min_short_side))
        if orientation in _ORIENTATION:
            image = image.transpose(_ORIENTATION[orientation])
        return _to_rgb(image)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageLoadError(f"{name} is too large to decode safely ({error}).") from error
    except UnidentifiedImageError as error:
        raise ImageLoadError(f"{name} is not an image file that can be read ({FORMAT_NAMES}).") from error
    except PermissionError as error:
        raise ImageLoadError(f"{name} cannot be read: permission denied; give this user read access to it.") from error
    except FileNotFoundError as error:
        raise ImageLoadError(f"{name} does not exist (moved or deleted while it was being read).") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"{name} is corrupt or truncated and cannot be decoded ({error}).") from error


def load_rgb_bytes(data: bytes, name: str = "image", min_short_side: int | None = None) -> Image.Image:
    """load_rgb for raw bytes (uploads, HTTP bodies)."""
    if not data:
        raise ImageLoadError(f"{name} is an empty (zero-byte) file, not an image.")
    buffer = io.BytesIO(data)
    buffer.name = name
    return load_rgb(buffer, min_short_side)


def release_memory() -> None:
    """Give freed pixel buffers back to the OS: glibc keeps freed heap memory, so a server that once decoded a big
    photo would otherwise hold on to that peak for good. A no-op where malloc_trim does not exist (not glibc)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def pil_to_uint8_array(image: Image.Image) -> np.ndarray:
    """RGB PIL image -> contiguous uint8 array [3, H, W], what every backend takes (serving needs no torch)."""
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()  # a writable copy (torch.from_numpy wants one)


def pil_to_uint8_chw(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> uint8 tensor [3, H, W], the input format of the exported predictor."""
    import torch  # training, evaluation and export; serving uses pil_to_uint8_array

    return torch.from_numpy(pil_to_uint8_array(image))
