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

Every command's options are defined in this package, one module per family (model.py, research.py, library.py,
serving.py, gallery.py, data.py; `landmark train`'s are generated from artifacts/train_config.py), built from light
modules; each command is the `run(args)` function of the module that does the job, imported only when it runs, so
`landmark serve` never loads training code. Expected failures print `error: ...` (one sentence naming the fix) and exit with 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import threads
from ..errors import LandmarkError
from .command import HelpFormatter
from .data import add_cache, add_data
from .gallery import add_gallery
from .library import add_geotag, add_tag
from .model import add_evaluate, add_export, add_thresholds, add_train
from .research import add_research
from .serving import add_serving


def build_parser(train_arguments: bool = True) -> argparse.ArgumentParser:
    """The `landmark` parser; without TRAIN_ARGUMENTS `landmark train` is only listed (its options import torch)."""
    parser = argparse.ArgumentParser(
        prog="landmark", description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_data(commands)
    add_train(commands, train_arguments)
    for add in (add_evaluate, add_export, add_thresholds, add_research, add_tag, add_geotag, add_serving):
        add(commands)
    add_gallery(commands)
    add_cache(commands)
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
