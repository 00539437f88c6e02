"""The app's "Teach a landmark" tab: a visitor teaches a landmark from a few photos and tries photos against it.

What is taught lives only in that visitor's session (gr.State: in memory, never written to disk, never seen by
another visitor) and is gone when the page closes. The photos are read like every upload (read_upload: only files
Gradio received, within the size limit) and deleted right after, like the tagging tab's; the decoding and the model
call take one of the server's shared work slots (work.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr

from ..data.images import ImageLoadError, pil_to_uint8_array
from ..gallery import enroll
from ..gallery.ranking import GalleryRanker
from ..gallery.store import GalleryError, new_gallery
from ..labels import ClassInfo
from ..runtime.photos import read_photo
from .page import plain
from .uploads import UploadRefused, read_upload
from .work import work_slot

MAX_TEACH_PHOTOS = 20  # per landmark: enough for the protocol's best row (reports/gallery.md), bounded memory
MAX_SESSION_LANDMARKS = 5


def _read(service, path: str, cache: str, max_bytes: int):
    data = read_upload(path, cache, max_bytes)
    return pil_to_uint8_array(read_photo(data, Path(path).name, service.max_short_side).image)


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
    gallery = state["gallery"] if state else new_gallery(Path("."), enroll.embedding_model(service))
    if len(gallery.landmarks) >= MAX_SESSION_LANDMARKS and name not in [
        lm.info.display_name for lm in gallery.landmarks
    ]:
        return (
            state,
            f"### Session full\n\nA session can hold {MAX_SESSION_LANDMARKS} landmarks; reload the page to start again.",
        )
    with work_slot():
        try:
            images = [_read(service, p, cache, max_bytes) for p in paths]
        except (UploadRefused, ImageLoadError) as error:
            return state, f"### Cannot read a photo\n\n{plain(error)}"
        embeddings = enroll.run_model(service.model, images)[1]
    key = "taught_" + re.sub(r"\W+", "_", name.lower()).strip("_")
    try:
        gallery.add(
            ClassInfo(key, name),
            [{"source": "upload", "sha256": ""}] * len(images),
            embeddings,
            replace=True,
        )
    except GalleryError as error:
        return state, f"### Nothing taught\n\n{plain(error)}"
    taught = ", ".join(plain(lm.info.display_name) for lm in gallery.landmarks)
    return {
        "gallery": gallery
    }, f"### Taught '{plain(name)}' from {len(images)} photos\n\nThis session knows: {taught}. Try a photo below."


def try_photo(service, state: dict | None, path: str | None, cache: str, limits: tuple, deletion, show):
    """SHOW(the answer for one photo, with the session's taught landmarks ranked beside the model's)."""
    if path is None:
        return None, "### No photo\n\nUpload a photo to try."
    try:
        data = read_upload(path, cache, limits[0])
    except UploadRefused as error:
        return None, f"### Cannot read this photo\n\n{plain(error)}"
    finally:
        deletion.schedule(path, limits[1])
    ranker = GalleryRanker(state["gallery"], service.threshold, "exact") if state else None
    with work_slot():
        try:
            photo = read_photo(data, Path(path).name, service.max_short_side)
        except ImageLoadError as error:
            return None, f"### Cannot read this photo\n\n{plain(error)}"
        prediction = service.predict_photos([photo], gallery=ranker)[0]
    return show(prediction)


def upload_paths(files: gr.File) -> gr.File:
    """FILES, handing over the uploads' paths as they are: gr.File's own preprocess leaves an empty temp file in the
    upload folder for every path it is given (5,000 from one request), never deleted. Per instance, like web.py's
    photo input."""

    def paths(payload) -> list[str] | None:
        return None if payload is None else [f.path for f in getattr(payload, "root", [payload])]

    files.preprocess = paths  # type: ignore[method-assign]
    return files


def add_teach_tab(demo: gr.Blocks, service, components: tuple, cache: str, limits: tuple, deletion) -> None:
    """Append the tab to DEMO (the tagging Interface). COMPONENTS: the app's (photo input, label) factories and its
    prediction -> (label value, Markdown) function; LIMITS: (max upload bytes, seconds before an upload is deleted)."""
    photo_input, landmark_label, show = components
    with demo, gr.Tab("Teach a landmark"):
        gr.Markdown(
            "Teach the tagger a landmark it does not know, from a few photos, without retraining: only for you, in this "
            "browser session (nothing is stored or shared)."
        )
        state = gr.State(None)
        name = gr.Textbox(label="Landmark name", max_length=80)
        photos = upload_paths(gr.File(file_count="multiple", file_types=["image"], label="Photos of it"))
        teach_button = gr.Button("Teach")
        taught = gr.Markdown()
        trial = photo_input()
        try_button = gr.Button("Try this photo")
        answer, text = landmark_label(), gr.Markdown()
        teach_button.click(
            lambda s, n, p: teach(service, s, n, p, cache, limits, deletion),
            [state, name, photos],
            [state, taught],
            api_visibility="private",
        )
        try_button.click(
            lambda s, p: try_photo(service, s, p, cache, limits, deletion, show),
            [state, trial],
            [answer, text],
            api_visibility="private",
        )
