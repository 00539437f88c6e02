"""Which export to serve: a local file or folder, hf://OWNER/NAME[@REVISION] from the Hugging Face Hub (or its offline
cache), $LANDMARK_MODEL, or the repository's models/default."""

from __future__ import annotations

import os
from pathlib import Path

from .. import bundle
from ..errors import LandmarkError

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "default" / bundle.MODEL_FILE


class ModelNotFoundError(LandmarkError, FileNotFoundError):
    """A model spec that points at nothing loadable; the message says what was tried and how to fix it."""


def resolve_model_path(spec: str | os.PathLike | None) -> Path:
    """The TorchScript file to serve: SPEC (file, export folder or hf://...), else $LANDMARK_MODEL, else the repo's model."""
    if spec is None or str(spec) == "":
        env = os.environ.get("LANDMARK_MODEL")
        if env:
            return resolve_model_path(env)
        if DEFAULT_MODEL.is_file():
            return DEFAULT_MODEL
        raise ModelNotFoundError(
            f"No model given and {DEFAULT_MODEL} does not exist; pass --model (an export folder, a model.pt or "
            "hf://OWNER/NAME[@REVISION]) or set LANDMARK_MODEL."
        )
    text = str(spec)
    if text.startswith("hf://"):
        return _resolve_hf(text)
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / bundle.MODEL_FILE
    if not path.is_file():
        raise ModelNotFoundError(
            f"{path} does not exist; pass an export folder holding {bundle.MODEL_FILE}, a .pt file or hf://OWNER/NAME."
        )
    return path


def _resolve_hf(spec: str) -> Path:
    """hf://OWNER/NAME[@REVISION] -> local model.pt, downloading the export folder (or reading the HF cache offline)."""
    from huggingface_hub import hf_hub_download  # only needed for hf:// specs

    repo, _, revision = spec[len("hf://") :].partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ModelNotFoundError(f"{spec} is not a Hub model spec; write hf://OWNER/NAME or hf://OWNER/NAME@REVISION.")
    try:
        paths = [
            hf_hub_download(repo_id=repo, filename=name, revision=revision or None) for name in bundle.REQUIRED_FILES
        ]
        info = bundle.read_info(Path(paths[bundle.REQUIRED_FILES.index(bundle.EXPORT_FILE)]).parent)
        for (
            key,
            _,
        ) in bundle.ONNX_BACKENDS.values():  # the faster files the export verified, so choose_backend finds them
            if info.get(key):
                hf_hub_download(repo_id=repo, filename=info[key]["file"], revision=revision or None)
        if bundle.preprocess_file(info):  # the ONNX files' preprocessing graph
            hf_hub_download(repo_id=repo, filename=bundle.preprocess_file(info), revision=revision or None)
    except Exception as error:  # network, auth, missing repo/file, offline without a cached copy: one clear message
        raise ModelNotFoundError(
            f"Could not get {', '.join(bundle.REQUIRED_FILES)} of {spec} from the Hugging Face Hub ({type(error).__name__}: {error}). "
            "Check the repository name and revision, the network or HF_TOKEN, or pre-download it and set HF_HUB_OFFLINE=1."
        ) from error
    return Path(paths[0])
