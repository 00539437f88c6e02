"""The confidence below which we say "no known landmark", chosen on the validation split (never on test).

A wrong tag costs a photo service more than a missing one, so the threshold is the lowest top-1 probability at
which the predictions we keep are right at least `target_precision` of the time on validation photos.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from .run import RunConfig, load_trained_model
from .run_photos import run_photos_loader

MIN_THRESHOLD = 0.2  # below this a softmax over ~50 classes says little even when validation is clean


@torch.no_grad()
def validation_probabilities(
    config: RunConfig, logits: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities and targets on the run's own validation split, through the eval preprocessing.

    LOGITS (normalised batch -> logits): the run's eager network, or e.g. an int8 ONNX Runtime session's logits.
    """
    probs, targets = [], []
    for images, labels in run_photos_loader(config, "valid", batch_size=batch_size):
        probs.append(torch.softmax(logits(images).float(), dim=1))
        targets.append(labels)
    return torch.cat(probs), torch.cat(targets)


def choose_threshold(probs: torch.Tensor, targets: torch.Tensor, target_precision: float = 0.95) -> dict:
    """Lowest threshold whose kept predictions reach target_precision; returns it with coverage and precision."""
    confidence, predicted = probs.max(dim=1)
    order = confidence.argsort(descending=True)
    correct = (predicted == targets)[order].float()
    precision_at_k = correct.cumsum(0) / torch.arange(1, len(correct) + 1)
    ok = (precision_at_k >= target_precision).nonzero()
    k = int(ok.max()) + 1 if len(ok) else 1  # keep the largest confident prefix that is precise enough
    threshold = max(MIN_THRESHOLD, float(confidence[order][k - 1]))
    kept = confidence >= threshold
    return {
        "threshold": round(threshold, 4),
        "target_precision": target_precision,
        "valid_precision": float((predicted == targets)[kept].float().mean()) if kept.any() else None,
        "valid_coverage": float(kept.float().mean()),
        "valid_images": len(targets),
    }


def main(argv: list[str] | None = None) -> None:
    """Re-choose an export's thresholds without re-exporting: updates EXPORT_DIR/export.json in place.

    An export with an int8 model gets its own threshold re-chosen too, from the int8 file's probabilities.
    """
    import argparse
    import json

    from .onnx_model import OnnxPredictor

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="the run the export was made from")
    parser.add_argument("--export-dir", required=True, help="folder with export.json to update")
    parser.add_argument("--target-precision", type=float, default=0.95)
    args = parser.parse_args(argv)
    model, config = load_trained_model(args.run_dir)
    calibration = choose_threshold(*validation_probabilities(config, model), target_precision=args.target_precision)
    path = Path(args.export_dir) / "export.json"
    info = json.loads(path.read_text(encoding="utf-8"))
    info.update(threshold=calibration["threshold"], threshold_calibration=calibration)
    print(f"threshold {calibration['threshold']:.3f}: {calibration}")
    if info.get("onnx_int8"):
        int8 = OnnxPredictor.from_export_dir(args.export_dir, file=info["onnx_int8"]["file"])
        int8_calibration = choose_threshold(*validation_probabilities(config, int8.logits), target_precision=args.target_precision)
        info["onnx_int8"].update(threshold=int8_calibration["threshold"], threshold_calibration=int8_calibration)
        print(f"int8 threshold {int8_calibration['threshold']:.3f}: {int8_calibration}")
    path.write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
