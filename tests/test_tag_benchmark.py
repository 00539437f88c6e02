"""benchmarks/tag_throughput.py on a tiny model: the tagger's rate and the model's own, from one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import make_photo

pytestmark = pytest.mark.slow  # trainings, exports or subprocesses: see pytest.ini


def test_tag_throughput_reports_the_tagger_against_the_model(
    model_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    from benchmarks import tag_throughput

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(8):
        make_photo(64, 48, seed=i).save(folder / f"p{i}.jpg")
    (folder / "broken.jpg").write_text("not a photo")
    argv = ["--photos", str(folder), "--model", str(model_dir), "--batch-size", "4", "--workers", "1,2"]
    result = tag_throughput.main([*argv, "--repeats", "1", "--json", str(tmp_path / "tag.json")])
    assert result["photos"] == 8 and set(result["photos_per_s"]) == {"raw", "workers=1", "workers=2"}
    assert all(rate > 0 for rate in result["photos_per_s"].values())
    assert result["share_of_raw"]["workers=1"] == result["photos_per_s"]["workers=1"] / result["photos_per_s"]["raw"]
    assert json.loads((tmp_path / "tag.json").read_text())["photos_per_s"] == result["photos_per_s"]
    assert "of raw" in capsys.readouterr().out


def test_geotag_throughput_against_the_tagger_leaves_the_photos_alone(
    model_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    from benchmarks import geotag_throughput

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        make_photo(64, 48, seed=i).save(folder / f"p{i}.jpg")
    argv = ["--photos", str(folder), "--model", str(model_dir), "--batch-size", "4", "--workers", "1"]
    result = geotag_throughput.main([*argv, "--repeats", "1", "--json", str(tmp_path / "geotag.json")])
    assert result["photos"] == 6 and result["geotag_actions"] == {"wrote": 6}  # the tiny model is confident
    assert result["geotag_share_of_tag"] == result["photos_per_s"]["geotag"] / result["photos_per_s"]["tag"]
    assert sorted(p.name for p in folder.iterdir()) == [f"p{i}.jpg" for i in range(6)]  # sidecars went elsewhere
    assert json.loads((tmp_path / "geotag.json").read_text())["photos_per_s"] == result["photos_per_s"]
    assert "of the tagger's rate" in capsys.readouterr().out
