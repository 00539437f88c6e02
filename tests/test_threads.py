"""--threads: the default fits the CPUs this process may use (affinity, container quota, load), and the chosen
count reaches torch, ONNX Runtime and the decoding pool of every command that computes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from landmark_lib import threads
from landmark_lib.cli import build_parser, main

from helpers import make_photo

COMPUTING = [
    ["data", "inspect", "ROOT"],
    ["train", "--data", "ROOT"],
    ["evaluate", "RUN"],
    ["export", "RUN", "--out", "OUT"],
    ["threshold", "RUN"],
    ["rejection", "RUN"],
    ["compare", "RUN", "--out", "c.png"],
    ["tag", ".", "--out", "t.jsonl"],
    ["geotag", "."],
    ["serve"],
    ["gallery", "add", "G", "p.jpg", "--name", "x"],
    ["gallery", "evaluate", "E", "--out", "O"],
]


@pytest.mark.parametrize("argv", COMPUTING, ids=lambda a: " ".join(a[:2]))
def test_every_computing_command_takes_threads(argv):
    assert build_parser().parse_args([*argv, "--threads", "3"]).threads == 3


def _cgroup(tmp_path: Path, v2: str | None = None, v1: tuple[str, str] | None = None) -> tuple[Path, Path]:
    root, proc = tmp_path / "cgroup", tmp_path / "proc_cgroup"
    if v2 is not None:
        (root / "app").mkdir(parents=True)
        (root / "app" / "cpu.max").write_text(v2 + "\n")
        proc.write_text("0::/app\n")
    if v1 is not None:
        (root / "cpu,cpuacct" / "app").mkdir(parents=True)
        (root / "cpu,cpuacct" / "app" / "cpu.cfs_quota_us").write_text(v1[0] + "\n")
        (root / "cpu,cpuacct" / "app" / "cpu.cfs_period_us").write_text(v1[1] + "\n")
        proc.write_text("4:cpu,cpuacct:/app\n3:memory:/app\n")
    return root, proc


def test_container_quota_is_read_from_cgroup_v2_and_v1(tmp_path):
    assert threads.quota_cpus(*_cgroup(tmp_path / "a", v2="150000 100000")) == 1.5
    assert threads.quota_cpus(*_cgroup(tmp_path / "b", v2="max 100000")) is None
    assert threads.quota_cpus(*_cgroup(tmp_path / "c", v1=("200000", "100000"))) == 2.0
    assert threads.quota_cpus(*_cgroup(tmp_path / "d", v1=("-1", "100000"))) is None
    assert threads.quota_cpus(tmp_path / "none", tmp_path / "missing") is None


def test_default_fits_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 8)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 64)  # the host's cores count for nothing
    monkeypatch.setattr(threads, "quota_cpus", lambda: 2.0)  # a Space / Kubernetes limit of 2 CPUs
    assert threads.default_count() == 2
    monkeypatch.setattr(threads, "quota_cpus", lambda: None)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    assert threads.default_count() == 8  # a quiet machine: every core
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (3.0, 3.0, 3.0))
    assert threads.default_count() == 5  # three cores busy with other work
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (20.0, 20.0, 20.0))
    assert threads.default_count() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own choice wins
    assert threads.default_count() == 3


def test_chosen_threads_reach_torch_onnx_runtime_and_the_decoding_pool(model_dir, tmp_path, monkeypatch, capsys):
    from landmark_lib.serve.service import LandmarkService
    from landmark_lib.tagging import command as tag

    seen = {}
    real_init = LandmarkService.__init__

    def spy_service(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        seen["service"] = self.threads

    real_files = tag.tag_files

    def spy_files(service, folder, files, batch_size, workers):
        seen["workers"] = workers
        return real_files(service, folder, files, batch_size, workers)

    monkeypatch.setattr(LandmarkService, "__init__", spy_service)
    monkeypatch.setattr(tag, "tag_files", spy_files)
    photos = tmp_path / "photos"
    photos.mkdir()
    make_photo().save(photos / "a.jpg")
    argv = ["tag", str(photos), "--out", str(tmp_path / "t.jsonl"), "--model", str(model_dir), "--threads", "2"]
    assert main(argv) == 0
    assert seen == {"service": 2, "workers": 2} and torch.get_num_threads() == 2
