"""export.json through its one reader and writer: today's files load unchanged, unknown keys survive a rewrite, and
a damaged or newer file is refused in one sentence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from landmark_lib.artifacts import export_info
from landmark_lib.artifacts.export_info import FORMAT_VERSION, ExportInfoError
from landmark_lib.artifacts.model_identity import identify

from helpers import REPO_ROOT

DEFAULT = REPO_ROOT / "models" / "default"


def test_the_committed_export_reads_as_written_and_serves_its_recorded_choices(tmp_path: Path):
    on_disk = json.loads((DEFAULT / "export.json").read_text(encoding="utf-8"))
    info = export_info.read(DEFAULT)
    assert info.to_dict() == on_disk and list(info.to_dict()) == list(on_disk)  # same keys, same order
    assert on_disk["settings_sha256"] == export_info.settings_sha256(info)  # re-recorded by `landmark checksums`
    legacy = {k: v for k, v in on_disk.items() if k not in ("format", "settings_sha256")}  # as written before
    (tmp_path / "export.json").write_text(json.dumps(legacy), encoding="utf-8")
    old = export_info.read(tmp_path)
    assert old.to_dict() == {"format": FORMAT_VERSION, **legacy}  # migrated in memory only
    assert list(old.to_dict())[1:] == list(legacy)
    assert info.serving.threshold_of("onnx") == on_disk["threshold"]
    assert info.serving.fastest()[0] == on_disk["speed"]["served"]
    assert info.serving.sha256("model.pt") == on_disk["files"]["model.pt"]["sha256"]
    assert info.report.train_args == on_disk["train_args"]


def test_keys_this_code_does_not_know_survive_a_rewrite(tmp_path: Path):
    shutil.copy(DEFAULT / "export.json", tmp_path / "export.json")
    data = json.loads((tmp_path / "export.json").read_text(encoding="utf-8"))
    data["operating_points"] = {"precision_0.99": 0.41}
    data["index"] = {"file": "index.faiss", "rows": 12}
    data["from_a_newer_branch"] = {"kept": [1, 2]}
    (tmp_path / "export.json").write_text(json.dumps(data), encoding="utf-8")
    info = export_info.read(tmp_path)
    assert info.serving.operating_points == {"precision_0.99": 0.41} and info.serving.index["rows"] == 12
    info.serving.threshold = 0.5
    export_info.write(tmp_path, info)
    rewritten = json.loads((tmp_path / "export.json").read_text(encoding="utf-8"))
    settings = export_info.settings_sha256(info)  # the threshold changed: so did the settings' checksum
    assert rewritten == {**data, "format": FORMAT_VERSION, "threshold": 0.5, "settings_sha256": settings}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"threshold": 0.3', r"export.json is damaged \(the export record cannot be read"),
        ("[1, 2]", r"export.json is not an export record \(a JSON object\)"),
        (
            '{"format": 99}',
            r"export.json has export format 99, newer than the 1 this code reads; update landmark-tagger",
        ),
    ],
)
def test_a_damaged_or_newer_record_is_one_sentence(tmp_path: Path, content: str, message: str):
    (tmp_path / "export.json").write_text(content, encoding="utf-8")
    with pytest.raises(ExportInfoError, match=message):
        export_info.read(tmp_path)


def test_a_folder_without_a_record_reads_as_empty(tmp_path: Path):
    info = export_info.read(tmp_path)
    assert not info.recorded and info.serving.threshold_of("torchscript") is None and info.serving.fastest() == []


def test_the_model_identity_comes_from_the_record_and_the_resolved_hub_commit():
    info = export_info.read(DEFAULT)
    local = identify(DEFAULT / "model.pt", "onnx", info)
    assert local.name == "default" and local.revision == "sha256:" + info.serving.sha256("model.onnx")[:12]
    assert (
        local.model_sha256 == info.serving.sha256("model.pt")
        and local.embedding_size == info.serving.embedding_dim == 1280
    )
    hub = identify(DEFAULT / "model.pt", "onnx", info, "someone/landmarks", "0123abcd" * 5)
    assert (hub.name, hub.revision, hub.model_sha256) == ("someone/landmarks", "0123abcd" * 5, local.model_sha256)
