"""The package's layering: packages import each other one way only (lazy imports inside functions count), the serve
path imports only serve-time code, no module imports itself in a circle, and the size limits that keep each module
readable."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import run_python

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "landmark_lib"
SERVE_FORBIDDEN_PACKAGES = ("landmark_lib.train", "landmark_lib.export", "landmark_lib.evaluation")
SERVE_PATH_PACKAGES = ("landmark_lib.runtime", "landmark_lib.gallery", "landmark_lib.serve", "landmark_lib.tagging")
ENTRY_MODULES = ("landmark_lib.cli", "landmark_lib.__main__")
LOW = {"core", "artifacts"}  # core: the top-level modules (errors, atomic, labels, preprocessing, bundle, ...)
# Which packages each package may import: core < artifacts < data, models < runtime < gallery < serve < tagging <
# geotag (xmp, the sidecar format, below serve);
# train and evaluation sit side by side (neither imports the other), export above both; research (the protocols
# behind the reports) and the command line may import anything.
ALLOWED = {
    "core": set(),
    "artifacts": {"core"},
    "data": LOW,
    "models": LOW,
    "runtime": LOW | {"data"},
    "index": LOW,  # the photo index and the recognition score: numpy only, what a server compares photos with
    "train": LOW | {"data", "models"},
    "evaluation": LOW | {"data", "models", "runtime"},
    "export": LOW | {"data", "models", "runtime", "index", "train", "evaluation"},
    "gallery": LOW | {"data", "runtime", "index"},
    "xmp": LOW,  # the sidecar format: the REST API and the geotagger write it
    "serve": LOW | {"data", "runtime", "index", "gallery", "xmp"},
    "tagging": LOW | {"data", "runtime", "gallery", "serve"},
    "geotag": LOW | {"data", "runtime", "gallery", "serve", "tagging", "xmp"},
}
ANYTHING = ("research", "cli")
SLOW_LIBRARIES = ("timm", "accelerate", "matplotlib")  # seconds of import time a server does not need
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, top_level_only: bool = False) -> set[str]:
    """Absolute names of what module NAME imports (package modules resolved to the module, others to the top name)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {_known(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found |= {
                _known(f"{base}.{alias.name}") if f"{base}.{alias.name}" in MODULES else _known(base)
                for alias in node.names
            }
    return found - {name}


def _known(name: str) -> str:
    """A package module's own name; for anything else its top-level name ('torch.nn' -> 'torch')."""
    while name and name not in MODULES:
        if not name.startswith("landmark_lib"):
            return name.split(".")[0]
        name = name.rpartition(".")[0]
    return name


def closure(start: set[str]) -> set[str]:
    """Every package module START reaches through imports (lazy ones inside functions included)."""
    seen, todo = set(), list(start)
    while todo:
        name = todo.pop()
        if name in seen or name not in MODULES:
            continue
        seen.add(name)
        todo += imports(name)
        todo += [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]  # packages run their __init__
    return seen


def layer(name: str) -> str:
    """The package of module NAME ('data' for landmark_lib.data.folder), 'core' for a top-level module, 'cli' for an
    entry point."""
    if name in ENTRY_MODULES:
        return "cli"
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() else "core"


def test_every_package_has_a_place_in_the_layers():
    packages = {layer(name) for name in MODULES}
    assert packages <= set(ALLOWED) | set(ANYTHING), f"add {packages - set(ALLOWED) - set(ANYTHING)} to ALLOWED"


def test_packages_import_each_other_one_way_only():
    wrong = sorted(
        f"{name} imports {target}"
        for name in MODULES
        if layer(name) not in ANYTHING
        for target in imports(name)
        if target in MODULES and layer(target) != layer(name) and layer(target) not in ALLOWED[layer(name)]
    )
    assert not wrong, "imports against the layering (tests/test_layering.py ALLOWED): " + "; ".join(wrong)


def test_serve_imports_no_training_export_or_evaluation_code_and_no_slow_libraries():
    serve = {name for name in MODULES if name.startswith(SERVE_PATH_PACKAGES)}
    reached = closure(serve)
    assert not {m for m in reached if m.startswith(SERVE_FORBIDDEN_PACKAGES)}, (
        "serve/ must not import training, export or evaluation code"
    )
    libraries = {lib for module in reached for lib in imports(module) if lib in SLOW_LIBRARIES}
    assert not libraries, f"the serve path imports {libraries}"


@pytest.mark.slow
def test_the_app_entry_points_load_no_slow_library_in_a_fresh_interpreter():
    code = (
        "import sys, app, landmark_lib.cli, landmark_lib.serve.web, landmark_lib.tagging.command; "
        f"print(sorted(m for m in {SLOW_LIBRARIES!r} if m in sys.modules))"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        if name in stack:
            return stack[stack.index(name) :] + [name]
        if name in done:
            return None
        stack.append(name)
        for target in sorted(graph[name]):
            cycle = visit(target)
            if cycle:
                return cycle
        stack.pop()
        done.add(name)
        return None

    return next((cycle for cycle in map(visit, sorted(graph)) if cycle), None)


def test_no_import_cycles():
    """Lazy imports inside functions count too: a cycle hidden in a function is still a knot for the reader."""
    cycle = find_cycle({name: {m for m in imports(name) if m in MODULES} for name in MODULES})
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name):
    """No file over ~400 lines, no function over ~60 lines unless a comment on its first line says why."""
    path = MODULES[name]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_FILE_LINES, f"{path.name} has {len(lines)} lines; split it by job"
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            why = "long because" in lines[node.lineno - 1] or "long because" in lines[node.lineno]
            assert length <= MAX_FUNCTION_LINES or why, f"{name}.{node.name} has {length} lines"
