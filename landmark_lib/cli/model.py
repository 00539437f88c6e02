"""The options of the commands that make and check a model: `landmark train`, `evaluate`, `threshold`,
`threshold-curve` and `export` (train's are generated from artifacts/train_config.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli_args import add_threads, positive_int, threshold_arg
from .command import command

TRAIN_SUMMARY = "train a run (scratch CNN or timm backbone) with Accelerate"


def add_train(commands, arguments: bool = True) -> None:
    """The train command; without ARGUMENTS (another command runs) only listed: its options' module imports torch,
    which `landmark serve` on an ONNX file must not load."""
    if not arguments:
        command(commands, "train", "landmark_lib.train.loop:run", TRAIN_SUMMARY)
        return
    from ..train import options

    train = command(commands, "train", "landmark_lib.train.loop:run", TRAIN_SUMMARY, options.DESCRIPTION)
    options.add_arguments(train)


def add_evaluate(commands) -> None:
    p = command(
        commands,
        "evaluate",
        "landmark_lib.evaluation.evaluate:run",
        "evaluate a run (or one of its exported files) on a dataset split",
    )
    p.add_argument("run_dir", nargs="?", help="run folder (config.json + model.safetensors); optional with --exported")
    p.add_argument("--split", default="test", help="split folder, or 'train+test' for both")
    p.add_argument("--data", nargs="+", help="dataset root(s) (default: the run's --data)")
    p.add_argument(
        "--out",
        help="output folder (default: RUN_DIR/eval-SPLIT; with --exported runs/eval-FOLDER-FILE-SPLIT, never the model's folder)",
    )
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped image")
    p.add_argument("--batch-size", type=positive_int, default=32, help="photos per network call")
    p.add_argument(
        "--exported",
        help="evaluate this exported file (model.pt, model.onnx or model.int8.onnx) instead of the run's weights (default: the run's weights)",
    )
    p.add_argument(
        "--threshold", type=threshold_arg, help="recognition threshold (default: the exported file's, from export.json)"
    )
    p.add_argument(
        "--only-excluded",
        action="store_true",
        help="only the photos the run's --exclude held out (the cross-source check)",
    )
    add_threads(p)


def add_export(commands) -> None:
    p = command(
        commands,
        "export",
        "landmark_lib.export.pipeline:run",
        "export a run to model.pt (+ ONNX files), labels, metrics, model card",
        "Export a run: model.pt (TorchScript, needs only torch), labels.json, export.json, metrics.json, README.md.\n\n"
        "    landmark export runs/effnet --out exports/effnet --check-data ../shared/data/world_landmarks\n"
        "    landmark export runs/effnet --out exports/effnet-v2 --format onnx-int8   # + model.onnx, model.int8.onnx\n"
        "    landmark export runs/effnet --out exports/effnet --overwrite   # replace an earlier export\n"
        "    landmark export runs/effnet --out exports/effnet-hub --push-to-hub me/landmark-tagger --revision v1 --private",
    )
    p.add_argument("run_dir", help="run folder (config.json + model.safetensors)")
    p.add_argument(
        "--out", required=True, help="new (or empty) folder for model.pt, labels.json, export.json, metrics.json"
    )
    p.add_argument(
        "--check-data",
        nargs="+",
        help="dataset root(s) for the self-check photos and the evaluation (default: the run's data)",
    )
    p.add_argument("--check-split", default="test", help="split the exported file is evaluated on")
    p.add_argument("--no-eval", action="store_true", help="skip evaluating the exported file on the check split")
    p.add_argument("--batch-size", type=positive_int, default=32, help="photos per network call in the evaluation")
    p.add_argument(
        "--format",
        choices=("torchscript", "onnx", "onnx-int8"),
        default="torchscript",
        help="onnx: also write model.onnx (the network, for ONNX Runtime; the app prefers it on CPU); "
        "onnx-int8: model.onnx and model.int8.onnx (static int8, calibrated on training photos, kept only "
        "within 1 point of fp32 validation top-1, else a warning and the fp32 export; the app prefers it). "
        "model.pt is always written",
    )
    p.add_argument(
        "--threshold",
        type=threshold_arg,
        help="confidence below which the app says no landmark was recognised "
        "(default: chosen on the run's validation split, see --target-precision)",
    )
    p.add_argument(
        "--target-precision", type=float, default=0.95, help="precision the named landmarks must reach on validation"
    )
    _max_false_accept(p)
    add_threads(p)
    _export_file_arguments(p)
    _export_hub_arguments(p)


def _max_false_accept(p: argparse.ArgumentParser) -> None:
    """The recognition rule's bound on validation false accepts (export and threshold)."""
    p.add_argument(
        "--max-false-accept",
        type=float,
        default=0.02,
        help="share of the validation no-landmark photos that may be named as a landmark",
    )


def _export_file_arguments(p: argparse.ArgumentParser) -> None:
    """What export writes besides model.pt, and what it may replace."""
    p.add_argument(
        "--pt2",
        action="store_true",
        help="also write model.pt2: the same model as a torch.export ExportedProgram (any photo size; torch.export.load)",
    )
    p.add_argument(
        "--calibration-photos",
        type=positive_int,
        default=128,
        help="training photos that calibrate int8 activation ranges",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the export already in --out (built beside it, swapped in when complete: a failed export leaves the old one)",
    )
    p.add_argument(
        "--require-int8",
        action="store_true",
        help="with --format onnx-int8: fail (and leave --out as it was) when the int8 file is refused",
    )


def _export_hub_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--push-to-hub",
        metavar="OWNER/NAME",
        help="upload the export (with a model card; timm runs also as timm weights) to this Hub repo (default: no upload)",
    )
    p.add_argument("--revision", help="Hub branch to push to, created if missing (default: the main branch)")
    p.add_argument("--private", action="store_true", help="create the Hub repo as private")


def add_thresholds(commands) -> None:
    p = command(
        commands,
        "threshold",
        "landmark_lib.evaluation.threshold:run",
        "choose a run's recognition threshold on its validation photos; with --export-dir, write it into that export",
        "Choose a run's recognition threshold on its validation photos; with --export-dir, write it into that export.\n\n"
        "Without --export-dir it only prints the rule for each --target-precision given (to pick one); an export with an\n"
        "int8 model gets the int8 file's own threshold re-chosen too, from that file's probabilities.",
    )
    p.add_argument("run_dir", help="the run (the export's source run, with --export-dir)")
    p.add_argument("--export-dir", help="folder with export.json to update (default: only print the rule)")
    p.add_argument(
        "--target-precision",
        type=float,
        nargs="+",
        default=[0.99],
        help="precision on named landmark photos; several to compare them",
    )
    _max_false_accept(p)
    add_threads(p)
    p = command(
        commands,
        "threshold-curve",
        "landmark_lib.evaluation.threshold_curve:run",
        "plot coverage against false accepts for every threshold",
    )
    p.add_argument("evals", nargs="+", help="EVAL_DIR[=LABEL]: folders written by landmark evaluate")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
