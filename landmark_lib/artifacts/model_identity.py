"""Which model answers: computed once, when the service loads an export, from export.json and from where the export
came from (the Hub repository and commit snapshot_download resolved, carried from runtime/resolve.py).

The answers name it (id and revision), galleries are tied to it (model.pt's sha256 and the embedding size) and a
resumed tagging run must share it; all of them read this one record instead of deriving their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import bundle
from . import checksums
from .export_info import ExportInfo


@dataclass(frozen=True)
class ModelIdentity:
    name: str  # OWNER/NAME on the Hub, else the export folder's name
    served_sha256: str | None  # the served file's sha256 as export.json records it (None: exports before checksums)
    model_sha256: str  # model.pt's (recorded, else hashed once here): what galleries and the tagger compare
    hub_repo: str | None
    hub_commit: str | None
    embedding_size: int | None  # D of the embedding (None: exports from before it was recorded)

    @property
    def revision(self) -> str | None:
        """The Hub commit, else the served file's sha256 prefix: what an answer names."""
        if self.hub_commit:
            return self.hub_commit
        return f"sha256:{self.served_sha256[:12]}" if self.served_sha256 else None


def identify(
    model_path: Path, backend: str, info: ExportInfo, hub_repo: str | None = None, hub_commit: str | None = None
) -> ModelIdentity:
    """The identity of the export holding MODEL_PATH, served by BACKEND."""
    folder = model_path.parent
    served = bundle.ONNX_BACKENDS[backend][1] if backend in bundle.ONNX_BACKENDS else model_path.name
    model_file = folder / bundle.MODEL_FILE
    return ModelIdentity(
        name=hub_repo or folder.name,
        served_sha256=info.serving.sha256(served),
        model_sha256=info.serving.sha256(bundle.MODEL_FILE) or checksums.sha256_file(model_file),
        hub_repo=hub_repo,
        hub_commit=hub_commit,
        embedding_size=info.serving.embedding_dim,
    )
