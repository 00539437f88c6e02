"""Serving speed of the exported model against its peers, in one run on one machine, so the ratios are comparable.

Every variant takes the same uint8 photos [3, H, W] and returns probabilities: the torch Preprocess module (resize,
centre crop, normalise) runs in torch for all of them, then the network, then softmax. Photo decoding is not timed.

  torchscript fp32            the exported model.pt (forward_batch), what the app serves today
  eager fp32                  LandmarkPredictor around the eager timm/scratch network of the run
  onnxruntime fp32            the same network exported to ONNX (dynamic batch), ONNX Runtime CPUExecutionProvider
  eager int8-dynamic          torch quantize_dynamic on nn.Linear (a conv net's convolutions stay fp32)
  onnxruntime int8-dynamic    onnxruntime.quantization.quantize_dynamic (uint8 weights, activations quantised per call)
  onnxruntime int8-static     the export's model.int8.onnx (export.py --format onnx-int8) when it has one, else the same
                              quantisation (landmark_lib.export.onnx.quantize_static_int8) on --calib train photos
                              (random ones without --data)

Timing is interleaved (one call of each variant in turn), so a change in machine load hits all variants alike.

    PYTHONPATH=. .venv/bin/python benchmarks/serving_speed.py --run runs/effnet --export-dir exports/effnet \\
        --data ../shared/data/world_landmarks --eval-limit 500 --json serving_speed.json
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from landmark_lib import threads as thread_count
from landmark_lib.artifacts.run_folder import RunConfig
from landmark_lib.bundle import INT8_FILE
from landmark_lib.data.folder import open_split
from landmark_lib.data.images import ImageLoadError, load_rgb, pil_to_uint8_chw
from landmark_lib.export.onnx import quantize_static_int8, to_onnx
from landmark_lib.models.trained import load_trained_model
from landmark_lib.predictor import LandmarkPredictor
from landmark_lib.preprocess import Preprocess
from landmark_lib.runtime.backends import OnnxPredictor

REFERENCE = "torchscript fp32"
Predict = Callable[[list[torch.Tensor]], torch.Tensor]


@dataclass
class Variant:
    name: str
    predict: Predict  # uint8 images -> probabilities [N, C]
    latencies_ms: list[float] = field(default_factory=list)  # batch-1 calls
    seconds: dict[int, float] = field(default_factory=dict)  # batch size -> total timed seconds
    calls: dict[int, int] = field(default_factory=dict)
    quality: dict = field(default_factory=dict)


def machine() -> dict:
    """What the numbers were measured on: they only compare within one machine."""
    import onnxruntime

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    return {
        "cpu": models[0] if models else (platform.processor() or "unknown"),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def spread(samples: list, count: int) -> list:
    """COUNT items taken evenly over SAMPLES (sorted by class), so every class is represented."""
    return samples[:: max(1, len(samples) // count)][:count] if count > 0 else []


def photos(data: str | Path, split: str, class_names: list[str], count: int) -> Iterator[tuple[torch.Tensor, int]]:
    """Decoded photos (uint8 [3, H, W]) and their class index; unreadable files are skipped."""
    for path, target in spread(open_split(data, split, class_names=class_names).samples, count):
        try:
            yield pil_to_uint8_chw(load_rgb(path)), target
        except ImageLoadError:
            continue


def quantise_onnx(
    fp32: Path, workdir: Path, preprocess: Preprocess, calibration: list[torch.Tensor], exported_int8: Path
) -> None:
    """WORKDIR/int8-dynamic.onnx (after ONNX Runtime's recommended pre-processing) and int8-static.onnx from FP32.

    The static one is EXPORTED_INT8 when the export has it: the benchmark then times the very file the app serves.
    """
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    prepared = workdir / "fp32-prepared.onnx"
    logging.disable(logging.WARNING)  # the quantisation tools log hints at WARNING on the root logger
    try:
        quant_pre_process(fp32, prepared)  # shape inference + graph optimisation, as the quantisation docs advise
        quantize_dynamic(
            prepared, workdir / "int8-dynamic.onnx", weight_type=QuantType.QUInt8
        )  # ConvInteger needs uint8 weights
    finally:
        logging.disable(logging.NOTSET)
    if exported_int8.is_file():
        (workdir / "int8-static.onnx").write_bytes(exported_int8.read_bytes())
        return
    with torch.inference_mode():
        quantize_static_int8(fp32, workdir / "int8-static.onnx", [preprocess(image) for image in calibration])


def build_variants(
    run_dir: Path, export_dir: Path, workdir: Path, threads: int, calibration: list[torch.Tensor]
) -> list[Variant]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript and torch.ao quantisation are marked deprecated; both still work
        scripted = torch.jit.load(str(export_dir / "model.pt"), map_location="cpu").eval()
        network, config = load_trained_model(run_dir)
        linear_int8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(network), {nn.Linear}, dtype=torch.qint8)
    eager = LandmarkPredictor(network, config.preprocess, config.classes).eval()
    eager_int8 = LandmarkPredictor(linear_int8, config.preprocess, config.classes).eval()
    fp32 = to_onnx(network, config.preprocess.input_size, workdir / "fp32.onnx")
    quantise_onnx(fp32, workdir, eager.preprocess, calibration, export_dir / INT8_FILE)

    def onnx(name: str) -> Predict:
        return OnnxPredictor(workdir / f"{name}.onnx", config.preprocess, num_threads=threads).forward_batch

    return [
        Variant(REFERENCE, scripted.forward_batch),
        Variant("eager fp32", eager.forward_batch),
        Variant("onnxruntime fp32", onnx("fp32")),
        Variant("eager int8-dynamic", eager_int8.forward_batch),
        Variant("onnxruntime int8-dynamic", onnx("int8-dynamic")),
        Variant("onnxruntime int8-static", onnx("int8-static")),
    ]


def time_variants(variants: list[Variant], image: torch.Tensor, batches: list[int], iters: int, warmup: int) -> None:
    """Per batch size: WARMUP untimed calls each, then ITERS rounds of one timed call per variant (interleaved)."""
    with torch.inference_mode():
        for size in batches:
            batch = [image.clone() for _ in range(size)]
            for variant in variants:
                for _ in range(warmup):
                    variant.predict(batch)
            for _ in range(iters):
                for variant in variants:
                    start = time.perf_counter()
                    variant.predict(batch)
                    elapsed = time.perf_counter() - start
                    variant.seconds[size] = variant.seconds.get(size, 0.0) + elapsed
                    variant.calls[size] = variant.calls.get(size, 0) + 1
                    if size == 1:
                        variant.latencies_ms.append(elapsed * 1000)


def measure_quality(
    variants: list[Variant], images: Iterator[tuple[torch.Tensor, int]], labelled: bool, chunk: int = 32
) -> None:
    """Top-1 (with labels), agreement of the top-1 with TorchScript's, and the max |probability difference| to it."""
    stats = {v.name: {"correct": 0, "agree": 0, "max_abs_diff": 0.0} for v in variants}
    total = 0

    def run(pairs: list[tuple[torch.Tensor, int]]) -> None:
        targets = torch.tensor([t for _, t in pairs])
        with torch.inference_mode():
            probs = {v.name: v.predict([image for image, _ in pairs]).float() for v in variants}
        reference = probs[REFERENCE]
        for name, p in probs.items():
            stats[name]["correct"] += int((p.argmax(1) == targets).sum())
            stats[name]["agree"] += int((p.argmax(1) == reference.argmax(1)).sum())
            stats[name]["max_abs_diff"] = max(stats[name]["max_abs_diff"], float((p - reference).abs().max()))

    pending: list[tuple[torch.Tensor, int]] = []
    for pair in images:  # streamed in chunks: a few hundred full-size photos need not sit in memory at once
        pending.append(pair)
        if len(pending) == chunk:
            run(pending)
            total, pending = total + len(pending), []
    if pending:
        run(pending)
        total += len(pending)
    for variant in variants:
        s = stats[variant.name]
        variant.quality = {
            "n_images": total,
            "top1": s["correct"] / total if labelled and total else None,
            "top1_agreement": s["agree"] / total if total else None,
            "max_abs_diff": s["max_abs_diff"],
        }


def summary(variant: Variant) -> dict:
    lat = variant.latencies_ms
    return {
        "name": variant.name,
        "p50_ms": statistics.median(lat),
        "p95_ms": float(np.percentile(lat, 95)),
        "photos_per_s": {str(b): b * variant.calls[b] / variant.seconds[b] for b in variant.seconds},
        **variant.quality,
    }


def ratios(rows: dict[str, dict], largest: int) -> dict[str, dict]:
    """Speed-up of the first over the second: batch-1 p50 latency and throughput at the largest batch."""
    pairs = {
        "TorchScript / eager": (REFERENCE, "eager fp32"),
        "ONNX Runtime / TorchScript": ("onnxruntime fp32", REFERENCE),
        "int8 / fp32 (eager, Linear dynamic)": ("eager int8-dynamic", "eager fp32"),
        "int8 / fp32 (ONNX Runtime dynamic)": ("onnxruntime int8-dynamic", "onnxruntime fp32"),
        "int8 / fp32 (ONNX Runtime static)": ("onnxruntime int8-static", "onnxruntime fp32"),
    }
    return {
        label: {
            "latency_speedup_b1": rows[slow]["p50_ms"] / rows[fast]["p50_ms"],
            f"throughput_speedup_b{largest}": rows[fast]["photos_per_s"][str(largest)]
            / rows[slow]["photos_per_s"][str(largest)],
        }
        for label, (fast, slow) in pairs.items()
    }


def markdown(report: dict) -> str:
    batches = report["settings"]["batches"]
    m = report["machine"]
    head = [
        "variant",
        "p50 ms (b=1)",
        "p95 ms (b=1)",
        *[f"photos/s b={b}" for b in batches],
        "top-1",
        "top-1 = TS",
        "max |Δp| vs TS",
    ]
    lines = [
        f"Machine: {m['cpu']}, {m['usable_cores']}/{m['cores']} cores usable, load avg {m['load_avg_1m']}; "
        f"torch {m['torch']}, onnxruntime {m['onnxruntime']}; {report['settings']['threads']} threads; "
        f"photo {report['settings']['photo_size']} uint8 -> probabilities (preprocessing included, decoding not).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    for row in report["rows"]:
        cells = [
            row["name"],
            f"{row['p50_ms']:.2f}",
            f"{row['p95_ms']:.2f}",
            *[f"{row['photos_per_s'][str(b)]:.1f}" for b in batches],
            pct(row.get("top1")),
            pct(row.get("top1_agreement")),
            f"{row.get('max_abs_diff', float('nan')):.1e}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    eager = next(row for row in report["rows"] if row["name"] == "eager fp32")
    if eager.get("max_abs_diff", 0.0) > 1e-3:
        lines += [
            "",
            f"WARNING: model.pt differs from the run's eager network by {eager['max_abs_diff']:.2g}: is --export-dir an export of --run?",
        ]
    n_images = report["rows"][0].get("n_images")
    lines += [
        "",
        f"Quality columns on {n_images} photos: {report['quality_images']}.",
        "",
        "Speed-ups (>1: the first is faster):",
    ]
    for label, values in report["ratios"].items():
        lines.append(f"- {label}: " + ", ".join(f"{k} {v:.2f}x" for k, v in values.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", type=Path, required=True, help="run folder (config.json + model.safetensors): the eager network"
    )
    parser.add_argument("--export-dir", type=Path, required=True, help="export folder of the same run (model.pt)")
    parser.add_argument("--iters", type=int, default=50, help="timed calls per variant and batch size")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls per variant and batch size first")
    parser.add_argument(
        "--batches", default="1,8,32", help="comma-separated batch sizes for throughput (1 is always measured)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads for torch and ONNX Runtime (default: landmark's, landmark_lib/threads.py)",
    )
    parser.add_argument(
        "--photo-size", default="480x640", help="HxW of the timed uint8 photo (preprocessing cost depends on it)"
    )
    parser.add_argument("--data", type=Path, help="dataset root: top-1 on test photos, calibration on train photos")
    parser.add_argument("--eval-limit", type=int, default=200, help="test photos for the top-1 columns (with --data)")
    parser.add_argument("--calib", type=int, default=32, help="photos to calibrate static int8 quantisation with")
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = parser.parse_args(argv)

    threads = thread_count.use(args.threads)
    batches = sorted({1, *(int(b) for b in args.batches.split(",") if b.strip())})
    height, width = (int(v) for v in args.photo_size.lower().split("x"))
    measured_on = machine()  # before the run: the load average describes the machine, not this benchmark
    class_names = RunConfig.load(args.run).class_names
    generator = torch.Generator().manual_seed(0)
    random_photos = lambda n: [
        torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator) for _ in range(n)
    ]  # noqa: E731

    if args.data:
        calibration = [image for image, _ in photos(args.data, "train", class_names, args.calib)]
        quality_images, quality_note = (
            photos(args.data, "test", class_names, args.eval_limit),
            f"{args.data}/test, up to {args.eval_limit} photos spread over the classes",
        )
    else:
        calibration = random_photos(args.calib)
        quality_images, quality_note = (
            ((image, -1) for image in random_photos(8)),
            "8 random-pixel photos (no --data: no top-1; static int8 calibrated on random pixels)",
        )

    with tempfile.TemporaryDirectory() as workdir:
        variants = build_variants(args.run, args.export_dir, Path(workdir), threads, calibration)
        measure_quality(variants, quality_images, labelled=bool(args.data))
        time_variants(variants, random_photos(1)[0], batches, args.iters, args.warmup)

    rows = [summary(v) for v in variants]
    report = {
        "machine": measured_on,
        "settings": {
            "threads": threads,
            "batches": batches,
            "iters": args.iters,
            "warmup": args.warmup,
            "photo_size": f"{height}x{width}",
            "run": str(args.run),
            "export_dir": str(args.export_dir),
        },
        "quality_images": quality_note,
        "rows": rows,
        "ratios": ratios({r["name"]: r for r in rows}, batches[-1]),
    }
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
