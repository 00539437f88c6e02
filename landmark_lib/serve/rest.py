"""The REST API for photo services (FastAPI), served in the same process as the page: POST /v1/tag, GET /v1/landmarks,
GET /v1/health, OpenAPI docs at /docs.

Every answer is an artifacts/answer.py Answer (the route's response model, so its schema is the OpenAPI one). Bad input is answered with a JSON
{"detail": one sentence} and its status (408 too slow, 413 too large, 415 not an image, 422 no or too many photos,
429 upload limits, 503 when the bounded queue is full); never a 500. A request's photos are read in full before it
takes a place in the queue (a slow client holds only its own connection: upload_limits.py ends bodies that stall);
they stay in memory (or in the multipart parser's anonymous spool file for parts over 1 MB) only until their answer,
and are decoded with the app's bounded decoder (load_rgb) in one of the server's shared work slots (work.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from typing import cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from ..artifacts.answer import Answer, place_of
from ..data.images import ImageLoadError
from ..runtime.photos import read_photo
from ..xmp.answer_packet import answer_packet
from .docs import add_docs
from .service import LandmarkService
from .uploads import MAX_FILE_BYTES
from .work import work_slot

MAX_PHOTOS = 32  # per request: a batch the model answers in one call without holding much memory
MAX_REQUEST_BYTES = 256 * 1024**2  # all photos of one request together
PHOTO_FIELD = "photo"
XMP_MEDIA_TYPE = "application/rdf+xml"
_FORMAT_PARAMETER = {
    "name": "format",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["json", "xmp"], "default": "json"},
    "description": "xmp: send one photo and get its XMP sidecar (what `landmark geotag` writes: the landmark's GPS, "
    "keywords, location fields, provenance), or 204 when no confident landmark places it (or it has its own GPS)",
}

_TAG_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [PHOTO_FIELD],
                "properties": {
                    PHOTO_FIELD: {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "maxItems": MAX_PHOTOS,
                        "description": f"1 to {MAX_PHOTOS} photos (JPEG, PNG, WebP, GIF, BMP, TIFF), each a `photo` field",
                    }
                },
            }
        }
    },
}
_ERROR = {"content": {"application/json": {"example": {"detail": "one sentence saying what to fix"}}}}
_TAG_RESPONSES: dict[int | str, dict] = {
    200: {
        "content": {
            XMP_MEDIA_TYPE: {"schema": {"type": "string"}},
        }
    },
    204: {"description": "format=xmp: no confident landmark places this photo (or it has its own GPS)"},
    413: {"description": "a photo or the request is too large", **_ERROR},
    415: {"description": "not multipart, or a file that is not a usable photo", **_ERROR},
    422: {"description": f"no `{PHOTO_FIELD}` file, or more than {MAX_PHOTOS}", **_ERROR},
    503: {"description": "the server is busy (its queue is full): retry later", **_ERROR},
}


class Refused(Exception):
    """A request answered with STATUS and a one-sentence MESSAGE (JSON {"detail": MESSAGE})."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class Gate:
    """A bounded queue of requests whose photos have arrived: at most CONCURRENCY work at once and WAITING more wait;
    beyond that, 503 at once, so a burst cannot pile up memory or latency."""

    def __init__(self, concurrency: int, waiting: int):
        self.capacity, self.inside = concurrency + waiting, 0
        self.working = asyncio.Semaphore(concurrency)

    def enter(self) -> None:
        if self.inside >= self.capacity:
            raise Refused(503, "The server is busy (its queue is full); retry in a few seconds.")
        self.inside += 1

    def leave(self) -> None:
        self.inside -= 1


async def _read_photos(request: Request) -> list[tuple[str, bytes]]:
    """(file name, bytes) of each `photo` file of a multipart request, after the size and count checks."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise Refused(415, f"Send the photos as multipart/form-data, each in a `{PHOTO_FIELD}` file field.") from None
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise Refused(
            413, f"The request is larger than {MAX_REQUEST_BYTES // 2**20} MB; send fewer photos per request."
        )
    try:
        form = await request.form(max_files=MAX_PHOTOS, max_fields=MAX_PHOTOS)
    except HTTPException as error:  # the multipart parser's own refusals (too many files, malformed body)
        status = 422 if "Too many" in str(error.detail) else 400
        raise Refused(
            status, f"{error.detail} Send 1 to {MAX_PHOTOS} photos, each in a `{PHOTO_FIELD}` file field."
        ) from None
    except ClientDisconnect:  # gone, or cut off by the upload limits (which answer in its place)
        raise Refused(400, "The upload ended before the whole request arrived; send it again.") from None
    try:  # the parts are closed (spooled parts deleted) as soon as their bytes are read
        return await _photo_bytes(form.getlist(PHOTO_FIELD))
    finally:
        await form.close()


async def _photo_bytes(files: list) -> list[tuple[str, bytes]]:
    if not files or not all(isinstance(f, UploadFile) for f in files):
        raise Refused(422, f"No photo: send 1 to {MAX_PHOTOS} files, each in a multipart field named `{PHOTO_FIELD}`.")
    photos = []
    for index, upload in enumerate(files):
        name = upload.filename or f"photo {index + 1}"
        if (upload.size or 0) > MAX_FILE_BYTES:
            raise Refused(413, f"{name} is larger than {MAX_FILE_BYTES // 2**20} MB; send a smaller photo.")
        photos.append((name, await upload.read()))
    return photos


def _answer(service: LandmarkService, photos: list[tuple[str, bytes]], form: str = "json") -> list[Answer] | Response:
    """Decode every photo (bounded decoder), then one network call for all of them, in one shared work slot; FORM
    'xmp': the one photo's XMP sidecar (204 when the answer places nothing)."""
    with work_slot():
        decoded, first = [], photos[0][0]
        for name, data in photos:
            try:
                decoded.append(read_photo(data, name, service.max_short_side))
            except ImageLoadError as error:
                raise Refused(415, str(error)) from None
        predictions = service.predict_photos(decoded)
    if form == "xmp":
        packet = answer_packet(predictions[0], first)
        return Response(status_code=204) if packet is None else Response(packet, media_type=XMP_MEDIA_TYPE)
    return [prediction.answer() for prediction in predictions]


def landmarks(service: LandmarkService) -> list[dict]:
    """Every landmark the service can name, with its place and where it comes from: 'model' (its classes, not the
    background class) or 'gallery' (taught with `landmark gallery add`, served with --gallery)."""
    return [
        {"name": c.name, "display_name": c.display_name, "place": place_of(c).model_dump(), "source": source}
        for c, source in service.known_landmarks()
    ]


def health_report(service: LandmarkService, started: float) -> dict:
    """GET /v1/health: the model served, its operating points, what it can name (the served gallery's marked), uptime."""
    return {
        "status": "ok",
        "model": service.model_id.model_dump(),
        "backend": service.backend,
        "threshold": service.points.confident,
        "operating_points": asdict(service.points),
        "photo_index": service.scorer is not None,
        "landmarks": len(service.known_landmarks()),
        "model_landmarks": len(service.landmark_names),
        "gallery": {"landmarks": [c.name for c in service.gallery_classes]} if service.gallery else None,
        "uptime_s": round(time.monotonic() - started, 1),
    }


def build_api(service: LandmarkService, concurrency: int = 2, waiting: int = 64) -> FastAPI:
    """The FastAPI app of SERVICE; the Gradio page is mounted on it by web.build_app."""
    api = FastAPI(
        title="Landmark Tagger API",
        description="Photo -> the most likely landmarks and where they are. Answers follow the `Answer` schema.",
        version="1",
        docs_url=None,  # add_docs: Swagger UI from local files
        redoc_url=None,
    )
    add_docs(api)
    gate, started = Gate(concurrency, waiting), time.monotonic()

    @api.exception_handler(Refused)
    async def refused(_: Request, error: Refused) -> JSONResponse:
        headers = {"Retry-After": "2"} if error.status == 503 else None
        return JSONResponse({"detail": error.message}, status_code=error.status, headers=headers)

    @api.post(
        "/v1/tag",
        openapi_extra={"requestBody": _TAG_BODY, "parameters": [_FORMAT_PARAMETER]},
        responses=_TAG_RESPONSES,
        response_model=list[Answer],
    )
    async def tag(request: Request) -> list[Answer]:
        """Tag 1 to 32 photos (multipart `photo` fields): one answer per photo, in the order sent; with
        `?format=xmp`, one photo's XMP sidecar.

        A request with any unusable photo is refused as a whole, naming the file."""
        form = request.query_params.get("format", "json")
        if form not in ("json", "xmp"):
            raise Refused(422, f"format must be json or xmp, got {form[:40]!r}.")
        photos = await _read_photos(request)  # before queueing: a slow upload must not hold a place
        if form == "xmp" and len(photos) != 1:
            raise Refused(422, f"format=xmp answers one photo per request; {len(photos)} were sent.")
        gate.enter()
        try:
            async with gate.working:
                # the answers, or (format=xmp) a Response, which FastAPI passes through unvalidated
                return cast(list[Answer], await run_in_threadpool(_answer, service, photos, form))
        finally:
            gate.leave()

    @api.get("/v1/landmarks")
    def known_landmarks() -> list[dict]:
        """Every landmark the service can name, with its city, country, coordinates and map link; `source` says
        whether the model knows it or the served gallery (`--gallery`)."""
        return landmarks(service)

    @api.get("/v1/health")
    def health() -> dict:
        """The model served (id, revision, backend), its operating points, the landmarks it can name (the
        model's and the served gallery's), and the server's uptime."""
        return health_report(service, started)

    return api
