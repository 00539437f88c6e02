"""Export a run as one TorchScript file (preprocessing + network + softmax + class metadata) that needs only torch.

The inner network is traced (many timm models do not script); the LandmarkPredictor wrapper is scripted so its
preprocessing keeps handling photos of any size. The file is checked in a fresh torch-only process.
Optionally (onnx=True) the network alone is also written as model.onnx for ONNX Runtime, checked the same way, and
(int8=True) as model.int8.onnx, statically quantised on the run's training photos and kept only if it stays within
one point of the fp32 top-1 on the run's validation photos, with its own recognition threshold.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from . import atomic, checksums
from .data.folder import data_roots, open_split
from .data.images import ImageLoadError, decode_short_side, load_rgb, pil_to_uint8_chw
from .onnx_model import (
    INPUT_NAME,
    INT8_FILE,
    ONNX_FILE,
    OUTPUT_NAME,
    OnnxPredictor,
    quantize_static_int8,
    to_onnx,
)
from .predictor import LandmarkPredictor
from .preprocess import PreprocessConfig
from .run import RunConfig, load_trained_model

MODEL_FILE = "model.pt"
LABELS_FILE = "labels.json"
EXPORT_FILE = "export.json"
METRICS_FILE = "metrics.json"
TOLERANCE = 1e-4
MAX_INT8_TOP1_DROP = 0.01  # int8 is worth its speed only if it stays within one point of fp32 top-1 on validation

# Runs in a fresh interpreter without the project on the path: proves a server needs nothing but torch.
_TORCH_ONLY_CHECK = """
import sys, torch
torch.set_num_threads(1)  # a handful of photos; one thread avoids fighting the exporting process for cores
model = torch.jit.load(sys.argv[1], map_location="cpu").eval()
images = torch.load(sys.argv[2])
with torch.no_grad():
    single = torch.stack([model(image) for image in images])
    batch = model.forward_batch(images)
extra = sorted(m for m in ("landmark_lib", "timm") if m in sys.modules)
assert not extra, f"the exported model imported {extra}"
torch.save({"single": single, "batch": batch, "class_names": list(model.class_names)}, sys.argv[3])
"""


class ExportError(RuntimeError):
    """The exported file does not reproduce the eager model; the message says by how much."""


def to_torchscript(predictor: LandmarkPredictor) -> torch.jit.ScriptModule:
    """Trace the network on one [1, 3, S, S] crop, then script the wrapper around it."""
    size = predictor.preprocess.input_size
    scripted_copy = copy.deepcopy(predictor).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)  # torch marks TorchScript deprecated; it is still the format servers load
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # verified below on other batch sizes
        scripted_copy.model = torch.jit.trace(scripted_copy.model, torch.rand(1, 3, size, size), check_trace=False)
        return torch.jit.script(scripted_copy)


def check_images(
    check_data: str | Path | None, split: str, class_names: list[str], count: int = 8, min_short_side: int | None = None
) -> list[torch.Tensor]:
    """Up to COUNT real photos (the first of classes spread over the list) plus generated ones of awkward sizes.

    MIN_SHORT_SIDE: decode as the app does (decode_short_side), which also bounds each photo's memory.
    """
    images = []
    if check_data:
        first: dict[int, Path] = {}
        for path, target in open_split(check_data, split, class_names=class_names).samples:
            first.setdefault(target, path)
        for path in list(first.values())[:: max(1, len(first) // count)]:
            try:
                images.append(pil_to_uint8_chw(load_rgb(path, min_short_side)))
            except ImageLoadError:
                continue
            if len(images) == count:
                break
    generator = torch.Generator().manual_seed(0)
    for height, width in [(37, 500), (1, 1), (480, 640), (333, 257)]:
        images.append(torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator))
    return images


def compare_in_fresh_process(model_file: str | Path, eager: LandmarkPredictor, images: list[torch.Tensor]) -> float:
    """Max |probability difference| between the file (run by a torch-only interpreter) and the eager predictor."""
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        torch.save(images, Path(tmp) / "images.pt")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        result = subprocess.run(
            [sys.executable, "-W", "ignore", "-c", _TORCH_ONLY_CHECK, str(Path(model_file).resolve()), "images.pt", "out.pt"],
            cwd=tmp, env=env, capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            last_line = (result.stderr.strip().splitlines() or ["no error output"])[-1]
            raise ExportError(f"{model_file} does not load and run with torch alone ({last_line}).")
        outputs = torch.load(Path(tmp) / "out.pt")
        if outputs["class_names"] != eager.class_names:
            raise ExportError(f"{model_file} carries different class names than the run.")
        expected = torch.stack([eager(image) for image in images])
        return max(float((outputs["single"] - expected).abs().max()), float((outputs["batch"] - expected).abs().max()))


def verify(scripted: torch.jit.ScriptModule, model_file: Path, eager: LandmarkPredictor, images: list[torch.Tensor]) -> float:
    """Batch of 8 works, and the saved file reproduces the eager probabilities within TOLERANCE; returns the max diff."""
    with torch.no_grad():
        if scripted.forward_batch(images[:1] * 8).shape != (8, len(eager.class_names)):
            raise ExportError("The exported forward_batch does not return [8, num_classes] for a batch of 8.")
    max_abs_diff = compare_in_fresh_process(model_file, eager, images)
    if max_abs_diff > TOLERANCE:
        raise ExportError(
            f"The exported model differs from the eager one by {max_abs_diff:.2e} in probability (tolerance {TOLERANCE:g}), "
            "so model.pt was removed: do not ship it (the network does not trace faithfully)."
        )
    return max_abs_diff


def export_onnx(eager: LandmarkPredictor, preprocess: PreprocessConfig, out: Path, images: list[torch.Tensor]) -> float:
    """OUT/model.onnx (the network only); returns its max probability diff to EAGER, removing the file if it drifts."""
    path = to_onnx(eager.model, preprocess.input_size, out / ONNX_FILE)
    predictor = OnnxPredictor(path, preprocess)
    with torch.no_grad():
        expected = torch.stack([eager(image) for image in images])
    max_abs_diff = float((predictor.forward_batch(images) - expected).abs().max())
    if max_abs_diff > TOLERANCE:
        path.unlink()
        raise ExportError(f"model.onnx differs from the eager model by {max_abs_diff:.2e} in probability (tolerance {TOLERANCE:g}); it was removed.")
    return max_abs_diff


def _top1(probs: torch.Tensor, targets: torch.Tensor) -> float:
    return float((probs.argmax(dim=1) == targets).float().mean())


def export_onnx_int8(
    config: RunConfig, out: Path, valid_fp32: tuple[torch.Tensor, torch.Tensor],
    calibration_photos: int, calibration: dict | None, target_precision: float, max_false_accept: float,
) -> dict:
    """OUT/model.int8.onnx from OUT/model.onnx; removed again if it loses > 1 point of validation top-1 (the returned
    dict then has 'refused': why, and the rest of the export stays usable).

    Calibrated on CALIBRATION_PHOTOS training photos spread over the classes; its threshold is chosen on validation
    like the fp32 one (or CALIBRATION, when the threshold was given on the command line).
    """
    from .recognition import choose_threshold
    from .run_photos import (
        run_photos_loader,  # pulls in timm's transforms: servers importing this module must not pay for it
    )
    from .threshold import validation_probabilities

    loader = run_photos_loader(config, "train", limit=calibration_photos, batch_size=16)
    path = quantize_static_int8(out / ONNX_FILE, out / INT8_FILE, (images for images, _ in loader))
    probs, targets = validation_probabilities(config, OnnxPredictor(path, config.preprocess).logits)
    fp32_top1, int8_top1 = _top1(*valid_fp32), _top1(probs, targets)
    if int8_top1 < fp32_top1 - MAX_INT8_TOP1_DROP:
        path.unlink()
        return {"refused": (
            f"The int8 model reaches {int8_top1:.2%} top-1 on the run's validation photos against {fp32_top1:.2%} for fp32 "
            f"(at most {MAX_INT8_TOP1_DROP:.0%} lower is accepted), so {INT8_FILE} was removed; the fp32 files are exported "
            "and served. Export with --format onnx, or calibrate on more photos (--calibration-photos)."
        )}
    import onnxruntime

    chosen = calibration or choose_threshold(probs, targets, config.class_names, target_precision, max_false_accept)
    return {
        "file": INT8_FILE,
        "quantization": "onnxruntime quantize_static, QDQ, int8 per-channel weights, uint8 activations (MinMax)",
        "calibration_photos": len(loader.dataset),
        "calibration_source": "the run's training rows (never its validation rows or the test split)",
        "valid_top1_fp32": fp32_top1,
        "valid_top1_int8": int8_top1,
        "valid_agreement_with_fp32": float((probs.argmax(dim=1) == valid_fp32[0].argmax(dim=1)).float().mean()),
        "threshold": chosen["threshold"],
        "threshold_calibration": chosen,
        "onnxruntime": onnxruntime.__version__,
    }


def _metrics_summary(metrics: dict, split: str) -> dict:
    """What export.json and the model card show: accuracy, and GAP / false accepts / coverage at the file's threshold."""
    keys = ("gap", "landmark_top1", "coverage", "precision", "false_accept_rate", "landmark_photos", "no_landmark_photos")
    recognition = {k: metrics["recognition"].get(k) for k in keys}
    return {"split": split, **{k: metrics[k] for k in ("top1", "top5", "macro_f1", "n_images", "n_skipped")}, **recognition}


def labels(config: RunConfig) -> list[dict]:
    """labels.json: index -> class name, display name and place, for servers that do not read module attributes."""
    keys = ("name", "display_name", "city", "country", "lat", "lon")
    return [{key: asdict(info)[key] for key in keys} for info in config.classes]


def export_run(
    run_dir: str | Path,
    out: str | Path,
    check_data: str | Path | None = None,
    check_split: str = "test",
    evaluate: bool = True,
    batch_size: int = 32,
    threshold: float | None = None,
    target_precision: float = 0.95,
    max_false_accept: float = 0.02,
    onnx: bool = False,
    int8: bool = False,
    calibration_photos: int = 128,
) -> dict:
    """Write OUT/model.pt, labels.json and export.json (+ metrics.json, + model.onnx with ONNX, + model.int8.onnx with
    INT8); raise ExportError if a file drifts.

    CHECK_DATA defaults to the run's dataset when it is on disk; without one the check uses generated images only
    and nothing is evaluated.
    """
    from .run_photos import has_run_photos

    model, config = load_trained_model(run_dir)
    run_data = config.args.get("data")
    if check_data is None and run_data and all((root / check_split).is_dir() for root in data_roots(run_data)):
        check_data = run_data
    if int8 and not has_run_photos(config):
        raise ExportError(
            f"int8 quantisation is calibrated on the run's training photos and checked on its validation photos, but its "
            f"dataset ({run_data}) is not on disk; put it back there, or export with --format onnx."
        )
    eager = LandmarkPredictor(model, config.preprocess, config.classes).eval()
    scripted = to_torchscript(eager)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model_file = out / MODEL_FILE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(scripted, str(model_file))
    atomic.write_text(out / LABELS_FILE, json.dumps(labels(config), indent=2, ensure_ascii=False))

    images = check_images(check_data, check_split, config.class_names, min_short_side=decode_short_side(config.preprocess.resize_size))
    try:
        max_abs_diff = verify(scripted, model_file, eager, images)
    except ExportError:
        model_file.unlink()  # a file that does not reproduce the model must not be shipped by mistake
        raise
    for stale in (ONNX_FILE, INT8_FILE):  # servers prefer ONNX files: a previous export's must not outlive this one
        (out / stale).unlink(missing_ok=True)
    onnx_info = None
    if onnx or int8:
        import onnxruntime

        onnx_info = {
            "file": ONNX_FILE,
            "input": f"'{INPUT_NAME}': float32 [N, 3, {config.preprocess.input_size}, {config.preprocess.input_size}], "
                     "a photo after 'preprocess' (resize, centre crop, normalise: done by the torch Preprocess module)",
            "output": f"'{OUTPUT_NAME}': float32 [N, num_classes] (softmax not included)",
            "max_abs_diff": export_onnx(eager, config.preprocess, out, images),
            "onnxruntime": onnxruntime.__version__,
        }

    given = {"threshold": threshold, "rule": "given on the command line"} if threshold is not None else None
    calibration, int8_info, int8_refused = given, None, None
    if has_run_photos(config):
        from .recognition import choose_threshold
        from .threshold import validation_probabilities

        valid_fp32 = validation_probabilities(config, model)  # the weights loaded above, not a second copy
        calibration = given or choose_threshold(*valid_fp32, config.class_names, target_precision, max_false_accept)
        if int8:
            int8_info = export_onnx_int8(config, out, valid_fp32, calibration_photos, given, target_precision, max_false_accept)
            int8_refused = int8_info.pop("refused", None)
            int8_info = None if int8_refused else int8_info

    metrics = None
    (out / METRICS_FILE).unlink(missing_ok=True)  # a previous export's numbers must not describe this file
    if evaluate and check_data:
        from .evaluate import (
            evaluate_run,  # evaluation pulls in matplotlib; only needed here
        )

        metrics = evaluate_run(run_dir, check_split, check_data, out / f"eval-{check_split}", batch_size=batch_size, exported=model_file,
                               threshold=None if calibration is None else calibration["threshold"])
        atomic.write_text(out / METRICS_FILE, json.dumps(metrics, indent=2, ensure_ascii=False))
        if int8_info:
            int8_metrics = evaluate_run(run_dir, check_split, check_data, out / f"eval-{check_split}-int8", batch_size=batch_size,
                                        exported=out / INT8_FILE, threshold=int8_info["threshold"])
            int8_info["metrics"] = _metrics_summary(int8_metrics, check_split)
    info = {
        "source_run": str(run_dir),
        "threshold": None if calibration is None else calibration["threshold"],
        "threshold_calibration": calibration,
        "model": config.model.name,
        "model_options": config.model.options,
        "weights_source": config.weights_source,
        "num_classes": len(config.classes),
        "preprocess": config.preprocess.to_dict(),
        "input": "uint8 RGB tensor [3, H, W] of any size (forward) or a list of them (forward_batch)",
        "max_abs_diff": max_abs_diff,
        "check_images": len(images),
        "onnx": onnx_info,
        "onnx_int8": int8_info,
        "onnx_int8_refused": int8_refused,
        "check_data": [str(r) for r in data_roots(check_data)] if check_data else None,
        "train_args": config.args,
        "metrics": None if metrics is None else _metrics_summary(metrics, check_split),
        "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        checksums.FILES_KEY: checksums.record(out),  # servers check every file against these before loading it
    }
    atomic.write_text(out / EXPORT_FILE, json.dumps(info, indent=2, ensure_ascii=False))
    return info
