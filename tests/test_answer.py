"""The one answer type (serve/answer.py): every surface returns Prediction.to_dict(), whose JSON shape is a contract."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from PIL import ExifTags, Image

from landmark_lib.artifacts.answer import ANSWER_SCHEMA
from landmark_lib.serve.service import LandmarkService

from helpers import make_photo


def _photo_with_gps(path: Path) -> Path:
    exif = Image.Exif()
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (27.0, 10.0, 30.0),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (78.0, 2.0, 31.2),
    }
    make_photo().save(path, "JPEG", exif=exif)
    return path


def test_answer_json_schema_and_content(service: LandmarkService, tmp_path: Path) -> None:
    answer = json.loads(json.dumps(service.predict(_photo_with_gps(tmp_path / "agra.jpg")).to_dict()))
    jsonschema.validate(answer, ANSWER_SCHEMA)
    assert list(answer) == ANSWER_SCHEMA["required"]  # a stable key order, for people reading raw JSON too
    assert (answer["landmark"], answer["display_name"], answer["recognised"]) == ("taj_mahal", "Taj Mahal", True)
    assert answer["probability"] == answer["top5"][0]["probability"] >= answer["threshold"]
    probabilities = [g["probability"] for g in answer["top5"]]
    assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
    assert answer["place"] == {
        "city": "Agra",
        "country": "India",
        "lat": 27.175,
        "lon": 78.042,
        "map_url": "https://www.openstreetmap.org/?mlat=27.17500&mlon=78.04200#map=15/27.17500/78.04200",
    }
    assert answer["photo_gps"]["lat"] == pytest.approx(27.175) and answer["photo_gps"]["lon"] == pytest.approx(78.042)
    assert answer["model"]["backend"] == "torchscript" and answer["model"]["revision"].startswith("sha256:")


def test_unrecognised_answer_names_no_landmark_and_keeps_the_closest_in_top5(model_dir: Path) -> None:
    strict = LandmarkService(model_dir / "model.pt", threshold=0.99, num_threads=1)
    answer = strict.predict(make_photo()).to_dict()
    jsonschema.validate(answer, ANSWER_SCHEMA)
    assert answer["recognised"] is False and answer["threshold"] == 0.99 and answer["photo_gps"] is None
    assert answer["level"] == "none" and answer["landmark"] is None and answer["place"] is None
    assert answer["top5"][0]["name"] == "taj_mahal" and answer["top5"][0]["match"] == "closest"
    assert answer["model"]["id"] == model_dir.name
