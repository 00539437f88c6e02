"""The app's "Teach a landmark" tab: a visitor teaches a landmark from a few photos; the "Recognise" tab then ranks
it beside the model's landmarks (session_ranker).

What is taught lives only in that visitor's session (gr.State: in memory, never written to disk, never seen by
another visitor) and is gone when the page closes. The photos are read like every upload (read_upload: only files
Gradio received, within the size limit) and deleted right after, like the Recognise tab's; the decoding and the
model call take one of the server's shared work slots (work.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr
import numpy as np

from ..data.images import ImageLoadError
from ..gallery import enroll
from ..gallery.ranking import GalleryRanker
from ..gallery.store import GalleryError, new_gallery
from ..labels import ClassInfo, plural
from ..runtime.photos import model_pixels, read_photo
from .page import plain
from .uploads import UploadRefused, read_upload
from .work import work_slot

MAX_TEACH_PHOTOS = 20  # per landmark: enough for the protocol's best row (reports/gallery.md), bounded memory
MAX_SESSION_LANDMARKS = 5


def _read(service, path: str, cache: str, max_bytes: int):
    data = read_upload(path, cache, max_bytes)
    return model_pixels(read_photo(data, Path(path).name, service.max_short_side).image, service.max_short_side)


def teach(
    service, state: dict | None, name: str, paths: list[str] | None, cache: str, limits: tuple, deletion
) -> tuple[dict | None, str]:
    """Add NAME, taught from the uploaded PATHS, to the session's gallery STATE; returns (state, message)."""
    max_bytes, grace = limits
    for path in paths or []:  # every upload leaves the server shortly, whether it is read, refused or never reached
        deletion.schedule(path, grace)
    name = (name or "").strip()
    if not name or not paths:
        return (
            state,
            "### Nothing taught\n\nGive the landmark a name and upload a few photos of it (3 to 10 work well).",
        )
    if len(paths) > MAX_TEACH_PHOTOS:
        return state, f"### Too many photos\n\nUpload at most {MAX_TEACH_PHOTOS} photos of one landmark."
    with work_slot():
        try:
            images = [_read(service, p, cache, max_bytes) for p in paths]
        except (UploadRefused, ImageLoadError) as error:
            return state, f"### Cannot read a photo\n\n{plain(error)}"
        embeddings = enroll.run_model(service.model, images)[1]
    gallery = state["gallery"] if state else new_gallery(Path("."), enroll.embedding_model(service))
    if len(gallery.landmarks) >= MAX_SESSION_LANDMARKS and name not in [
        lm.info.display_name for lm in gallery.landmarks
    ]:
        return (
            state,
            f"### Session full\n\nA session can hold {MAX_SESSION_LANDMARKS} landmarks; reload the page to start again.",
        )
    key = "taught_" + re.sub(r"\W+", "_", name.lower()).strip("_")
    try:
        gallery.add(ClassInfo(key, name), [{"source": "upload", "sha256": ""}] * len(images), embeddings, replace=True)
    except GalleryError as error:
        return state, f"### Nothing taught\n\n{plain(error)}"
    taught = ", ".join(plain(lm.info.display_name) for lm in gallery.landmarks)
    return {"gallery": gallery}, (
        f"### Taught '{plain(name)}' from {plural(len(images), 'photo')}\n\n{agreement(embeddings, gallery.similarity)}\n\n"
        f"This session knows: {taught}. Try a photo in the **Recognise** tab: taught landmarks are recognised there "
        "beside the model's."
    )


def agreement(embeddings: np.ndarray, rule: float) -> str:
    """How alike the taught photos are, on the similarity scale the rule uses (not a probability)."""
    if len(embeddings) < 2:
        return f"A photo is named as this landmark when its cosine similarity to the taught photo reaches {rule:.2f}."
    cosine = embeddings @ embeddings.T
    pairs = cosine[np.triu_indices(len(embeddings), 1)]
    return (
        f"The taught photos agree with each other at cosine similarity {pairs.min():.2f} to {pairs.max():.2f}; a photo "
        f"is named as this landmark when its similarity to one of them reaches {rule:.2f}."
    )


def session_ranker(service, state: dict | None) -> GalleryRanker | None:
    """The visitor's taught landmarks as a ranker for the Recognise tab (None before anything is taught)."""
    return GalleryRanker(state["gallery"], service.threshold, "exact") if state else None


def upload_paths(files: gr.File) -> gr.File:
    """FILES, handing over the uploads' paths as they are: gr.File's own preprocess leaves an empty temp file in the
    upload folder for every path it is given (5,000 from one request), never deleted. Per instance, like web.py's
    photo input."""

    def paths(payload) -> list[str] | None:
        return None if payload is None else [f.path for f in getattr(payload, "root", [payload])]

    files.preprocess = paths  # type: ignore[method-assign]
    return files


def add_teach_tab(service, state: gr.State, cache: str, limits: tuple, deletion) -> None:
    """The tab's contents, inside the caller's gr.Tab: one upload area (the landmark's photos). STATE: the session's
    taught landmarks, shared with the Recognise tab; LIMITS: (max upload bytes, seconds before an upload is deleted)."""
    gr.Markdown(
        "Teach the tagger a landmark it does not know, from a few photos, without retraining: only for you, in this "
        "browser session (nothing is stored or shared). Then try a photo in the **Recognise** tab."
    )
    name = gr.Textbox(label="Landmark name", max_length=80)
    photos = upload_paths(gr.File(file_count="multiple", file_types=["image"], label="Photos of it"))
    teach_button = gr.Button("Teach", variant="primary")
    taught = gr.Markdown()
    teach_button.click(
        lambda s, n, p: teach(service, s, n, p, cache, limits, deletion),
        [state, name, photos],
        [state, taught],
        api_visibility="private",
    )
