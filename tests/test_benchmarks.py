"""benchmarks/serving_speed.py end to end on a tiny scratch model: every variant gets a row, the JSON matches the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import serving_speed
from landmark_lib.export.torchscript import save, to_torchscript
from landmark_lib.labels import ClassInfo
from landmark_lib.models.trained import load_trained_model
from landmark_lib.predictor import LandmarkPredictor

from helpers import make_run

pytestmark = pytest.mark.slow  # trainings, exports or subprocesses: see pytest.ini

VARIANTS = [
    "torchscript fp32",
    "eager fp32",
    "onnxruntime fp32",
    "eager int8-dynamic",
    "onnxruntime int8-dynamic",
    "onnxruntime int8-static",
]


def make_run_and_export(tmp_path: Path) -> tuple[Path, Path]:
    """A scratch run and its model.pt, written by the real exporter's tracing+scripting (without its slow self-check)."""
    run = make_run(tmp_path / "run", classes=[ClassInfo(f"c{i}", f"C{i}") for i in range(4)], input_size=32)
    model, config = load_trained_model(run)
    out = tmp_path / "export"
    out.mkdir()
    save(to_torchscript(LandmarkPredictor(model, config.preprocess, config.classes)), out / "model.pt")
    return run, out


def test_serving_speed_table_has_every_variant(tmp_path: Path, capsys) -> None:
    run, out = make_run_and_export(tmp_path)
    threads = torch.get_num_threads()
    try:
        report = serving_speed.main(
            [
                "--run",
                str(run),
                "--export-dir",
                str(out),
                "--iters",
                "2",
                "--warmup",
                "1",
                "--batches",
                "1,4",
                "--threads",
                "1",
                "--photo-size",
                "48x64",
                "--calib",
                "2",
                "--json",
                str(tmp_path / "speed.json"),
            ]
        )
    finally:
        torch.set_num_threads(threads)

    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| variant")]
    assert [row.split(" | ")[0].lstrip("| ") for row in rows] == VARIANTS
    assert "photos/s b=4" in table and "ONNX Runtime / TorchScript" in table and "Machine:" in table
    saved = json.loads((tmp_path / "speed.json").read_text())
    assert [r["name"] for r in saved["rows"]] == VARIANTS == [r["name"] for r in report["rows"]]
    for row in saved["rows"]:
        assert row["p50_ms"] > 0 and set(row["photos_per_s"]) == {"1", "4"}
    by_name = {r["name"]: r for r in saved["rows"]}
    assert by_name["eager fp32"]["max_abs_diff"] < 1e-4 and by_name["onnxruntime fp32"]["max_abs_diff"] < 1e-4


def test_app_startup_reports_the_median_of_repeated_cold_starts(model_dir: Path, tmp_path: Path) -> None:
    from benchmarks import app_startup

    result = app_startup.main(
        [
            "--model",
            str(model_dir),
            "--burst",
            "2",
            "--clients",
            "1",
            "--repeats",
            "2",
            "--timeout",
            "240",
            "--json",
            str(tmp_path / "startup.json"),
        ]
    )
    starts = result["cold_starts_seconds"]
    assert len(starts) == 2 and result["cold_start_seconds"] in starts
    assert 0 < result["seconds_to_http"] <= result["cold_start_seconds"] < 240
    # the REST API answers before the page has loaded (Gradio's import alone takes seconds); the threads are recorded
    assert 0 < result["seconds_to_rest"] < result["seconds_to_http"] and len(result["all_seconds_to_rest"]) == 2
    assert result["threads_per_request"] >= 1
    assert 100 < result["rss_ready_mib"] <= result["peak_rss_mib"]  # torch + gradio alone take far more than 100 MiB
    assert json.loads((tmp_path / "startup.json").read_text())["cold_starts_seconds"] == starts


def test_jpeg_decode_benchmark_decodes_smaller_and_faster(capsys) -> None:
    from benchmarks import jpeg_decode

    result = jpeg_decode.main(["--size", "2400x1600", "--min-short-side", "300", "--iters", "3"])
    assert result["sizes"] == {"full": (2400, 1600), "reduced": (600, 400)}  # 1/4 scale keeps the short side >= 300
    assert result["reduced"] < result["full"]
    assert "faster" in capsys.readouterr().out


def test_hostile_load_benchmark_keeps_the_app_answering(model_dir: Path, tmp_path: Path) -> None:
    from benchmarks import hostile_load

    report = hostile_load.main(
        ["--model", str(model_dir), "--clients", "2", "--rounds", "8", "--json", str(tmp_path / "hostile.json")]
    )
    assert report["errors"] == [] and report["app_alive"] and report["answers_after"]
    assert report["normal"]["count"] == 16 and report["hostile"]["count"] == 16
    assert report["outcomes"]["deep16_10000x10000.png"] == ["refused"] and report["outcomes"]["strip_1x30000.png"] == [
        "answered"
    ]
    assert report["rss_peak_above_idle_mib"] < 1536
    assert json.loads((tmp_path / "hostile.json").read_text())["normal"] == report["normal"]
