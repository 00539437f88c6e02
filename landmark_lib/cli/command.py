"""How every `landmark` command's parser is made: help that states each default, one parser per command pointing
at the `run(args)` that does the job, and the help texts several commands share."""

from __future__ import annotations

import argparse

GALLERY_HELP = "gallery folder (`landmark gallery add`) whose landmarks rank beside the model's (default: $LANDMARK_GALLERY, else none)"
SPEC_HELP = "export folder, model.pt or hf://OWNER/NAME[@REVISION] (default: $LANDMARK_MODEL, then models/default)"
BACKEND_HELP = "auto, onnx-int8, onnx or torchscript"


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


def command(commands, name: str, target: str, summary: str, description: str | None = None) -> argparse.ArgumentParser:
    """The parser of one command; TARGET ('module:function') is what runs it, imported only then."""
    parser = commands.add_parser(
        name,
        help=summary,
        description=description or summary[0].upper() + summary[1:] + ".",
        formatter_class=HelpFormatter,
    )
    parser.set_defaults(target=target)
    return parser


def subcommands(commands, name: str, summary: str):
    """A command with subcommands (`landmark data inspect`): the subparsers to add them to."""
    parser = commands.add_parser(name, help=summary, formatter_class=HelpFormatter)
    return parser.add_subparsers(dest=f"{name}_command", required=True)
