"""The repository is a valid Hugging Face Space as committed: README front matter that the Hub accepts, and every
binary file tracked by Git LFS (the Hub refuses plain files over 10 MiB)."""

from __future__ import annotations

import re
import subprocess
from importlib.metadata import version
from pathlib import Path

import yaml
from huggingface_hub import SpaceCard

REPO = Path(__file__).resolve().parents[1]
# The keys of the Spaces configuration reference (huggingface.co/docs/hub/spaces-config-reference), plus `license`,
# the repo-card key every Hub repo takes (huggingface_hub.SpaceCardData has it).
SPACE_KEYS = {
    "title": str,
    "emoji": str,
    "colorFrom": str,
    "colorTo": str,
    "sdk": str,
    "python_version": str,
    "sdk_version": str,
    "suggested_hardware": str,
    "suggested_storage": str,
    "app_file": str,
    "app_port": int,
    "base_path": str,
    "fullWidth": bool,
    "header": str,
    "short_description": str,
    "models": list,
    "datasets": list,
    "tags": list,
    "thumbnail": str,
    "pinned": bool,
    "hf_oauth": bool,
    "hf_oauth_scopes": list,
    "hf_oauth_expiration_minutes": int,
    "hf_oauth_authorized_org": (str, list),
    "disable_embedding": bool,
    "startup_duration_timeout": str,
    "custom_headers": dict,
    "preload_from_hub": list,
    "license": str,
}
COLOURS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
BINARY_SUFFIXES = {".pt", ".pt2", ".pth", ".onnx", ".safetensors", ".bin", ".png", ".jpg", ".jpeg", ".webp", ".npy"}


def front_matter() -> dict:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
    assert match, "README.md must start with a --- YAML block ---"
    return yaml.safe_load(match.group(1))


def test_front_matter_uses_only_space_keys_with_their_types():
    config = front_matter()
    assert set(config) <= set(SPACE_KEYS), f"not Space configuration keys: {set(config) - set(SPACE_KEYS)}"
    for key, value in config.items():
        assert isinstance(value, SPACE_KEYS[key]), f"{key}: {value!r} is not {SPACE_KEYS[key]}"
    assert config["sdk"] == "gradio" and config["sdk_version"] == version("gradio")  # the pinned requirement
    assert (REPO / config["app_file"]).is_file()
    assert {config["colorFrom"], config["colorTo"]} <= COLOURS
    assert len(config["short_description"]) <= 60  # the Hub's limit
    assert re.fullmatch(r"3\.\d+(\.\d+)?", config["python_version"])  # a string: YAML would read 3.10 as 3.1
    assert config["license"] == "apache-2.0"  # the code and the EfficientNet-Lite weights (README: Licence)
    assert SpaceCard((REPO / "README.md").read_text(encoding="utf-8")).data.sdk == "gradio"


def test_readme_preload_example_is_one_pinned_entry():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL) if "preload_from_hub" in b]
    example = yaml.safe_load(block)
    (entry,) = example["preload_from_hub"]
    repo, files, commit = entry.split(" ")
    assert repo == "OWNER/NAME" and example["models"] == [repo]
    assert files.split(",") == [
        "model.pt",
        "labels.json",
        "export.json",
        "model.onnx",
        "preprocess.onnx",
        "index.npz",  # the photo index the recognition score compares with
    ]
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    assert f"LANDMARK_MODEL=hf://{repo}@{commit}" in text  # the app serves the same commit it preloads


def test_every_committed_binary_file_goes_through_lfs():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    binary = [f for f in files if Path(f).suffix.lower() in BINARY_SUFFIXES or (REPO / f).stat().st_size > 10 * 2**20]
    binary += [f for f in files if f not in binary and (REPO / f).is_file() and b"\0" in (REPO / f).read_bytes()[:8000]]
    assert binary, "the repository has weights and images"
    attrs = subprocess.run(
        ["git", "check-attr", "filter", "--", *binary], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    not_lfs = [line.split(":")[0] for line in attrs if not line.endswith(": lfs")]
    assert not not_lfs, f"add these to .gitattributes (Git LFS): {not_lfs}"
