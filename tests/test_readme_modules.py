"""The README's module table names every module of the package, so a newcomer finds each file's job there."""

from __future__ import annotations

import re

from helpers import REPO_ROOT

PACKAGE = REPO_ROOT / "landmark_lib"


def module_table() -> dict[str, str]:
    """{first cell: whole row} of the table under '## What is in the repo'."""
    section = (REPO_ROOT / "README.md").read_text(encoding="utf-8").split("## What is in the repo", 1)[1]
    rows = [line for line in section.split("\n## ", 1)[0].splitlines() if line.startswith("| `")]
    return {row.split(" | ", 1)[0]: row for row in rows}


def test_every_module_of_the_package_is_in_the_readme_table():
    table = module_table()
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        folder = path.parent.relative_to(REPO_ROOT).as_posix()
        # A package's modules are named in its row (`landmark_lib/data/` ... `folder.py`); a top-level module in the
        # first cell of a row that starts with `landmark_lib/`.
        if path.parent == PACKAGE:
            rows = [first for first in table if first.startswith("| `landmark_lib/")]
        else:
            rows = [row for first, row in table.items() if f"`{folder}/`" in first]
        if not any(re.search(rf"`(landmark_lib/)?{re.escape(path.name)}`", row) for row in rows):
            missing.append(path.relative_to(REPO_ROOT).as_posix())
    assert not missing, f"README.md's module table does not name {missing}; add each with its job"
