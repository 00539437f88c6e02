"""The threshold curve: share of no-landmark photos named as a landmark against coverage of landmark photos, for
every threshold, from evaluation folders (their predictions.csv); the shipped threshold is marked on each curve.

    landmark threshold-curve runs/new/eval-test=new runs/old/eval-test=old --out curve.png
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..errors import LandmarkError
from ..labels import BACKGROUND_CLASS


def curve(eval_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, coverage of landmark photos, false-accept rate of no-landmark photos), thresholds descending."""
    with (eval_dir / "predictions.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    confidence = np.array([float(r["landmark_confidence"]) for r in rows])
    landmark = np.array([r["true"] != BACKGROUND_CLASS for r in rows])
    thresholds = np.unique(confidence)[::-1]
    coverage = np.array([(confidence[landmark] >= t).mean() for t in thresholds])
    false_accepts = np.array([(confidence[~landmark] >= t).mean() if (~landmark).any() else 0.0 for t in thresholds])
    return thresholds, coverage, false_accepts


def threshold_text(value: float) -> str:
    """VALUE with as few decimals as tell it apart from 0 and 1 (0.35 -> "0.35", 0.9954 -> "0.995", not "1.00")."""
    for decimals in range(2, 8):
        text = f"{value:.{decimals}f}"
        if value in (0.0, 1.0) or 0.0 < float(text) < 1.0:
            return text
    return f"{value:g}"


def plot(evals: list[tuple[Path, str]], out: Path) -> None:
    fig = Figure(figsize=(7.0, 5.0))
    ax = fig.add_subplot()
    for eval_dir, label in evals:
        thresholds, coverage, false_accepts = curve(eval_dir)
        (line,) = ax.plot(false_accepts * 100, coverage * 100, label=label)
        shipped = json.loads((eval_dir / "metrics.json").read_text(encoding="utf-8"))["recognition"]
        if shipped.get("coverage") is not None and shipped.get("false_accept_rate") is not None:
            ax.plot(shipped["false_accept_rate"] * 100, shipped["coverage"] * 100, "o", color=line.get_color())
            ax.annotate(
                f"threshold {threshold_text(shipped['threshold'])}",
                (shipped["false_accept_rate"] * 100, shipped["coverage"] * 100),
                textcoords="offset points",
                xytext=(6, -12),
                fontsize=8,
                color=line.get_color(),
            )
    ax.axvline(2.0, color="grey", linestyle=":", label="2% false-accept target")
    ax.set_xlabel("no-landmark photos named as a landmark (%)")
    ax.set_ylabel("landmark photos named (coverage, %)")
    ax.set_xlim(0, 60)
    ax.set_ylim(50, 100.5)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Threshold curve: every threshold from 1 down to 0 (dot: the shipped one)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)


def run(args: argparse.Namespace) -> None:
    """`landmark threshold-curve EVAL_DIR[=LABEL] ... --out PNG`."""
    evals = [(Path(e.split("=", 1)[0]), e.split("=", 1)[1] if "=" in e else Path(e).name) for e in args.evals]
    missing = [str(d) for d, _ in evals if not (d / "predictions.csv").is_file()]
    if missing:
        raise LandmarkError(f"no predictions.csv in {', '.join(missing)}; run `landmark evaluate` there first.")
    plot(evals, args.out)
    print(f"wrote {args.out}")
