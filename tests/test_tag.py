"""Batch tagging: every photo of a folder tree gets a row; unreadable ones an error note instead of a crash."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from PIL import ExifTags, Image

from landmark_lib.cli import main
from landmark_lib.tagging.rows import CSV_COLUMNS

from helpers import CLASSES, make_photo, time_limit

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
    assert (
        main(
            ["tag", str(photo_dir), "--out", str(tmp_path / "tags.csv"), "--model", str(model_dir), "--batch-size", "2"]
        )
        == 0
    )
    with (tmp_path / "tags.csv").open(newline="", encoding="utf-8") as handle:
        rows = {r["path"]: r for r in csv.DictReader(handle)}
    assert list(rows) == ["a.jpg", "trip/b.png", "trip/broken.jpg", "trip/day2/c.jpg", "trip/day2/empty.png"]
    good = rows["a.jpg"]
    assert (
        good["error"] == ""
        and good["landmark"] == "Taj Mahal"
        and good["city"] == "Agra"
        and good["recognised"] == "True"
        and good["level"] == "confident"
        and good["review"] == "False"
    )
    assert {good[f"top{i}"] for i in range(1, 6)} <= DISPLAY_NAMES and float(good["top1_probability"]) > float(
        good["top5_probability"]
    )
    assert "openstreetmap.org" in good["map_url"] and good["photo_lat"] == ""
    assert float(rows["trip/day2/c.jpg"]["photo_lat"]) == pytest.approx(-13.163, abs=1e-3)
    assert "not an image file" in rows["trip/broken.jpg"]["error"] and rows["trip/broken.jpg"]["top1"] == ""
    assert "empty" in rows["trip/day2/empty.png"]["error"]
    output = capsys.readouterr()
    assert "skipped trip/broken.jpg" in output.out + output.err and "Tagged 3 photos (2 unreadable" in output.out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_tag_jsonl_matches_single_predictions(photo_dir: Path, model_dir: Path, service, tmp_path: Path) -> None:
    assert (
        main(
            [
                "tag",
                str(photo_dir),
                "--out",
                str(tmp_path / "tags.jsonl"),
                "--model",
                str(model_dir / "model.pt"),
                "--batch-size",
                "3",
            ]
        )
        == 0
    )
    records = {r["path"]: r for r in read_jsonl(tmp_path / "tags.jsonl")}
    assert len(records) == 5 and records["trip/broken.jpg"]["error"]
    single = service.predict(photo_dir / "trip" / "b.png")
    batched = records["trip/b.png"]
    assert [batched[f"top{i}"] for i in range(1, 6)] == [g.display_name for g in single.top]
    assert [batched[f"top{i}_probability"] for i in range(1, 6)] == pytest.approx(
        [g.probability for g in single.top], abs=1e-5
    )
    named = single.level is not None  # a place only for a named landmark
    assert batched["country"] == (single.landmark.country if named else None) and batched["photo_lat"] is None
    assert records["trip/day2/c.jpg"]["photo_lon"] == pytest.approx(-72.545, abs=1e-3)
    # one definition of the row: JSONL keys are the CSV columns, in order
    assert list(batched) == CSV_COLUMNS


@pytest.mark.parametrize("name", ["tags.xlsx", "tags.json"])
def test_tag_rejects_unknown_output_format(photo_dir: Path, model_dir: Path, tmp_path: Path, name: str) -> None:
    with pytest.raises(SystemExit):
        main(["tag", str(photo_dir), "--out", str(tmp_path / name), "--model", str(model_dir)])


def tag_cli(argv: list[str]) -> None:
    """`landmark tag ARGV` with its expected failures as SystemExit("error: ...") (what the CLI prints)."""
    from landmark_lib.cli import build_parser
    from landmark_lib.errors import LandmarkError
    from landmark_lib.tagging import command

    args = build_parser().parse_args(["tag", *argv])
    try:
        command.run(args)
    except LandmarkError as error:
        raise SystemExit(f"error: {error}") from None


def _csv_rows(path: Path) -> dict[str, dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {r["path"]: r for r in csv.DictReader(handle)}


def test_one_odd_photo_never_aborts_the_run(
    photo_dir: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decoder bug on one file (any exception, not only ImageLoadError) is that file's error row."""
    from landmark_lib.tagging import batch

    real = batch.read_photo

    def flaky(path, **kwargs):
        if path.name == "b.png":
            raise RuntimeError("decoder exploded")
        return real(path, **kwargs)

    monkeypatch.setattr(batch, "read_photo", flaky)
    tag_cli([str(photo_dir), "--out", str(tmp_path / "tags.csv"), "--model", str(model_dir)])
    rows = _csv_rows(tmp_path / "tags.csv")
    assert "could not be decoded (RuntimeError: decoder exploded)" in rows["trip/b.png"]["error"]
    assert rows["a.jpg"]["top1"] and rows["trip/day2/c.jpg"]["top1"]


def test_non_utf8_names_symlink_loops_and_broken_links(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "real").mkdir(parents=True)
    make_photo(seed=1).save(folder / "real" / "a.jpg")
    make_photo(seed=2).save(os.fsdecode(bytes(folder / "real") + b"/caf\xe9.jpg"))  # Latin-1 name: not valid UTF-8
    make_photo(seed=3).save(folder / "real" / "caf\\xe9.jpg")  # the name's text is c a f \ x e 9: another file
    (folder / "real" / "loop").symlink_to(folder)  # photos/real/loop -> photos
    (folder / "linked").symlink_to(folder / "real")  # the same folder twice: tagged once
    (folder / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    with time_limit(120):
        tag_cli([str(folder), "--out", str(tmp_path / "tags.csv"), "--model", str(model_dir)])
        tag_cli([str(folder), "--out", str(tmp_path / "tags.jsonl"), "--model", str(model_dir)])
    rows = _csv_rows(tmp_path / "tags.csv")
    assert sorted(rows) == [
        "gone.jpg",
        "linked/a.jpg",
        "linked/caf\\\\xe9.jpg",
        "linked/caf\\xe9.jpg",
    ]  # distinct cells
    assert rows["linked/caf\\xe9.jpg"]["top1"] and "broken symbolic link" in rows["gone.jpg"]["error"]
    assert [r["path"] for r in read_jsonl(tmp_path / "tags.jsonl")] == list(rows)


def test_unreadable_files_and_folders_say_permission_denied(
    photo_dir: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(As root, chmod 000 does not stop reads, so the denial is simulated where files are opened and folders listed.)"""
    from landmark_lib.data import images

    (photo_dir / "private").mkdir()
    make_photo().save(photo_dir / "private" / "p.jpg")
    real_open, real_scandir = images.Image.open, os.scandir

    def open_denied(fp, *args, **kwargs):
        if str(fp).endswith("a.jpg"):
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    def scandir_denied(path="."):
        if str(path).endswith("private"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(images.Image, "open", open_denied)
    monkeypatch.setattr(os, "scandir", scandir_denied)
    tag_cli([str(photo_dir), "--out", str(tmp_path / "tags.csv"), "--model", str(model_dir)])
    rows = _csv_rows(tmp_path / "tags.csv")
    assert "permission denied" in rows["a.jpg"]["error"] and "corrupt" not in rows["a.jpg"]["error"]
    assert "cannot be listed (permission denied)" in rows["private"]["error"]


def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("=HYPERLINK(1).jpg", "+1.jpg", "-2.jpg", "@SUM(A1).jpg"):
        make_photo().save(folder / name, "JPEG")
    (folder / "=broken.jpg").write_text("not a photo")
    tag_cli([str(folder), "--out", str(tmp_path / "tags.csv"), "--model", str(model_dir)])
    rows = _csv_rows(tmp_path / "tags.csv")
    assert sorted(rows) == ["'+1.jpg", "'-2.jpg", "'=HYPERLINK(1).jpg", "'=broken.jpg", "'@SUM(A1).jpg"]
    assert rows["'=broken.jpg"]["error"].startswith("'=broken.jpg is not an image file")
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in rows.values() for cell in r.values())
    assert float(rows["'-2.jpg"]["top1_probability"]) > 0  # numbers are left as numbers


def test_a_full_disk_keeps_the_whole_rows_and_a_rerun_finishes(
    photo_dir: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills while the second batch is being written: the error names the folder, the file keeps the header
    and the first batch (the half-written one is cut back), and the same command then tags the rest."""
    from landmark_lib.tagging import writers

    out, calls = tmp_path / "tags.csv", []
    real_fsync = os.fsync

    def fsync_full(fd):
        calls.append(fd)
        if len(calls) == 4:  # the sidecar, the header, the first batch, then the second batch fails
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(writers.os, "fsync", fsync_full)
    argv = [str(photo_dir), "--out", str(out), "--model", str(model_dir), "--batch-size", "2"]
    with pytest.raises(SystemExit, match=f"no space left on {tmp_path}.*rerun the same command"):
        tag_cli(argv)
    assert list(_csv_rows(out)) == ["a.jpg", "trip/b.png"]
    monkeypatch.undo()
    tag_cli(argv)
    assert sorted(_csv_rows(out)) == [
        "a.jpg",
        "trip/b.png",
        "trip/broken.jpg",
        "trip/day2/c.jpg",
        "trip/day2/empty.png",
    ]


def test_threshold_must_be_a_probability(
    photo_dir: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit):
        tag_cli([str(photo_dir), "--out", str(tmp_path / "tags.csv"), "--model", str(model_dir), "--threshold", "35"])
    assert "must be a probability between 0 and 1" in capsys.readouterr().err
