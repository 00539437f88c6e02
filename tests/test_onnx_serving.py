"""ONNX serving path: export.py --format onnx / onnx-int8 writes verified ONNX files, and the service prefers them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from landmark_lib.artifacts.checksums import sha256_file
from landmark_lib.cli import main
from landmark_lib.data.images import pil_to_uint8_chw
from landmark_lib.export.hub import build_model_card
from landmark_lib.export.pipeline import export_run
from landmark_lib.runtime.photos import read_photo
from landmark_lib.runtime.resolve import ModelNotFoundError
from landmark_lib.serve.service import LandmarkService

from helpers import TINY_SCRATCH, cli_error, make_dataset, make_photo, make_run, run_train

pytestmark = pytest.mark.slow  # trainings, exports or subprocesses: see pytest.ini


def test_export_writes_verified_onnx(onnx_export: Path) -> None:
    info = json.loads((onnx_export / "export.json").read_text())
    assert (onnx_export / "model.pt").is_file() and (onnx_export / "model.onnx").is_file()
    assert info["onnx"]["file"] == "model.onnx" and info["onnx"]["max_abs_diff"] < 1e-4
    assert info["preprocess"]["input_size"] == 64
    assert info["onnx"]["preprocess_file"] == "preprocess.onnx" and info["onnx"]["preprocess_max_abs_diff"] < 1e-3
    # the exporter records each file's sha256
    assert sorted(info["files"]) == ["labels.json", "model.onnx", "model.pt", "preprocess.onnx"]
    speed = info["speed"]  # each verified file timed at batch 1; 'auto' serves the fastest
    assert set(speed["ms_per_photo"]) == {"onnx", "torchscript"} and all(
        ms > 0 for ms in speed["ms_per_photo"].values()
    )
    assert speed["served"] == min(speed["ms_per_photo"], key=speed["ms_per_photo"].get)
    assert all(info["files"][name]["sha256"] == sha256_file(onnx_export / name) for name in info["files"])


def test_onnx_service_matches_torchscript(onnx_export: Path) -> None:
    # the backend named: 'auto' serves whichever file the export measured faster, which on a busy machine can be either
    onnx = LandmarkService(onnx_export / "model.pt", num_threads=1, backend="onnx")
    torchscript = LandmarkService(onnx_export / "model.pt", num_threads=1, backend="torchscript")
    assert (onnx.backend, torchscript.backend) == ("onnx", "torchscript")

    images = [
        pil_to_uint8_chw(make_photo(w, h, seed))
        for seed, (w, h) in enumerate([(120, 80), (37, 500), (1, 1), (640, 480)])
    ]
    with torch.inference_mode():
        assert (onnx.model.forward_batch(images) - torchscript.model.forward_batch(images)).abs().max() < 1e-4
        assert (onnx.model(images[0]) - torchscript.model(images[0])).abs().max() < 1e-4

    photos = [read_photo(make_photo(seed=seed)) for seed in range(3)]
    for a, b in zip(onnx.predict_photos(photos), torchscript.predict_photos(photos)):
        assert (
            [g.name for g in a.top] == [g.name for g in b.top]
            and a.landmark == b.landmark
            and a.threshold == b.threshold
        )
        assert [g.probability for g in a.top] == pytest.approx([g.probability for g in b.top], abs=1e-4)
    assert onnx.display_names == torchscript.display_names and onnx.classes == torchscript.classes


def test_reexport_without_onnx_removes_it(onnx_export: Path, tmp_path: Path) -> None:
    run = Path(json.loads((onnx_export / "export.json").read_text())["source_run"])
    out = shutil.copytree(onnx_export, tmp_path / "export")
    export_run(
        run, out, evaluate=False, overwrite=True
    )  # a TorchScript-only export must not leave the older model.onnx

    assert not (out / "model.onnx").exists()
    assert LandmarkService(out / "model.pt", num_threads=1).backend == "torchscript"
    with pytest.raises(ModelNotFoundError, match="--format onnx"):
        LandmarkService(out / "model.pt", num_threads=1, backend="onnx")


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained run (so validation top-1 means something), exported with --format onnx-int8 and evaluated on test."""
    tmp = tmp_path_factory.mktemp("int8")
    data = make_dataset(tmp / "data", classes=3, train_per_class=14, test_per_class=4)
    result = run_train(
        ["--data", str(data), "--output-dir", str(tmp / "run"), "--epochs", "6", *TINY_SCRATCH], tmp / "cache"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        main(
            [
                "export",
                str(tmp / "run"),
                "--out",
                str(tmp / "export"),
                "--format",
                "onnx-int8",
                "--calibration-photos",
                "12",
            ]
        )
        == 0
    )
    return tmp / "export"


def test_int8_export_is_quantised_checked_on_validation_and_evaluated(int8_export: Path) -> None:
    info = json.loads((int8_export / "export.json").read_text())
    int8 = info["onnx_int8"]
    assert int8["file"] == "model.int8.onnx" and int8["calibration_photos"] == 12
    assert int8["valid_top1_int8"] >= int8["valid_top1_fp32"] - 0.01 and int8["valid_top1_fp32"] >= 0.8
    assert int8["threshold_calibration"]["valid_images"] == 6  # the run's own validation rows, not test photos
    assert 0.2 <= int8["threshold"] < 1.0
    assert int8["metrics"]["split"] == "test" and int8["metrics"]["n_images"] == 12
    assert abs(int8["metrics"]["top1"] - info["metrics"]["top1"]) <= 1 / 12  # at most one of 12 test photos changes
    assert int8["metrics"]["top1"] >= 0.75
    # int8 weights: the file is much smaller than the fp32 one, and it holds quantise/dequantise nodes
    assert (int8_export / "model.int8.onnx").stat().st_size < 0.5 * (int8_export / "model.onnx").stat().st_size
    assert b"QuantizeLinear" in (int8_export / "model.int8.onnx").read_bytes()


def test_service_serves_the_measured_fastest_and_int8_has_its_own_threshold(int8_export: Path) -> None:
    info = json.loads((int8_export / "export.json").read_text())
    assert set(info["speed"]["ms_per_photo"]) == {"onnx-int8", "onnx", "torchscript"}
    assert LandmarkService(int8_export / "model.pt", num_threads=1).backend == info["speed"]["served"]
    int8 = LandmarkService(int8_export / "model.pt", num_threads=1, backend="onnx-int8")
    fp32 = LandmarkService(int8_export / "model.pt", num_threads=1, backend="onnx")
    assert int8.threshold == info["onnx_int8"]["threshold"] and fp32.threshold == info["threshold"]

    photos = [read_photo(path) for path in sorted(Path(info["check_data"][0], "test").rglob("*.jpg"))]
    int8_top = [p.best.name for p in int8.predict_photos(photos)]
    fp32_top = [p.best.name for p in fp32.predict_photos(photos)]
    assert len(photos) == 12 and sum(a == b for a, b in zip(int8_top, fp32_top)) >= len(photos) - 1


def test_int8_that_loses_accuracy_is_refused_and_removed(
    int8_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    run = json.loads((int8_export / "export.json").read_text())["source_run"]
    monkeypatch.setattr(
        "landmark_lib.export.onnx.MAX_INT8_TOP1_DROP", -1.0
    )  # demand int8 beat fp32 by 100 points: impossible
    argv = ["export", run, "--out", str(tmp_path / "export"), "--format", "onnx-int8", "--calibration-photos", "6"]
    assert main([*argv, "--no-eval"]) == 0  # a warning: the fp32 export is complete
    warning = capsys.readouterr().err.splitlines()[-1]
    assert re.search(
        r"^warning: The int8 model reaches .* validation photos .* was removed; the fp32 files are exported", warning
    )
    assert not (tmp_path / "export" / "model.int8.onnx").exists()
    info = json.loads((tmp_path / "export" / "export.json").read_text())
    assert info["onnx_int8"] is None and "was removed" in info["onnx_int8_refused"]
    assert (
        LandmarkService(tmp_path / "export" / "model.pt", num_threads=1, backend="onnx").backend == "onnx"
    )  # the fp32 export is complete


def test_int8_needs_the_runs_photos_and_says_so_before_exporting(tmp_path: Path, capsys) -> None:
    run = make_run(tmp_path / "run", args={"data": str(tmp_path / "moved-away")})
    error = cli_error(capsys, "export", str(run), "--out", str(tmp_path / "export"), "--format", "onnx-int8")
    assert re.search(r"int8 quantisation is calibrated on the run's training photos .* --format onnx", error)
    assert not (tmp_path / "export").exists()


def test_int8_backend_on_an_export_without_it_names_the_export_format(onnx_export: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="--format onnx-int8"):
        LandmarkService(onnx_export / "model.pt", num_threads=1, backend="onnx-int8")


def test_hub_spec_fetches_the_onnx_files_the_export_verified(
    int8_export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    fetched = []
    monkeypatch.setattr(
        huggingface_hub,
        "snapshot_download",
        lambda repo_id, revision=None, allow_patterns=None: fetched.extend(allow_patterns) or str(int8_export),
    )
    service = LandmarkService.from_spec("hf://someone/landmarks", num_threads=1)
    assert {"model.pt", "labels.json", "export.json", "model.int8.onnx", "model.onnx", "preprocess.onnx"} <= set(
        fetched
    )
    assert service.backend == json.loads((int8_export / "export.json").read_text())["speed"]["served"]
    card = build_model_card(int8_export, "someone/landmarks").text
    assert "`model.int8.onnx`: the same interface, statically quantised" in card and "validation top-1" in card


def test_threshold_cli_rechooses_both_thresholds_on_validation(int8_export: Path, tmp_path: Path, capsys) -> None:
    out = shutil.copytree(int8_export, tmp_path / "export")
    run = json.loads((out / "export.json").read_text())["source_run"]
    assert (
        main(["threshold", run, "--target-precision", "0.5", "0.9"]) == 0
    )  # without --export-dir: print the rules only
    printed = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(line.split(": ", 1)[1])["target_precision"] for line in printed] == [0.5, 0.9]
    assert (out / "export.json").read_text() == (int8_export / "export.json").read_text()
    assert main(["threshold", run, "--export-dir", str(out), "--target-precision", "0.5"]) == 0
    info = json.loads((out / "export.json").read_text())
    for calibration in (info["threshold_calibration"], info["onnx_int8"]["threshold_calibration"]):
        assert calibration["target_precision"] == 0.5 and calibration["valid_images"] == 6
    assert info["onnx_int8"]["threshold"] == info["onnx_int8"]["threshold_calibration"]["threshold"]
    assert (
        LandmarkService(out / "model.pt", num_threads=1, backend="onnx-int8").threshold
        == info["onnx_int8"]["threshold"]
    )


def test_embedding_output_is_normalised_and_agrees_across_backends(int8_export: Path) -> None:
    """model.pt's forward_batch_with_embedding, model.onnx's and model.int8.onnx's second output: one embedding."""
    info = json.loads((int8_export / "export.json").read_text())
    dim = info["embedding"]["dim"]
    images = [pil_to_uint8_chw(make_photo(w, h, seed)) for seed, (w, h) in enumerate([(120, 80), (37, 500), (64, 64)])]
    models = {
        b: LandmarkService(int8_export / "model.pt", num_threads=1, backend=b).model
        for b in ("torchscript", "onnx", "onnx-int8")
    }
    with torch.inference_mode():
        out = {b: m.forward_batch_with_embedding(images) for b, m in models.items()}
        assert (
            out["torchscript"][0] - models["torchscript"].forward_batch(images)
        ).abs().max() < 1e-6  # same probabilities
    for probs, embedding in out.values():
        assert probs.shape == (3, 3) and embedding.shape == (3, dim)
        assert torch.allclose(embedding.norm(dim=1), torch.ones(3), atol=1e-4)
    assert (out["onnx"][1] - out["torchscript"][1]).abs().max() < 1e-4
    assert (out["onnx-int8"][1] * out["onnx"][1]).sum(dim=1).min() > 0.95
    assert info["onnx_int8"]["valid_embedding_cosine_to_fp32"] > 0.95
