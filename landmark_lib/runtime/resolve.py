"""Which export to serve: a local file or folder, hf://OWNER/NAME[@REVISION] from the Hugging Face Hub (or its offline
cache), $LANDMARK_MODEL, or the repository's models/default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import bundle
from ..errors import LandmarkError

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "default" / bundle.MODEL_FILE


class ModelNotFoundError(LandmarkError, FileNotFoundError):
    """A model spec that points at nothing loadable; the message says what was tried and how to fix it."""


@dataclass(frozen=True)
class ResolvedModel:
    """The model.pt to serve and, for an hf:// spec, where it came from: the repository, and the commit of the
    snapshot folder snapshot_download returned (what was actually served, whatever branch or tag was asked for)."""

    path: Path
    hub_repo: str | None = None
    hub_commit: str | None = None


def resolve_model_path(spec: str | os.PathLike | None) -> Path:
    """The TorchScript file to serve (resolve_model's path)."""
    return resolve_model(spec).path


def resolve_model(spec: str | os.PathLike | None) -> ResolvedModel:
    """The TorchScript file to serve: SPEC (file, export folder or hf://...), else $LANDMARK_MODEL, else the repo's model."""
    if spec is None or str(spec) == "":
        env = os.environ.get("LANDMARK_MODEL")
        if env:
            return resolve_model(env)
        if DEFAULT_MODEL.is_file():
            return ResolvedModel(DEFAULT_MODEL)
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
    return ResolvedModel(path)


def _resolve_hf(spec: str) -> ResolvedModel:
    """hf://OWNER/NAME[@REVISION] -> local model.pt: the serving files of one commit in one snapshot_download (or the
    Hub cache, offline with HF_HUB_OFFLINE=1)."""
    from huggingface_hub import snapshot_download  # only needed for hf:// specs

    repo, _, revision = spec[len("hf://") :].partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ModelNotFoundError(f"{spec} is not a Hub model spec; write hf://OWNER/NAME or hf://OWNER/NAME@REVISION.")
    try:
        folder = Path(
            snapshot_download(repo_id=repo, revision=revision or None, allow_patterns=list(bundle.SERVE_FILES))
        )
    except Exception as error:  # network, auth, missing repo/revision, offline without a cached copy: one clear message
        raise ModelNotFoundError(
            f"Could not get {', '.join(bundle.REQUIRED_FILES)} of {spec} from the Hugging Face Hub ({type(error).__name__}: {error}). "
            "Check the repository name and revision, the network or HF_TOKEN, or pre-download it and set HF_HUB_OFFLINE=1."
        ) from error
    missing = [name for name in bundle.REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"{spec} has no {', '.join(missing)}; push an export folder there (`landmark export RUN --out DIR --push-to-hub {repo}`)."
        )
    return ResolvedModel(folder / bundle.MODEL_FILE, repo, folder.name)
