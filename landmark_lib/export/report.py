"""What an export reports: the metrics summary export.json and the model card show, and the lines `landmark export`
prints (each file and its check, the threshold, the exported model's test numbers)."""

from __future__ import annotations

from pathlib import Path

from .. import bundle
from .checks import TOLERANCE
from .onnx import PIXEL_TOLERANCE


def metrics_summary(metrics: dict) -> dict:
    """What export.json and the model card show: accuracy, and GAP / false accepts / coverage at the file's threshold."""
    keys = (
        "gap",
        "landmark_top1",
        "coverage",
        "precision",
        "false_accept_rate",
        "landmark_photos",
        "no_landmark_photos",
    )
    recognition = {k: metrics["recognition"].get(k) for k in keys}
    return {
        "split": metrics["split"],
        **{k: metrics[k] for k in ("top1", "top5", "macro_f1", "n_images", "n_skipped")},
        **recognition,
    }


def summary_lines(info: dict, out: str | Path, evaluated: bool) -> list[str]:
    """What `landmark export` prints: each file and its check, the threshold, the exported model's test numbers."""
    lines = [
        f"wrote {out}/{bundle.MODEL_FILE}; torch-only reload matches eager: max |diff| {info['max_abs_diff']:.2e} <= {TOLERANCE:g}"
    ]
    if info["onnx"]:
        lines.append(
            f"wrote {out}/{bundle.ONNX_FILE} and {bundle.PREPROCESS_FILE}; ONNX Runtime matches eager: max |diff| "
            f"{info['onnx']['max_abs_diff']:.2e} <= {TOLERANCE:g} (pixels {info['onnx']['preprocess_max_abs_diff']:.2e} <= {PIXEL_TOLERANCE:g})"
        )
    if info.get("pt2"):
        lines.append(
            f"wrote {out}/{bundle.PT2_FILE}; torch.export.load matches eager: max |diff| {info['pt2']['max_abs_diff']:.2e} <= {TOLERANCE:g}"
        )
    if info.get(bundle.SPEED_KEY):
        speed = info[bundle.SPEED_KEY]
        times = ", ".join(f"{b} {ms:.1f} ms" for b, ms in speed["ms_per_photo"].items())
        lines.append(f"one photo at batch 1: {times}; 'auto' serves {speed['served']}")
    int8 = info.get("onnx_int8")
    if int8:
        lines.append(
            f"wrote {out}/{int8['file']}; validation top-1 int8 {int8['valid_top1_int8']:.2%} vs fp32 {int8['valid_top1_fp32']:.2%} "
            f"({int8['calibration_photos']} calibration photos), threshold {int8['threshold']:.3f}"
            + (f"; {int8['metrics']['split']} top-1 {int8['metrics']['top1']:.2%}" if int8.get("metrics") else "")
        )
    if info["threshold"] is not None:
        lines.append(f"recognition threshold {info['threshold']:.3f} ({info['threshold_calibration']})")
    metrics = info["metrics"]
    if metrics:
        lines.append(
            f"exported model on {metrics['split']}: top-1 {metrics['top1']:.2%}  top-5 {metrics['top5']:.2%}  "
            f"macro-F1 {metrics['macro_f1']:.4f} ({metrics['n_images']} images, {metrics['n_skipped']} skipped)"
        )
        if metrics.get("gap") is not None:
            pct = {
                k: "n/a" if metrics[k] is None else f"{metrics[k]:.2%}"
                for k in ("landmark_top1", "coverage", "precision", "false_accept_rate")
            }
            lines.append(
                f"  GAP {metrics['gap']:.4f}; landmark photos: top-1 {pct['landmark_top1']}, coverage {pct['coverage']}, "
                f"precision {pct['precision']}; no-landmark photos named: {pct['false_accept_rate']}"
            )
    elif evaluated:
        lines.append("not evaluated: no dataset found (pass --check-data ROOT)")
    return lines
