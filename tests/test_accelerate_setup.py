"""The run's Accelerator follows Accelerate's conventions: the launcher's precision and device unless an option sets
them, trackers in the run folder, the run's configuration logged (the end-to-end run: test_training.py)."""

from __future__ import annotations

import argparse

import pytest
import yaml
from accelerate.state import AcceleratorState

from landmark_lib.train import options
from landmark_lib.train.accelerator import LOGS_DIR, PROJECT_NAME, make_accelerator, tracker_config


@pytest.fixture
def fresh_state():
    """Accelerate keeps one process-wide state; each case starts from none and leaves none behind."""
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def train_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    options.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_precision_and_device_are_unset_by_default():
    args = train_args()
    assert args.mixed_precision is None and args.cpu is None


@pytest.mark.parametrize(
    ("argv", "launcher", "expected"),
    [
        ((), "bf16", "bf16"),  # `accelerate launch --mixed_precision bf16` (or accelerate config) is respected
        ((), None, "no"),  # plain `landmark train`: full precision
        (("--mixed-precision", "no"), "bf16", "no"),  # an explicit option still wins
    ],
)
def test_mixed_precision_follows_the_launcher_unless_given(
    fresh_state, monkeypatch, tmp_path, argv, launcher, expected
):
    if launcher:
        monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", launcher)  # what accelerate launch sets for its processes
    else:
        monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    accelerator = make_accelerator(train_args(*argv), tmp_path)
    assert accelerator.mixed_precision == expected
    assert accelerator.project_dir == str(tmp_path) and accelerator.logging_dir == str(tmp_path / LOGS_DIR)


def test_trackers_get_the_runs_configuration(fresh_state, tmp_path):
    args = train_args("--data", "a", "b", "--report-to", "tensorboard", "--lr", "0.01")
    accelerator = make_accelerator(args, tmp_path)
    accelerator.init_trackers(PROJECT_NAME, config=tracker_config(args, accelerator))
    accelerator.end_training()
    (hparams,) = (tmp_path / LOGS_DIR / PROJECT_NAME).glob("*/hparams.yml")
    logged = yaml.safe_load(hparams.read_text())
    assert logged["lr"] == 0.01 and logged["data"] == "a,b" and logged["report_to"] == "tensorboard"
    assert logged["mixed_precision"] == "no" and logged["num_processes"] == 1
    assert list((tmp_path / LOGS_DIR / PROJECT_NAME).glob("events.out.tfevents.*"))


def test_half_precision_on_a_cpu_and_a_tracker_without_its_package_are_warned_about(
    fresh_state, monkeypatch, tmp_path, capsys
):
    import accelerate.tracking

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # accelerate launch --mixed_precision bf16, on a CPU
    monkeypatch.setattr(accelerate.tracking, "_available_trackers", [])  # as without tensorboard(X) installed
    make_accelerator(train_args("--report-to", "tensorboard", "--cpu"), tmp_path)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("warning: ") for line in lines)
    assert "bf16 on a CPU is emulated" in lines[0] and "--mixed-precision no" in lines[0]
    assert "--report-to tensorboard is ignored" in lines[1] and "pip install tensorboard" in lines[1]


def test_full_precision_and_installed_trackers_need_no_warning(fresh_state, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    make_accelerator(train_args("--report-to", "tensorboard", "--cpu"), tmp_path)
    assert capsys.readouterr().err == ""
