"""compute_metrics on hand-made numbers; evaluate_run end to end on a tiny dataset and run folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from landmark_lib.cli import main
from landmark_lib.data.folder import DatasetError
from landmark_lib.data.images import load_rgb, pil_to_uint8_chw
from landmark_lib.evaluation.evaluate import evaluate_run
from landmark_lib.labels import ClassInfo
from landmark_lib.metrics import compute_metrics
from landmark_lib.models.trained import load_trained_model
from landmark_lib.predictor import LandmarkPredictor

from helpers import make_dataset, make_run

CLASSES = ["alai_minar", "qutub_minar", "taj_mahal"]


def photos_with_bad_files(root: Path) -> Path:
    """test/<class>/ with three small photos of different sizes each, plus a corrupt and an empty file."""
    make_dataset(root, CLASSES, train_per_class=0, test_per_class=3, sizes=[(40, 60), (70, 50), (33, 33)])
    (root / "test" / CLASSES[0] / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "test" / CLASSES[1] / "empty.png").write_bytes(b"")
    return root


def delhi_run(run_dir: Path, data: Path) -> Path:
    classes = [ClassInfo(n, n.replace("_", " ").title(), "Delhi", "India", 28.5, 77.2) for n in CLASSES]
    return make_run(run_dir, classes=classes, args={"data": str(data)})


def test_compute_metrics_known_values():
    names = list("abcdef")
    probs = torch.tensor(
        [
            [0.50, 0.10, 0.10, 0.10, 0.10, 0.10],  # true a, predicted a
            [0.40, 0.30, 0.10, 0.10, 0.05, 0.05],  # true b, predicted a, b second: top-5 hit
            [0.10, 0.10, 0.50, 0.10, 0.10, 0.10],  # true c, predicted c
            [0.40, 0.20, 0.15, 0.00, 0.15, 0.10],  # true d, predicted a, d last: top-5 miss
        ]
    )
    metrics = compute_metrics(probs, torch.tensor([0, 1, 2, 3]), names, [n.upper() for n in names])
    assert metrics["top1"] == pytest.approx(0.5)
    assert metrics["top5"] == pytest.approx(0.75)
    # F1: a = 2 * (1/3 * 1) / (1/3 + 1) = 0.5, b = 0, c = 1, d = 0; e and f never occur and are left out.
    assert metrics["macro_f1"] == pytest.approx(0.375)
    a, b = metrics["per_class"][0], metrics["per_class"][1]
    assert (a["precision"], a["recall"], a["f1"], a["accuracy"], a["display_name"]) == pytest.approx(
        (1 / 3, 1.0, 0.5, 1.0, "A")
    )
    assert b["accuracy"] == 0.0 and metrics["per_class"][4]["accuracy"] is None
    assert [(p["true"], p["predicted"], p["count"]) for p in metrics["most_confused"]] == [("b", "a", 1), ("d", "a", 1)]
    assert metrics["confusion_matrix"][3][0] == 1 and metrics["n_images"] == 4


def test_evaluate_run_writes_report_and_skips_unreadable_files(tmp_path):
    data = photos_with_bad_files(tmp_path / "data")
    run = delhi_run(tmp_path / "run", data)

    metrics = evaluate_run(run, "test", batch_size=4)

    out = run / "eval-test"
    for name in (
        "metrics.json",
        "confusion_matrix.png",
        "per_class_accuracy.png",
        "misclassified.png",
        "predictions.csv",
    ):
        assert (out / name).stat().st_size > 0, name
    assert metrics["n_images"] == 9 and metrics["n_skipped"] == 2
    assert sorted(s["file"] for s in metrics["skipped"]) == ["test/alai_minar/broken.jpg", "test/qutub_minar/empty.png"]
    assert json.loads((out / "metrics.json").read_text())["top1"] == metrics["top1"]
    assert [c["display_name"] for c in metrics["per_class"]] == ["Alai Minar", "Qutub Minar", "Taj Mahal"]

    # The predictions are those of LandmarkPredictor on the decoded original file.
    model, config = load_trained_model(run)
    predictor = LandmarkPredictor(model, config.preprocess, config.classes).eval()
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 9
    for row in rows:
        with torch.no_grad():
            probs = predictor(pil_to_uint8_chw(load_rgb(data / row["file"])))
        assert row["predicted"] == CLASSES[int(probs.argmax())]
        assert float(row["confidence"]) == pytest.approx(float(probs.max()), abs=1e-4)


def test_tta_averages_each_photo_with_its_mirror_image_and_writes_to_out(tmp_path):
    data = photos_with_bad_files(tmp_path / "data")
    run = delhi_run(tmp_path / "run", data)
    metrics = evaluate_run(run, "test", data=data, out=tmp_path / "report", tta=True, num_workers=0)
    assert metrics["tta"] is True and (tmp_path / "report" / "metrics.json").is_file()
    model, config = load_trained_model(run)
    predictor = LandmarkPredictor(model, config.preprocess, config.classes).eval()
    rows = list(csv.DictReader((tmp_path / "report" / "predictions.csv").open()))
    plain_differs = False  # a random tiny network barely tells a photo from its mirror: compare at 6 decimals
    for row in rows:
        image = pil_to_uint8_chw(load_rgb(data / row["file"]))
        with torch.no_grad():
            plain, mirrored = predictor(image), predictor(image.flip(-1))
        averaged = (plain + mirrored) / 2
        assert row["predicted"] == CLASSES[int(averaged.argmax())]
        assert float(row["landmark_confidence"]) == pytest.approx(float(averaged.max()), abs=2e-6)
        plain_differs |= abs(float(plain.max()) - float(averaged.max())) > 1e-5
    assert plain_differs, "the photos must tell TTA from no TTA"


def test_cli_reports_missing_dataset_in_one_line(tmp_path, capsys):
    run = delhi_run(tmp_path / "run", tmp_path / "nowhere")
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "does not exist" in err and "\n" not in err
    with pytest.raises(DatasetError):
        evaluate_run(run, data=tmp_path / "nowhere")


def test_an_exported_file_is_evaluated_into_runs_never_into_its_own_folder(tmp_path, monkeypatch):
    from landmark_lib.export.pipeline import export_run

    data = photos_with_bad_files(tmp_path / "data")
    run = delhi_run(tmp_path / "run", data)
    export = tmp_path / "models" / "shipped"
    export_run(run, export, evaluate=False)
    before = sorted(p.name for p in export.iterdir())
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--exported", str(export / "model.pt"), "--data", str(data)]) == 0
    assert sorted(p.name for p in export.iterdir()) == before
    assert (tmp_path / "runs" / "eval-shipped-model-pt-test" / "metrics.json").is_file()
