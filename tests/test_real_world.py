"""Photos from several collections: merged dataset roots, held-out collections, the no-landmark outcome and GAP."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from landmark_lib.artifacts.train_config import TrainConfig
from landmark_lib.data.cache import build_cache
from landmark_lib.data.classes import load_class_info
from landmark_lib.data.folder import DatasetError, open_split
from landmark_lib.data.run_split import run_split
from landmark_lib.evaluation.threshold import choose_threshold
from landmark_lib.labels import BACKGROUND_CLASS, ClassInfo
from landmark_lib.metrics import gap, recognition_metrics
from landmark_lib.recognition import best_landmarks
from landmark_lib.serve.service import LandmarkService

from helpers import CLASSES, TINY_LITE0_PARTIAL, export_tiny_model, make_dataset, make_photo

pytestmark = pytest.mark.slow  # trainings, exports or subprocesses: see pytest.ini

REPO = Path(__file__).resolve().parents[1]


def write_provenance(root: Path, source: str) -> None:
    """ROOT/provenance.csv naming SOURCE as the collection of every photo (the datasets' own format)."""
    with (root / "provenance.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "class", "file", "source_set"])
        for path in sorted(root.glob("*/*/*.jpg")):
            writer.writerow([path.parts[-3], path.parts[-2], path.name, source])


@pytest.fixture(scope="module")
def two_roots(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("roots")
    first = make_dataset(base / "first", classes=3, train_per_class=10, test_per_class=3, seed=1)
    second = make_dataset(
        base / "second", classes=4, train_per_class=8, test_per_class=3, seed=2
    )  # 3 shared classes + 1 new
    write_provenance(first, "collection_one")
    write_provenance(second, "collection_two")
    return first, second


def test_roots_merge_by_class_folder_and_validation_covers_every_class_of_every_root(two_roots, tmp_path):
    split = open_split(list(two_roots), "train")
    assert split.class_names == ["00.Landmark_A", "01.Landmark_B", "02.Landmark_C", "03.Landmark_D"]
    assert len(split.samples) == 3 * 10 + 4 * 8 and sorted(set(split.sample_roots)) == [0, 1]
    cached = build_cache(split, 32, tmp_path / "cache", workers=0)
    train_rows, valid_rows = run_split(split, cached, TrainConfig(valid_fraction=0.2, seed=0))
    roots = np.asarray(split.sample_roots)
    pairs = {(int(cached.targets[r]), int(roots[r])) for r in valid_rows}
    assert pairs == {(c, 0) for c in range(3)} | {(c, 1) for c in range(4)}  # stratified by class and by root
    assert not set(train_rows) & set(valid_rows)


def test_conflicting_classes_json_entries_are_an_error(two_roots, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "classes.json").write_text(json.dumps([{"name": "x", "display_name": "X", "city": "Rome"}]))
    (b / "classes.json").write_text(json.dumps([{"name": "x", "display_name": "X", "city": "Paris"}]))
    with pytest.raises(DatasetError, match="differ between"):
        load_class_info([a, b], ["x"])
    (b / "classes.json").write_text(
        json.dumps([{"name": "x", "display_name": "X", "city": "Rome"}, {"name": "y", "city": "Oslo"}])
    )
    infos = load_class_info([a, b], ["x", "y"])
    assert [(i.city, i.display_name) for i in infos] == [("Rome", "X"), ("Oslo", "Y")]


def test_exclusions_must_match_photos_and_leave_every_class_trained(two_roots, tmp_path):
    split = open_split(list(two_roots), "train")
    cached = build_cache(split, 32, tmp_path / "cache", workers=0)
    args = TrainConfig(valid_fraction=0.2, seed=0)
    train_rows, valid_rows = run_split(split, cached, replace(args, exclude=["collection_two:01.Landmark_B"]))
    kept = {split.samples[r][0] for r in np.concatenate([train_rows, valid_rows])}
    assert len(kept) == 3 * 10 + 4 * 8 - 8 and not any("second/train/01" in str(p) for p in kept)
    with pytest.raises(DatasetError, match="matches no photo"):
        run_split(split, cached, replace(args, exclude=["collection_3"]))
    with pytest.raises(DatasetError, match="leaves no training photo of 03.Landmark_D"):
        run_split(split, cached, replace(args, exclude=["collection_two:03.Landmark_D"]))


def test_gap_ranks_confident_right_answers_first():
    # 3 landmark photos and 1 no-landmark photo; ranked by confidence: right, no-landmark, wrong, right
    confidence = torch.tensor([0.9, 0.8, 0.7, 0.6])
    correct = torch.tensor([True, False, False, True])
    assert gap(confidence, correct, n_landmark_photos=3) == pytest.approx((1 / 1 + 2 / 4) / 3)
    assert gap(torch.tensor([0.6, 0.9]), torch.tensor([True, False]), 1) == pytest.approx(0.5)  # a confident miss costs
    assert gap(confidence, correct, 0) is None


def test_background_class_is_never_the_answer_and_counts_against_confidence():
    names = ["a", BACKGROUND_CLASS, "b"]
    probs = torch.tensor([[0.3, 0.6, 0.1], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]])
    targets = torch.tensor([1, 0, 2, 0])  # a no-landmark photo, then landmark photos a, b, a
    values, indices = best_landmarks(probs, names, k=2)
    assert BACKGROUND_CLASS not in {names[i] for i in indices.flatten().tolist()}
    metrics = recognition_metrics(probs, targets, names, threshold=0.5)
    assert metrics["landmark_top1"] == pytest.approx(1.0)  # the closest landmark of each landmark photo is right
    assert metrics["coverage"] == pytest.approx(2 / 3) and metrics["precision"] == 1.0
    assert metrics["false_accept_rate"] == 0.0 and metrics["no_landmark_photos"] == 1
    assert recognition_metrics(probs, targets, names, threshold=0.25)["false_accept_rate"] == 1.0


def test_threshold_keeps_false_accepts_under_the_target():
    names = ["a", "b", BACKGROUND_CLASS]
    rng = torch.Generator().manual_seed(0)
    landmark_conf = torch.rand(200, generator=rng) * 0.5 + 0.5  # landmark photos: 0.5-1.0 on their class
    other_conf = torch.rand(100, generator=rng) * 0.7 + 0.2  # everyday photos: 0.2-0.9 on class a
    probs = torch.zeros(300, 3)
    probs[:200, 0], probs[:200, 2] = landmark_conf, 1 - landmark_conf
    probs[200:, 0], probs[200:, 2] = other_conf, 1 - other_conf
    targets = torch.tensor([0] * 200 + [2] * 100)
    rule = choose_threshold(probs, targets, names, target_precision=0.9, max_false_accept=0.05)
    named_others = int((other_conf >= rule["threshold"]).sum())
    assert named_others <= 5 and rule["valid_false_accept_rate"] == pytest.approx(named_others / 100)
    assert rule["threshold"] < 0.9  # not simply the top of the range: coverage stays as high as the target allows
    assert rule["valid_coverage"] == pytest.approx(float((landmark_conf >= rule["threshold"]).float().mean()))


def test_service_says_no_known_landmark_when_the_background_class_wins(tmp_path):
    classes = CLASSES[:3] + [ClassInfo(BACKGROUND_CLASS, "No known landmark")]
    folder = export_tiny_model(tmp_path / "bg", classes=classes, bias_class=3)
    service = LandmarkService(folder / "model.pt", threshold=0.3, num_threads=1)
    prediction = service.predict(make_photo())
    assert BACKGROUND_CLASS not in [g.name for g in prediction.top] and len(prediction.top) == 3
    assert not prediction.recognised and prediction.best.probability < 0.3
    assert "No known landmark" not in service.landmark_names


def test_two_root_training_and_a_held_out_run_share_the_frozen_features(two_roots, tmp_path):
    """The second run holds a collection out, reuses the stored features (no second frozen pass) and is evaluated
    on exactly the photos it never saw."""
    common = [*TINY_LITE0_PARTIAL, "--epochs", "1", "--cache-dir", str(tmp_path / "cache")]
    env = {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    runs = {}
    variants = [("all", []), ("held_out", ["--exclude", "collection_two:01.Landmark_B"])]
    variants.append(("no_d", ["--holdout-classes", "03.Landmark_D"]))  # a class left out entirely (gallery protocol)
    for name, extra in variants:
        runs[name] = tmp_path / name
        result = subprocess.run(
            [
                sys.executable,
                str(REPO / "train_accelerate.py"),
                "--data",
                *map(str, two_roots),
                *common,
                "--output-dir",
                str(runs[name]),
                *extra,
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        if name == "all":  # the store the first run wrote: the later runs only read it
            store = Path(json.loads((runs[name] / "feature_cache.json").read_text())["store"])
            written = {f: f.stat().st_mtime_ns for f in store.rglob("*.npy")}  # the features themselves
    timing = {n: json.loads((r / "feature_cache.json").read_text()) for n, r in runs.items()}
    assert timing["all"]["store"] == timing["held_out"]["store"] == timing["no_d"]["store"]
    assert timing["no_d"]["train_photos"] + timing["no_d"]["valid_photos"] == 62 - 8
    no_d = json.loads((runs["no_d"] / "config.json").read_text())
    assert [c["name"] for c in no_d["classes"]] == ["00.Landmark_A", "01.Landmark_B", "02.Landmark_C"]
    assert no_d["args"]["holdout_classes"] == ["03.Landmark_D"]
    assert written and {f: f.stat().st_mtime_ns for f in store.rglob("*.npy")} == written  # read, not recomputed
    assert timing["held_out"]["train_photos"] + timing["held_out"]["valid_photos"] == 62 - 8
    config = json.loads((runs["held_out"] / "config.json").read_text())
    assert config["args"]["data"] == [str(p) for p in two_roots] and config["args"]["exclude"] == [
        "collection_two:01.Landmark_B"
    ]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "landmark_lib",
            "evaluate",
            str(runs["held_out"]),
            "--split",
            "train+test",
            "--only-excluded",
            "--out",
            str(tmp_path / "xsource"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "xsource" / "metrics.json").read_text())
    assert metrics["n_images"] == 8 + 3 and set(metrics["per_source"]) == {"collection_two"}


def test_rejection_scores_are_compared_at_the_same_false_accept_target():
    from landmark_lib.research.rejection import compare

    names = ["a", "b", BACKGROUND_CLASS]
    gen = torch.Generator().manual_seed(0)
    # landmark photos: their class high, background low; everyday photos: a high background logit but also a
    # confident-looking landmark logit, which only the background score sees through
    landmark = torch.randn(100, 3, generator=gen) * 0.3 + torch.tensor([3.0, 0.0, -1.0])
    everyday = torch.randn(100, 3, generator=gen) * 0.3 + torch.tensor([3.0, 0.0, 4.0])
    result = compare(torch.cat([landmark, everyday]), torch.tensor([0] * 100 + [2] * 100), names, max_false_accept=0.02)
    rows = result["scores"]
    assert set(rows) == {"background", "msp", "energy"}
    assert all(row["false_accept_rate"] <= 0.02 for row in rows.values())
    assert rows["background"]["coverage"] > 0.95 and rows["background"]["auroc"] > 0.99
    assert rows["msp"]["auroc"] < 0.75  # the landmark-only softmax cannot tell these everyday photos apart
    with pytest.raises(DatasetError, match="no_landmark"):
        compare(landmark, torch.zeros(100, dtype=torch.long), ["a", "b", "c"])


def test_threshold_curve_from_evaluation_folders(tmp_path):
    from landmark_lib.evaluation.threshold_curve import curve, plot

    folder = tmp_path / "eval"
    folder.mkdir()
    rows = [("a", 0.9), ("a", 0.6), (BACKGROUND_CLASS, 0.7), (BACKGROUND_CLASS, 0.3)]
    with (folder / "predictions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true", "landmark_confidence"])
        writer.writerows(rows)
    (folder / "metrics.json").write_text(
        json.dumps({"recognition": {"threshold": 0.65, "coverage": 0.5, "false_accept_rate": 0.5}})
    )
    thresholds, coverage, false_accepts = curve(folder)
    assert thresholds.tolist() == [0.9, 0.7, 0.6, 0.3]
    assert coverage.tolist() == [0.5, 0.5, 1.0, 1.0] and false_accepts.tolist() == [0.0, 0.5, 0.5, 1.0]
    plot([(folder, "model")], tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 10_000


def test_threshold_labels_never_round_to_0_or_1():
    from landmark_lib.evaluation.threshold_curve import threshold_text

    assert [threshold_text(t) for t in (0.35, 0.9954, 0.99996, 0.0004, 1.0)] == [
        "0.35",
        "0.995",
        "0.99996",
        "0.0004",
        "1.00",
    ]
