"""Training against broken input: run files written atomically, degenerate data and options stopped in one
sentence before training, a full disk named, concurrent cache builds safe, damaged or newer run files one line."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from landmark_lib.artifacts.run_folder import RunConfig, RunError
from landmark_lib.cli import main as landmark
from landmark_lib.data import cache as cache_module
from landmark_lib.data.cache import build_cache
from landmark_lib.data.classes import load_class_info
from landmark_lib.data.folder import DatasetError, open_split
from landmark_lib.labels import ClassInfo
from landmark_lib.models import ModelSpec
from landmark_lib.models.trained import load_trained_model
from landmark_lib.preprocess import PreprocessConfig
from landmark_lib.train.tracking import read_metrics

from helpers import REPO_ROOT, SUBPROCESS_ENV, TINY_SCRATCH, cli_error, make_dataset, run_python, run_train

pytestmark = pytest.mark.slow  # trainings, exports or subprocesses: see pytest.ini


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"), classes=3, train_per_class=14, test_per_class=4)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> Path:
    """A finished one-epoch run (config.json, model.safetensors, metrics.csv, state/epoch_0001)."""
    tmp = tmp_path_factory.mktemp("trained")
    result = run_train(
        ["--data", str(dataset), "--output-dir", str(tmp / "run"), "--epochs", "1", *TINY_SCRATCH], tmp / "cache"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return tmp / "run"


@contextlib.contextmanager
def full_disk(path: Path, size: str) -> Iterator[Path]:
    """A SIZE tmpfs at PATH: a real filesystem that fills up (needs root to mount; skipped otherwise)."""
    path.mkdir(parents=True)
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, check=False
        ).returncode
    ):
        pytest.skip("a full disk is simulated with a small tmpfs, which needs root to mount")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def processes_mentioning(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(marker in part for part in process.info["cmdline"] or []):
                found.append(process)
    return found


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


# --- 8: every run file is written atomically --------------------------------------------------------------------

WRITE_UNDER_A_SIZE_LIMIT = """
import resource, signal, sys
from pathlib import Path
from landmark_lib.artifacts.run_folder import RunConfig
from landmark_lib.models.trained import save_weights, build_model
from landmark_lib.train.tracking import CSVTracker
run, what = Path(sys.argv[1]), sys.argv[2]
config = RunConfig.load(run)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    if what == "config.json":
        config.args["notes"] = "x" * 100_000
        config.save(run)
    elif what == "model.safetensors":
        save_weights(build_model(config), run)
    else:
        CSVTracker(run).log({"note": "y" * 100_000}, step=1)
except OSError as error:
    print("write failed:", error.errno)
"""


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "metrics.csv"])
def test_a_write_that_fails_midway_keeps_the_previous_run_file(trained: Path, tmp_path: Path, name: str) -> None:
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    before = (run / name).read_bytes()
    result = run_python(WRITE_UNDER_A_SIZE_LIMIT, str(run), name, env=SUBPROCESS_ENV)
    assert "write failed" in result.stdout, result.stderr[-2000:]
    assert (run / name).read_bytes() == before
    assert RunConfig.load(run) and load_trained_model(run) and read_metrics(run / "metrics.csv")
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]


def test_killed_while_saving_config_leaves_a_loadable_config(trained: Path, tmp_path: Path) -> None:
    """kill -9 at random moments of a --resume start (which rewrites config.json): the file is old or new, never cut."""
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    script = (
        "import sys; from landmark_lib.artifacts.run_folder import RunConfig; c = RunConfig.load(sys.argv[1]); c.args['notes'] = 'z' * 2_000_000\n"
        "print('ready', flush=True)\nwhile True: c.save(sys.argv[1])"
    )
    for delay in (0.05, 0.2, 0.35, 0.5):
        process = subprocess.Popen(
            [sys.executable, "-c", script, str(run)],
            cwd=REPO_ROOT,
            env=SUBPROCESS_ENV,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout.readline().strip() == "ready"
        time.sleep(delay)
        process.kill()
        process.wait()
        assert RunConfig.load(run).model.name == "scratch"


# --- 9: degenerate input stops before training -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "0"], "--epochs must be a whole number >= 1, got 0"),
        (
            ["--valid-fraction", "0"],
            "--valid-fraction must be a number in (0, 1): model selection and early stopping need validation photos, got 0.0",
        ),
        (["--valid-fraction", "1"], "--valid-fraction must be a number in (0, 1)"),
        (["--lr", "nan"], "--lr must be a number > 0, got nan"),
        (["--lr=-0.001"], "--lr must be a number > 0"),
        (["--batch-size", "0"], "--batch-size must be a whole number >= 1"),
        (["--patience", "0"], "--patience must be a whole number >= 1"),
        (["--seed", "-1"], "--seed must be a whole number between 0 and 2**32 - 1"),
        (["--dropout", "1.5"], "--dropout must be a number in [0, 1)"),
        (["--input-size", "4"], "--input-size must be a crop size between 16 and 1024 pixels"),
        (["--warmup-epochs", "inf"], "--warmup-epochs must be a number >= 0, got inf"),
    ],
)
def test_bad_numeric_options_stop_with_one_sentence(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture, args, message
) -> None:
    assert landmark(["train", "--data", str(dataset), "--output-dir", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_resume_rechecks_the_epochs(trained: Path, capsys: pytest.CaptureFixture) -> None:
    assert landmark(["train", "--resume", str(trained), "--epochs", "0"]) == 2
    assert "--epochs must be a whole number >= 1, got 0" in capsys.readouterr().err


def test_a_class_whose_photos_are_all_unreadable_stops_before_training(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", classes=3, train_per_class=6, test_per_class=2)
    for photo in (data / "train" / "01.Landmark_B").iterdir():
        photo.write_bytes(b"not a photo")
    line = one_error_line(
        run_train(
            ["--data", str(data), "--output-dir", str(tmp_path / "run"), "--epochs", "1", *TINY_SCRATCH],
            tmp_path / "cache",
            timeout=120,
        )
    )
    assert "None of the photos of class '01.Landmark_B' can be read" in line
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_no_validation_photos_stops_before_training(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", classes=3, train_per_class=1, test_per_class=1)
    line = one_error_line(
        run_train(
            ["--data", str(data), "--output-dir", str(tmp_path / "run"), "--epochs", "1", *TINY_SCRATCH],
            tmp_path / "cache",
            timeout=120,
        )
    )
    assert "leaves no validation photos" in line and not (tmp_path / "run" / "model.safetensors").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"name": "a"}', "is not a list"),
        ('[{"display_name": "A"}]', 'every entry needs a "name"'),
        ('["a"]', 'every entry needs a "name"'),
        ('[{"name": "a", "lat": "north"}]', "\"lat\" of 'a' must be a number of degrees within +-90"),
        ('[{"name": "a", "lon": 200}]', "\"lon\" of 'a' must be a number of degrees within +-180"),
        ('[{"name": "a", "lat": true}]', "\"lat\" of 'a' must be a number"),
        ('[{"name": "a", "display_name": 7}]', "\"display_name\" of 'a' must be text"),
        ('[{"name": "a", ', "is not a list of {name, display_name"),
    ],
)
def test_malformed_classes_json_is_one_sentence(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "classes.json").write_text(content)
    with pytest.raises(DatasetError) as error:
        load_class_info(tmp_path, ["a"])
    assert message in str(error.value) and "fix or delete" in str(error.value)


# --- 10: a full disk and concurrent cache builds -----------------------------------------------------------------


def test_a_full_cache_disk_is_named_and_leaves_no_workers(dataset: Path, tmp_path: Path) -> None:
    with full_disk(tmp_path / "small", "128k") as disk:
        cache = disk / "cache"
        args = [
            "--data",
            str(dataset),
            "--output-dir",
            str(tmp_path / "run"),
            "--epochs",
            "1",
            *TINY_SCRATCH,
            "--num-workers",
            "2",
        ]
        line = one_error_line(run_train(args, cache, timeout=120))
        assert line.startswith(f"error: no space left on {cache}")
        time.sleep(1)
        assert processes_mentioning(str(cache)) == []
        assert list(cache.glob("*.tmp")) == []  # the half-built cache does not keep the disk full


def test_a_full_run_folder_disk_is_named(dataset: Path, tmp_path: Path) -> None:
    with full_disk(tmp_path / "small", "64k") as disk:
        run = disk / "run"
        line = one_error_line(
            run_train(
                ["--data", str(dataset), "--output-dir", str(run), "--epochs", "1", *TINY_SCRATCH],
                tmp_path / "cache",
                timeout=120,
            )
        )
        assert line.startswith(f"error: no space left on {run}")


def _slow_build(data: str, cache: str, queue) -> None:
    real = cache_module.load_rgb

    def slow(path, *args, **kwargs):
        time.sleep(0.03)
        return real(path, *args, **kwargs)

    cache_module.load_rgb = slow
    try:
        cached = build_cache(open_split(data, "train"), 32, cache, workers=0)
        queue.put(("ok", cached.folder.name, int(cached.images.sum()), len(cached.readable)))
    except BaseException as error:  # noqa: BLE001 - reported to the test
        queue.put(("error", repr(error)))


def test_two_trainings_building_the_same_cache_at_once(dataset: Path, tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    builders = [
        context.Process(target=_slow_build, args=(str(dataset), str(tmp_path / "cache"), queue)) for _ in range(2)
    ]
    for builder in builders:
        builder.start()
    results = [queue.get(timeout=120) for _ in builders]
    for builder in builders:
        builder.join(timeout=30)
    assert [r[0] for r in results] == ["ok", "ok"], results
    assert results[0] == results[1] and results[0][3] == 42
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")) == [results[0][1]]


# --- 11: damaged or newer run files are one error line -----------------------------------------------------------


def _config() -> RunConfig:
    return RunConfig(
        ModelSpec("scratch", {"width": 0.25, "depth": 1, "input_size": 48}),
        [ClassInfo("a", "A"), ClassInfo("b", "B")],
        PreprocessConfig(48),
    )


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(b""), "is damaged"),
        (lambda p: p.write_text('{"model": {"name": "scr'), "is damaged"),
        (lambda p: p.write_text("[1, 2]"), "is damaged"),
        (lambda p: p.write_text('{"format": 1, "model": {"name": "scratch"}}'), "is damaged (missing or malformed"),
        (
            lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "format": 2})),
            "has run format 2, newer than the 1 this code reads",
        ),
    ],
)
def test_damaged_or_newer_config_is_one_run_error(tmp_path: Path, damage, message: str) -> None:
    _config().save(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["format"] == 1
    damage(tmp_path / "config.json")
    with pytest.raises(RunError) as error:
        RunConfig.load(tmp_path)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "metrics.csv"])
def test_damaged_run_files_give_one_error_line_in_the_clis(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture, name: str
) -> None:
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    (run / name).write_bytes(b"\x00garbage" if name != "metrics.csv" else b"when,what\nyesterday,something\n")
    if name == "metrics.csv":
        with pytest.raises(RunError, match="metrics.csv is damaged"):
            read_metrics(run / name)
        return
    assert f"{name} is damaged" in cli_error(capsys, "export", str(run), "--out", str(tmp_path / "export"), "--no-eval")


def test_damaged_checkpoint_on_resume_is_one_error_line(trained: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(trained, tmp_path / "run"))
    for weights in (run / "state" / "epoch_0001").glob("*.safetensors"):
        weights.write_bytes(b"\x00" * 100)
    line = one_error_line(run_train(["--resume", str(run), "--epochs", "2"], tmp_path / "cache", timeout=120))
    assert "The checkpoint" in line and "is damaged" in line and "delete that folder" in line
