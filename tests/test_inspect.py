"""inspect_dataset on a small generated dataset with broken files and train/test copies."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landmark_lib.cli import main
from landmark_lib.data.cache import resize_square
from landmark_lib.data.folder import DatasetError, open_split
from landmark_lib.data.images import load_rgb
from landmark_lib.data.inspect import dhash, hamming, inspect_dataset, summary

from helpers import time_limit


@pytest.fixture(autouse=True)
def _time_limit():
    with time_limit(60):
        yield


def _photo(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A smooth random image (upscaled 4x4 noise): its dHash survives re-encoding, unlike pure noise."""
    coarse = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize(size, Image.BICUBIC)


def _save(image: Image.Image, path: Path, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG" if path.suffix == ".png" else "JPEG", **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


@pytest.fixture
def dataset(tmp_path) -> Path:
    root = tmp_path / "ds"
    a0 = _save(_photo(0), root / "train/alpha/a0.jpg", quality=95)
    _save(_photo(1, (40, 56)), root / "train/alpha/a1.jpg")
    _save(_photo(2), root / "train/alpha/a2.png")
    _save(_photo(3, (50, 50)), root / "train/alpha/a3.jpg")
    (root / "train/alpha/zero.jpg").write_bytes(b"")
    (root / "train/alpha/text.jpg").write_text("this is not a photo")
    (root / "train/alpha/notes.txt").write_text("ignored")
    _save(_photo(4), root / "train/beta/b0.jpg")
    b1 = _photo(5, (72, 54))
    _save(b1, root / "train/beta/b1.jpg", quality=95)
    _save(_photo(6), root / "train/beta/b2.jpg")
    whole = _save(_photo(7), root / "train/beta/trunc.jpg")
    (root / "train/beta/trunc.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "test/alpha").mkdir(parents=True)
    (root / "test/alpha/t_exact.jpg").write_bytes(a0)
    _save(_photo(8), root / "test/alpha/t0.jpg")
    _save(b1.resize((70, 52), Image.BICUBIC), root / "test/beta/t_near.jpg", quality=60)  # re-encoded near copy
    _save(_photo(9), root / "test/beta/t1.jpg")
    return root


def test_report(dataset, tmp_path):
    out = tmp_path / "out"
    report = inspect_dataset(dataset, out, workers=0, samples_per_class=2)

    assert report["classes"] == ["alpha", "beta"]
    assert report["counts"] == {"train": {"alpha": 4, "beta": 3}, "test": {"alpha": 2, "beta": 2}}
    assert report["totals"]["train"] == {"files": 10, "images": 7}
    assert sorted(s["file"] for s in report["skipped"]) == [
        "train/alpha/text.jpg",
        "train/alpha/zero.jpg",
        "train/beta/trunc.jpg",
    ]
    reasons = {s["file"]: s["reason"] for s in report["skipped"]}
    assert "zero-byte" in reasons["train/alpha/zero.jpg"] and "truncated" in reasons["train/beta/trunc.jpg"]
    assert report["ignored_files"] == ["train/alpha/notes.txt"]

    assert report["exact_duplicates"] == [{"test": "test/alpha/t_exact.jpg", "train": "train/alpha/a0.jpg"}]
    assert [(d["test"], d["train"], d["same_class"]) for d in report["near_duplicates"]] == [
        ("test/beta/t_near.jpg", "train/beta/b1.jpg", True)
    ]

    split = open_split(dataset, "train")
    valid = [p for p, _ in split.samples if p.name not in ("text.jpg", "zero.jpg", "trunc.jpg")]
    pixels = np.concatenate(
        [np.asarray(resize_square(load_rgb(p), 64), np.float64).reshape(-1, 3) / 255 for p in valid]
    )
    np.testing.assert_allclose(report["train_mean"], pixels.mean(0), atol=1e-9)
    np.testing.assert_allclose(report["train_std"], pixels.std(0), atol=1e-9)

    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report))
    for name in ("samples.png", "class_distribution.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 100

    text = summary(report)
    assert "train: 7 images (3 unreadable skipped)" in text and "t_exact.jpg == train/alpha/a0.jpg" in text


def test_hamming_and_dhash():
    a = np.array([0, 0b1011, 2**64 - 1], dtype=np.uint64)
    assert hamming(a, a[:2]).tolist() == [[0, 3], [3, 0], [64, 61]]
    image = _photo(5, (72, 54))
    assert dhash(image) == dhash(image.copy()) and 0 <= dhash(image) < 2**64


def test_layout_errors_are_the_open_split_message(tmp_path, dataset, capsys):
    with pytest.raises(DatasetError) as expected:
        open_split(tmp_path / "missing", "train")
    with pytest.raises(DatasetError, match="does not exist") as got:
        inspect_dataset(tmp_path / "missing", tmp_path / "out", workers=0)
    assert str(got.value) == str(expected.value)

    for file in (dataset / "test").rglob("*"):
        if file.is_file():
            file.unlink()
    for folder in sorted((dataset / "test").rglob("*"), reverse=True):
        folder.rmdir()
    (dataset / "test").rmdir()
    assert main(["data", "inspect", str(dataset), "--out", str(tmp_path / "out"), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"error: {dataset} has no test/ folder (found: train); the layout must be {dataset}/test/<class>/<image>."
    )
