"""The one `landmark` command: every subcommand has --help that states each default, the thin entry points reach the
same parsers, and expected failures are one line with status 2."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from landmark_lib.cli import build_parser, main

from helpers import cli_error

REPO = Path(__file__).resolve().parents[1]


def subcommands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every leaf command ('data download', 'train', ...) and its parser."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= subcommands(sub, (*prefix, name)) or {(*prefix, name): sub}
    return found


COMMANDS = subcommands(build_parser())


def test_the_commands_the_readme_names_exist():
    expected = {"train", "export", "evaluate", "tag", "threshold", "compare", "data download", "data inspect", "serve"}
    assert expected <= {" ".join(name) for name in COMMANDS}


@pytest.mark.parametrize("name", sorted(COMMANDS), ids=" ".join)
def test_help_states_every_default(name, capsys):
    with pytest.raises(SystemExit) as done:
        main([*name, "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for action in COMMANDS[name]._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        flag = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction))
        described = " ".join(COMMANDS[name].formatter_class(prog="x")._get_help_string(action).split())
        assert flag or action.required or "default" in described or "required" in described, (
            f"{' '.join(name)} {action.option_strings[0]} does not state its default"
        )
        assert action.option_strings[0] in text


@pytest.mark.parametrize(
    "script, command", [("app.py", "serve"), ("export.py", "export"), ("train_accelerate.py", "train")]
)
def test_thin_entry_points_are_the_landmark_commands(script, command):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, script, "--help"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith(f"usage: landmark {command}")


def test_expected_failures_are_one_line_with_status_2(tmp_path, capsys):
    assert "is not a training run folder" in cli_error(capsys, "evaluate", str(tmp_path))
    assert "takes one --target-precision" in cli_error(
        capsys, "threshold", str(tmp_path), "--export-dir", str(tmp_path), "--target-precision", "0.9", "0.99"
    )
    assert "does not exist" in cli_error(
        capsys, "tag", str(tmp_path), "--out", str(tmp_path / "t.csv"), "--model", str(tmp_path / "none")
    )
