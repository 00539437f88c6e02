"""--engine ray: the Ray Data pipeline on a local Ray gives the local engine's rows (one Ray start for the module)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.dataset
import pytest

from landmark_lib.cli import main

from helpers import make_photo, time_limit

pytestmark = pytest.mark.slow  # trainings, exports or subprocesses: see pytest.ini


def by_path(rows: list[dict]) -> dict[str, dict]:
    return {r["path"]: r for r in rows}


def test_ray_engine_writes_the_local_engines_rows(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import ray

    folder = tmp_path / "photos"
    (folder / "trip").mkdir(parents=True)
    for i in range(5):
        make_photo(64, 48, seed=i).save(folder / ("trip" if i % 2 else ".") / f"p{i}.jpg")
    make_photo(seed=7).save(folder / "trip" / "q.png")
    (folder / "trip" / "broken.jpg").write_text("not a photo")
    os.mkfifo(folder / "trip" / "pipe.jpg")  # skipped silently (or read forever) by read_binary_files
    (folder / "trip" / "gone.jpg").symlink_to(folder / "missing.jpg")  # failed the whole job
    common = ["--model", str(model_dir), "--batch-size", "2"]
    assert main(["tag", str(folder), "--out", str(tmp_path / "local.parquet"), *common]) == 0
    local = by_path(pyarrow.dataset.dataset(tmp_path / "local.parquet").to_table().to_pylist())

    with time_limit(150):
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            for name in ("ray.parquet", "ray.jsonl"):
                out = tmp_path / name
                assert main(["tag", str(folder), "--out", str(out), *common, "--engine", "ray", "--workers", "1"]) == 0
            assert main(["tag", str(folder), "--out", str(out), *common, "--engine", "ray"]) == 2
        finally:
            ray.shutdown()
    assert "the Ray engine does not resume; pass --overwrite" in capsys.readouterr().err

    on_ray = by_path(pyarrow.dataset.dataset(tmp_path / "ray.parquet").to_table().to_pylist())
    assert on_ray == local and len(local) == 9 and "not an image file" in local["trip/broken.jpg"]["error"]
    assert {row["level"] for row in local.values() if not row["error"]} <= {"confident", "suggested", "none"}
    assert (
        "not a regular file" in local["trip/pipe.jpg"]["error"]
        and "broken symbolic link" in local["trip/gone.jpg"]["error"]
    )
    lines = [json.loads(line) for part in sorted((tmp_path / "ray.jsonl").glob("[!_]*.json")) for line in part.open()]
    assert by_path(lines).keys() == local.keys()
    for path, row in by_path(lines).items():  # JSON numbers carry 15 significant digits (pandas' to_json)
        want = local[path]
        assert (row["size"], row["mtime_ns"], row["error"]) == (want["size"], want["mtime_ns"], want["error"])
        if want["error"]:
            assert row["top1"] is None and row["probability"] is None
        else:
            assert [row[f"top{i}"] for i in range(1, 6)] == [want[f"top{i}"] for i in range(1, 6)]
            assert (row["level"], row["score"]) == (want["level"], pytest.approx(want["score"], rel=1e-6))
            assert row["probability"] == pytest.approx(want["probability"], rel=1e-12)
    sidecar = json.loads((tmp_path / "ray.parquet" / "_tagging.json").read_text())
    assert sidecar["folder"] == str(folder.resolve()) and sidecar["backend"] == "torchscript"


def test_a_failed_ray_run_keeps_the_previous_output(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The old output was deleted before the run, which then failed: now the new one replaces it only when done."""
    from landmark_lib.tagging import ray_engine as tag_ray

    folder, out = tmp_path / "photos", tmp_path / "tags.parquet"
    folder.mkdir()
    make_photo().save(folder / "a.jpg")
    assert main(["tag", str(folder), "--out", str(out), "--model", str(model_dir)]) == 0
    before = sorted((p.name, p.read_bytes()) for p in out.iterdir())

    def failing(args, source):
        raise RuntimeError("a worker died")

    monkeypatch.setattr(tag_ray, "pipeline", failing)
    monkeypatch.setattr(tag_ray, "start_ray", lambda args: False)
    with pytest.raises(RuntimeError, match="a worker died"):
        main(["tag", str(folder), "--out", str(out), "--model", str(model_dir), "--engine", "ray", "--overwrite"])
    assert sorted((p.name, p.read_bytes()) for p in out.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder or lock left
