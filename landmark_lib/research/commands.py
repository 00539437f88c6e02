"""The options of `landmark compare` and `landmark calibrate` (light: built for every `landmark` call); each command
is the `run(args)` of its module (compare.py, calibrate.py)."""

from __future__ import annotations

from pathlib import Path

from ..cli_args import add_threads


def add_arguments(commands, command) -> None:
    """The two commands; COMMAND(commands, name, target, summary) makes one parser (cli._command)."""
    p = command(
        commands,
        "calibrate",
        "landmark_lib.research.calibrate:run",
        "choose the operating points on collections the model never saw (fold runs trained with --exclude)",
    )
    p.add_argument("folds", nargs="+", help="fold runs, each trained with some collections --exclude'd")
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
