"""Lean serving: with an ONNX backend, the service, the REST API and the page run on ONNX Runtime, PIL and numpy
alone (preprocess.onnx in front of model.onnx), and give TorchScript's answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from landmark_lib.serve.service import LandmarkService

from helpers import SUBPROCESS_ENV, make_photo, run_python

pytestmark = pytest.mark.slow  # trainings, exports or subprocesses: see pytest.ini

SERVE_WITHOUT_TORCH = """
import io, json, sys
from starlette.testclient import TestClient
from landmark_lib.cli import main
from landmark_lib.serve import server, web

started = {}  # `landmark serve` as app.py runs it, up to the server itself
server.serve = lambda service, host, port, share=False, api_only=False: started.update(service=service)
assert main(["serve", "--model", sys.argv[1], "--backend", "onnx"]) == 0
service = started["service"]
photos = sys.argv[2:]
direct = [service.predict(path).to_dict() for path in photos]
with TestClient(web.build_app(service)) as client:
    rest = client.post("/v1/tag", files=[("photo", (p, open(p, "rb").read(), "image/jpeg")) for p in photos]).json()
imported = [m for m in ("torch", "timm", "accelerate") if m in sys.modules]
print(json.dumps({"backend": service.backend, "imported": imported, "direct": direct, "rest": rest}))
"""


def test_onnx_serving_imports_no_torch_and_answers_like_torchscript(onnx_export: Path, tmp_path: Path) -> None:
    photos = []
    for seed, (width, height) in enumerate([(120, 80), (640, 480), (37, 500)]):
        photos.append(tmp_path / f"{seed}.jpg")
        make_photo(width, height, seed).save(photos[-1], quality=95)
    result = run_python(SERVE_WITHOUT_TORCH, str(onnx_export), *map(str, photos), env=SUBPROCESS_ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["backend"] == "onnx" and served["imported"] == []
    assert served["rest"] == served["direct"]
    torchscript = LandmarkService(onnx_export / "model.pt", num_threads=1, backend="torchscript")
    for answer, path in zip(served["direct"], photos):
        expected = torchscript.predict(path).to_dict()
        assert [g["name"] for g in answer["top5"]] == [g["name"] for g in expected["top5"]]
        assert [g["probability"] for g in answer["top5"]] == pytest.approx(
            [g["probability"] for g in expected["top5"]], abs=1e-4
        )
