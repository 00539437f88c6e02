"""ONNX serving path: export.py --format onnx writes a verified model.onnx, and the service prefers it with the same answers."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import export as export_cli
from landmark_lib.data.images import pil_to_uint8_chw
from landmark_lib.export import export_run
from landmark_lib.models import ModelSpec
from landmark_lib.serving import LandmarkService, ModelNotFoundError, read_photo

from conftest import make_photo
from test_export import make_run  # the same tiny run folder the export tests use

@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("onnx")
    out = tmp / "export"
    export_cli.main([str(make_run(tmp / "run", ModelSpec("scratch", {"width": 0.25, "depth": 1}), 64)), "--out", str(out), "--format", "onnx", "--no-eval"])
    return out


def test_export_writes_verified_onnx(onnx_export: Path) -> None:
    info = json.loads((onnx_export / "export.json").read_text())
    assert (onnx_export / "model.pt").is_file() and (onnx_export / "model.onnx").is_file()
    assert info["onnx"]["file"] == "model.onnx" and info["onnx"]["max_abs_diff"] < 1e-4
    assert info["preprocess"]["input_size"] == 64


def test_onnx_service_matches_torchscript(onnx_export: Path) -> None:
    onnx = LandmarkService(onnx_export / "model.pt", num_threads=1)
    torchscript = LandmarkService(onnx_export / "model.pt", num_threads=1, backend="torchscript")
    assert (onnx.backend, torchscript.backend) == ("onnx", "torchscript")

    images = [pil_to_uint8_chw(make_photo(w, h, seed)) for seed, (w, h) in enumerate([(120, 80), (37, 500), (1, 1), (640, 480)])]
    with torch.inference_mode():
        assert (onnx.model.forward_batch(images) - torchscript.model.forward_batch(images)).abs().max() < 1e-4
        assert (onnx.model(images[0]) - torchscript.model(images[0])).abs().max() < 1e-4

    photos = [read_photo(make_photo(seed=seed)) for seed in range(3)]
    for a, b in zip(onnx.predict_photos(photos), torchscript.predict_photos(photos)):
        assert [g.name for g in a.top] == [g.name for g in b.top] and a.place == b.place and a.threshold == b.threshold
        assert [g.probability for g in a.top] == pytest.approx([g.probability for g in b.top], abs=1e-4)
    assert onnx.display_names == torchscript.display_names and onnx.places == torchscript.places


def test_reexport_without_onnx_removes_it(onnx_export: Path, tmp_path: Path) -> None:
    run = Path(json.loads((onnx_export / "export.json").read_text())["source_run"])
    out = shutil.copytree(onnx_export, tmp_path / "export")
    export_run(run, out, evaluate=False)  # a TorchScript-only export must not leave the older model.onnx to be served

    assert not (out / "model.onnx").exists()
    assert LandmarkService(out / "model.pt", num_threads=1).backend == "torchscript"
    with pytest.raises(ModelNotFoundError, match="--format onnx"):
        LandmarkService(out / "model.pt", num_threads=1, backend="onnx")
