"""`landmark geotag LIBRARY` on a library: sidecars written, merged, reviewed, spread, resumed after kill -9 and
undone, read back by ExifTool; the originals' bytes never change."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from landmark_lib.cli import main
from landmark_lib.geotag import library
from landmark_lib.labels import ClassInfo
from landmark_lib.serve.service import LandmarkService
from landmark_lib.xmp.fields import ESTIMATE_KEYWORD

from helpers import exiftool, export_tiny_model, make_photo, save_photo, time_limit

pytestmark = pytest.mark.skipif(
    shutil.which("exiftool") is None, reason="exiftool is not installed (scripts/setup.sh installs it)"
)
REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "xmp"
LANDMARKS = [
    ClassInfo("christ_the_redeemer", "Christ the Redeemer", "Rio de Janeiro", "Brazil", -22.951916, -43.210487),
    ClassInfo("machu_picchu", "Machu Picchu", "Aguas Calientes", "Peru", -13.163141, -72.544963),
    ClassInfo("statue_of_liberty", "Statue of Liberty", "New York", "United States", 40.689247, -74.044502),
    ClassInfo("borobudur", "Borobudur", "Magelang", "Indonesia", -7.607874, 110.203751),
    ClassInfo("ha_long_bay", "Hạ Long Bay", "Hạ Long", "Việt Nam", 20.910051, 107.183902),
    ClassInfo("ayasofya", "Ayasofya", "İstanbul", "Türkiye", 41.008583, 28.980175),
    ClassInfo("clerigos", "Torre dos Clérigos", "Porto", "Portugal", 41.145682, -8.614638),
]
USER_GPS = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="48,51.504N" exif:GPSLongitude="2,17.67E"/></rdf:RDF></x:xmpmeta>'


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One tiny export per landmark, each confident about its own landmark (the labels give the coordinates)."""
    root = tmp_path_factory.mktemp("models")
    return [export_tiny_model(root / c.name, classes=LANDMARKS, bias_class=i) for i, c in enumerate(LANDMARKS)]


def geotag(library_dir: Path, model: Path | None, *extra: str) -> None:
    with time_limit(120):
        args = ["geotag", str(library_dir), *extra] + ([] if model is None else ["--model", str(model)])
        assert main([*args, "--batch-size", "2"]) == 0


def hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under FOLDER but sidecars and our run log (what the user had)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix != ".xmp" and not p.name.startswith(".landmark-geotag")
    }


def files(folder: Path) -> set[str]:
    """The files under FOLDER but our run log (`.landmark-geotag.jsonl`, removed by --undo)."""
    return {
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".landmark-geotag")
    }


@pytest.mark.parametrize("index", range(len(LANDMARKS)), ids=[c.name for c in LANDMARKS])
def test_each_landmark_lands_where_it_stands(index: int, models: list[Path], tmp_path: Path) -> None:
    save_photo(tmp_path / "lib" / "IMG_1.JPG")
    geotag(tmp_path / "lib", models[index])
    (got,) = exiftool(tmp_path / "lib" / "IMG_1.JPG.xmp")
    place = LANDMARKS[index]
    assert abs(got["GPSLatitude"] - place.lat) < 1e-6 and abs(got["GPSLongitude"] - place.lon) < 1e-6
    assert got["Subject"] == [place.display_name, place.city, place.country]
    assert got["HierarchicalSubject"] == f"Places|{place.country}|{place.city}|{place.display_name}"
    assert got["TagsList"] == f"Places/{place.country}/{place.city}/{place.display_name}"
    assert (got["City"], got["Country"], got["Location"]) == (place.city, place.country, place.display_name)


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """A library: a photo without GPS, one with EXIF GPS, one with a digiKam sidecar, one whose sidecar has a GPS
    the user set, one PNG in a subfolder."""
    lib = tmp_path / "lib"
    save_photo(lib / "plain.jpg", seed=1)
    save_photo(lib / "camera_gps.jpg", seed=2, gps=(48.8584, 2.2945))
    save_photo(lib / "digikam.jpg", seed=3)
    shutil.copy(FIXTURES / "digikam.xmp", lib / "digikam.jpg.xmp")
    save_photo(lib / "user_gps.jpg", seed=4)
    (lib / "user_gps.jpg.xmp").write_bytes(USER_GPS)
    (lib / "2024").mkdir()
    make_photo(70, 50, seed=5).save(lib / "2024" / "scan.png")
    return lib


def test_write_rerun_and_undo_leave_the_library_as_it_was(mixed: Path, models: list[Path], capsys) -> None:
    before, files_before = hashes(mixed), files(mixed)
    geotag(mixed, models[1])
    assert "3 wrote" in capsys.readouterr().out
    assert (mixed / "plain.jpg.xmp").exists() and (mixed / "2024" / "scan.png.xmp").exists()
    assert not (mixed / "camera_gps.jpg.xmp").exists() and (mixed / "user_gps.jpg.xmp").read_bytes() == USER_GPS
    merged = exiftool(mixed / "digikam.jpg.xmp")[0]
    assert merged["Rating"] == 4 and merged["TagsList"][:2] == ["Family", "Trips/Peru 2023"]
    assert "Places/Peru/Aguas Calientes/Machu Picchu" in merged["TagsList"] and merged["GPSLatitude"] < 0
    written = {p: p.read_bytes() for p in mixed.rglob("*.xmp")}
    geotag(mixed, models[1])  # a rerun: everything already done, nothing rewritten
    assert "5 already done" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in mixed.rglob("*.xmp")} == written
    geotag(mixed, None, "--undo")
    assert files(mixed) == files_before and hashes(mixed) == before and not (mixed / library.LOG_NAME).exists()
    assert (mixed / "digikam.jpg.xmp").read_bytes() == (FIXTURES / "digikam.xmp").read_bytes()


def test_sidecar_names_and_a_separate_sidecar_tree(mixed: Path, models: list[Path], tmp_path: Path) -> None:
    files_before = files(mixed)
    geotag(mixed, models[2], "--sidecar-name", "basename", "--sidecar-dir", str(tmp_path / "sidecars"))
    assert files(mixed) == files_before  # nothing written into the library
    written = files(tmp_path / "sidecars")
    assert {"plain.xmp", "digikam.xmp", os.path.join("2024", "scan.xmp")} <= written
    assert not any(name.startswith("camera_gps") for name in written)
    geotag(mixed, None, "--undo", "--sidecar-dir", str(tmp_path / "sidecars"))
    assert files(tmp_path / "sidecars") == set()


def test_dry_run_writes_nothing(mixed: Path, models: list[Path], capsys) -> None:
    files_before = files(mixed)
    geotag(mixed, models[0], "--dry-run")
    out = capsys.readouterr().out
    assert "would write: plain.jpg -> Christ the Redeemer (confident" in out and "camera_gps" not in out
    assert files(mixed) == files_before


def test_force_replaces_a_user_gps_and_undo_gives_it_back(mixed: Path, models: list[Path]) -> None:
    geotag(mixed, models[3], "--force")
    got = {Path(r["SourceFile"]).name: r for r in exiftool(mixed / "user_gps.jpg.xmp", mixed / "camera_gps.jpg.xmp")}
    assert abs(got["user_gps.jpg.xmp"]["GPSLatitude"] - LANDMARKS[3].lat) < 1e-6
    assert abs(got["camera_gps.jpg.xmp"]["GPSLongitude"] - LANDMARKS[3].lon) < 1e-6
    geotag(mixed, None, "--undo")
    assert (mixed / "user_gps.jpg.xmp").read_bytes() == USER_GPS and not (mixed / "camera_gps.jpg.xmp").exists()


HOSTILE = {
    "entity expansion": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><x>&b;</x>',
    "external entity": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
    "malformed": b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF",
}


def test_hostile_sidecars_are_left_untouched_and_reported(models: list[Path], tmp_path: Path, capsys) -> None:
    for name, data in HOSTILE.items():
        save_photo(tmp_path / "lib" / f"{name}.jpg")
        (tmp_path / "lib" / f"{name}.jpg.xmp").write_bytes(data)
    geotag(tmp_path / "lib", models[0])
    out = capsys.readouterr()
    for name, data in HOSTILE.items():
        assert (tmp_path / "lib" / f"{name}.jpg.xmp").read_bytes() == data
        line = next(line for line in out.out.splitlines() if line.startswith(f"{name}.jpg:"))
        assert "was left untouched" in line and line.count(". ") == 0
    assert "3 left alone" in out.out
    geotag(tmp_path / "lib", None, "--undo")
    assert all((tmp_path / "lib" / f"{name}.jpg.xmp").read_bytes() == data for name, data in HOSTILE.items())


def test_read_only_sidecars_and_folders_are_reported_and_skipped(models: list[Path], tmp_path: Path, capsys) -> None:
    lib = tmp_path / "lib"
    save_photo(lib / "locked" / "a.jpg")
    save_photo(lib / "b.jpg")
    shutil.copy(FIXTURES / "darktable.xmp", lib / "b.jpg.xmp")
    (lib / "b.jpg.xmp").chmod(0o444)
    (lib / "locked").chmod(0o555)
    try:
        geotag(lib, models[0])
    finally:
        (lib / "locked").chmod(0o755)
    out = capsys.readouterr()
    assert "2 read-only" in out.out and "a.jpg.xmp: its folder" in out.out
    assert not (lib / "locked" / "a.jpg.xmp").exists()
    assert (lib / "b.jpg.xmp").read_bytes() == (FIXTURES / "darktable.xmp").read_bytes()


def _review_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_review_then_apply_writes_only_the_accepted_rows(
    mixed: Path, models: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile_name = mixed / '<img src=x onerror="alert(1)">.jpg'
    save_photo(hostile_name, seed=9)
    files_before = files(mixed)
    geotag(mixed, models[4], "--review", str(tmp_path / "review.html"))
    page = (tmp_path / "review.html").read_text(encoding="utf-8")
    assert page.count("data:image/jpeg;base64,") == 4 and "Hạ Long Bay" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;.jpg" in page
    geotag(mixed, models[4], "--review", str(tmp_path / "review.csv"))
    rows = _review_rows(tmp_path / "review.csv")
    assert files(mixed) == files_before and len(rows) == 4 and {r["accept"] for r in rows} == {"yes"}
    for row in rows:
        row["accept"] = "yes" if row["path"] == "plain.jpg" else "no"
    with open(tmp_path / "decisions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    geotag(mixed, None, "--apply", str(tmp_path / "decisions.csv"))
    assert files(mixed) == files_before | {"plain.jpg.xmp"}
    assert exiftool(mixed / "plain.jpg.xmp")[0]["Location"] == "Hạ Long Bay"


def test_suggested_answers_are_written_only_through_review(
    mixed: Path, models: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(library, "level_of", lambda prediction: "suggested")  # stands in for the coming level
    files_before = files(mixed)
    geotag(mixed, models[5])
    assert "3 suggested" in capsys.readouterr().out and files(mixed) == files_before
    geotag(mixed, models[5], "--review", str(tmp_path / "review.csv"))
    rows = _review_rows(tmp_path / "review.csv")
    assert {(r["level"], r["accept"]) for r in rows} == {("suggested", "no")}
    for row in rows:
        row["accept"] = "yes"
    with open(tmp_path / "review.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    geotag(mixed, None, "--apply", str(tmp_path / "review.csv"))
    assert exiftool(mixed / "plain.jpg.xmp")[0]["GeotagLevel"] == "suggested"


def test_same_trip_spreading(models: list[Path], tmp_path: Path, capsys) -> None:
    """Window edges (30 min in, 30 min 1 s out), no chaining from an estimate, real GPS (EXIF or sidecar) wins,
    other folders untouched; the estimate has its own keyword and provenance and shows as such in the review."""
    service = LandmarkService(models[1] / "model.pt", num_threads=1)
    scores = {}
    for seed in range(12):
        scores[seed] = service.predict(save_photo(tmp_path / "probe" / f"{seed}.jpg", seed=seed)).best.probability
    anchor, *others = sorted(scores, key=scores.get, reverse=True)
    threshold = (scores[anchor] + scores[others[0]]) / 2  # only the anchor photo is recognised
    assert scores[anchor] - scores[others[0]] > 1e-5, "two photos score alike: pick other seeds"
    lib = tmp_path / "lib"
    taken = {
        "anchor": (anchor, "2024:05:01 10:00:00"),
        "edge_in": (others[0], "2024:05:01 10:30:00"),
        "edge_out": (others[1], "2024:05:01 10:30:01"),
        "chained": (others[2], "2024:05:01 10:50:00"),  # 20 min after edge_in, 50 after the anchor
        "before": (others[3], "2024:05:01 09:45:00"),
        "camera_gps": (others[4], "2024:05:01 10:05:00"),
        "sidecar_gps": (others[5], "2024:05:01 10:06:00"),
        "no_date": (others[6], None),
    }
    for name, (seed, when) in taken.items():
        save_photo(
            lib / "trip" / f"{name}.jpg", seed=seed, taken=when, gps=(1.0, 2.0) if name == "camera_gps" else None
        )
    (lib / "trip" / "sidecar_gps.jpg.xmp").write_bytes(USER_GPS)
    save_photo(lib / "home" / "same_time.jpg", seed=others[7], taken="2024:05:01 10:01:00")
    geotag(lib, models[1], "--threshold", f"{threshold:.6f}", "--spread", "30m", "--review", str(tmp_path / "r.csv"))
    rows = {r["path"]: r for r in _review_rows(tmp_path / "r.csv")}
    assert set(rows) == {"trip/anchor.jpg", "trip/edge_in.jpg", "trip/before.jpg"}
    assert (
        rows["trip/edge_in.jpg"]["level"] == "nearby"
        and rows["trip/edge_in.jpg"]["estimated_from"] == "trip/anchor.jpg"
    )
    geotag(lib, models[1], "--threshold", f"{threshold:.6f}", "--spread", "30m")
    sidecars = {str(p.relative_to(lib)) for p in lib.rglob("*.xmp")}
    assert sidecars == {
        "trip/anchor.jpg.xmp",
        "trip/edge_in.jpg.xmp",
        "trip/before.jpg.xmp",
        "trip/sidecar_gps.jpg.xmp",
    }
    assert (lib / "trip" / "sidecar_gps.jpg.xmp").read_bytes() == USER_GPS
    estimate = exiftool(lib / "trip" / "edge_in.jpg.xmp")[0]
    assert abs(estimate["GPSLatitude"] - LANDMARKS[1].lat) < 1e-6 and ESTIMATE_KEYWORD in estimate["Subject"]
    assert "Machu Picchu" not in estimate["Subject"] and "Location" not in estimate
    assert (estimate["GeotagLevel"], estimate["GeotagEstimatedFrom"]) == ("nearby", "trip/anchor.jpg")
    assert "2 estimated" in capsys.readouterr().out


SLOW_GEOTAG = """
import sys, time
from landmark_lib.geotag import library
real = library.decide_all
def slow(*args):
    for records in real(*args):
        time.sleep(0.3)
        yield records
library.decide_all = slow
from landmark_lib.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_killed_run_resumes_and_every_photo_gets_a_whole_sidecar(models: list[Path], tmp_path: Path, capsys) -> None:
    lib, photos = tmp_path / "lib", 20
    for i in range(photos):
        save_photo(lib / f"{i // 7}" / f"p{i:02d}.jpg", seed=i)
    before = hashes(lib)
    log = lib / library.LOG_NAME
    run = subprocess.Popen(
        [sys.executable, "-c", SLOW_GEOTAG, "geotag", str(lib), "--model", str(models[2]), "--batch-size", "2"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline and run.poll() is None and (not log.exists() or log.read_bytes().count(b"\n") < 4)
    ):
        time.sleep(0.02)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    done = log.read_bytes().count(b"\n")
    assert 4 <= done < photos, "the kill did not land mid-run"
    geotag(lib, models[2])
    assert f"{done} already done" in capsys.readouterr().out
    written = sorted(lib.rglob("*.xmp"))
    assert len(written) == photos and hashes(lib) == before
    for got in exiftool(*written):
        assert abs(got["GPSLatitude"] - LANDMARKS[2].lat) < 1e-6 and got["Location"] == "Statue of Liberty"
