"""The options of the research commands: `landmark rejection`, `calibrate` and `compare` (each runs the `run(args)`
of its module in research/)."""

from __future__ import annotations

from pathlib import Path

from ..cli_args import add_threads, positive_int
from ..index.score import NEIGHBOURS
from .command import command


def add_research(commands) -> None:
    p = command(
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
    p = command(
        commands,
        "calibrate",
        "landmark_lib.research.calibrate:run",
        "choose the operating points on collections the model never saw (fold runs trained with --exclude)",
    )
    p.add_argument("folds", nargs="+", help="fold runs, each trained with some collections --exclude'd")
    p.add_argument(
        "--neighbours",
        type=positive_int,
        default=NEIGHBOURS,
        help="nearest index photos each similarity averages (written with the operating points into --export-dir)",
    )
    p.add_argument("--out", type=Path, required=True, help="folder for calibration.json (every score compared)")
    p.add_argument(
        "--export-dir",
        help="export whose export.json gets the served score's operating points (default: none, only calibration.json)",
    )
    add_threads(p)
    p = command(
        commands, "compare", "landmark_lib.research.compare:run", "compare evaluated runs: a table and a bar chart"
    )
    p.add_argument("runs", nargs="+", help="run folders evaluated with landmark evaluate")
    p.add_argument("--split", default="test", help="the evaluation (RUN/eval-SPLIT) to compare")
    p.add_argument("--out", type=Path, required=True, help="PNG chart to write")
    p.add_argument("--latency-iters", type=int, default=30, help="timed single-photo calls per architecture (0: skip)")
    p.add_argument("--json", type=Path, help="also write the rows and latencies here (default: print only)")
    add_threads(p)
