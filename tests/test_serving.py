"""Model resolution (local, env, hf:// from an offline cache), EXIF GPS and orientation, thresholds."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import ExifTags, Image, ImageOps
from PIL.TiffImagePlugin import IFDRational

from landmark_lib.artifacts import export_info
from landmark_lib.data.images import ImageLoadError, pil_to_uint8_chw
from landmark_lib.recognition import DEFAULT_THRESHOLD
from landmark_lib.runtime import resolve
from landmark_lib.runtime.photos import Photo, gps_from_exif, model_pixels, read_photo
from landmark_lib.runtime.resolve import ModelNotFoundError, resolve_model_path
from landmark_lib.serve.service import LandmarkService

from helpers import CLASSES, make_photo

REPO_ROOT = Path(__file__).resolve().parents[1]
ORIENTATION = 0x0112


def test_resolve_local_file_and_folder(model_dir: Path) -> None:
    assert resolve_model_path(model_dir) == model_dir / "model.pt"
    assert resolve_model_path(str(model_dir / "model.pt")) == model_dir / "model.pt"
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model_path(model_dir / "missing")


def test_resolve_env_then_repo_default(model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LANDMARK_MODEL", str(model_dir))
    assert resolve_model_path(None) == model_dir / "model.pt"
    monkeypatch.delenv("LANDMARK_MODEL")
    monkeypatch.setattr(resolve, "DEFAULT_MODEL", tmp_path / "models" / "default" / "model.pt")
    with pytest.raises(ModelNotFoundError, match="LANDMARK_MODEL"):
        resolve_model_path(None)


def test_resolve_hf_downloads_one_snapshot_of_the_serving_files(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One snapshot_download (one commit for every file); the real client against a server: tests/test_hub.py."""
    import huggingface_hub

    calls = []

    def fake_snapshot(repo_id: str, revision: str | None = None, allow_patterns: list[str] | None = None) -> str:
        calls.append((repo_id, revision, allow_patterns))
        return str(model_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    assert resolve_model_path("hf://someone/landmarks@v2") == model_dir / "model.pt"
    assert resolve_model_path("hf://someone/landmarks") == model_dir / "model.pt"
    serving = [
        "model.pt",
        "labels.json",
        "export.json",
        "model.onnx",
        "model.int8.onnx",
        "preprocess.onnx",
        "index.npz",
    ]
    assert calls == [("someone/landmarks", "v2", serving), ("someone/landmarks", None, serving)]
    with pytest.raises(ModelNotFoundError, match="hf://OWNER/NAME"):
        resolve_model_path("hf://no-owner")


def _populate_hf_cache(cache: Path, repo_id: str, commit: str, source: Path) -> None:
    """The layout huggingface_hub reads offline: refs/main -> commit, snapshots/<commit>/<file>."""
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    for name in ("model.pt", "labels.json", "export.json"):
        shutil.copy(source / name, snapshot / name)


def test_resolve_hf_from_offline_cache(model_dir: Path, tmp_path: Path) -> None:
    """The real snapshot_download, HF_HUB_OFFLINE=1 (read at import, hence a fresh process), no network."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    _populate_hf_cache(tmp_path / "hub", "someone/landmarks", commit, model_dir)
    script = (
        "from landmark_lib.runtime.resolve import resolve_model as r;"
        f"m = r('hf://someone/landmarks'); print(m.path); print(r('hf://someone/landmarks@{commit}').path);"
        "print(m.hub_repo, m.hub_commit);"
        "\ntry: r('hf://someone/absent')\nexcept FileNotFoundError as e: print('ERR', e)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    main, pinned, source, error = result.stdout.strip().splitlines()
    expected = tmp_path / "hub" / "models--someone--landmarks" / "snapshots" / commit / "model.pt"
    assert Path(main) == Path(pinned) == expected
    assert source == f"someone/landmarks {commit}"  # the resolved commit, shown on the page
    assert error.startswith("ERR Could not get") and "HF_HUB_OFFLINE" in error
    LandmarkService(main, num_threads=1)  # the cached file is a loadable model


def _gps_jpeg(path: Path, lat: tuple, lat_ref: str, lon: tuple, lon_ref: str) -> Path:
    exif = Image.Exif()
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: lat_ref,
        ExifTags.GPS.GPSLatitude: lat,
        ExifTags.GPS.GPSLongitudeRef: lon_ref,
        ExifTags.GPS.GPSLongitude: lon,
    }
    make_photo().save(path, "JPEG", exif=exif)
    return path


def test_exif_gps(service: LandmarkService, tmp_path: Path) -> None:
    south_west = _gps_jpeg(tmp_path / "rio.jpg", (22.0, 57.0, 7.2), "S", (43.0, 12.0, 36.0), "W")
    prediction = service.predict(south_west)
    assert prediction.photo_location == pytest.approx((-22.952, -43.21), abs=1e-6)
    with Image.open(_gps_jpeg(tmp_path / "paris.jpg", (48.0, 51.0, 29.6), "N", (2.0, 17.0, 40.2), "E")) as image:
        assert gps_from_exif(image) == pytest.approx((48.858222, 2.2945), abs=1e-6)
    assert service.predict(make_photo()).photo_location is None
    assert service.predict(south_west.read_bytes()).photo_location == prediction.photo_location


class _GpsOnly:
    """Stands for an opened photo whose EXIF GPS block holds exactly GPS (values PIL may not write to a file)."""

    def __init__(self, gps: dict):
        self.gps = gps

    def getexif(self):
        return self

    def get_ifd(self, tag):
        return self.gps


@pytest.mark.parametrize(
    "gps",
    [
        {1: "X", 2: (41.0, 53.0, 24.0), 3: "E", 4: (12.0, 29.0, 32.0)},  # not a hemisphere
        {2: (41.0, 53.0, 24.0), 4: (12.0, 29.0, 32.0)},  # no references: N/E would only be a guess
        {1: "N", 2: (41.0, 53.0, 24.0), 3: "S", 4: (12.0, 29.0, 32.0)},  # S is not a longitude reference
        {1: "N", 2: (IFDRational(41, 0), 53.0, 24.0), 3: "E", 4: (12.0, 29.0, 32.0)},  # zero denominator
        {1: "N", 2: (41.0, 75.0, 24.0), 3: "E", 4: (12.0, 29.0, 32.0)},  # 75 minutes
        {1: "N", 2: (41.0, 53.0, 60.0), 3: "E", 4: (12.0, 29.0, 32.0)},  # 60 seconds
        {1: "N", 2: (91.0, 0.0, 0.0), 3: "E", 4: (12.0, 29.0, 32.0)},  # beyond the pole
        {1: "N", 2: (41.0, 53.0, 24.0), 3: "W", 4: (180.0, 0.0, 1.0)},  # beyond the date line
        {1: "N", 2: (-41.0, 53.0, 24.0), 3: "E", 4: (12.0, 29.0, 32.0)},  # a sign instead of a reference
        {1: "N", 2: (41.0, 53.0), 3: "E", 4: (12.0, 29.0, 32.0)},  # two values instead of three
    ],
)
def test_invalid_exif_gps_gives_no_position(gps: dict) -> None:
    assert gps_from_exif(_GpsOnly(gps)) is None


def test_valid_exif_gps_in_every_hemisphere() -> None:
    assert gps_from_exif(
        _GpsOnly({1: "S", 2: (IFDRational(22, 1), 57.0, 7.2), 3: "W", 4: (43.0, 12.0, 36.0)})
    ) == pytest.approx((-22.952, -43.21))
    assert gps_from_exif(_GpsOnly({1: b"N\x00", 2: (48.0, 51.0, 29.6), 3: "e", 4: (2.0, 17.0, 40.2)})) == pytest.approx(
        (48.858222, 2.2945)
    )


def test_exif_rotated_photo_gives_same_answer_as_upright(service: LandmarkService, tmp_path: Path) -> None:
    # Stored sideways with Orientation 6 ("rotate 90 degrees clockwise to view"), as phones write portrait shots.
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    buffer = io.BytesIO()
    make_photo(120, 80).transpose(Image.Transpose.ROTATE_90).save(buffer, "JPEG", quality=90, exif=exif)
    rotated = tmp_path / "rotated.jpg"
    rotated.write_bytes(buffer.getvalue())
    with Image.open(rotated) as stored:  # the same decoded pixels, turned upright by hand and stored losslessly
        stored.transpose(Image.Transpose.ROTATE_270).save(tmp_path / "upright.png")
    with Image.open(rotated) as stored:
        sideways = service.predict(Image.fromarray(np.asarray(stored)))  # the pixels as stored, without the EXIF tag
    upright = service.predict(tmp_path / "upright.png")
    for answer in (service.predict(rotated), service.predict(rotated.read_bytes())):
        assert [g.name for g in answer.top] == [g.name for g in upright.top]
        assert [g.probability for g in answer.top] == pytest.approx([g.probability for g in upright.top], abs=1e-6)
    assert [g.probability for g in sideways.top] != pytest.approx([g.probability for g in upright.top], abs=1e-6)


def test_prediction_fields(service: LandmarkService) -> None:
    prediction = service.predict(make_photo())
    assert len(prediction.top) == 5
    assert {g.display_name for g in prediction.top} <= {c.display_name for c in CLASSES}
    assert [g.probability for g in prediction.top] == sorted((g.probability for g in prediction.top), reverse=True)
    assert prediction.best.name == "taj_mahal"
    assert prediction.landmark.place == "Agra, India"
    assert (
        prediction.landmark.map_url
        == "https://www.openstreetmap.org/?mlat=27.17500&mlon=78.04200#map=15/27.17500/78.04200"
    )
    assert service.classes[-1].map_url is None  # a class without coordinates has no map link


def test_threshold_default_override_and_export_json(service: LandmarkService, model_dir: Path, tmp_path: Path) -> None:
    assert service.threshold == DEFAULT_THRESHOLD
    confident = service.predict(make_photo())
    assert confident.best.probability > 0.35 and confident.recognised
    strict = LandmarkService(model_dir / "model.pt", threshold=0.99, num_threads=1).predict(make_photo())
    assert strict.best == confident.best and not strict.recognised and strict.threshold == 0.99
    shutil.copytree(model_dir, tmp_path / "export")
    info = json.loads((model_dir / "export.json").read_text())
    export_info.write(
        tmp_path / "export", export_info.ExportInfo.from_dict({**info, "threshold": 0.97})
    )  # as the threshold CLI does
    from_file = LandmarkService(tmp_path / "export" / "model.pt", num_threads=1)
    assert from_file.threshold == 0.97 and not from_file.predict(make_photo()).recognised
    assert LandmarkService(tmp_path / "export" / "model.pt", threshold=0.1, num_threads=1).threshold == 0.1


def test_unusable_inputs_raise_clear_errors(service: LandmarkService, tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("not a photo")
    with pytest.raises(ImageLoadError, match="empty"):
        service.predict(tmp_path / "empty.jpg")
    with pytest.raises(ImageLoadError, match="not an image"):
        service.predict(tmp_path / "notes.jpg")
    with pytest.raises(ImageLoadError, match="upload.jpg"):
        service.predict(b"", name="upload.jpg")


def test_huge_photo_is_shrunk_before_the_model(service: LandmarkService) -> None:
    big = make_photo(3000, 2000)
    tensor = model_pixels(big, service.max_short_side)
    assert service.model.preprocess.resize_size <= tensor.shape[1] < 400
    with torch.inference_mode():
        full = service.model(pil_to_uint8_chw(big))  # what the model alone gives for the full-size photo
    answer = service.predict(big)
    assert [g.probability for g in answer.top] == pytest.approx(
        [float(full[service.class_names.index(g.name)]) for g in answer.top], abs=0.01
    )


def test_big_jpeg_is_decoded_at_reduced_scale_upright_and_with_the_same_answer(
    service: LandmarkService, tmp_path: Path
) -> None:
    """A phone-sized JPEG (stored sideways, EXIF Orientation 6) is DCT-scaled while decoding, not decoded in full."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    stored = make_photo(2000, 3000).transpose(Image.Transpose.ROTATE_90)  # 3000x2000 as stored; upright 2000x3000
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=92, exif=exif)
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as full:
        full_upright = ImageOps.exif_transpose(full).convert("RGB")

    photo = read_photo(data, "phone.jpg", min_short_side=service.max_short_side)
    width, height = photo.image.size
    assert height > width  # upright
    assert service.max_short_side <= width < 2 * service.max_short_side and width < full_upright.size[0] // 2
    assert read_photo(data, "phone.jpg").image.size == full_upright.size  # without a target: decoded in full

    answer = service.predict(data, name="phone.jpg")
    reference = service.predict_photos([Photo(full_upright, None)])[0]
    assert [g.name for g in answer.top] == [g.name for g in reference.top]
    assert [g.probability for g in answer.top] == pytest.approx([g.probability for g in reference.top], abs=0.02)

    png = tmp_path / "big.png"
    stored.save(png)
    reduced = read_photo(png, min_short_side=service.max_short_side).image.size  # other formats: reduced after decoding
    assert service.max_short_side <= min(reduced) < 2 * service.max_short_side and reduced[0] > reduced[1]
