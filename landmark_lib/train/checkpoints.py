"""Accelerate checkpoints of a run (state/epoch_NNNN/), written so that a killed run resumes at its last full epoch."""

from __future__ import annotations

import shutil
from pathlib import Path

from accelerate import Accelerator

from ..artifacts.run_folder import STATE_DIR


class Progress:
    """Epoch counter, best validation score and early-stopping patience, saved with every Accelerate checkpoint."""

    def __init__(self) -> None:
        self.epoch, self.bad_epochs = 0, 0
        self.best: float | None = None

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.best, self.bad_epochs = state["epoch"], state["best"], state["bad_epochs"]

    def record(self, score: float, lower_is_better: bool) -> bool:
        """Count one finished epoch with validation SCORE; True when it is the best so far."""
        better = self.best is None or (score < self.best if lower_is_better else score > self.best)
        if better:
            self.best, self.bad_epochs = score, 0
        else:
            self.bad_epochs += 1
        self.epoch += 1
        return better


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest fully written checkpoint (a kill during save leaves no 'complete' marker, so it is ignored)."""
    done = sorted(p.parent for p in (run_dir / STATE_DIR).glob("epoch_*/complete"))
    return done[-1] if done else None


def save_checkpoint(accelerator: Accelerator, run_dir: Path, epoch: int, keep: int = 2) -> None:
    folder = run_dir / STATE_DIR / f"epoch_{epoch:04d}"
    accelerator.save_state(str(folder))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (folder / "complete").touch()
        for old in sorted((run_dir / STATE_DIR).glob("epoch_*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
