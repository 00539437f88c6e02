"""Hub publishing, cut at the network boundary: a fake HfApi records what would be created and uploaded."""

from __future__ import annotations

import json
from fnmatch import fnmatch
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.errors import HTTPError, LocalTokenNotFoundError

from landmark_lib.export.hub import HubError, push_to_hub
from landmark_lib.export.pipeline import export_run
from landmark_lib.labels import ClassInfo

from helpers import cli_error, make_dataset, make_run

CLASSES = [
    ClassInfo("qutub_minar", "Qutub Minar", "Delhi", "India", 28.524, 77.185),
    ClassInfo("alai_minar", "Alai Minar", "Delhi", "India", 28.525, 77.185),
    ClassInfo("petra", "Petra", "Wadi Musa", "Jordan", 30.329, 35.444),
]


class FakeHfApi:
    """Stands in for HfApi: records calls; upload_folder keeps the files its allow_patterns select."""

    def __init__(self, error: Exception | None = None):
        self.error = error
        self.calls: list[tuple[str, tuple, dict]] = []
        self.uploaded: dict[str, bytes] = {}

    def create_repo(self, *args, **kwargs):
        self.calls.append(("create_repo", args, kwargs))
        if self.error:
            raise self.error
        return f"https://huggingface.co/{args[0]}"

    def create_branch(self, *args, **kwargs):
        self.calls.append(("create_branch", args, kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", (), kwargs))
        folder = Path(kwargs["folder_path"])
        for path in folder.rglob("*"):
            name = path.relative_to(folder).as_posix()
            if path.is_file() and any(fnmatch(name, pattern) for pattern in kwargs["allow_patterns"]):
                self.uploaded[name] = path.read_bytes()


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    """A real export (tiny scratch model, evaluated on a tiny dataset), so the card reads what export writes."""
    tmp = tmp_path_factory.mktemp("hub")
    make_dataset(
        tmp / "data", [c.name for c in CLASSES], train_per_class=0, test_per_class=2, sizes=[(48, 40), (55, 40)]
    )
    args = {
        "data": str(tmp / "data"),
        "epochs": 30,
        "lr": 0.003,
        "model": "scratch",
        "out": "/home/someone/runs/scratch",
    }
    run = make_run(tmp / "run", classes=CLASSES, args=args)
    export_run(run, tmp / "export", batch_size=8)
    return tmp / "export"


def test_push_creates_repo_branch_and_uploads_export_with_card(export_dir):
    api = FakeHfApi()

    url = push_to_hub(export_dir, "someone/landmark-tagger", revision="v1", private=True, api=api)

    assert url == "https://huggingface.co/someone/landmark-tagger"
    (name, args, kwargs), branch, upload = api.calls
    assert (name, args) == ("create_repo", ("someone/landmark-tagger",))
    assert kwargs["repo_type"] == "model" and kwargs["exist_ok"] is True and kwargs["private"] is True
    assert branch[0] == "create_branch" and branch[2]["branch"] == "v1" and branch[2]["exist_ok"] is True
    assert upload[2]["repo_id"] == "someone/landmark-tagger" and upload[2]["revision"] == "v1"
    assert sorted(api.uploaded) == ["README.md", "export.json", "labels.json", "metrics.json", "model.pt"]
    assert api.uploaded["model.pt"] == (export_dir / "model.pt").read_bytes()

    card = ModelCard(api.uploaded["README.md"].decode("utf-8"))
    metrics = json.loads((export_dir / "metrics.json").read_text())
    assert card.data.pipeline_tag == "image-classification" and card.data.library_name == "pytorch"
    assert card.data.tags == ["landmark-recognition", "image-classification", "torchscript"]
    assert card.data.datasets == ["data"] and card.data.license == "other"
    results = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert results == {
        "Top-1 accuracy": round(metrics["top1"], 4),
        "Top-5 accuracy": round(metrics["top5"], 4),
        "Macro F1": round(metrics["macro_f1"], 4),
    }
    assert {r.dataset_split for r in card.data.eval_results} == {"test"}
    expected = [
        "| 0 | Qutub Minar (`qutub_minar`) | Delhi, India | 28.524, 77.185 |",
        "Petra (`petra`) | Wadi Musa, Jordan",
        "`alai_minar`, `qutub_minar` are in (or next to) the Qutb complex",
        "`epochs`: `30`",
        "`out`: `scratch`",
        'torch.jit.load(hf_hub_download("someone/landmark-tagger", "model.pt"))',
        f"| top-1 accuracy | {metrics['top1']:.2%} |",
    ]
    for text in expected:
        assert text in card.text, text
    assert "/home/someone" not in card.text


def test_push_without_revision_uses_the_default_branch(export_dir):
    api = FakeHfApi()
    push_to_hub(export_dir, "someone/landmark-tagger", api=api)
    assert [call[0] for call in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[0][2]["private"] is False and api.calls[1][2]["revision"] is None


@pytest.mark.parametrize(
    "error",
    [
        HTTPError("[Errno -2] Name or service not known"),
        LocalTokenNotFoundError("Token is required"),
        OSError("offline"),
    ],
)
def test_hub_errors_become_one_sentence_and_keep_the_files(export_dir, error):
    with pytest.raises(HubError, match=r"^Could not push to the Hugging Face Hub repo someone/x \(.+\); .* still in "):
        push_to_hub(export_dir, "someone/x", api=FakeHfApi(error))
    assert (export_dir / "model.pt").is_file() and (export_dir / "README.md").is_file()


def test_cli_push_failure_exits_with_the_message(export_dir, monkeypatch, capsys):
    info = json.loads((export_dir / "export.json").read_text())
    # the export itself is tested in test_export.py
    monkeypatch.setattr("landmark_lib.export.pipeline.export_run", lambda *args, **kwargs: info)
    monkeypatch.setattr("landmark_lib.export.hub.HfApi", lambda token=None: FakeHfApi(OSError("offline")))
    error = cli_error(capsys, "export", info["source_run"], "--out", str(export_dir), "--push-to-hub", "someone/x")
    assert "Could not push" in error and "offline" in error
    assert (export_dir / "model.pt").is_file()
