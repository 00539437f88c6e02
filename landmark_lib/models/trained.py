"""A run's trained network: its architecture rebuilt from config.json and the best weights (model.safetensors)."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save
from torch import nn

from .. import atomic
from ..artifacts.run_folder import CONFIG_FILE, WEIGHTS_FILE, RunConfig, RunError
from . import create_model


def build_model(config: RunConfig) -> nn.Module:
    """The architecture of a run, with random weights (the trained ones are loaded by load_trained_model)."""
    return create_model(config.model, len(config.classes), pretrained=False).network


def save_weights(model: nn.Module, run_dir: str | Path) -> None:
    """RUN_DIR/model.safetensors, atomically (a kill mid-write keeps the previous best weights)."""
    data = save(
        {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    )  # bytes: OS errors stay OSErrors
    with atomic.atomic_path(Path(run_dir) / WEIGHTS_FILE) as tmp:
        tmp.write_bytes(data)


def load_trained_model(run_dir: str | Path) -> tuple[nn.Module, RunConfig]:
    """The best weights of a run, in eval mode; fails with one sentence if the folder or weights do not fit."""
    config = RunConfig.load(run_dir)
    path = Path(run_dir) / WEIGHTS_FILE
    if not path.is_file():
        raise RunError(
            f"{run_dir} has no {WEIGHTS_FILE} yet: the run has not finished an epoch; train or resume it first."
        )
    model = build_model(config)
    try:
        state = load_file(str(path))
    except Exception as error:  # noqa: BLE001 - safetensors raises its own SafetensorsError, OSError, ...
        raise RunError(
            f"{path} is damaged ({type(error).__name__}: {error}); restore it, or resume or retrain the run."
        ) from None
    expected = model.state_dict()
    bad = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    if bad or set(state) - set(expected):
        raise RunError(
            f"{path} does not match the {config.model.name} architecture in {CONFIG_FILE} (first mismatch: {(bad or sorted(set(state) - set(expected)))[0]})."
        )
    model.load_state_dict(state)
    return model.eval(), config
