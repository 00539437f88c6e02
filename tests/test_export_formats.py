"""Exports that drop into the ecosystem: model.pt takes the course project's torchvision input, and model.pt2 (a
torch.export ExportedProgram) loads with torch.export.load; both checked in a process with only torch + torchvision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from landmark_lib.export.pipeline import export_run

from helpers import make_photo, make_run

pytestmark = pytest.mark.slow  # trainings, exports or subprocesses: see pytest.ini

# The course project's consumer, line for line, then model.pt2 the torch.export way; no project code on the path.
CONSUMER = """
import json, sys
import numpy as np
import torch, torchvision
from PIL import Image

model = torch.jit.load(sys.argv[1])
pil_image = Image.open(sys.argv[2]).convert("RGB")
x = torchvision.transforms.ToTensor()(pil_image).unsqueeze_(0)
softmax = model(x)
class_names = model.class_names

extra = {"labels.json": ""}
program = torch.export.load(sys.argv[3], extra_files=extra)
image = torch.from_numpy(np.array(pil_image)).permute(2, 0, 1)
with torch.no_grad():
    pt2 = torch.stack([program.module()(image), program.module()(image[:, :37, :150])])
assert "landmark_lib" not in sys.modules and "timm" not in sys.modules
torch.save({"softmax": softmax.detach(), "class_names": list(class_names), "pt2": pt2,
            "pt2_names": [c["name"] for c in json.loads(extra["labels.json"])]}, sys.argv[4])
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("formats")
    info = export_run(make_run(tmp / "run"), tmp / "export", pt2=True)
    assert info["pt2"]["max_abs_diff"] < 1e-4 and info["pt2"]["check_images"] == 3  # (1, 1) is below the 2 px minimum
    return tmp / "export"


def test_course_project_lines_and_torch_export_load(exported, tmp_path):
    photo = make_photo(150, 100)
    photo.save(tmp_path / "photo.png")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    args = [exported / "model.pt", tmp_path / "photo.png", exported / "model.pt2", tmp_path / "out.pt"]
    subprocess.run([sys.executable, "-W", "ignore", "-c", CONSUMER, *map(str, args)], env=env, check=True)
    result = torch.load(tmp_path / "out.pt")

    model = torch.jit.load(str(exported / "model.pt"))
    image = torch.from_numpy(np.array(photo)).permute(2, 0, 1)
    with torch.no_grad():
        main_contract = model(image)  # uint8 [3, H, W] -> [C] stays as it was
        crop = model(image[:, :37, :150])
    names = [c["name"] for c in json.loads((exported / "labels.json").read_text())]
    assert main_contract.shape == (len(names),)
    assert result["softmax"].shape == (1, len(names)) and result["class_names"] == names
    assert (result["softmax"][0] - main_contract).abs().max() < 1e-4
    assert result["pt2_names"] == names
    assert (result["pt2"] - torch.stack([main_contract, crop])).abs().max() < 1e-4  # dynamic height and width


def test_pt2_is_listed_in_export_json_and_summary(exported):
    info = json.loads((exported / "export.json").read_text())
    assert info["pt2"]["file"] == "model.pt2" and "model.pt2" in info["files"]
    assert "ToTensor" in info["input"]
