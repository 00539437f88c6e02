"""`landmark`: one command for the whole project; `landmark COMMAND --help` describes each one and its defaults.

    landmark data download | data inspect ROOT       get or check a dataset
    landmark train --data ROOT ...                   train a run (also: accelerate launch train_accelerate.py ...)
    landmark evaluate RUN                            test-split report of a run or an exported file
    landmark export RUN --out DIR                    the files a server needs (also: python export.py ...)
    landmark threshold RUN [--export-dir DIR]        choose (and write) the "no known landmark" threshold
    landmark threshold-curve | rejection | compare   threshold curve, rejection scores, runs side by side
    landmark calibrate FOLD...                      operating points on collections the model never saw
    landmark tag PHOTO_DIR --out tags.jsonl          tag a folder of photos (resumable; --engine ray)
    landmark geotag LIBRARY                          write the landmarks' places into XMP sidecars (review, undo)
    landmark checksums DIR                           record the sha256 of an export folder's files
    landmark gallery add | list | remove | evaluate  teach landmarks from a few photos (no retraining)
    landmark cache info | clear                      the training cache: what it holds, how big; free it
    landmark serve                                   the web app (also: python app.py)

Only the parsers live here (built from light modules); each command is the `run(args)` function of the module that
does the job, imported only when it runs, so `landmark serve` never loads training code. Expected failures print `error: ...` (one sentence naming the fix) and exit with 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from . import bundle, threads
from .cli_args import add_threads, photo_source, positive_int, tag_output, threshold_arg
from .errors import LandmarkError
from .recognition import DEFAULT_THRESHOLD

GALLERY_HELP = "gallery folder (`landmark gallery add`) whose landmarks rank beside the model's (default: $LANDMARK_GALLERY, else none)"
SPEC_HELP = "export folder, model.pt or hf://OWNER/NAME[@REVISION] (default: $LANDMARK_MODEL, then models/default)"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that states every default: argparse's value, unless the help text already says it (options whose default
    depends on other options); flags are off unless given."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "default" in text
            or not action.option_strings
            or any(action.default is v for v in (None, False, argparse.SUPPRESS))
        ):
            return text
        return f"{text} (default: %(default)s)"


TRAIN_SUMMARY = "train a run (scratch CNN or timm backbone) with Accelerate"


def _train(commands, arguments: bool = True) -> None:
    """The train command; without ARGUMENTS (another command runs) only listed: its options' module imports torch,
    which `landmark serve` on an ONNX file must not load."""
    if not arguments:
        _command(commands, "train", "landmark_lib.train.loop:run", TRAIN_SUMMARY)
        return
    from .train import options

    train = _command(commands, "train", "landmark_lib.train.loop:run", TRAIN_SUMMARY, options.DESCRIPTION)
    options.add_arguments(train)


def _evaluate(commands) -> None:
    p = _command(
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


def _export(commands) -> None:
    p = _command(
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
    p.add_argument(
        "--max-false-accept",
        type=float,
        default=0.02,
        help="share of the validation no-landmark photos that may be named as a landmark",
    )
    add_threads(p)
    _export_file_arguments(p)
    _export_hub_arguments(p)


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


def _thresholds(commands) -> None:
    p = _command(
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
    p.add_argument(
        "--max-false-accept",
        type=float,
        default=0.02,
        help="share of the validation no-landmark photos that may be named as a landmark",
    )
    add_threads(p)
    p = _command(
        commands,
        "threshold-curve",
        "landmark_lib.evaluation.threshold_curve:run",
        "plot coverage against false accepts for every threshold",
    )
    p.add_argument("evals", nargs="+", help="EVAL_DIR[=LABEL]: folders written by landmark evaluate")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p = _command(
        commands,
        "rejection",
        "landmark_lib.research.rejection:run",
        "compare rejection scores (background / MSP / energy) on validation",
    )
    p.add_argument("run_dir", help="a run trained with a no_landmark class")
    p.add_argument(
        "--max-false-accept", type=float, default=0.02, help="share of no-landmark photos allowed to be named"
    )
    p.add_argument("--json", type=Path, help="also write the table to this file (default: print only)")
    add_threads(p)


def _compare(commands) -> None:
    from .research.commands import add_arguments

    add_arguments(commands, _command)


def _tag(commands) -> None:
    p = _command(commands, "tag", "landmark_lib.tagging.command:run", "tag a folder of photos (JSONL, CSV or Parquet)")
    p.add_argument("photo_dir", type=photo_source, help="folder of photos (searched recursively); a URI: --engine ray")
    p.add_argument(
        "--out",
        type=tag_output,
        required=True,
        help="tags.jsonl, tags.csv or tags.parquet (a folder of part files); rerunning resumes it",
    )
    p.add_argument("--model", default=None, help=SPEC_HELP)
    p.add_argument("--batch-size", type=positive_int, default=16, help="photos per network call")
    p.add_argument(
        "--threshold",
        type=threshold_arg,
        default=None,
        help=f"minimum top probability for 'recognised', 0..1 (default: export.json's, else {DEFAULT_THRESHOLD})",
    )
    p.add_argument("--overwrite", action="store_true", help="replace --out instead of resuming it")
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="decoding threads (local engine; default: --threads) or model actors (ray engine; default: --threads)",
    )
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="run here, or as a Ray Data pipeline")
    p.add_argument(
        "--ray-address", default=None, help="Ray cluster to join, e.g. ray://HEAD:10001 (default: local Ray)"
    )
    p.add_argument("--gallery", type=Path, default=None, help=GALLERY_HELP)
    add_threads(p)


def _geotag(commands) -> None:
    from .geotag.options import DESCRIPTION, SUMMARY, add_arguments

    add_arguments(
        _command(commands, "geotag", "landmark_lib.geotag.command:run", SUMMARY, DESCRIPTION), SPEC_HELP, GALLERY_HELP
    )


def _serving(commands) -> None:
    p = _command(
        commands,
        "checksums",
        "landmark_lib.artifacts.checksums:run",
        "record the sha256 of an export folder's files in its export.json (only for files you trust)",
    )
    p.add_argument("folder", type=Path, help="export folder holding export.json")
    p = _command(
        commands,
        "serve",
        "landmark_lib.serve.server:run",
        "the web app and the REST API (/v1/tag, docs at /docs): a photo in, the landmark and its place out",
    )
    p.add_argument("--model", default=None, help=SPEC_HELP)
    p.add_argument(
        "--threshold",
        type=threshold_arg,
        default=None,
        help=f"minimum top probability to name a landmark, 0..1 (default: export.json's, else {DEFAULT_THRESHOLD})",
    )
    p.add_argument(
        "--host",
        default=None,
        help="interface to listen on (default: $GRADIO_SERVER_NAME, else 0.0.0.0 on a Space, else 127.0.0.1)",
    )
    p.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    p.add_argument(
        "--share",
        action="store_true",
        help="serve the page alone (no REST API) on Gradio's own server, through a temporary public gradio.live link",
    )
    p.add_argument(
        "--api-only",
        action="store_true",
        help="serve the REST API alone (no page): never imports Gradio, so it starts faster and takes less memory",
    )
    p.add_argument("--gallery", type=Path, default=None, help=GALLERY_HELP)
    p.add_argument(
        "--backend",
        choices=bundle.BACKENDS,
        default="auto",
        help="auto: the fastest file the export verified (model.int8.onnx, then model.onnx via ONNX Runtime), else model.pt",
    )
    add_threads(p)


GROUPS = {  # command -> (summary, the module whose add_arguments(subparsers, _command) adds its subcommands)
    "data": ("download the course dataset or inspect a dataset folder", "landmark_lib.data.commands"),
    "gallery": ("teach landmarks from a few photos, without retraining", "landmark_lib.gallery.commands"),
    "cache": ("show or free the training cache (resized photos, frozen features)", "landmark_lib.data.cache_commands"),
}


def _group(commands, name: str) -> None:
    """A command with subcommands (`landmark data inspect`), whose parsers live beside their code."""
    summary, module = GROUPS[name]
    parser = commands.add_parser(name, help=summary, formatter_class=HelpFormatter)
    subcommands = parser.add_subparsers(dest=f"{name}_command", required=True)
    importlib.import_module(module).add_arguments(subcommands, _command)


def _command(commands, name: str, target: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        help=summary,
        description=description or summary[0].upper() + summary[1:] + ".",
        formatter_class=HelpFormatter,
    )
    parser.set_defaults(target=target)
    return parser


def build_parser(train_arguments: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="landmark", description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _group(commands, "data")
    _train(commands, train_arguments)
    for add in (_evaluate, _export, _thresholds, _compare, _tag, _geotag, _serving):
        add(commands)
    for name in ("gallery", "cache"):
        _group(commands, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0, 2 for an expected failure, 130 when interrupted)."""
    command = (sys.argv[1:] if argv is None else argv)[:1]
    args = build_parser(train_arguments=command in (["train"], [])).parse_args(argv)
    module, _, function = vars(args).pop("target").partition(":")
    for key in (
        "command",
        "data_command",
        "gallery_command",
        "cache_command",
    ):  # the command's own options are what it records (e.g. a run's config.json)
        vars(args).pop(key, None)
    if "threads" in vars(args):  # before the command's module loads torch or ONNX Runtime
        args.threads = threads.use(args.threads)
    try:
        getattr(importlib.import_module(module), function)(args)
    except LandmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "error: interrupted; run the command again to continue (downloads resume, training continues with --resume)",
            file=sys.stderr,
        )
        return 130
    return 0
