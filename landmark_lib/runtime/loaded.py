"""A verified model folder loaded for use: which file, which backend, the model, and how large a photo is decoded
for it. The gallery commands start from this; the service adds the answer rule on top."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import threads
from ..artifacts import export_info
from ..artifacts.model_identity import ModelIdentity, identify
from ..data.images import decode_short_side
from .backends import Classifier, load_verified
from .resolve import resolve_model


@dataclass(frozen=True)
class LoadedModel:
    model_path: Path
    backend: str
    model: Classifier
    identity: ModelIdentity

    @property
    def max_short_side(self) -> int:
        """Big photos are decoded (JPEG: DCT scaling) or shrunk in PIL to about this short side first."""
        return decode_short_side(int(self.model.preprocess.resize_size))


def load_model(spec: str | os.PathLike | None, backend: str = "auto", num_threads: int | None = None) -> LoadedModel:
    """SPEC (an export folder, a model.pt, hf://OWNER/NAME[@REVISION]; None: $LANDMARK_MODEL, else models/default),
    every file checked before use (backends.load_verified)."""
    source = resolve_model(spec)
    chosen, model = load_verified(source.path, backend, num_threads or threads.count())
    info = export_info.read(source.path.parent)
    identity = identify(source.path, chosen, info, source.hub_repo, source.hub_commit)
    return LoadedModel(source.path, chosen, model, identity)
