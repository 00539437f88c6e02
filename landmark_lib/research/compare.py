"""Compare evaluated runs: one markdown table and one bar chart (test metrics, training time, size, CPU latency).

landmark compare runs/scratch runs/lite0-linear runs/lite0-partial --out reports/transfer_learning.png
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path

import torch
from tqdm import tqdm

from .. import threads
from ..artifacts.run_folder import FEATURE_CACHE_FILE, METRICS_CSV, RunConfig
from ..models.trained import build_model
from ..predictor import LandmarkPredictor
from ..train.finetune import trainable_groups


def parameters(config: RunConfig) -> tuple[int, int]:
    """(trained, total) parameters of the run's architecture under its strategy (the scratch CNN trains all)."""
    model = build_model(config)
    if config.model.name != "scratch":
        trainable_groups(model, config.args.get("strategy", "full"), config.args.get("train_stages", 1))
    return sum(p.numel() for p in model.parameters() if p.requires_grad), sum(p.numel() for p in model.parameters())


def summarise(run_dir: str | Path, split: str = "test") -> dict:
    """One row: the run's model, strategy, test metrics, training time and trained/total parameters."""
    run_dir = Path(run_dir)
    config = RunConfig.load(run_dir)
    metrics = json.loads((run_dir / f"eval-{split}" / "metrics.json").read_text())
    with (run_dir / METRICS_CSV).open() as handle:
        epochs = list(csv.DictReader(handle))
    feature_cache = run_dir / FEATURE_CACHE_FILE
    args = config.args
    trained, total = parameters(config)
    return {
        "run": run_dir.name,
        "model": config.model.name,
        "input_size": config.preprocess.input_size,
        "strategy": "from scratch"
        if config.model.name == "scratch"
        else args.get("strategy", "full")
        + (f" (last {args['train_stages']} stage)" if args.get("strategy") == "partial" else ""),
        "top1": metrics["top1"],
        "top5": metrics["top5"],
        "macro_f1": metrics["macro_f1"],
        "epochs": len(epochs),
        "train_minutes": sum(float(e["epoch_seconds"]) for e in epochs) / 60,
        "feature_minutes": json.loads(feature_cache.read_text())["seconds"] / 60 if feature_cache.is_file() else None,
        "trained_params": trained,
        "total_params": total,
    }


@torch.inference_mode()
def single_photo_latency(
    run_dirs: list[str | Path], iters: int = 30, photo_size: tuple[int, int] = (480, 640)
) -> dict[str, float]:
    """Median ms per photo (uint8 480x640 -> probabilities, eager fp32, --threads) for each distinct architecture.

    The networks are called in turn (interleaved), so a change in machine load hits all of them alike. Runs that
    share an architecture and input size share the number (keyed by model name and input size).
    """
    predictors = {}
    for run_dir in run_dirs:
        config = RunConfig.load(run_dir)
        key = f"{config.model.name}@{config.preprocess.input_size}"
        if key not in predictors:
            predictors[key] = LandmarkPredictor(build_model(config), config.preprocess, config.classes).eval()
    photo = torch.randint(0, 256, (3, *photo_size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {key: [] for key in predictors}
    for round_ in tqdm(range(iters + 3), desc="single-photo latency", unit="round"):  # 3 untimed warm-up rounds
        for key, predictor in predictors.items():
            start = time.perf_counter()
            predictor(photo)
            if round_ >= 3:
                times[key].append((time.perf_counter() - start) * 1000)
    return {key: statistics.median(values) for key, values in times.items()}


def chart_bottom(values: list[float]) -> float:
    """Where the bar chart's axis starts: zoomed in on the top (0.5) only when every bar still shows above it."""
    return 0.5 if min(values) >= 0.55 else 0.0


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = (("top1", "top-1"), ("top5", "top-5"), ("macro_f1", "macro-F1"))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        xs = [k + i * width for k in range(len(keys))]
        bars = ax.bar(xs, [row[k] for k, _ in keys], width, label=f"{row['model']} - {row['strategy']}")
        ax.bar_label(bars, fmt="%.3f", fontsize=6, rotation=90, padding=2)
    ax.set_xticks([k + width * (len(rows) - 1) / 2 for k in range(len(keys))], [label for _, label in keys])
    ax.set(
        ylim=(chart_bottom([row[k] for row in rows for k, _ in keys]), 1.06),
        ylabel="world_landmarks test",
        title="Scratch CNN vs. transfer learning",
    )
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _minutes(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} min"


def markdown(rows: list[dict], latency: dict[str, float] | None) -> str:
    lines = [
        "| run | model | strategy | top-1 | top-5 | macro-F1 | epochs | epoch time | one-time features | trained / total params | CPU ms / photo |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        ms = (latency or {}).get(f"{r['model']}@{r['input_size']}")
        lines.append(
            f"| {r['run']} | {r['model']} ({r['input_size']} px) | {r['strategy']} | {r['top1']:.2%} | {r['top5']:.2%} | {r['macro_f1']:.3f} "
            f"| {r['epochs']} | {_minutes(r['train_minutes'])} | {_minutes(r['feature_minutes'])} "
            f"| {r['trained_params'] / 1e6:.2f} M / {r['total_params'] / 1e6:.2f} M | {'' if ms is None else f'{ms:.1f}'} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    """`landmark compare`: print the table, write the chart (and the rows as JSON)."""
    rows = [summarise(run_dir, args.split) for run_dir in args.runs]
    latency = single_photo_latency(args.runs, args.latency_iters) if args.latency_iters > 0 else None
    print(markdown(rows, latency))
    if latency:
        print(
            f"\nCPU ms / photo: median of {args.latency_iters} single-photo calls (uint8 480x640 -> probabilities, eager fp32, "
            f"{threads.count()} threads (--threads), architectures interleaved)."
        )
    plot(rows, args.out)
    print(f"chart: {args.out}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "latency_ms": latency}, indent=2), encoding="utf-8")
