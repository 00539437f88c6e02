"""The frozen-feature store: a killed pass resumes where it stopped, leaves no orphan temp files, says up front how
much work it is; stores written before chunking (train_view{v}.npy, eval.npy) are reused as they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from landmark_lib.data.cache import CachedSplit
from landmark_lib.train import features

ROWS = 30


class Frozen(nn.Module):
    """A tiny frozen part that can be 'killed' (KeyboardInterrupt) after a number of batches."""

    def __init__(self, kill_after: int | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)
        for param in self.parameters():
            param.requires_grad_(False)
        self.kill_after, self.calls = kill_after, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.kill_after is not None and self.calls > self.kill_after:
            raise KeyboardInterrupt
        return self.conv(x).mean((2, 3))


def to_tensor(image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


def augment(image) -> torch.Tensor:
    return to_tensor(image) + torch.rand(1)  # random, like the training augmentation


def cached_split(tmp_path: Path) -> CachedSplit:
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos-train-16px-abc"
    folder.mkdir(parents=True)
    images = rng.integers(0, 256, (ROWS, 16, 16, 3), dtype=np.uint8)
    return CachedSplit(folder, images, np.zeros(ROWS, np.int64), np.arange(ROWS), [f"{i}.jpg" for i in range(ROWS)], [])


def build(frozen: Frozen, cached: CachedSplit, cache_dir: Path) -> features.FeatureStore:
    return features.build_feature_store(
        frozen, cached, augment, to_tensor, 2, {"seed": 3}, cache_dir, batch_size=4, workers=0, dtype="float32"
    )


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(features, "CHUNK_ROWS", 8)


def test_a_killed_pass_resumes_where_it_stopped_with_the_same_features(tmp_path, capsys):
    cached = cached_split(tmp_path)
    whole = build(Frozen(), cached, tmp_path / "uninterrupted")
    line = capsys.readouterr().out
    assert "3 passes over 30 photos" in line and "min at the measured rate" in line and "--feature-views" in line

    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):  # killed in the first training view, after its first two chunks
        build(Frozen(kill_after=1 + 8 + 4), cached, cache)
    folder = next(cache.glob("features-*"))
    assert (folder / "eval.npy").is_file() and len(list(folder.glob("train_view0.parts/rows-*.npy"))) == 2
    (folder / "train_view1.4194303.tmp.npy").write_bytes(b"x" * 1000)  # what a killed assembly left (pid gone)

    frozen = Frozen()
    store = build(frozen, cached, cache)
    line = capsys.readouterr().out
    assert "2 passes over 30 photos" in line and "16 rows already done" in line
    assert frozen.calls == 1 + 4 + 8  # the rate probe, view 0's last two chunks (4 batches), view 1 (8 batches)
    assert sorted(p.name for p in folder.iterdir()) == ["eval.npy", "recipe.json", "train_view0.npy", "train_view1.npy"]
    assert np.array_equal(store.eval, whole.eval)
    for resumed, uninterrupted in zip(store.train, whole.train):
        assert np.array_equal(resumed, uninterrupted)  # each chunk's augmentation is seeded by its rows


def test_views_written_before_chunking_are_reused_as_they_are(tmp_path, capsys):
    cached = cached_split(tmp_path)
    store = build(Frozen(), cached, tmp_path / "cache")
    capsys.readouterr()
    folder = store.folder
    old = {name: (folder / name).read_bytes() for name in ("eval.npy", "train_view0.npy", "train_view1.npy")}
    frozen = Frozen()
    again = build(frozen, cached, tmp_path / "cache")
    assert again.folder == folder and frozen.calls == 0 and capsys.readouterr().out == ""
    assert {name: (folder / name).read_bytes() for name in old} == old


def test_cache_info_shows_and_clear_frees_the_cache_but_not_what_is_in_use(tmp_path, capsys):
    import fcntl

    from landmark_lib.cli import main

    cache = tmp_path / "cache"
    photos = cache / "world-train-256px-abc"
    photos.mkdir(parents=True)
    (photos / "images.npy").write_bytes(b"\0" * 300_000)
    store = build(Frozen(), cached_split(tmp_path), cache).folder
    busy = cache / "other-train-256px-def.tmp"  # a photo cache another training is building right now
    busy.mkdir()
    capsys.readouterr()

    assert main(["cache", "info", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "resized photos" in out and "frozen features" in out and f"3 entries in {cache}" in out

    with open(cache / "other-train-256px-def.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert "kept 1 in use: other-train-256px-def.tmp" in capsys.readouterr().out
    assert not photos.exists() and not store.exists() and busy.is_dir()
