"""Robust image decoding: every photo a user can throw at us becomes an upright RGB image or a clear error."""
from __future__ import annotations

import io
import math
import os
from typing import BinaryIO, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import LandmarkError

# Larger than any real photo (a 200 MP phone image is 2e8 px), smaller than a decompression bomb.
MAX_PIXELS = 200_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

Source = Union[str, os.PathLike, BinaryIO, Image.Image]


class ImageLoadError(LandmarkError, ValueError):
    """A file that cannot be turned into a photo; the message says why in one sentence."""


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode (L, LA, P, RGBA, CMYK, I;16, F, ...) to 8-bit RGB, alpha composited on white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        high = array.max() if array.size else 0.0
        scale = 255.0 / high if high > 255 else 1.0
        image = Image.fromarray(np.clip(array * scale, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_rgb(source: Source, min_short_side: int | None = None) -> Image.Image:
    """Decode a file, a file object or a PIL image into an upright RGB PIL image.

    Takes the first frame of animations, applies the EXIF orientation, and refuses
    zero-byte, truncated, non-image and decompression-bomb sized files with ImageLoadError.
    With MIN_SHORT_SIDE, a JPEG at least twice that size is decoded at 1/2, 1/4 or 1/8 scale (DCT scaling, the short
    side staying >= MIN_SHORT_SIDE): a 12-megapixel phone photo decodes several times faster (benchmarks/jpeg_decode.py).
    """
    name = getattr(source, "name", None) or (str(source) if isinstance(source, (str, os.PathLike)) else "image")
    try:
        if isinstance(source, Image.Image):
            image = source
        else:
            if isinstance(source, (str, os.PathLike)) and os.path.getsize(source) == 0:
                raise ImageLoadError(f"{name} is an empty (zero-byte) file, not an image.")
            image = Image.open(source)
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImageLoadError(
                f"{name} is {width}x{height} pixels, larger than the {MAX_PIXELS // 1_000_000} megapixel limit; "
                "resize it before uploading."
            )
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        if min_short_side and min(width, height) >= 2 * min_short_side and not isinstance(source, Image.Image):
            scale = min_short_side / min(width, height)
            image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))  # no-op for formats other than JPEG
        image.load()
        image = ImageOps.exif_transpose(image) or image
        return _to_rgb(image)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageLoadError(f"{name} is too large to decode safely ({error}).") from error
    except UnidentifiedImageError as error:
        raise ImageLoadError(f"{name} is not an image file that can be read (JPEG, PNG, WebP, GIF, BMP, TIFF).") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"{name} is corrupt or truncated and cannot be decoded ({error}).") from error


def load_rgb_bytes(data: bytes, name: str = "image", min_short_side: int | None = None) -> Image.Image:
    """load_rgb for raw bytes (uploads, HTTP bodies)."""
    if not data:
        raise ImageLoadError(f"{name} is an empty (zero-byte) file, not an image.")
    buffer = io.BytesIO(data)
    buffer.name = name  # type: ignore[attr-defined]
    return load_rgb(buffer, min_short_side)


def pil_to_uint8_chw(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> uint8 tensor [3, H, W], the input format of the exported predictor."""
    return torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()
