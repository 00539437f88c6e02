"""What decoding a file really costs, read from its header before any pixel is decoded.

Counting pixels times bytes per pixel is not enough: libjpeg keeps the full-size DCT coefficients of a progressive or
multi-scan JPEG (2 bytes per sample of every component, whatever the DCT scale), and replays every scan over them; PIL
keeps a pointer per row (a 1 x 130,000,000 PNG is a gigabyte of pointers) and decodes WebP through whole-canvas RGBA
buffers. The figures here are what `tests/test_hostile_decoding.py` measures (peak RSS of a fresh process).
"""

from __future__ import annotations

import io
import math
import mmap
import re
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from PIL import Image

# Peak bytes per pixel of decoding and shrinking: PIL stores RGB in 4 bytes, reduces alpha modes premultiplied (a
# second full-size copy), and modes it cannot reduce are converted at full size first (P -> RGBA, I;16 -> L).
BYTES_PER_PIXEL = {"1": 2, "L": 1, "P": 9, "PA": 12, "LA": 8, "RGBA": 8, "I;16": 5, "I;16L": 5, "I;16B": 5, "I;16N": 5}
# PIL decodes WebP through libwebp's RGBA canvases and copies the result: 15.4 bytes per pixel measured (lossy and
# lossless alike), whatever the mode it reports.
WEBP_BYTES_PER_PIXEL = 16
# PIL keeps one pointer per row and decodes row by row: 10 bytes and ~110 ns per row measured on a 1 x 2,000,000 PNG.
ROW_BYTES = 16
# A progressive JPEG replays every scan over all its coefficient blocks (~36 ns per block and scan here): 1010 scans of
# a 16 MP photo took 13.6 s. Ordinary files have about 10 scans, far below this bound (~1.5 s of scans).
MAX_SCAN_BLOCKS = 40_000_000
_PROGRESSIVE_SOF = {0xC2, 0xC6, 0xCA, 0xCE}
_FRAME_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_MARKER = re.compile(rb"\xff[\xc0-\xcf\xd8-\xfe]")  # never 0xFF00 (stuffed data) nor RSTn inside a scan


@dataclass(frozen=True)
class JpegLayout:
    """The part of a JPEG's structure that decides its cost: how many scans, and its coefficient blocks."""

    scans: int
    progressive: bool
    blocks: int  # 8x8 coefficient blocks of all components (chroma subsampling counted)

    @property
    def coefficient_bytes(self) -> int:
        """What libjpeg keeps for the whole image when the data comes in several scans (64 int16 per block)."""
        return self.blocks * 128 if self.progressive or self.scans > 1 else 0


def _blocks(image: Image.Image) -> int:
    """8x8 blocks of every component, from the frame's sampling factors (PIL's image.layer: (id, h, v, table))."""
    width, height = image.size
    layers = getattr(image, "layer", None) or [("1", 1, 1, 0)] * len(image.getbands())
    h_max = max(h for _, h, _, _ in layers)
    v_max = max(v for _, _, v, _ in layers)
    return sum(
        math.ceil(math.ceil(width * h / h_max) / 8) * math.ceil(math.ceil(height * v / v_max) / 8)
        for _, h, v, _ in layers
    )


def _scans(data) -> tuple[int, bool]:
    """(number of scans, progressive) of the first image of DATA (a JPEG's bytes), walking its segments."""
    scans, progressive, position, end = 0, False, 2, len(data)
    while position + 4 <= end:
        found = _MARKER.search(data, position)
        if found is None:
            break
        start = found.start()
        marker = data[start + 1]
        if marker == 0xD9:  # end of the first image (an MPO's next pictures follow)
            break
        if marker in _FRAME_SOF:
            progressive = marker in _PROGRESSIVE_SOF
        scans += marker == 0xDA
        # Segment lengths are read only to skip headers; a scan's data is skipped by the search for the next marker.
        position = start + 2 + int.from_bytes(bytes(data[start + 2 : start + 4]), "big")
    return scans, progressive


def _readable(fp: BinaryIO):
    """FP's bytes without copying them where possible (a BytesIO's buffer, a file's memory map)."""
    if isinstance(fp, io.BytesIO):
        return fp.getbuffer()
    try:
        return mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        position = fp.tell()
        fp.seek(0)
        data = fp.read()
        fp.seek(position)
        return data


def jpeg_layout(image: Image.Image) -> JpegLayout:
    """The scans and coefficient blocks of an opened (not yet decoded) JPEG or MPO."""
    data = _readable(cast(Any, image).fp)  # an opened, not yet decoded image file keeps its file object
    try:
        scans, progressive = _scans(data)
    finally:
        if isinstance(data, (memoryview, mmap.mmap)):
            data.release() if isinstance(data, memoryview) else data.close()
    return JpegLayout(scans, progressive, _blocks(image))


def pixel_bytes(image: Image.Image) -> int:
    """Peak bytes of decoding IMAGE at its (possibly drafted) size: its pixels, the copies PIL makes, its rows."""
    return image.width * image.height * bytes_per_pixel(image) + image.height * ROW_BYTES


def bytes_per_pixel(image: Image.Image) -> int:
    """Peak bytes per pixel of decoding IMAGE's format and mode (rows not counted)."""
    return WEBP_BYTES_PER_PIXEL if image.format == "WEBP" else BYTES_PER_PIXEL.get(image.mode, 4)
