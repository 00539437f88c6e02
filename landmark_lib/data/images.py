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
import re
import stat
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import LandmarkError
from . import decode_cost
from .decode_cost import JpegLayout, bytes_per_pixel, pixel_bytes

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


def _draft_scale(image: Image.Image, min_short_side: int | None, max_bytes: int) -> int:
    """The JPEG DCT scale (1, 2, 4 or 8) to decode at: as small as MIN_SHORT_SIDE allows, at least what fits MAX_BYTES."""

    def cost(scale: int) -> int:  # the pixels and rows of the image decoded at 1/SCALE (libjpeg rounds up)
        height = -(-image.height // scale)
        return -(-image.width // scale) * height * bytes_per_pixel(image) + height * decode_cost.ROW_BYTES

    scale = 1
    while scale < 8 and min_short_side and min(image.size) // (2 * scale) >= min_short_side:
        scale *= 2
    while scale < 8 and cost(scale) > max_bytes:
        scale *= 2
    return scale


def _check_jpeg(image: Image.Image, name: str, max_bytes: int) -> JpegLayout:
    """Refuse a JPEG whose scans would take more memory (full-size coefficients) or time than one photo may."""
    layout = decode_cost.jpeg_layout(image)
    width, height = image.size
    if layout.coefficient_bytes + pixel_bytes(image) // 64 > max_bytes:
        kind = "progressive" if layout.progressive else "multi-scan"
        megapixels = width * height * max_bytes / (layout.coefficient_bytes + 1) / 1e6
        raise ImageLoadError(
            f"{name} is a {kind} JPEG of {width}x{height} pixels, {math.ceil(layout.coefficient_bytes / 2**20)} MB to "
            f"decode (every scan is kept at full size), more than the {max_bytes // 2**20} MB limit; save it as a "
            f"baseline JPEG or shrink it below {megapixels:.0f} megapixels."
        )
    if layout.scans * layout.blocks > decode_cost.MAX_SCAN_BLOCKS:
        raise ImageLoadError(
            f"{name} is a JPEG of {width}x{height} pixels in {layout.scans} scans, more decoding work than one photo "
            "may take; save it again as an ordinary (baseline) JPEG."
        )
    return layout


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
        coefficients = 0
        if image.format in ("JPEG", "MPO") and not isinstance(source, Image.Image):
            coefficients = _check_jpeg(image, name, max_bytes).coefficient_bytes
            scale = _draft_scale(image, min_short_side, max_bytes - coefficients)
            if scale > 1:
                image.draft(None, (max(1, width // scale), max(1, height // scale)))
        cost = coefficients + pixel_bytes(image)
        if cost > max_bytes and not isinstance(source, Image.Image):
            raise ImageLoadError(_too_costly(name, image, (width, height), cost, max_bytes))
        orientation = _orientation(image)
        image.load()
        image = _central_strip(_shrink(image, min_short_side))
        if orientation in _ORIENTATION:
            image = image.transpose(_ORIENTATION[orientation])
        return _to_rgb(image)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as error:  # PIL's own guard (twice MAX_PIXELS) fires before ours can
        raise ImageLoadError(
            f"{name} is larger than the {MAX_PIXELS // 1_000_000} megapixel limit ({_megapixels(error)} megapixels); "
            "resize it before uploading."
        ) from error
    except UnidentifiedImageError as error:
        raise ImageLoadError(f"{name} is not an image file that can be read ({FORMAT_NAMES}).") from error
    except PermissionError as error:
        raise ImageLoadError(f"{name} cannot be read: permission denied; give this user read access to it.") from error
    except FileNotFoundError as error:
        raise ImageLoadError(f"{name} does not exist (moved or deleted while it was being read).") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"{name} is corrupt or truncated and cannot be decoded ({error}).") from error


def _too_costly(name: str, image: Image.Image, size: tuple[int, int], cost: int, max_bytes: int) -> str:
    """The refusal of a file that would cost COST bytes to decode, with the fix that fits it."""
    width, height = size
    if image.height * decode_cost.ROW_BYTES > image.width * image.height * bytes_per_pixel(image):
        fix = f"crop it to the part that matters (at most {MAX_ASPECT} times as long as wide)"
    else:
        fix = f"save it as a JPEG or shrink it below {max_bytes / bytes_per_pixel(image) / 1e6:.0f} megapixels"
    return (
        f"{name} is {width}x{height} pixels of {image.mode} {image.format or 'image'}, {math.ceil(cost / 2**20)} MB "
        f"to decode, more than the {max_bytes // 2**20} MB limit; {fix}."
    )


def _megapixels(error: Image.DecompressionBombError) -> str:
    """The pixel count PIL's bomb error names, in megapixels ("over 400" when it does not name one)."""
    found = re.search(r"\((\d+) pixels\)", str(error))
    return f"{int(found[1]) / 1e6:.0f}" if found else f"over {2 * MAX_PIXELS // 1_000_000}"


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
