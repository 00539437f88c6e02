"""Recognition that uses the photo index: the retrieval neck, index.npz in the export, the four scores, the two
operating points in every answer, and calibration on collections a fold never trained on."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from landmark_lib.artifacts.answer import ANSWER_SCHEMA, Guess, Prediction
from landmark_lib.bundle import EXPORT_FILE, INDEX_FILE
from landmark_lib.export.pipeline import export_run
from landmark_lib.index.score import IndexScorer
from landmark_lib.index.store import PhotoIndex, PhotoIndexError, load
from landmark_lib.labels import BACKGROUND_CLASS, ClassInfo
from landmark_lib.recognition import OperatingPoints
from landmark_lib.serve.service import LandmarkService

from helpers import TINY_LITE0_PARTIAL, make_dataset, make_photo

REPO = Path(__file__).resolve().parents[1]
ENV = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
LANDMARKS = ["00.Landmark_A", "01.Landmark_B", "02.Landmark_C"]


def unit(*rows: list[float]) -> np.ndarray:
    x = np.asarray(rows, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_margin_score_rejects_a_look_alike_that_the_probability_accepts():
    """A look-alike is as close to our landmark's photos as to ordinary buildings; a real photo is much closer to its
    landmark's photos: only the scores that use the no-landmark photos tell them apart."""
    index = PhotoIndex(
        unit([1, 0, 0], [0.98, 0.2, 0], [0.4, 0.9, 0], [0.45, 0.85, 0.1]),
        np.array([0, 0, 1, 1]),
        ("taj_mahal", BACKGROUND_CLASS),
        np.array(["a", "a", "b", "b"]),
    )
    scorer = IndexScorer.from_index(index, neighbours=2)
    real, look_alike = unit([0.99, 0.1, 0])[0], unit([0.7, 0.7, 0])[0]
    probs = np.array([[0.9, 0.1], [0.9, 0.1]])
    evidence, named = scorer.best_landmarks(np.stack([real, look_alike]), probs, ["taj_mahal", BACKGROUND_CLASS])
    assert named.tolist() == [0, 0]
    assert evidence.score("probability")[0] == evidence.score("probability")[1]  # the classifier cannot tell
    margin = evidence.score("probability_x_margin")
    assert margin[0] > 0.3 and margin[1] < 0.05
    # a gallery landmark meets the same negatives: its own photos make it close, the background stays
    taught = scorer.with_entries(unit([0, 0, 1]), ["new_place"])
    ev, _ = taught.best_landmarks(
        unit([0.05, 0.1, 1]), np.array([[0.0, 0.1, 0.9]]), ["taj_mahal", BACKGROUND_CLASS, "new_place"]
    )
    assert ev.similarity[0] > 0.99 and ev.background[0] < 0.3


def test_operating_points_levels():
    points = OperatingPoints("probability_x_margin", confident=0.5, suggested=0.2)
    assert [points.level(s) for s in (0.7, 0.5, 0.3, 0.1)] == ["confident", "confident", "suggested", None]
    assert OperatingPoints.from_export(None, 0.35) == OperatingPoints("probability", 0.35, None)
    assert OperatingPoints.from_export({"score": "margin", "confident": 0.3, "suggested": 0.6}, 0.35).suggested == 0.3
    with pytest.raises(ValueError, match="finite"):
        OperatingPoints.from_export({"score": "margin", "confident": float("nan")}, 0.35)


def test_an_answer_below_both_points_names_no_landmark_and_no_place():
    """A client that skips the flag must not put an everyday photo in Jaipur."""
    top = [Guess("hawa_mahal", "Hawa Mahal", 0.4), Guess("charminar", "Charminar", 0.3)]
    place = ClassInfo("hawa_mahal", "Hawa Mahal", "Jaipur", "India", 26.92, 75.82)
    points = OperatingPoints("probability_x_margin", 0.5, 0.2)
    answers = {
        level: Prediction(top, place, None, level, score, points).to_dict()
        for level, score in (("confident", 0.6), ("suggested", 0.3), (None, 0.1))
    }
    for answer in answers.values():
        jsonschema.validate(answer, ANSWER_SCHEMA)
    none = answers[None]
    assert none["landmark"] is None and none["place"] is None and none["level"] == "none"
    assert [g["match"] for g in none["top5"]] == ["closest", "closest"]
    assert answers["suggested"]["level"] == "suggested" and answers["suggested"]["place"]["city"] == "Jaipur"
    assert answers["suggested"]["recognised"] is False and answers["confident"]["recognised"] is True
    assert answers["confident"]["top5"][0]["match"] == "confident"


def write_provenance(root: Path, collections: dict[str, tuple[str, str]]) -> None:
    """ROOT/provenance.csv: the class folder's photos come from COLLECTIONS[class] = (source_set, category)."""
    with (root / "provenance.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "class", "file", "source_set", "category"])
        for path in sorted(root.glob("*/*/*.jpg")):
            source, category = collections[path.parts[-2]]
            writer.writerow([path.parts[-3], path.parts[-2], path.name, source, category])


@pytest.fixture(scope="module")
def fold_and_export(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A tiny dataset with two no-landmark collections; a fold run with the retrieval neck that holds one of them
    (and a landmark's second collection) out, and its export."""
    base = tmp_path_factory.mktemp("index")
    data = make_dataset(base / "data", classes=[*LANDMARKS, BACKGROUND_CLASS], train_per_class=12, test_per_class=2)
    second = make_dataset(
        base / "second", classes=[LANDMARKS[0], BACKGROUND_CLASS], train_per_class=6, test_per_class=0, seed=5
    )
    write_provenance(data, {**{n: ("first", "") for n in LANDMARKS}, BACKGROUND_CLASS: ("everyday_one", "everyday")})
    write_provenance(second, {LANDMARKS[0]: ("second_camera", ""), BACKGROUND_CLASS: ("nature_two", "nature")})
    run, export = base / "fold", base / "export"
    train = [
        sys.executable, str(REPO / "train_accelerate.py"), "--data", str(data), str(second), *TINY_LITE0_PARTIAL,
        "--epochs", "2", "--embedding-dim", "32", "--metric-loss", "subcenter-arcface", "--cache-dir", str(base / "cache"),
        "--output-dir", str(run), "--exclude", "nature_two", f"second_camera:{LANDMARKS[0]}",
    ]  # fmt: skip
    result = subprocess.run(train, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    export_run(run, export, evaluate=False)  # TorchScript only: the index does not depend on the file format
    return data, run, export


def test_export_ships_a_verified_index_of_the_training_photos_and_answers_carry_the_level(fold_and_export):
    _, run, export = fold_and_export
    info = json.loads((export / EXPORT_FILE).read_text())
    # every photo the run trained or validated on, none of the held-out ones (4 x 12 + 6 + 6 - 12 held out)
    # the index holds the backbone's GeM-pooled features (1280-d for Lite0), not the 32-d projection the classifier
    # reads: they tell landmarks the classifier never learned apart (embedding.py)
    assert info["index"]["photos"] == 48 and info["index"]["dim"] == 1280 and INDEX_FILE in info["files"]
    assert info["embedding"]["dim"] == 1280
    points = info["operating_points"]
    assert points["score"] == "probability_x_margin" and points["suggested"] <= points["confident"]
    assert info["timm"] is None  # timm's Hub format cannot rebuild the neck
    index = load(export, [c["name"] for c in json.loads((export / "labels.json").read_text())], 1280)
    assert np.allclose(np.linalg.norm(index.embeddings.astype(np.float32), axis=1), 1, atol=0.02)
    service = LandmarkService(export / "model.pt")
    assert service.scorer is not None and service.points.confident == points["confident"]
    answer = service.predict(make_photo()).to_dict()
    jsonschema.validate(answer, ANSWER_SCHEMA)
    assert answer["operating_points"]["score"] == "probability_x_margin"
    assert (answer["landmark"] is None) == (answer["level"] == "none")


def test_gallery_study_decides_like_the_server_with_the_index(fold_and_export):
    """`landmark gallery evaluate` must measure what the server answers: with a photo index, 'recognised' is the
    index score at the confident operating point, not the probability threshold."""
    from landmark_lib.gallery.enroll import run_model
    from landmark_lib.research.gallery_study import answers
    from landmark_lib.runtime.photos import model_pixels, read_photo

    data, _, export = fold_and_export
    service = LandmarkService(export / "model.pt", num_threads=1)
    photos = [read_photo(p) for p in sorted(data.glob("test/*/*"))]
    probs, emb = run_model(service.model, [model_pixels(p.image, service.max_short_side) for p in photos])
    best, recognised = answers(service, {"probs": probs, "emb": emb}, None)
    served = service.predict_photos(photos)
    assert best.tolist() == [p.best.name for p in served]
    assert recognised.tolist() == [p.level == "confident" for p in served]


def test_a_damaged_index_is_refused_in_one_sentence(fold_and_export, tmp_path):
    import shutil

    _, _, export = fold_and_export
    copy = shutil.copytree(export, tmp_path / "copy")
    data = dict(np.load(copy / INDEX_FILE))
    data["labels"] = data["labels"][::-1].copy()  # shuffled labels: every neighbour would lie
    np.savez(copy / INDEX_FILE, **data)
    with pytest.raises(PhotoIndexError, match="sha256 differs"):
        LandmarkService(copy / "model.pt")


def test_calibration_uses_only_held_out_collections_and_writes_the_operating_points(fold_and_export, tmp_path):
    _, run, export = fold_and_export
    out = tmp_path / "calibration"
    command = [
        sys.executable,
        "-m",
        "landmark_lib",
        "calibrate",
        str(run),
        "--out",
        str(out),
        "--export-dir",
        str(export),
        "--neighbours",
        "2",
    ]
    result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "calibration.json").read_text())
    assert (out / "calibration.png").stat().st_size > 10_000  # the curve of every score
    assert report["photos"]["held_out_negative"] == 6 and report["photos"]["cross_source"] == 6
    scores = report["scores"]
    assert set(scores) == {"probability", "similarity", "margin", "probability_x_margin"}
    served = scores["probability_x_margin"]
    assert set(served["false_accepts_by_collection"]) == {"nature_two"}  # only what the fold never saw
    assert 0 <= served["cross_source_coverage_at_97_precision"] <= 1
    info = json.loads((export / EXPORT_FILE).read_text())
    assert info["operating_points"]["confident"] == served["operating_points"]["confident"]
    assert "held-out" in info["operating_points"]["calibration"]["on"]
    # the server scores as the points were chosen: with the calibrated number of neighbours
    assert report["neighbours"] == info["index"]["neighbours"] == 2
    assert LandmarkService(export / "model.pt", num_threads=1).scorer.neighbours == 2


def test_best_coverage_is_the_most_a_threshold_names_at_the_precision():
    from landmark_lib.research.calibrate import best_coverage

    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, True, False, True, False])
    assert best_coverage(score, correct, 0.75) == 0.8  # the top 4: 3 right of 4
    assert best_coverage(score, correct, 1.0) == 0.4  # the top 2 only
    assert best_coverage(score, ~correct, 0.97) == 0.0  # no threshold reaches it
