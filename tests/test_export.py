"""Export: the TorchScript file runs with torch alone and matches the eager predictor on awkward image sizes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from landmark_lib.artifacts.run_folder import RunConfig, RunError
from landmark_lib.cli import main
from landmark_lib.data.images import MAX_ASPECT, load_rgb, pil_to_uint8_chw
from landmark_lib.export.checks import ExportError
from landmark_lib.export.pipeline import export_run
from landmark_lib.labels import ClassInfo
from landmark_lib.models import ModelSpec
from landmark_lib.models.trained import build_model, load_trained_model, save_weights
from landmark_lib.predictor import LandmarkPredictor
from landmark_lib.preprocess import PreprocessConfig

from helpers import SMALL_SCRATCH, cli_error, make_dataset, make_run

pytestmark = pytest.mark.slow  # trainings, exports or subprocesses: see pytest.ini

CLASSES = [
    ClassInfo("taj_mahal", "Taj Mahal", "Agra", "India", 27.175, 78.042),
    ClassInfo("petra", "Petra", "Wadi Musa", "Jordan", 30.329, 35.444),
    ClassInfo("unknown_place", "Unknown Place"),
]
ODD_SIZES = [(37, 500), (1, 1), (480, 640)]  # (height, width)

# Deliberately separate from the exporter's own check (export/torchscript.py): loads the file the way a server would.
TORCH_ONLY = """
import sys, torch
torch.set_num_threads(1)
model = torch.jit.load(sys.argv[1])
images = torch.load(sys.argv[2])
with torch.no_grad():
    probs = torch.stack([model(image) for image in images])
    batch = model.forward_batch(images)
assert "landmark_lib" not in sys.modules and "timm" not in sys.modules
torch.save({"probs": probs, "batch": batch, "names": list(model.class_names), "display": list(model.display_names),
            "countries": list(model.countries), "lat": list(model.latitudes)}, sys.argv[3])
"""


def odd_sized_photos(root: Path) -> Path:
    """test/<class>/ with lossless photos of ODD_SIZES, for each of CLASSES."""
    return make_dataset(
        root, [c.name for c in CLASSES], 0, len(ODD_SIZES), sizes=[(w, h) for h, w in ODD_SIZES], suffix=".png"
    )


def export_run_dir(
    run_dir: Path, spec: ModelSpec = SMALL_SCRATCH, input_size: int = 64, data: Path | None = None
) -> Path:
    """A run of CLASSES (one without a place), trained on DATA when given."""
    return make_run(run_dir, spec, CLASSES, input_size, {"data": str(data)} if data else {})


def run_torch_only(model_file: Path, images: list[torch.Tensor], tmp_path: Path) -> dict:
    torch.save(images, tmp_path / "images.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [sys.executable, "-W", "ignore", "-c", TORCH_ONLY, str(model_file), "images.pt", "out.pt"],
        cwd=tmp_path,
        env=env,
        check=True,
    )
    return torch.load(tmp_path / "out.pt")


def assert_matches_eager(run: Path, out: Path, images: list[torch.Tensor], tmp_path: Path) -> None:
    model, config = load_trained_model(run)
    eager = LandmarkPredictor(model, config.preprocess, config.classes).eval()
    with torch.no_grad():
        expected = torch.stack([eager(image) for image in images])
    result = run_torch_only(out / "model.pt", images, tmp_path)
    assert (result["probs"] - expected).abs().max() < 1e-4
    assert (result["batch"] - expected).abs().max() < 1e-4
    assert result["names"] == [c.name for c in CLASSES]
    assert result["display"] == [c.display_name for c in CLASSES]
    assert result["countries"] == ["India", "Jordan", ""]
    assert result["lat"][:2] == pytest.approx([27.175, 30.329]) and result["lat"][2] != result["lat"][2]  # NaN


def test_export_scratch_run_via_cli(tmp_path, capsys):
    data = odd_sized_photos(tmp_path / "data")
    run = export_run_dir(tmp_path / "run")
    out = tmp_path / "export"

    assert main(["export", str(run), "--out", str(out), "--check-data", str(data), "--batch-size", "4"]) == 0

    assert "max |diff|" in capsys.readouterr().out
    images = [pil_to_uint8_chw(load_rgb(path)) for path in sorted((data / "test" / "petra").glob("*.png"))]
    # load_rgb keeps the centre of strips longer than MAX_ASPECT times their short side (37x500 -> 37x148)
    assert [tuple(image.shape[1:]) for image in images] == [(h, min(w, MAX_ASPECT * min(h, w))) for h, w in ODD_SIZES]
    assert_matches_eager(run, out, images, tmp_path)
    assert json.loads((out / "labels.json").read_text()) == [
        {
            "name": "taj_mahal",
            "display_name": "Taj Mahal",
            "city": "Agra",
            "country": "India",
            "lat": 27.175,
            "lon": 78.042,
        },
        {
            "name": "petra",
            "display_name": "Petra",
            "city": "Wadi Musa",
            "country": "Jordan",
            "lat": 30.329,
            "lon": 35.444,
        },
        {"name": "unknown_place", "display_name": "Unknown Place", "city": "", "country": "", "lat": None, "lon": None},
    ]
    info = json.loads((out / "export.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert info["model"] == "scratch" and info["max_abs_diff"] < 1e-4 and info["preprocess"]["input_size"] == 64
    assert info["metrics"]["n_images"] == 9 and info["metrics"]["top1"] == metrics["top1"]
    assert metrics["exported"].endswith("model.pt")
    card = (out / "README.md").read_text()  # the model card travels with every export
    assert "pipeline_tag: image-classification" in card and "Taj Mahal" in card


def test_export_timm_run_without_data(tmp_path):
    run = export_run_dir(tmp_path / "run", ModelSpec("timm:mobilenetv3_small_050", {"dropout": 0.0}), 96)
    out = tmp_path / "export"

    info = export_run(run, out)

    assert info["metrics"] is None and info["max_abs_diff"] < 1e-4 and not (out / "metrics.json").exists()
    assert info["model"] == "timm:mobilenetv3_small_050"
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for h, w in ODD_SIZES]
    assert_matches_eager(run, out, images, tmp_path)
    assert_timm_loads_the_export(run, out, images[-1])


def assert_timm_loads_the_export(run: Path, out: Path, image: torch.Tensor) -> None:
    """timm.create_model("hf-hub:OWNER/NAME", pretrained=True) works on the pushed folder: the same files, read offline
    from the export folder ("local-dir:"), rebuild the fine-tuned network with its labels and preprocessing."""
    import timm

    model, config = load_trained_model(run)
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    assert loaded.pretrained_cfg["label_names"] == [c.name for c in CLASSES]
    assert loaded.pretrained_cfg["input_size"] == (3, 96, 96) and loaded.num_classes == len(CLASSES)
    data = timm.data.resolve_model_data_config(loaded)
    assert tuple(data["mean"]) == config.preprocess.mean and data["crop_pct"] == config.preprocess.crop_pct
    eager = LandmarkPredictor(model, config.preprocess, config.classes).eval()
    with torch.no_grad():
        crop = eager.preprocess(image)
        assert (loaded(crop) - model.eval()(crop)).abs().max() < 1e-5


def test_weights_of_another_model_give_run_error(tmp_path, capsys):
    run = export_run_dir(tmp_path / "run")
    other = RunConfig(ModelSpec("scratch", {"width": 0.5, "depth": 1}), CLASSES, PreprocessConfig(input_size=64))
    save_weights(build_model(other), run)

    with pytest.raises(RunError, match="does not match the scratch architecture"):
        export_run(run, tmp_path / "export")
    assert "does not match" in cli_error(capsys, "export", str(run), "--out", str(tmp_path / "export"))
    assert not (tmp_path / "export" / "model.pt").exists()


def test_drift_above_tolerance_fails_clearly(tmp_path, monkeypatch, capsys):
    run = export_run_dir(tmp_path / "run")
    monkeypatch.setattr("landmark_lib.export.torchscript.compare_in_fresh_process", lambda *args: 3e-4)
    with pytest.raises(ExportError, match="differs from the eager one by 3.00e-04"):
        export_run(run, tmp_path / "export", evaluate=False)
    assert not (tmp_path / "export" / "model.pt").exists()
    assert "do not ship it" in cli_error(capsys, "export", str(run), "--out", str(tmp_path / "export"), "--no-eval")


def test_export_never_destroys_an_earlier_one(tmp_path, monkeypatch, capsys):
    run = export_run_dir(tmp_path / "run")
    out = tmp_path / "export"
    export_run(run, out, evaluate=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    message = cli_error(capsys, "export", str(run), "--out", str(out), "--no-eval")
    assert "already holds files" in message and "--overwrite" in message
    assert "holds the run" in cli_error(
        capsys, "export", str(run), "--out", str(run.parent), "--no-eval", "--overwrite"
    )
    monkeypatch.setattr("landmark_lib.export.torchscript.compare_in_fresh_process", lambda *args: 3e-4)
    assert "do not ship it" in cli_error(capsys, "export", str(run), "--out", str(out), "--no-eval", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the failed export left the old one whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "run"]  # and no half-built folder

    monkeypatch.undo()
    (out / "model.onnx").write_bytes(b"an older export's file")
    assert main(["export", str(run), "--out", str(out), "--no-eval", "--overwrite"]) == 0
    assert not (out / "model.onnx").exists() and (out / "model.pt").is_file()  # replaced as a whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "run"]


def test_a_refused_int8_file_is_a_warning_unless_required(tmp_path, monkeypatch, capsys):
    from landmark_lib.export import pipeline

    run = export_run_dir(tmp_path / "run")
    reason = "The int8 model reaches 50.00% top-1 (...), so model.int8.onnx was removed; the fp32 files are exported and served."
    monkeypatch.setattr(pipeline, "run_data_on_disk", lambda config: True)
    monkeypatch.setattr(pipeline, "_thresholds_and_int8", lambda *args: (None, None, reason))
    monkeypatch.setattr(pipeline, "measure", lambda *args: None)
    argv = ["export", str(run), "--format", "onnx-int8", "--no-eval"]

    assert main([*argv, "--out", str(tmp_path / "fp32")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: The int8 model") and "--require-int8" in err
    assert (tmp_path / "fp32" / "model.onnx").is_file() and not (tmp_path / "fp32" / "model.int8.onnx").exists()
    assert "--require-int8" in cli_error(capsys, *argv, "--out", str(tmp_path / "strict"), "--require-int8")
    assert not (tmp_path / "strict").exists()
