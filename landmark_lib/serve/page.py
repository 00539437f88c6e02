"""The page around the answer: the map of the recognised landmark, the labelled examples, the table of known
landmarks and the footer naming the model that answers. Plain HTML/Markdown strings, so web.py stays the layout."""

from __future__ import annotations

import atexit
import hashlib
import html
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..labels import BACKGROUND_CLASS, ClassInfo, plural

# Markdown punctuation (and $ of Gradio's LaTeX): escaped, a name such as "[x](javascript:...)" or "![](https://...)"
# shows as text instead of a live link or an image every visitor's browser fetches; ':' and '.' stop autolinks.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:$=])")
MAP_SPAN_DEG = 0.01  # half the side of the embedded map's box: about 1 km around the marker
MAP_HEIGHT_PX = 320


def map_embed(name: str, lat: float, lon: float) -> str:
    """An OpenStreetMap iframe centred on (LAT, LON) with a marker there (OpenStreetMap's own embed URL)."""
    bbox = f"{lon - MAP_SPAN_DEG:.5f}%2C{lat - MAP_SPAN_DEG:.5f}%2C{lon + MAP_SPAN_DEG:.5f}%2C{lat + MAP_SPAN_DEG:.5f}"
    src = f"https://www.openstreetmap.org/export/embed.html?bbox={bbox}&layer=mapnik&marker={lat:.5f}%2C{lon:.5f}"
    return (
        f'<iframe class="landmark-map" title="Map of {html.escape(name)}" src="{src}" width="100%" '
        f'height="{MAP_HEIGHT_PX}" style="border: 1px solid #ccc; max-width: 100%" loading="lazy"></iframe>'
    )


def example_labels(examples: list[Path]) -> list[str]:
    """Each example's landmark, as examples/SOURCES.md names it (the everyday photo: "No landmark (...)")."""
    sources = examples[0].parent / "SOURCES.md" if examples else None
    names = {}
    if sources and sources.is_file():
        for file, landmark in re.findall(r"^\| `([^`]+)` \| ([^|]+?) \|", sources.read_text(encoding="utf-8"), re.M):
            names[file] = landmark
    labels = []
    for path in examples:
        name = names.get(path.name) or path.stem.replace("_", " ").capitalize()
        everyday = re.fullmatch(r"none \(everyday photo: (.+)\)", name)
        labels.append(f"No landmark ({everyday[1]})" if everyday else name)
    return labels


def landmark_table(classes: list[ClassInfo], gallery: Sequence[ClassInfo] = ()) -> str:
    """The known landmarks and their places (the served GALLERY's marked as such), folded away under one line (a long
    list would push everything down)."""
    landmarks = [(c, "") for c in classes if c.name != BACKGROUND_CLASS] + [(c, " (gallery)") for c in gallery]
    landmarks.sort(key=lambda item: item[0].display_name)
    rows = "\n".join(f"| {plain(c.display_name)}{mark} | {plain(c.place) or '—'} |" for c, mark in landmarks)
    knows = f"the app knows, {len(gallery)} of them from its gallery" if gallery else "the model knows"
    return (
        f"<details><summary>The {plural(len(landmarks), 'landmark')} {knows}</summary>\n\n"
        f"| landmark | place |\n| --- | --- |\n{rows}\n\n</details>"
    )


def plain(text: object) -> str:
    """TEXT (a landmark or file name, an error message) as itself in the page's Markdown, whose HTML is not
    sanitised (for the map): on one line, Markdown punctuation backslash-escaped, HTML characters as entities."""
    return html.escape(_MARKDOWN.sub(r"\\\1", " ".join(str(text).split())), quote=False)


def model_footer(hub_source: tuple[str, str] | None, model_path: Path, backend: str) -> str:
    """Which model answers: the Hub repo and the commit actually served, or the local export folder."""
    if hub_source:
        repo, commit = hub_source
        where = f"[{repo}](https://huggingface.co/{repo}/tree/{commit}) at commit `{commit[:12]}`"
    else:
        where = f"the local export `{model_path.parent.name}`"
    return f"Model: {where} ({backend})."


def _examples_root() -> Path:
    """A folder only this process knows and may write (mkdtemp: a random name, mode 0700), removed at exit: a fixed
    folder in /tmp could be pre-filled by another local user with answers of their choosing."""
    global _private_examples_root
    if _private_examples_root is None:
        _private_examples_root = Path(tempfile.mkdtemp(prefix="landmark-examples-"))
        atexit.register(shutil.rmtree, _private_examples_root, ignore_errors=True)
    return _private_examples_root


_private_examples_root: Path | None = None


def use_examples_cache(key: str) -> Path:
    """Gradio caches example answers in one folder per component id, under $GRADIO_EXAMPLES_CACHE as it is when the
    Interface is built: point it at a folder of this model's own (KEY: model_key) inside this process's private
    folder, so another model, gallery or export never shows an old one's cached answers. Call it right before
    building the Interface."""
    folder = _examples_root() / hashlib.sha256(key.encode()).hexdigest()[:16]
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(folder)
    return folder


def model_key(model_path: Path, backend: str, threshold: float, gallery_file: Path | None = None) -> str:
    """What decides the examples' answers: the model file and the gallery's gallery.json (path, size, time: a change
    to a gallery replaces that file), the backend and the threshold."""
    files = [model_path] + ([gallery_file] if gallery_file else [])
    return (
        "|".join(f"{f.resolve()}|{f.stat().st_size}|{f.stat().st_mtime_ns}" for f in files) + f"|{backend}|{threshold}"
    )
