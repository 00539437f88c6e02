"""The app over real HTTP (gradio_client): every awkward upload gets a top-5 or a clear message, and the server keeps serving."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import ExifTags, Image

from landmark_lib.serve.service import LandmarkService
from landmark_lib.serve.web import build_demo, describe, launch

from helpers import CLASSES, free_port, make_photo

DISPLAY_NAMES = {c.display_name for c in CLASSES}
ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def client(app_url: str) -> Iterator[Client]:
    client = Client(app_url, verbose=False)
    yield client
    client.close()


def ask(client: Client, path: Path | None) -> tuple[dict, str]:
    return client.predict(None if path is None else handle_file(str(path)), api_name="/predict")


def confidences(label: dict) -> dict[str, float]:
    return {c["label"]: c["confidence"] for c in label["confidences"]}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path) -> None:
    """A PNG of about 100 bytes that claims 100000 x 100000 pixels: decoding it would need 30 GB."""
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + _png_chunk(b"IEND", b"")
    )
    path.write_bytes(png)


def save(image: Image.Image, fmt: str, **options) -> Callable[[Path], None]:
    return lambda path: image.save(path, fmt, **options)


def truncated_jpeg(path: Path) -> None:
    buffer = io.BytesIO()
    make_photo(200, 150).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[: buffer.tell() // 2])


def animated_gif(path: Path) -> None:
    frames = [make_photo(seed=s).convert("P") for s in range(3)]
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


sixteen_bit = Image.fromarray((np.linspace(0, 65535, 96 * 64).reshape(64, 96)).astype(np.uint16))
rgba = make_photo().convert("RGBA")
rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))

# name -> (how to write the file, None if a top-5 is expected else a pattern the error message must contain)
CASES: dict[str, tuple[Callable[[Path], None], str | None]] = {
    "zero_byte.jpg": (lambda p: p.write_bytes(b""), "empty (zero-byte) file"),
    "truncated.jpg": (truncated_jpeg, "corrupt or truncated"),
    "notes.jpg": (lambda p: p.write_text("this is not a photo\n"), "not an image file"),
    "bomb.png": (bomb_png, "larger than the 200 megapixel limit"),
    "alpha.png": (save(rgba, "PNG"), None),
    "grey.jpg": (save(make_photo().convert("L"), "JPEG"), None),
    "cmyk.jpg": (save(make_photo().convert("CMYK"), "JPEG"), None),
    "sixteen_bit.png": (save(sixteen_bit, "PNG"), None),
    "one_pixel.png": (save(Image.new("RGB", (1, 1), (200, 30, 30)), "PNG"), None),
    "animated.gif": (animated_gif, None),
    "photo.webp": (save(make_photo(), "WEBP"), None),
}


def test_normal_photo(client: Client, tmp_path: Path) -> None:
    make_photo().save(tmp_path / "photo.jpg")
    label, markdown = ask(client, tmp_path / "photo.jpg")
    scores = confidences(label)
    assert len(scores) == 5 and set(scores) <= DISPLAY_NAMES
    assert label["label"] == "Taj Mahal"
    assert "Agra, India" in markdown and "openstreetmap.org/?mlat=27.17500&mlon=78.04200" in markdown


@pytest.mark.parametrize("name", list(CASES))
def test_awkward_upload_then_normal_request(client: Client, tmp_path: Path, name: str) -> None:
    write, error = CASES[name]
    write(tmp_path / name)
    if error is None:
        label, _ = ask(client, tmp_path / name)
        assert len(confidences(label)) == 5 and set(confidences(label)) <= DISPLAY_NAMES
    else:
        label, markdown = ask(client, tmp_path / name)
        shown = markdown.replace("\\", "")  # page.plain escapes Markdown punctuation; the reader sees it unescaped
        assert not label and shown.startswith("### Cannot read this photo") and error in shown
        assert name in shown and "/tmp" not in shown  # names the user's file, not a server path
    make_photo().save(tmp_path / "after.jpg")
    assert len(confidences(ask(client, tmp_path / "after.jpg")[0])) == 5


def test_no_photo(client: Client) -> None:
    label, markdown = ask(client, None)
    assert not label and "Upload a photo first" in markdown


def test_exif_rotated_photo_same_answer_as_upright(client: Client, tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = 8  # "rotate 90 degrees counter-clockwise to view"
    make_photo(120, 80).transpose(Image.Transpose.ROTATE_270).save(tmp_path / "rotated.jpg", quality=90, exif=exif)
    with Image.open(tmp_path / "rotated.jpg") as stored:
        stored.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "upright.png")
    rotated, upright = (
        confidences(ask(client, tmp_path / "rotated.jpg")[0]),
        confidences(ask(client, tmp_path / "upright.png")[0]),
    )
    assert list(rotated) == list(upright)
    assert list(rotated.values()) == pytest.approx(list(upright.values()), abs=1e-6)


def test_photo_gps_shown(client: Client, tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: (41.0, 53.0, 24.0), 3: "E", 4: (12.0, 29.0, 32.0)}
    make_photo().save(tmp_path / "gps.jpg", exif=exif)
    _, markdown = ask(client, tmp_path / "gps.jpg")
    assert "EXIF GPS" in markdown and "41.8900° N, 12.4922° E" in markdown


def test_unrecognised_message(model_dir: Path) -> None:
    strict = LandmarkService(model_dir / "model.pt", threshold=0.99, num_threads=1)
    text = describe(strict.predict(make_photo()))
    assert (
        text.startswith("### No known landmark recognised")
        and "below both operating points" in text
        and "Agra" not in text
        and "Closest known landmarks: Taj Mahal" in text
    )


def test_page_never_headlines_a_landmark_it_did_not_recognise(model_dir: Path, tmp_path: Path) -> None:
    strict = LandmarkService(model_dir / "model.pt", threshold=0.99, num_threads=1)
    demo = build_demo(strict)
    url = launch(demo, "127.0.0.1", free_port(), block=False)
    try:
        make_photo().save(tmp_path / "photo.jpg")
        strict_client = Client(url, verbose=False)
        label, markdown = ask(strict_client, tmp_path / "photo.jpg")
        strict_client.close()
    finally:
        demo.close()
    assert label["label"] == "No known landmark"  # the heading; the bars are the closest landmarks, by name
    assert list(confidences(label))[0] == "Taj Mahal" and len(confidences(label)) == 5
    assert markdown.startswith("### No known landmark recognised") and "Closest known landmarks" in markdown
