"""The run folder that training writes and export, evaluation and comparison read.

config.json          RunConfig: architecture, classes, preprocessing, weights source, the training arguments
model.safetensors    the best weights on the validation split
metrics.csv          one row per epoch (train/tracking.py), curves.png its plot
feature_cache.json   how long the one-time frozen-layer pass took (runs that cache features, train/features.py)
state/epoch_NNNN/    Accelerate checkpoints of the last epochs (train/checkpoints.py)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import atomic
from ..errors import LandmarkError
from ..labels import ClassInfo
from ..preprocess_config import PreprocessConfig
from .train_config import TrainConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_CSV = "metrics.csv"
CURVES_FILE = "curves.png"
FEATURE_CACHE_FILE = "feature_cache.json"
STATE_DIR = "state"
FORMAT_VERSION = 1  # config.json "format": raise it when a change would make older code misread a run folder


@dataclass
class ModelSpec:
    """Everything needed to rebuild a model: its name and constructor options."""

    name: str
    options: dict = field(default_factory=dict)


class RunError(LandmarkError, ValueError):
    """A run folder that cannot be used; the message names the problem and the fix."""


@dataclass
class RunConfig:
    """What a trained model is: architecture, classes (with places), preprocessing, how it was trained."""

    model: ModelSpec
    classes: list[ClassInfo]
    preprocess: PreprocessConfig
    weights_source: str = "random"
    args: dict = field(default_factory=dict)

    @property
    def train(self) -> TrainConfig:
        """The run's options, typed (config.json keeps them as the "args" object `landmark train` was given)."""
        return TrainConfig.from_dict(self.args)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def save(self, run_dir: str | Path) -> None:
        """RUN_DIR/config.json, written atomically: a kill mid-write leaves the previous one, never a truncated file."""
        data = {
            "format": FORMAT_VERSION,
            "model": asdict(self.model),
            "classes": [c.to_dict() for c in self.classes],
            "preprocess": self.preprocess.to_dict(),
            "weights_source": self.weights_source,
            "args": self.args,
        }
        atomic.write_text(Path(run_dir) / CONFIG_FILE, json.dumps(data, indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, run_dir: str | Path) -> RunConfig:
        """The run's config; a damaged or newer-format config.json is a RunError in one sentence."""
        path = Path(run_dir) / CONFIG_FILE
        if not path.is_file():
            raise RunError(
                f"{run_dir} is not a training run folder (no {CONFIG_FILE}); pass the folder `landmark train` wrote."
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            version = data.get("format", 1)
        except (OSError, ValueError, AttributeError) as error:
            raise RunError(
                f"{path} is damaged ({type(error).__name__}: {error}); restore it from a copy of the run, or start a new run."
            ) from None
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise RunError(
                f"{path} has run format {version!r}, newer than the {FORMAT_VERSION} this code reads; update landmark-tagger to use this run."
            )
        try:
            return cls(
                model=ModelSpec(**data["model"]),
                classes=[ClassInfo(**c) for c in data["classes"]],
                preprocess=PreprocessConfig.from_dict(data["preprocess"]),
                weights_source=data.get("weights_source", "random"),
                args=data.get("args", {}),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise RunError(
                f"{path} is damaged (missing or malformed {error}); restore it from a copy of the run, or start a new run."
            ) from None
