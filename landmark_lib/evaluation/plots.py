"""The pictures of an evaluation report: confusion matrix, per-class accuracy, the most confident mistakes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import torch
from matplotlib.figure import Figure

from ..data.images import load_rgb

GALLERY_SIZE = 24


def _short(name: str, width: int = 26) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def plot_confusion(path: Path, metrics: dict, display_names: list[str]) -> None:
    """Row-normalised (share of each true class), sized so 44-50 class names stay legible."""
    cm = torch.tensor(metrics["confusion_matrix"], dtype=torch.float64)
    rates = cm / cm.sum(dim=1, keepdim=True).clamp(min=1)
    n = len(display_names)
    size = max(6.0, 0.3 * n + 3.0)
    font = max(5.0, min(10.0, 300.0 / n))
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot()
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    labels = [_short(name) for name in display_names]
    ax.set_xticks(range(n), labels, rotation=90, fontsize=font)
    ax.set_yticks(range(n), labels, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for t in range(n):
        for p in range(n):
            if rates[t, p] >= 0.1:
                ax.text(
                    p,
                    t,
                    f"{rates[t, p] * 100:.0f}",
                    ha="center",
                    va="center",
                    fontsize=font * 0.8,
                    color="white" if rates[t, p] > 0.5 else "black",
                )
    ax.set_title(f"Confusion matrix ({metrics['split']}, top-1 {metrics['top1']:.1%}); cells: % of the true class")
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def plot_per_class(path: Path, metrics: dict) -> None:
    """Classes sorted by accuracy, worst at the top, with their test support."""
    rows = sorted(
        (c for c in metrics["per_class"] if c["accuracy"] is not None), key=lambda c: c["accuracy"], reverse=True
    )
    fig = Figure(figsize=(8.0, max(3.0, 0.24 * len(rows) + 1.5)))
    ax = fig.add_subplot()
    ax.barh(range(len(rows)), [c["accuracy"] for c in rows], color="tab:blue")
    ax.set_yticks(range(len(rows)), [f"{_short(c['display_name'], 32)} (n={c['support']})" for c in rows], fontsize=7)
    ax.axvline(metrics["top1"], color="tab:red", linestyle="--", label=f"overall top-1 {metrics['top1']:.1%}")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("accuracy (recall)")
    ax.set_title(f"Per-class accuracy ({metrics['split']})")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def plot_misclassified(
    path: Path, files: list[Path], probs: torch.Tensor, targets: torch.Tensor, display_names: list[str]
) -> None:
    """The most confident mistakes: the ones worth looking at (label noise, look-alikes, collection bias)."""
    confidence, predicted = probs.max(dim=1)
    wrong = (predicted != targets).nonzero().flatten()
    shown: list[int] = wrong[confidence[wrong].argsort(descending=True)][:GALLERY_SIZE].tolist()
    columns = 6
    rows = max(1, -(-len(shown) // columns))
    fig = Figure(figsize=(columns * 2.4, rows * 2.9))
    if not shown:
        fig.text(0.5, 0.5, "no misclassified images", ha="center", va="center", fontsize=14)
    for slot, i in enumerate(shown):
        ax = fig.add_subplot(rows, columns, slot + 1)
        image = load_rgb(files[i])
        image.thumbnail((256, 256))
        ax.imshow(image)
        ax.axis("off")
        pred = textwrap.shorten(display_names[int(predicted[i])], 30, placeholder="…")
        true = textwrap.shorten(display_names[int(targets[i])], 30, placeholder="…")
        ax.set_title(f"pred: {pred} ({confidence[i]:.0%})\ntrue: {true}", fontsize=7, color="firebrick")
    fig.suptitle(f"Most confident mistakes ({len(shown)} shown)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
