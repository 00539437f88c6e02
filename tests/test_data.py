"""The data layer: layout checks, decoding of awkward photos, the stratified split and the resized cache."""

from __future__ import annotations

import io
import os
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from landmark_lib.data.cache import build_cache
from landmark_lib.data.classes import load_class_info
from landmark_lib.data.folder import DatasetError, open_split
from landmark_lib.data.images import ImageLoadError, load_rgb, load_rgb_bytes
from landmark_lib.data.split import stratified_split
from landmark_lib.labels import display_name

from helpers import make_dataset


def test_display_names_from_course_and_snake_case_folders():
    assert display_name("00.Haleakala_National_Park") == "Haleakala National Park"
    assert display_name("taj_mahal") == "Taj Mahal"


def test_classes_json_gives_display_names_and_places(tmp_path):
    (tmp_path / "classes.json").write_text(
        '[{"name": "taj_mahal", "display_name": "Taj Mahal", "city": "Agra", "country": "India", "lat": 27.175, "lon": 78.042}]'
    )
    info = load_class_info(tmp_path, ["taj_mahal", "01.Other_Place"])
    assert (info[0].display_name, info[0].place, info[0].lat) == ("Taj Mahal", "Agra, India", 27.175)
    assert info[1].display_name == "Other Place" and info[1].lat is None


def test_split_is_stratified_deterministic_and_disjoint():
    targets = [0] * 100 + [1] * 20 + [2] * 3
    train, valid = stratified_split(targets, 0.2, seed=1)
    assert (train, valid) == stratified_split(targets, 0.2, seed=1)
    assert valid != stratified_split(targets, 0.2, seed=2)[1]
    assert not set(train) & set(valid) and sorted(train + valid) == list(range(len(targets)))
    counts = Counter(targets[i] for i in valid)
    assert counts == {0: 20, 1: 4, 2: 1}  # every class is represented in validation


def _rgb(mode: str) -> Image.Image:
    gradient = np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (24, 1))
    return Image.fromarray(np.stack([gradient, gradient[::-1], np.full_like(gradient, 90)], axis=2)).convert(mode)


@pytest.mark.parametrize("mode, fmt", [("L", "PNG"), ("CMYK", "JPEG"), ("RGBA", "PNG"), ("P", "GIF"), ("RGB", "WEBP")])
def test_awkward_modes_decode_to_rgb(mode, fmt):
    buffer = io.BytesIO()
    _rgb(mode).save(buffer, format=fmt)
    image = load_rgb_bytes(buffer.getvalue(), f"photo.{fmt.lower()}")
    assert image.mode == "RGB" and image.size == (32, 24)


def test_sixteen_bit_png_keeps_its_contrast(tmp_path):
    array = (np.tile(np.linspace(0, 65535, 32), (24, 1))).astype(np.uint16)
    Image.fromarray(array).save(tmp_path / "deep.png")
    rgb = np.asarray(load_rgb(tmp_path / "deep.png"))
    assert rgb[:, 0].max() < 10 and rgb[:, -1].min() > 245


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    _rgb("RGB").save(tmp_path / "rotated.jpg", exif=exif)
    assert load_rgb(tmp_path / "rotated.jpg").size == (24, 32)


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"hello, not a photo", "not an image"), ("truncated", "corrupt or truncated")],
)
def test_unusable_files_raise_one_clear_error(tmp_path, content, message):
    if content == "truncated":
        buffer = io.BytesIO()
        _rgb("RGB").resize((256, 256)).save(buffer, format="JPEG")
        content = buffer.getvalue()[:600]
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=message):
        load_rgb(path)


def test_layout_errors_name_the_problem(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        open_split(tmp_path / "missing")
    (tmp_path / "train" / "empty_class").mkdir(parents=True)
    with pytest.raises(DatasetError, match="has no images"):
        open_split(tmp_path)


def test_cache_is_built_once_reused_and_rebuilt_when_the_dataset_changes(tmp_path):
    root = make_dataset(tmp_path / "data", classes=2, train_per_class=4, test_per_class=1)
    (root / "train" / "00.Landmark_A" / "broken.jpg").write_bytes(b"not a jpeg")
    split = open_split(root)
    first = build_cache(split, 40, tmp_path / "cache")
    assert first.images.shape == (9, 40, 40, 3)
    assert len(first.readable) == 8 and len(first.skipped) == 1 and "broken.jpg" in first.skipped[0]
    mtime = (first.folder / "images.npy").stat().st_mtime_ns
    again = build_cache(open_split(root), 40, tmp_path / "cache")
    assert again.folder == first.folder and (again.folder / "images.npy").stat().st_mtime_ns == mtime
    # one photo replaced: a new cache, never stale pixels
    photo = root / "train" / "01.Landmark_B" / "000.jpg"
    Image.new("RGB", (60, 50), (255, 255, 255)).save(photo)
    os.utime(photo, ns=(mtime + 10**9, mtime + 10**9))
    changed = build_cache(open_split(root), 40, tmp_path / "cache")
    assert changed.folder != first.folder
    row = changed.files.index(str(photo))
    assert changed.images[row].min() == 255


def test_the_training_cache_keeps_photos_beyond_the_serving_budget(tmp_path):
    """The serving decode budget refuses big non-JPEG uploads; the dataset's own photos still go into the cache."""
    (tmp_path / "data" / "train" / "a").mkdir(parents=True)
    big = tmp_path / "data" / "train" / "a" / "big.png"
    Image.new("RGBA", (4100, 4100), (10, 20, 30, 128)).save(big, compress_level=1)  # 134.5 MB to decode as RGBA
    with pytest.raises(ImageLoadError, match="more than the 128 MB limit"):
        load_rgb(big)
    cached = build_cache(open_split(tmp_path / "data", "train"), 32, tmp_path / "cache", workers=0)
    assert len(cached.readable) == 1 and cached.skipped == []
