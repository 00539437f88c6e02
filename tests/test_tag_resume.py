"""A library-sized tagging run: killed with SIGKILL and resumed, rerun, or pointed at an output that is not its own."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset
import pytest

from landmark_lib.cli import main

from helpers import export_tiny_model, make_photo, time_limit

pytestmark = pytest.mark.slow  # trainings, exports or subprocesses: see pytest.ini

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
PHOTOS = 24
# `landmark tag` with every batch slowed down, so that the kill lands in the middle of the run.
SLOW_TAGGER = """
import sys, time
from landmark_lib.tagging import command as tag
real = tag.tag_batch  # as the local engine calls it
def slow(*args):
    time.sleep(0.2)
    return real(*args)
tag.tag_batch = slow
from landmark_lib.cli import main
sys.exit(main(sys.argv[1:]))
"""
TORN = {".jsonl": '{"path": "p07.jpg", "size": 12', ".csv": "p07.jpg,1234,17"}  # what a kill mid-write leaves


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("library")
    (folder / "2024").mkdir()
    for i in range(PHOTOS):
        make_photo(64, 48, seed=i).save(folder / ("2024" if i % 3 else ".") / f"p{i:02d}.jpg")
    (folder / "2024" / "broken.jpg").write_text("not a photo")
    return folder


def read_rows(out: Path) -> list[dict]:
    """OUT's rows, failing on anything that is not a whole row (a torn line, a broken part file)."""
    if out.suffix == ".parquet":
        return pyarrow.dataset.dataset(out, format="parquet").to_table().to_pylist()
    if out.suffix == ".csv":
        with out.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert all(None not in r and None not in r.values() for r in rows), "a CSV row with missing or extra cells"
        return rows
    assert out.read_bytes().endswith(b"\n")
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def comparable(rows: list[dict]) -> dict[str, tuple]:
    """Rows by path: what a user reads (the probability rounded: batches of other sizes differ in the last digits)."""
    return {
        r["path"]: (str(r["size"]), r["landmark"] or "", round(float(r["probability"] or 0), 4), r["error"])
        for r in rows
    }


def tag(folder: Path, out: Path, model: Path, *extra: str) -> None:
    with time_limit(60):
        assert main(["tag", str(folder), "--out", str(out), "--model", str(model), "--batch-size", "2", *extra]) == 0


def test_killed_runs_resume_without_a_lost_duplicate_or_torn_row(
    library: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    outs = [tmp_path / f"tags{suffix}" for suffix in (".jsonl", ".csv", ".parquet")]
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", SLOW_TAGGER, "tag", str(library), "--out", str(out), "--model", str(model_dir)]
            + ["--batch-size", "2"],
            cwd=REPO,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for out in outs
    ]
    deadline = time.monotonic() + 60
    for out, run in zip(outs, runs):
        while time.monotonic() < deadline and run.poll() is None and len(_rows_so_far(out)) < 4:
            time.sleep(0.02)
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
    tag(library, tmp_path / "reference.jsonl", model_dir)
    reference = comparable(read_rows(tmp_path / "reference.jsonl"))
    for out in outs:
        killed = _rows_so_far(out)
        assert 4 <= len(killed) < PHOTOS + 1, f"the kill did not land mid-run for {out.name}"
        if out.suffix in TORN:
            with out.open("a", encoding="utf-8") as handle:
                handle.write(TORN[out.suffix])
        capsys.readouterr()
        tag(library, out, model_dir)
        assert f"{len(killed)} already tagged" in capsys.readouterr().out
        rows = read_rows(out)
        paths = [r["path"] for r in rows]
        assert len(paths) == len(set(paths)) == PHOTOS + 1, f"lost or duplicate rows in {out.name}"
        assert comparable(rows) == reference, f"{out.name} differs from an uninterrupted run"


def _rows_so_far(out: Path) -> list:
    if out.suffix == ".parquet":
        return read_rows(out) if out.is_dir() else []
    lines = out.read_bytes().split(b"\n")[:-1] if out.exists() else []  # whole lines only
    return lines[1:] if out.suffix == ".csv" else lines


def test_a_rerun_tags_only_new_and_changed_photos(library: Path, model_dir: Path, tmp_path: Path, capsys) -> None:
    folder, out = tmp_path / "photos", tmp_path / "tags.jsonl"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (folder / name).write_bytes((library / "p00.jpg").read_bytes())
    tag(folder, out, model_dir)
    make_photo(64, 48, seed=5).save(folder / "c.jpg")  # new
    os.utime(folder / "b.jpg", ns=(1_000_000_000, 1_000_000_000))  # changed (mtime)
    capsys.readouterr()
    tag(folder, out, model_dir)
    assert "Tagged 2 photos (0 unreadable, listed with an error, 1 already tagged)" in capsys.readouterr().out
    rows = read_rows(out)
    assert [r["path"] for r in rows] == ["a.jpg", "b.jpg", "b.jpg", "c.jpg"]  # a changed photo's newer row comes last
    assert rows[2]["mtime_ns"] == 1_000_000_000 and rows[1]["mtime_ns"] != rows[2]["mtime_ns"]


def test_an_output_of_another_folder_model_or_threshold_is_refused(
    library: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out, other = tmp_path / "tags.csv", tmp_path / "other"
    other.mkdir()
    make_photo(seed=3).save(other / "x.jpg")
    tag(library, out, model_dir)
    before = out.read_bytes()
    other_model = export_tiny_model(tmp_path / "model2", bias_class=1)
    for folder, model, extra, why in [
        (other, model_dir, [], "another folder"),
        (library, other_model, [], "another model_sha256"),
        (library, model_dir, ["--threshold", "0.9"], "another threshold"),
    ]:
        argv = ["tag", str(folder), "--out", str(out), "--model", str(model), *extra]
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert f"holds tags of {library.resolve()}" in error and why in error and "pass --overwrite" in error
    assert out.read_bytes() == before
    # an output written by an older tagger (rows of another layout, no row_format recorded) is not appended to
    sidecar = out.with_name(out.name + ".tagging.json")
    recorded = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({k: v for k, v in recorded.items() if k != "row_format"}))
    assert main(["tag", str(library), "--out", str(out), "--model", str(model_dir)]) == 2
    assert "another row_format" in capsys.readouterr().err and out.read_bytes() == before
    sidecar.write_text(json.dumps(recorded))
    tag(other, out, model_dir, "--overwrite")
    assert [r["path"] for r in read_rows(out)] == ["x.jpg"]

    foreign = tmp_path / "mine.jsonl"
    foreign.write_text("my own notes\n")
    assert main(["tag", str(library), "--out", str(foreign), "--model", str(model_dir)]) == 2
    assert "was not written by landmark tag; choose another --out" in capsys.readouterr().err
    assert foreign.read_text() == "my own notes\n"


def test_overwrite_never_deletes_what_landmark_tag_did_not_write(
    library: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`landmark tag X.parquet --out X.parquet --overwrite` deleted all 16 photos of the folder and exited 0."""
    photos = tmp_path / "outer.parquet" / "X.parquet"
    photos.mkdir(parents=True)
    for i in range(3):
        make_photo(seed=i).save(photos / f"p{i}.jpg")
    foreign = tmp_path / "notes.jsonl"
    foreign.write_text("my own notes\n")
    mixed = tmp_path / "mixed.parquet"
    tag(library, mixed, model_dir)
    make_photo().save(mixed / "holiday.jpg")  # a user's file put into an output folder
    for out, words in [
        (photos, "is the photo folder or holds it"),
        (photos.parent, "is the photo folder or holds it"),
        (foreign, "was not written by landmark tag"),
        (mixed, "holds files landmark tag did not write (holiday.jpg)"),
    ]:
        assert main(["tag", str(photos), "--out", str(out), "--model", str(model_dir), "--overwrite"]) == 2
        assert words in capsys.readouterr().err
    assert sorted(p.name for p in photos.iterdir()) == ["p0.jpg", "p1.jpg", "p2.jpg"]
    assert foreign.read_text() == "my own notes\n" and (mixed / "holiday.jpg").is_file()


def test_a_second_tagger_on_the_same_output_names_the_first(
    library: Path, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Two taggers writing one output duplicated every row (JSONL 992 rows and CSV 1000 for 500 photos, exit 0)."""
    from landmark_lib.tagging import state as tag_state

    out = tmp_path / "tags.csv"
    with tag_state.locked(out):  # the first run, still writing
        assert main(["tag", str(library), "--out", str(out), "--model", str(model_dir)]) == 2
        assert f"is being written by another landmark tag (process {os.getpid()} on " in capsys.readouterr().err
        assert not out.exists()
    tag(library, out, model_dir)
    paths = [r["path"] for r in read_rows(out)]
    assert len(paths) == len(set(paths)) == PHOTOS + 1 and not (tmp_path / ".tags.csv.lock").exists()
