"""Compare evaluated runs: one markdown table and one bar chart (top-1, top-5, macro-F1 on the test split).

    python -m landmark_lib.compare runs/scratch runs/lite0-linear runs/lite0-partial --out reports/transfer_learning.png
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from .run import RunConfig


def summarise(run_dir: str | Path, split: str = "test") -> dict:
    """One row: the run's model, strategy, test metrics, training time and trainable/total parameters."""
    run_dir = Path(run_dir)
    config = RunConfig.load(run_dir)
    metrics = json.loads((run_dir / f"eval-{split}" / "metrics.json").read_text())
    with (run_dir / "metrics.csv").open() as handle:
        epochs = list(csv.DictReader(handle))
    args = config.args
    return {
        "run": run_dir.name,
        "model": config.model.name,
        "strategy": "from scratch" if config.model.name == "scratch" else args.get("strategy", "full") + (
            f" (last {args['train_stages']} stage)" if args.get("strategy") == "partial" else ""
        ),
        "top1": metrics["top1"],
        "top5": metrics["top5"],
        "macro_f1": metrics["macro_f1"],
        "epochs": len(epochs),
        "train_minutes": sum(float(e["epoch_seconds"]) for e in epochs) / 60,
    }


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = (("top1", "top-1"), ("top5", "top-5"), ("macro_f1", "macro-F1"))
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        xs = [k + i * width for k in range(len(keys))]
        bars = ax.bar(xs, [row[k] for k, _ in keys], width, label=f"{row['model']} - {row['strategy']}")
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks([k + width * (len(rows) - 1) / 2 for k in range(len(keys))], [label for _, label in keys])
    ax.set(ylim=(0.5, 1.02), ylabel="world_landmarks test", title="Scratch CNN vs. transfer learning")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders evaluated with python -m landmark_lib.evaluate")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, required=True, help="PNG chart to write")
    args = parser.parse_args()
    rows = [summarise(run, args.split) for run in args.runs]
    print("| run | model | strategy | top-1 | top-5 | macro-F1 | epochs | training time |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['run']} | {r['model']} | {r['strategy']} | {r['top1']:.2%} | {r['top5']:.2%} | {r['macro_f1']:.3f} | {r['epochs']} | {r['train_minutes']:.1f} min |")
    plot(rows, args.out)
    print(f"chart: {args.out}")


if __name__ == "__main__":
    main()
