"""A model folder is checked when it is loaded: files are the ones the export wrote (sha256), labels match the
network's outputs and export.json's preprocessing fits; a damaged optional file falls back, a required one is one
error line."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from landmark_lib.artifacts import checksums, export_info
from landmark_lib.export.onnx import to_onnx
from landmark_lib.runtime.backends import ModelFolderError
from landmark_lib.serve import web as app
from landmark_lib.serve.service import LandmarkService

from helpers import CLASSES, cli_error, export_tiny_model, tiny_net

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def onnx_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny export plus model.onnx and model.int8.onnx (an fp32 copy: only the file checks matter here)."""
    folder = export_tiny_model(tmp_path_factory.mktemp("verified"))
    to_onnx(tiny_net(), 64, folder / "model.onnx")
    shutil.copy(folder / "model.onnx", folder / "model.int8.onnx")
    info = json.loads((folder / "export.json").read_text())
    info.update(
        onnx={"file": "model.onnx"},
        onnx_int8={"file": "model.int8.onnx", "threshold": 0.5},
        files=checksums.record(folder),
    )
    export_info.write(folder, export_info.ExportInfo.from_dict(info))
    return folder


def copy(folder: Path, tmp_path: Path) -> Path:
    return shutil.copytree(folder, tmp_path / "export")


def rewrite(folder: Path, name: str, edit, record: bool = False) -> None:
    """Edit FOLDER/NAME (JSON); RECORD: record the checksums (of the files and the serving settings) again, as if the
    export itself had written it so."""
    path = folder / name
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    if record:
        info = json.loads((folder / "export.json").read_text())
        export_info.write(folder, export_info.ExportInfo.from_dict({**info, "files": checksums.record(folder)}))


@pytest.mark.slow
def test_verified_folder_serves_the_fastest_file(onnx_folder: Path) -> None:
    assert LandmarkService(onnx_folder / "model.pt", num_threads=1).backend == "onnx-int8"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["auto", "onnx", "torchscript"])
def test_shuffled_labels_are_refused(onnx_folder: Path, tmp_path: Path, backend: str) -> None:
    folder = copy(onnx_folder, tmp_path)
    rewrite(folder, "labels.json", lambda labels: labels[::-1])
    with pytest.raises(ModelFolderError, match=r"labels.json is not the file the export wrote \(its sha256 differs"):
        LandmarkService(folder / "model.pt", num_threads=1, backend=backend)


def test_labels_of_another_export_are_refused_even_when_recorded(model_dir: Path, tmp_path: Path) -> None:
    folder = copy(model_dir, tmp_path)
    rewrite(folder, "labels.json", lambda labels: labels[::-1], record=True)
    with pytest.raises(ModelFolderError, match="lists other classes than model.pt"):
        LandmarkService(folder / "model.pt", num_threads=1)


@pytest.mark.parametrize("backend", ["auto", "onnx", "torchscript"])
@pytest.mark.parametrize("files", ["absent", "empty list", "labels.json not recorded"])
def test_a_folder_whose_files_are_not_all_recorded_is_not_served(
    onnx_folder: Path, tmp_path: Path, backend: str, files: str
) -> None:
    """ONNX serving trusted labels.json whenever export.json recorded no checksum for it: a shuffled file answered
    Taj Mahal photos with another landmark at 0.99."""
    folder = copy(onnx_folder, tmp_path)
    rewrite(folder, "labels.json", lambda labels: labels[::-1])

    def edit(info: dict) -> dict:
        if files == "absent":
            return {k: v for k, v in info.items() if k != "files"}
        if files == "empty list":
            return {**info, "files": []}
        return {**info, "files": {k: v for k, v in info["files"].items() if k != "labels.json"}}

    export_info.write(folder, export_info.ExportInfo.from_dict(edit(json.loads((folder / "export.json").read_text()))))
    with pytest.raises(ModelFolderError, match='records no checksum|is damaged: "files"'):
        LandmarkService(folder / "model.pt", num_threads=1, backend=backend)


@pytest.mark.parametrize(
    "edit",
    [
        lambda info: {**info, "preprocess": {**info["preprocess"], "crop_pct": 0.5}},
        lambda info: {**info, "threshold": 0.01},
        lambda info: {**info, "onnx_int8": {**info["onnx_int8"], "threshold": 0.99}},
    ],
    ids=["crop_pct", "threshold", "int8 threshold"],
)
def test_serving_settings_edited_after_export_are_refused(onnx_folder: Path, tmp_path: Path, edit) -> None:
    """Editing crop_pct in export.json silently degraded every answer."""
    folder = copy(onnx_folder, tmp_path)
    rewrite(folder, "export.json", edit)
    for backend in ("auto", "onnx", "torchscript"):
        with pytest.raises(ModelFolderError, match="serving settings .* were changed after the export wrote them"):
            LandmarkService(folder / "model.pt", num_threads=1, backend=backend)


@pytest.mark.parametrize(
    "name, edit, words",
    [
        (
            "labels.json",
            lambda labels: [{**labels[0], "lat": "north"}, *labels[1:]],
            "\"lat\" of 'taj_mahal' must be a number",
        ),
        ("export.json", lambda info: {**info, "threshold": "high"}, "export.json is damaged: \"threshold\" is 'high'"),
        ("export.json", lambda info: {**info, "speed": {"ms_per_photo": [1]}}, 'export.json is damaged: "speed"'),
        ("export.json", lambda info: {**info, "preprocess": 5}, 'export.json is damaged: "preprocess" is 5'),
    ],
    ids=["bad lat", "threshold text", "speed list", "preprocess number"],
)
def test_bad_values_in_shared_files_are_one_error_line_without_fallback(
    onnx_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, name: str, edit, words: str
) -> None:
    """A bad lat in labels.json was blamed on model.onnx and served by TorchScript instead (+510 MB); bad export.json
    types were tracebacks."""
    monkeypatch.setattr(app, "launch", lambda *a, **k: pytest.fail("served"))
    folder = copy(onnx_folder, tmp_path)
    rewrite(folder, name, edit, record=True)
    error = cli_error(capsys, "serve", "--share", "--model", str(folder))
    assert words in error and "model.onnx" not in error, error


@pytest.mark.slow
def test_label_count_must_equal_the_network_outputs(onnx_folder: Path, tmp_path: Path) -> None:
    folder = copy(onnx_folder, tmp_path)
    rewrite(folder, "labels.json", lambda labels: labels[:-1], record=True)
    with pytest.raises(
        ModelFolderError, match=f"has {len(CLASSES)} outputs but its export lists {len(CLASSES) - 1} classes"
    ):
        LandmarkService(folder / "model.pt", num_threads=1, backend="onnx")


@pytest.mark.slow
def test_preprocessing_must_fit_the_files(onnx_folder: Path, tmp_path: Path) -> None:
    folder = copy(onnx_folder, tmp_path)
    rewrite(
        folder,
        "export.json",
        lambda info: {**info, "preprocess": {**info["preprocess"], "input_size": 128}},
        record=True,
    )
    with pytest.raises(ModelFolderError, match="does not run on a 128x128 photo"):
        LandmarkService(folder / "model.pt", num_threads=1, backend="onnx")
    with pytest.raises(ModelFolderError, match="preprocesses photos differently from what export.json records"):
        LandmarkService(folder / "model.pt", num_threads=1, backend="torchscript")


@pytest.mark.slow
def test_damaged_int8_file_falls_back_with_a_warning(onnx_folder: Path, tmp_path: Path, caplog) -> None:
    folder = copy(onnx_folder, tmp_path)
    (folder / "model.int8.onnx").write_bytes((folder / "model.int8.onnx").read_bytes()[:5000])
    with caplog.at_level(logging.WARNING, logger="landmark_lib.runtime.backends"):
        service = LandmarkService(folder / "model.pt", num_threads=1)
    assert service.backend == "onnx"
    assert any(
        "model.int8.onnx" in r.getMessage() and "Serving the next verified file instead" in r.getMessage()
        for r in caplog.records
    )
    with pytest.raises(ModelFolderError, match="model.int8.onnx"):
        LandmarkService(folder / "model.pt", num_threads=1, backend="onnx-int8")  # asked for by name: no fallback


@pytest.mark.parametrize(
    "damage", ["truncated model.pt", "labels.json not JSON", "export.json not JSON", "labels.json not a list"]
)
def test_damaged_required_file_is_one_error_line(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, damage: str
) -> None:
    def served(*args, **kwargs):
        raise AssertionError(f"the app served a folder with {damage}")

    monkeypatch.setattr(app, "launch", served)
    folder = copy(model_dir, tmp_path)
    if damage == "truncated model.pt":
        (folder / "model.pt").write_bytes((folder / "model.pt").read_bytes()[:1000])
    elif damage == "labels.json not a list":
        rewrite(folder, "labels.json", lambda labels: {"classes": labels}, record=True)
    else:
        (folder / damage.split()[0]).write_text("{not json")
    assert "export it again" in cli_error(capsys, "serve", "--model", str(folder))


def test_the_committed_model_records_and_matches_its_checksums() -> None:
    folder = REPO_ROOT / "models" / "default"
    files = json.loads((folder / "export.json").read_text())["files"]
    assert sorted(files) == sorted(name for name in checksums.EXPORTED_FILES if (folder / name).is_file())
    assert all(checksums.problem(folder, name, files) is None for name in files)
    info = json.loads((folder / "export.json").read_text())
    assert info["settings_sha256"] == export_info.settings_sha256(export_info.ExportInfo.from_dict(info))
