"""The confidence below which we say "no known landmark", chosen on the run's validation photos (never on test).

A wrong tag costs a photo service more than a missing one, so the threshold is the lowest confidence at which the
landmarks we name are right at least `target_precision` of the time and at most `max_false_accept` of the
no-landmark validation photos get a landmark (the rule itself: landmark_lib.recognition.choose_threshold).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from . import atomic
from .recognition import choose_threshold
from .run import RunConfig, load_trained_model
from .run_photos import run_photos_loader


@torch.no_grad()
def validation_logits(
    config: RunConfig, logits: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and targets on the run's own validation split, through the eval preprocessing.

    LOGITS (normalised batch -> logits): the run's eager network, or e.g. an int8 ONNX Runtime session's logits.
    """
    outputs, targets = [], []
    for images, labels in run_photos_loader(config, "valid", batch_size=batch_size):
        outputs.append(logits(images).float())
        targets.append(labels)
    return torch.cat(outputs), torch.cat(targets)


def validation_probabilities(
    config: RunConfig, logits: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities and targets on the run's validation split (see validation_logits)."""
    values, targets = validation_logits(config, logits, batch_size)
    return torch.softmax(values, dim=1), targets


def main(argv: list[str] | None = None) -> None:
    """Choose a run's recognition threshold on its validation photos; with --export-dir, write it into that export.

    Without --export-dir it only prints the rule for each --target-precision given (to pick one); an export with an
    int8 model gets the int8 file's own threshold re-chosen too, from that file's probabilities.
    """
    import argparse
    import json

    from .onnx_model import OnnxPredictor

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="the run (the export's source run, with --export-dir)")
    parser.add_argument("--export-dir", help="folder with export.json to update (default: only print the rule)")
    parser.add_argument(
        "--target-precision",
        type=float,
        nargs="+",
        default=[0.99],
        help="precision on named landmark photos (default 0.99)",
    )
    parser.add_argument(
        "--max-false-accept",
        type=float,
        default=0.02,
        help="share of no-landmark photos named as a landmark (default 0.02)",
    )
    args = parser.parse_args(argv)
    if args.export_dir and len(args.target_precision) > 1:
        parser.error("--export-dir takes one --target-precision")
    model, config = load_trained_model(args.run_dir)
    valid = validation_probabilities(config, model)
    for target in args.target_precision:
        calibration = choose_threshold(*valid, config.class_names, target, args.max_false_accept)
        print(f"threshold {calibration['threshold']:.4f}: {json.dumps(calibration)}")
    if not args.export_dir:
        return
    rule = {
        "class_names": config.class_names,
        "target_precision": args.target_precision[0],
        "max_false_accept": args.max_false_accept,
    }
    path = Path(args.export_dir) / "export.json"
    info = json.loads(path.read_text(encoding="utf-8"))
    info.update(threshold=calibration["threshold"], threshold_calibration=calibration)
    if info.get("onnx_int8"):
        int8 = OnnxPredictor.from_export_dir(args.export_dir, file=info["onnx_int8"]["file"])
        int8_calibration = choose_threshold(*validation_probabilities(config, int8.logits), **rule)
        info["onnx_int8"].update(threshold=int8_calibration["threshold"], threshold_calibration=int8_calibration)
        print(f"int8 threshold {int8_calibration['threshold']:.4f}: {json.dumps(int8_calibration)}")
    atomic.write_text(
        path, json.dumps(info, indent=2, ensure_ascii=False)
    )  # a kill mid-write must not break the export


if __name__ == "__main__":
    main()
