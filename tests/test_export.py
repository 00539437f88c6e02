"""Export: the TorchScript file runs with torch alone and matches the eager predictor on awkward image sizes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import export as export_cli
from landmark_lib.data.folder import ClassInfo
from landmark_lib.data.images import MAX_ASPECT, load_rgb, pil_to_uint8_chw
from landmark_lib.export import ExportError, export_run
from landmark_lib.models import ModelSpec
from landmark_lib.predictor import LandmarkPredictor
from landmark_lib.preprocess import PreprocessConfig
from landmark_lib.run import (
    RunConfig,
    RunError,
    build_model,
    load_trained_model,
    save_weights,
)

CLASSES = [
    ClassInfo("taj_mahal", "Taj Mahal", "Agra", "India", 27.175, 78.042),
    ClassInfo("petra", "Petra", "Wadi Musa", "Jordan", 30.329, 35.444),
    ClassInfo("unknown_place", "Unknown Place"),
]
ODD_SIZES = [(37, 500), (1, 1), (480, 640)]  # (height, width)

# Deliberately separate from landmark_lib.export's own check: loads the file the way a server would.
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


def make_dataset(root: Path) -> Path:
    for c, info in enumerate(CLASSES):
        folder = root / "test" / info.name
        folder.mkdir(parents=True)
        for i, (height, width) in enumerate(ODD_SIZES):
            pixels = torch.randint(0, 256, (height, width, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(10 * c + i))
            Image.fromarray(pixels.numpy()).save(folder / f"{i}.png")
    return root


def make_run(run_dir: Path, spec: ModelSpec, input_size: int, data: Path | None = None) -> Path:
    config = RunConfig(model=spec, classes=CLASSES, preprocess=PreprocessConfig(input_size=input_size),
                       args={"data": str(data)} if data else {})
    config.save(run_dir)
    torch.manual_seed(0)
    model = build_model(config)
    # Non-trivial BatchNorm statistics, so a traced graph that mishandled eval mode would show.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    save_weights(model, run_dir)
    return run_dir


def run_torch_only(model_file: Path, images: list[torch.Tensor], tmp_path: Path) -> dict:
    torch.save(images, tmp_path / "images.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-W", "ignore", "-c", TORCH_ONLY, str(model_file), "images.pt", "out.pt"],
                   cwd=tmp_path, env=env, check=True)
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
    data = make_dataset(tmp_path / "data")
    run = make_run(tmp_path / "run", ModelSpec("scratch", {"width": 0.25, "depth": 1}), 64)
    out = tmp_path / "export"

    export_cli.main([str(run), "--out", str(out), "--check-data", str(data), "--batch-size", "4"])

    assert "max |diff|" in capsys.readouterr().out
    images = [pil_to_uint8_chw(load_rgb(path)) for path in sorted((data / "test" / "petra").glob("*.png"))]
    # load_rgb keeps the centre of strips longer than MAX_ASPECT times their short side (37x500 -> 37x148)
    assert [tuple(image.shape[1:]) for image in images] == [(h, min(w, MAX_ASPECT * min(h, w))) for h, w in ODD_SIZES]
    assert_matches_eager(run, out, images, tmp_path)
    assert json.loads((out / "labels.json").read_text()) == [
        {"name": "taj_mahal", "display_name": "Taj Mahal", "city": "Agra", "country": "India", "lat": 27.175, "lon": 78.042},
        {"name": "petra", "display_name": "Petra", "city": "Wadi Musa", "country": "Jordan", "lat": 30.329, "lon": 35.444},
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
    run = make_run(tmp_path / "run", ModelSpec("timm:mobilenetv3_small_050", {"dropout": 0.0}), 96)
    out = tmp_path / "export"

    info = export_run(run, out)

    assert info["metrics"] is None and info["max_abs_diff"] < 1e-4 and not (out / "metrics.json").exists()
    assert info["model"] == "timm:mobilenetv3_small_050"
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8) for h, w in ODD_SIZES]
    assert_matches_eager(run, out, images, tmp_path)


def test_weights_of_another_model_give_run_error(tmp_path):
    run = make_run(tmp_path / "run", ModelSpec("scratch", {"width": 0.25, "depth": 1}), 64)
    other = RunConfig(ModelSpec("scratch", {"width": 0.5, "depth": 1}), CLASSES, PreprocessConfig(input_size=64))
    save_weights(build_model(other), run)

    with pytest.raises(RunError, match="does not match the scratch architecture"):
        export_run(run, tmp_path / "export")
    with pytest.raises(SystemExit, match="does not match"):
        export_cli.main([str(run), "--out", str(tmp_path / "export")])
    assert not (tmp_path / "export" / "model.pt").exists()


def test_drift_above_tolerance_fails_clearly(tmp_path, monkeypatch):
    run = make_run(tmp_path / "run", ModelSpec("scratch", {"width": 0.25, "depth": 1}), 64)
    monkeypatch.setattr("landmark_lib.export.compare_in_fresh_process", lambda *args: 3e-4)
    with pytest.raises(ExportError, match="differs from the eager one by 3.00e-04"):
        export_run(run, tmp_path / "export", evaluate=False)
    assert not (tmp_path / "export" / "model.pt").exists()
    with pytest.raises(SystemExit, match="do not ship it"):
        export_cli.main([str(run), "--out", str(tmp_path / "export"), "--no-eval"])
