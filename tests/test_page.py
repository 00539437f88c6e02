"""The page's parts: the map of the recognised landmark, labelled examples, the folded table of known landmarks,
the footer naming the model, and text from outside that cannot become HTML (the answer's Markdown is unsanitised so
the map's iframe shows). The browser test (test_browser.py) sees them rendered."""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from types import SimpleNamespace

from gradio_client import Client, handle_file

from landmark_lib.labels import ClassInfo
from landmark_lib.runtime.photos import read_photo
from landmark_lib.serve.page import (
    example_labels,
    landmark_table,
    map_embed,
    model_footer,
    model_key,
    use_examples_cache,
)
from landmark_lib.serve.web import EXAMPLES_DIR, describe

from helpers import CLASSES, export_tiny_model, make_photo


def test_recognised_answer_embeds_a_map_marking_that_landmark(service):
    text = describe(service.predict(make_photo()))
    assert text.startswith("### Taj Mahal — Agra, India")
    assert 'src="https://www.openstreetmap.org/export/embed.html?bbox=78.03200%2C27.16500%2C78.05200%2C27.18500' in text
    assert "&marker=27.17500%2C78.04200" in text and 'title="Map of Taj Mahal"' in text


def test_unrecognised_answer_has_no_map(model_dir):
    from landmark_lib.serve.service import LandmarkService

    strict = LandmarkService(model_dir / "model.pt", threshold=0.99, num_threads=1)
    assert "<iframe" not in describe(strict.predict(make_photo()))
    assert "<iframe" in map_embed('A "quoted" <b>name</b>', 1.0, 2.0) and "<b>" not in map_embed("<b>", 1.0, 2.0)


def test_examples_are_labelled_with_their_landmark():
    files = sorted(EXAMPLES_DIR.glob("*.jpg"))
    labels = dict(zip([f.name for f in files], example_labels(files)))
    assert (
        labels["eiffel_tower.jpg"] == "Eiffel Tower"
        and labels["golden_temple.jpg"] == "Golden Temple (Harmandir Sahib)"
    )
    assert labels["everyday_park_bench.jpg"] == "No landmark (a park bench)"


def test_known_landmarks_fold_into_a_table_with_places():
    table = landmark_table([*CLASSES, ClassInfo("no_landmark", "No landmark"), ClassInfo("a|b", "Pipe | Place")])
    assert table.startswith("<details><summary>The 7 landmarks the model knows</summary>")
    assert "| Machu Picchu | Aguas Calientes, Peru |" in table and "| Mystery Place | — |" in table
    assert "Pipe \\| Place" in table and "No landmark" not in table.split("</summary>")[1]


def test_footer_names_the_hub_commit_or_the_local_export(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    hub = model_footer(("someone/landmarks", commit), Path("x/model.pt"), "onnx")
    assert hub == (
        f"Model: [someone/landmarks](https://huggingface.co/someone/landmarks/tree/{commit}) at commit `0123456789ab` (onnx)."
    )
    assert model_footer(None, Path("models/default/model.pt"), "torchscript") == (
        "Model: the local export `default` (torchscript)."
    )


def test_a_hostile_file_name_stays_text(app_url, tmp_path):
    hostile = tmp_path / "rock&roll <img src=x onerror=alert(1)>.jpg"
    hostile.write_text("not a photo")
    client = Client(app_url, verbose=False)
    try:
        _, markdown = client.predict(handle_file(str(hostile)), api_name="/predict")
    finally:
        client.close()
    assert "Cannot read this photo" in markdown and "<img" not in markdown
    assert "rock&amp;roll" in markdown  # shown as typed, never read as HTML


def test_cached_example_answers_belong_to_one_model(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", "unchanged")  # restored after the test
    other = shutil.copytree(model_dir, tmp_path / "other")
    folders = {
        use_examples_cache(model_key(model_dir / "model.pt", "torchscript", 0.35)),
        use_examples_cache(model_key(other / "model.pt", "torchscript", 0.35)),  # another export
        use_examples_cache(model_key(model_dir / "model.pt", "onnx", 0.35)),  # another backend
        use_examples_cache(model_key(model_dir / "model.pt", "torchscript", 0.5)),  # another threshold
    }
    assert len(folders) == 4 and os.environ["GRADIO_EXAMPLES_CACHE"] in {str(f) for f in folders}
    assert use_examples_cache(model_key(model_dir / "model.pt", "onnx", 0.35)) in folders  # the same model: its cache


def test_cached_example_answers_belong_to_one_gallery_in_a_private_folder(model_dir, tmp_path, monkeypatch):
    """A server without a gallery showed another server's gallery answer, from a fixed /tmp folder any local user could
    pre-fill."""
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", "unchanged")
    gallery = tmp_path / "gallery.json"
    gallery.write_text("{}")
    model = model_dir / "model.pt"
    without = use_examples_cache(model_key(model, "torchscript", 0.35))
    with_gallery = use_examples_cache(model_key(model, "torchscript", 0.35, gallery))
    gallery.write_text('{"changed": 1}')  # taught another landmark: gallery.json is replaced
    changed = use_examples_cache(model_key(model, "torchscript", 0.35, gallery))
    assert len({without, with_gallery, changed}) == 3
    root = without.parent
    assert root.parent == Path(tempfile.gettempdir()) and root.name != "landmark-tagger-examples"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700 and root.stat().st_uid == os.getuid()


def test_names_never_render_as_live_markdown(tmp_path):
    """Gallery and label names rendered as Markdown in the unsanitised result area: a live javascript: link, a remote
    image every visitor fetched."""
    from markdown_it import MarkdownIt

    from landmark_lib.serve.service import LandmarkService

    hostile = [
        ClassInfo(
            "link", "[click me](javascript:alert(1))", "![](https://evil.example/track.png)", "<b>x</b>", 1.0, 2.0
        ),
        *CLASSES[1:],
    ]
    service = LandmarkService(export_tiny_model(tmp_path / "export", classes=hostile) / "model.pt", num_threads=1)
    shown = [describe(service.predict(make_photo())), landmark_table(hostile)]
    shown.append(describe(LandmarkService(service.model_path, threshold=0.99, num_threads=1).predict(make_photo())))
    for markdown in shown:
        html = MarkdownIt("commonmark", {"html": False}).render(markdown.split("<iframe")[0])  # the map: ours
        links = re.findall(r'<a href="([^"]*)"', html)
        assert all(link.startswith("https://www.openstreetmap.org/") for link in links), html  # only our map link
        assert "<img" not in html and "<b>" not in html, html
    assert "[click me](javascript:alert(1))" in MarkdownIt().render(shown[0]).replace("\\", "")  # shown as typed


def test_two_tabs_with_one_upload_area_each(service):
    from landmark_lib.serve.web import build_demo

    demo = build_demo(service)
    try:
        config = demo.get_config_file()
        tabs = [c["props"]["label"] for c in config["components"] if c["type"] in ("tab", "tabitem")]
        uploads = [c["type"] for c in config["components"] if c["type"] in ("image", "file")]
        assert tabs == ["Recognise", "Teach a landmark"] and uploads == ["image", "file"]
    finally:
        demo.close()


def test_bars_are_the_models_probabilities_above_zero_percent():
    from landmark_lib.artifacts.answer import Guess
    from landmark_lib.serve.web import label_value

    top = [Guess("colosseum", "Colosseum", 0.62), Guess("taught_tower", "Old Tower", 0.30)]
    top += [Guess("petra", "Petra", 0.05), Guess("taj_mahal", "Taj Mahal", 0.004), Guess("a", "A", 0.0001)]
    prediction = SimpleNamespace(top=top, best=ClassInfo("colosseum", "Colosseum"), level="confident")
    value = label_value(prediction, frozenset({"taught_tower"}))
    assert value.label == "Colosseum" and [c.label for c in value.confidences] == ["Colosseum", "Petra"]


def test_a_taught_landmark_is_shown_on_its_own_similarity_scale(service, tmp_path):
    from landmark_lib.serve.web import describe_taught
    from landmark_lib.serve.web_teach import session_ranker, teach

    class Keep:
        def schedule(self, path, delay):
            pass

    photos = []
    for i, size in enumerate([(120, 80), (150, 100), (96, 64)]):
        photos.append(str(tmp_path / f"{i}.jpg"))
        make_photo(120, 80, seed=7).resize(size).save(photos[-1], quality=95)
    state, _ = teach(service, None, "Old Tower", photos, str(tmp_path), (10**7, 60.0), Keep())
    ranker = session_ranker(service, state)
    prediction = service.predict_photos([read_photo(make_photo(120, 80, seed=7))], gallery=ranker)[0]
    text = describe_taught(prediction, ranker)
    similarity = float(text.split("Old Tower: similarity ")[1].split()[0])
    assert text.startswith("**Taught in this session** (cosine similarity") and 0.9 < similarity <= 1.0
