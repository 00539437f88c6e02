"""Per-epoch metrics as an Accelerate tracker (metrics.csv in the run folder) and the training-curve PNG."""

from __future__ import annotations

import csv
from pathlib import Path

from accelerate.tracking import GeneralTracker

from .. import atomic
from ..artifacts.run_folder import CURVES_FILE, METRICS_CSV, RunError


class CSVTracker(GeneralTracker):
    """Appends one row per accelerator.log() call to RUN_DIR/metrics.csv; a resumed run keeps earlier rows."""

    name = "csv"
    requires_logging_directory = False

    def __init__(self, run_dir: str | Path):
        super().__init__()
        self.path = Path(run_dir) / METRICS_CSV

    @property
    def tracker(self) -> Path:
        return self.path

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        row = {"epoch": step, **values}
        rows = read_metrics(self.path)
        rows = [r for r in rows if int(r["epoch"]) < int(step)] if step is not None else rows
        rows.append({k: str(v) for k, v in row.items()})
        fields = list(dict.fromkeys(k for r in rows for k in r))
        with atomic.atomic_path(self.path) as tmp, tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a metrics.csv; a damaged one (no epoch column, a non-numeric epoch) is a RunError in one sentence."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        for r in rows:
            int(r["epoch"])
    except (KeyError, TypeError, ValueError, csv.Error) as error:
        raise RunError(
            f"{path} is damaged ({type(error).__name__}: {error}); restore it, or delete it (training goes on without the curve of the earlier epochs)."
        ) from None
    return rows


def plot_curves(run_dir: str | Path) -> Path:
    """Loss and accuracy per epoch, train vs valid, as RUN_DIR/curves.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(Path(run_dir) / METRICS_CSV)
    epochs = [int(r["epoch"]) for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for key, ax in (
        ("train_loss", ax_loss),
        ("valid_loss", ax_loss),
        ("train_acc", ax_acc),
        ("valid_acc", ax_acc),
        ("valid_top5", ax_acc),
    ):
        if rows and key in rows[0]:
            ax.plot(epochs, [float(r[key]) for r in rows], marker="o", label=key)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out = Path(run_dir) / CURVES_FILE
    with atomic.atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out
