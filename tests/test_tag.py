"""Batch tagging: every photo of a folder tree gets a row; unreadable ones an error note instead of a crash."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import ExifTags, Image

from helpers import CLASSES, make_photo

from landmark_lib.cli import main

DISPLAY_NAMES = {c.display_name for c in CLASSES}


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "trip" / "day2").mkdir(parents=True)
    make_photo(seed=1).save(folder / "a.jpg")
    make_photo(90, 140, seed=2).save(folder / "trip" / "b.png")
    exif = Image.Exif()
    exif[ExifTags.IFD.GPSInfo] = {1: "S", 2: (13.0, 9.0, 46.8), 3: "W", 4: (72.0, 32.0, 42.0)}
    make_photo(seed=3).save(folder / "trip" / "day2" / "c.jpg", exif=exif)
    (folder / "trip" / "broken.jpg").write_text("not a photo")
    (folder / "trip" / "day2" / "empty.png").write_bytes(b"")
    (folder / "trip" / "notes.txt").write_text("ignored: not an image extension")
    return folder


def test_tag_csv(photo_dir: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["tag", str(photo_dir), "--out", str(tmp_path / "tags.csv"), "--model", str(model_dir), "--batch-size", "2"]) == 0
    with (tmp_path / "tags.csv").open(newline="", encoding="utf-8") as handle:
        rows = {r["path"]: r for r in csv.DictReader(handle)}
    assert list(rows) == ["a.jpg", "trip/b.png", "trip/broken.jpg", "trip/day2/c.jpg", "trip/day2/empty.png"]
    good = rows["a.jpg"]
    assert good["error"] == "" and good["landmark"] == "Taj Mahal" and good["city"] == "Agra" and good["recognised"] == "True"
    assert {good[f"top{i}"] for i in range(1, 6)} <= DISPLAY_NAMES and float(good["top1_probability"]) > float(good["top5_probability"])
    assert "openstreetmap.org" in good["map_url"] and good["photo_lat"] == ""
    assert float(rows["trip/day2/c.jpg"]["photo_lat"]) == pytest.approx(-13.163, abs=1e-3)
    assert "not an image file" in rows["trip/broken.jpg"]["error"] and rows["trip/broken.jpg"]["top1"] == ""
    assert "empty" in rows["trip/day2/empty.png"]["error"]
    output = capsys.readouterr()
    assert "skipped trip/broken.jpg" in output.out + output.err and "Tagged 3 photos (2 unreadable" in output.out


def test_tag_json_matches_single_predictions(photo_dir: Path, model_dir: Path, service, tmp_path: Path) -> None:
    assert main(["tag", str(photo_dir), "--out", str(tmp_path / "tags.json"), "--model", str(model_dir / "model.pt"), "--batch-size", "3"]) == 0
    records = {r["path"]: r for r in json.loads((tmp_path / "tags.json").read_text(encoding="utf-8"))}
    assert len(records) == 5 and records["trip/broken.jpg"]["error"]
    single = service.predict(photo_dir / "trip" / "b.png")
    batched = records["trip/b.png"]
    assert [g["name"] for g in batched["top5"]] == [g.name for g in single.top]
    assert [g["probability"] for g in batched["top5"]] == pytest.approx([g.probability for g in single.top], abs=1e-5)
    assert batched["place"]["country"] == single.landmark.country and batched["photo_gps"] is None
    assert records["trip/day2/c.jpg"]["photo_gps"]["lon"] == pytest.approx(-72.545, abs=1e-3)


def test_tag_rejects_unknown_output_format(photo_dir: Path, model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["tag", str(photo_dir), "--out", str(tmp_path / "tags.xlsx"), "--model", str(model_dir)])
