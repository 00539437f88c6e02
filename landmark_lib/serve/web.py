"""The Landmark Tagger web app (Gradio): upload a photo, get the 5 most likely landmarks and where the best one is;
served with the REST API (rest.py) in one process by build_app.

Served by server.py: landmark serve (or python app.py) [--model EXPORT_DIR | model.pt | hf://OWNER/NAME[@REVISION]] [--threshold P]
     [--port 7860] [--backend auto|onnx-int8|onnx|torchscript]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gradio as gr
from fastapi import FastAPI
from gradio.components.label import LabelConfidence, LabelData
from gradio.data_classes import ImageData
from gradio_client import utils as client_utils

from ..data.images import ImageLoadError
from ..gallery.store import GALLERY_FILE
from ..labels import map_url
from ..runtime.photos import read_photo
from .api_app import MAX_QUEUE, build_api_app, upload_guards
from .page import example_labels, landmark_table, map_embed, model_footer, model_key, plain, use_examples_cache
from .service import LandmarkService, Prediction
from .upload_limits import WINDOW_S
from .uploads import MAX_FILE_BYTES, MAX_FILE_SIZE, DeferredDeletion, UploadRefused, read_upload
from .web_teach import add_teach_tab, session_ranker
from .work import CONCURRENCY, work_slot

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
DELETE_CACHE = (300, WINDOW_S)  # every 5 minutes, delete uploads never answered (older than the quota window)
UPLOAD_GRACE_S = 60.0  # an answered upload is deleted this long after its answer (see DeferredDeletion)


def photo_input() -> gr.Image:
    """gr.Image that hands us the uploaded file's path untouched, takes uploads only and never fetches a URL.

    gr.Image would open the upload itself: bad files would fail with a generic error, and without a path we would
    lose the EXIF GPS. load_rgb (via LandmarkService) decodes every format, mode and orientation with clear errors.
    Gradio would download a URL given as the photo on the server and decode base64 data: neither is advertised in
    the API schema, and both are refused (tag_photo) like any path outside the upload folder.
    The overrides are per instance: a gr.Image subclass would make Gradio write a .pyi stub next to this file.
    """
    photo = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"], label="Photo")
    photo.preprocess = _upload_path  # type: ignore[method-assign]
    photo.api_info = _upload_schema  # type: ignore[method-assign]
    move_to_cache = photo.async_move_resource_to_block_cache

    async def never_fetch(url_or_file_path: str | Path | None) -> str | None:
        if client_utils.is_http_url_like(str(url_or_file_path)):
            return str(url_or_file_path)  # left as it is (not in the upload folder), so tag_photo refuses it
        return await move_to_cache(url_or_file_path)

    photo.async_move_resource_to_block_cache = never_fetch  # type: ignore[method-assign]
    return photo


def _upload_path(payload: ImageData | None) -> str | None:
    """The uploaded file's path; "" (refused by tag_photo) for a URL or base64 payload without one."""
    if payload is None:
        return None
    return payload.path or ("" if payload.url else None)


def _upload_schema() -> dict:
    """The photo parameter's API schema: a file uploaded to /gradio_api/upload (no url: it is not accepted)."""
    schema = ImageData.model_json_schema()
    schema["properties"].pop("url", None)
    schema.pop("description", None)
    schema["required"] = ["path"]
    schema["additional_description"] = (
        "A photo uploaded with POST /gradio_api/upload (its returned path); URLs and base64 are not accepted."
    )
    return schema


NOT_RECOGNISED = "No known landmark"


def landmark_label() -> gr.Label:
    """gr.Label whose heading is the recognised landmark, or "No known landmark" above the closest ones.

    A plain confidence dict would always headline its top entry, even one the model did not recognise; we hand the
    component a finished LabelData instead (per-instance override, as for the photo input).
    """
    label = gr.Label(num_top_classes=5, label="Recognised landmark (or the closest ones, when none is recognised)")
    original = label.postprocess
    label.postprocess = lambda value: value if isinstance(value, LabelData) else original(value)  # type: ignore[method-assign]
    return label


SHOWN_PROBABILITY = 0.005  # a bar shows its probability rounded to a whole percent: below this it would read "0%"


def label_value(prediction: Prediction, taught: frozenset[str] = frozenset()) -> LabelData:
    """The label component's value: heading = the landmark when confident, "Maybe: X" when only suggested, else "No
    known landmark"; bars = the closest of the model's landmarks, those that round to 0% left out. Landmarks TAUGHT in
    the visitor's session score a similarity, not a probability, so they get no bar (describe_taught shows them)."""
    bars = [
        LabelConfidence(label=g.display_name, confidence=g.probability)
        for g in prediction.top
        if g.name not in taught and g.probability >= SHOWN_PROBABILITY
    ]
    heading = {"confident": prediction.best.display_name, "suggested": f"Maybe: {prediction.best.display_name}"}
    return LabelData(label=heading.get(prediction.level or "", NOT_RECOGNISED), confidences=bars)


def _coordinates(lat: float, lon: float) -> str:
    return f"{abs(lat):.4f}° {'N' if lat >= 0 else 'S'}, {abs(lon):.4f}° {'E' if lon >= 0 else 'W'}"


def describe(prediction: Prediction) -> str:
    """The Markdown under the labels: the place of the best guess, or a plain 'not recognised', and the photo's GPS."""
    best, place = prediction.best, prediction.landmark
    if prediction.level is not None:
        maybe = "Maybe " if prediction.level == "suggested" else ""
        lines = [f"### {maybe}{plain(best.display_name)}" + (f" — {plain(place.place)}" if place.place else "")]
        if prediction.level == "suggested":
            lines.append(
                "*Suggested, not confident: the photo resembles this landmark, but check it before you tag it.*"
            )
        if place.lat is not None and place.lon is not None:
            lines.append(
                f"**Location:** {_coordinates(place.lat, place.lon)} · [Open in OpenStreetMap]({place.map_url})"
            )
            lines.append(map_embed(best.display_name, place.lat, place.lon))
    else:
        closest = ", ".join(f"{plain(g.display_name)} ({g.probability:.0%})" for g in prediction.top[:3])
        lines = [
            "### No known landmark recognised",
            f"Closest known landmarks: {closest}. The photo does not match the best one closely enough to name it "
            "(its recognition score is below both operating points), so it is not placed on the map.",
        ]
    if prediction.photo_location:
        lat, lon = prediction.photo_location
        lines.append(
            f"**Where your photo was taken (EXIF GPS):** {_coordinates(lat, lon)} · [Open in OpenStreetMap]({map_url(lat, lon)})"
        )
    return "\n\n".join(lines)


def result_markdown() -> gr.Markdown:
    """The answer's text and map. HTML is not sanitised so the map's iframe shows: every text that does not come from
    this module (names, file names, error messages) goes in through page.plain (no live Markdown or HTML)."""
    return gr.Markdown(sanitize_html=False)


def add_tag_endpoint(demo: gr.Blocks, photo: gr.Image, answer: Callable[[str | None], Prediction]) -> None:
    """The API endpoint /tag on DEMO's photo input: the structured answer as JSON (nothing visible on the page)."""

    def tag(path: str | None) -> dict:
        """Tag one photo and return the structured answer (the same JSON as one item of the REST API's POST /v1/tag).

        Args:
            path: the photo, uploaded with POST /gradio_api/upload (pass its returned path); URLs are not accepted.

        Returns:
            {landmark, display_name, probability, score, level, recognised, threshold, operating_points, top5:
            [{name, display_name, probability, match}], place: {city, country, lat, lon, map_url} or null, photo_gps:
            {lat, lon, map_url} or null, model: {id, revision, backend}}. `level` is "confident" (write it), "suggested"
            ("maybe": review it) or "none" (no known landmark: `landmark` and `place` are null, the closest landmarks
            are in `top5`, marked "closest").
        """
        try:
            return answer(path).to_dict()
        except (NoPhoto, UploadRefused, ImageLoadError) as error:
            raise gr.Error(str(error), print_exception=False) from None

    with demo:
        gr.Button(visible=False).click(
            tag, inputs=photo, outputs=gr.JSON(visible=False, label="answer"), api_name="tag"
        )


class NoPhoto(ValueError):
    """A request without a photo."""


DESCRIPTION = (
    "Upload a photo, or click an example: if it shows one of the landmarks listed below, the model names it and shows "
    "it on a map; otherwise it says that no known landmark was recognised and lists the closest ones. If your photo "
    "carries a GPS position (EXIF), it is shown too. Landmarks you teach in the other tab are recognised here as well."
)


def build_demo(service: LandmarkService) -> gr.Blocks:
    """The page around SERVICE, queued for a small CPU machine (tests and benchmarks build it the same way): two tabs,
    "Recognise" (one photo in, the answer out) and "Teach a landmark" (web_teach.py), and two API endpoints: /predict
    (what the page shows) and /tag (the structured answer as JSON)."""

    def answer(path: str | None, gallery=None) -> Prediction:
        """The answer for an uploaded photo; NoPhoto, UploadRefused or ImageLoadError with a clear message if none."""
        if path is None:
            raise NoPhoto("Upload a photo first (JPEG, PNG, WebP, GIF, BMP or TIFF).")
        try:
            data = read_upload(path, photo.GRADIO_CACHE, MAX_FILE_BYTES)
        finally:  # the photo and its EXIF GPS leave the server shortly after the answer
            deletion.schedule(path, UPLOAD_GRACE_S)
        with work_slot():  # one bound for every endpoint; the decoded pixels go back to the OS afterwards
            # Bytes + the file's own name: error messages name the user's file, not the server's temp path.
            return service.predict_photos([read_photo(data, Path(path).name, service.max_short_side)], gallery)[0]

    def recognise(path: str | None, session: dict | None = None) -> tuple[LabelData | None, str]:
        # Bad input is answered in the result area (not a toast), so no earlier result is left on screen beside it.
        ranker = session_ranker(service, session)
        try:
            prediction = answer(path, ranker)
        except NoPhoto as error:
            return None, f"### No photo\n\n{error}"
        except (UploadRefused, ImageLoadError) as error:
            return None, f"### Cannot read this photo\n\n{plain(error)}"
        taught = frozenset(c.name for c in ranker.classes) if ranker else frozenset()
        text = describe(prediction) + (f"\n\n{describe_taught(prediction, ranker)}" if ranker else "")
        return label_value(prediction, taught), text.strip()

    example_files = sorted(EXAMPLES_DIR.glob("*.jpg"))
    gallery_file = service.gallery.gallery.folder / GALLERY_FILE if service.gallery else None
    use_examples_cache(model_key(service.model_path, service.backend, service.threshold, gallery_file))
    with gr.Blocks(title="Landmark Tagger", analytics_enabled=False, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(f"# Landmark Tagger\n\n{DESCRIPTION}")
        session = gr.State(None)  # the visitor's taught landmarks (web_teach.py): in memory, this session only
        with gr.Tab("Recognise"):
            with gr.Row():
                with gr.Column():
                    photo = photo_input()
                    with gr.Row():
                        clear = gr.ClearButton()
                        submit = gr.Button("Submit", variant="primary")
                with gr.Column():
                    label, text = landmark_label(), result_markdown()
            add_examples(example_files, photo, [label, text], recognise)
            gr.Markdown(landmark_table(service.classes, service.gallery_classes))
        deletion = DeferredDeletion(demo.upload_file_set, photo.temp_files)
        with gr.Tab("Teach a landmark"):
            add_teach_tab(service, session, photo.GRADIO_CACHE, (MAX_FILE_BYTES, UPLOAD_GRACE_S), deletion)
        gr.Markdown(model_footer(service.hub_source, service.model_path, service.backend))
        clear.add([photo, label, text])
        submit.click(recognise, [photo, session], [label, text], api_name="predict").then(
            None, [text, photo], photo, js=FORGET_UNREADABLE, api_name=False
        )
    add_tag_endpoint(demo, photo, answer)
    deletion.start()
    return demo.queue(default_concurrency_limit=CONCURRENCY, max_size=MAX_QUEUE)


def add_examples(files: list[Path], photo: gr.Image, outputs: list, fn: Callable) -> None:
    """The example photos, labelled with their landmark, under the photo input (none: no examples block)."""
    if files:
        gr.Examples(
            [[str(path)] for path in files],
            inputs=photo,
            outputs=outputs,
            fn=fn,
            cache_examples=True,
            cache_mode="lazy",  # an example's answer is computed on its first click, then shown at once
            examples_per_page=len(files),  # all on one page: the look-alike too
            example_labels=example_labels(files),
            preload=False,
            api_name=False,  # type: ignore[arg-type]  # Gradio's documented way to add no API endpoint
        )


# After a refused upload the photo input is emptied (the browser would show a broken-image icon for a file that is not
# a photo); an answered photo stays. In the browser: a server-side update of the input would give the session its
# own copy of the component, without photo_input()'s overrides.
FORGET_UNREADABLE = "(text, photo) => String(text || '').startsWith('### Cannot read') ? null : photo"


def describe_taught(prediction: Prediction, ranker) -> str:
    """The visitor's taught landmarks among the closest, on their own scale: the cosine similarity of the photo to the
    landmark's closest taught photo, against the similarity needed to name it."""
    if ranker is None:
        return ""
    taught = {c.name for c in ranker.classes}
    lines = [
        f"- {plain(g.display_name)}: similarity {ranker.similarity(g.probability):.2f}"
        for g in prediction.top
        if g.name in taught
    ]
    if not lines:
        return ""
    return (
        f"**Taught in this session** (cosine similarity to the closest taught photo; named from "
        f"{ranker.gallery.similarity:.2f}):\n\n" + "\n".join(lines)
    )


def launch(demo: gr.Blocks, host: str, port: int | None, share: bool = False, block: bool = True) -> str:
    """Start the server with the app's upload limits and guards (api_app.upload_guards); returns the local URL
    (block=False returns at once)."""
    _, local_url, _ = demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=MAX_FILE_SIZE,
        prevent_thread_lock=not block,
        quiet=not block,
        app_kwargs={"middleware": upload_guards()},
    )
    return local_url


def build_app(service: LandmarkService) -> FastAPI:
    """One ASGI app with the page ready from the start: the REST API (/v1/..., docs at /docs) with the Gradio page
    mounted at /, under the upload quota (which counts REST photos too). `landmark serve` mounts the page when it has
    loaded instead (server.staged_app)."""
    demo = build_demo(service)
    app = gr.mount_gradio_app(build_api_app(service), demo, path="", max_file_size=MAX_FILE_SIZE)
    demo.has_launched = True  # mounted, never launch()ed: Gradio's own upload-folder check runs only on launched apps
    return app
