"""The REST API (POST /v1/tag, GET /v1/landmarks, GET /v1/health) and the Gradio /tag endpoint over real HTTP, served
together by web.build_app on uvicorn, as `landmark serve` does."""

from __future__ import annotations

import io
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest
import uvicorn
from gradio_client import Client, handle_file

from landmark_lib.artifacts.answer import ANSWER_SCHEMA
from landmark_lib.serve import rest
from landmark_lib.serve.rest import build_api
from landmark_lib.serve.service import LandmarkService
from landmark_lib.serve.web import build_app

from helpers import CLASSES, exiftool, free_port, make_photo, save_photo


@pytest.fixture(scope="module")
def serve() -> Iterator:
    """serve(app) -> base URL of APP on uvicorn on a free loopback port; every server stops at the end."""
    servers = []

    def start(app) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        servers.append(server)
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.should_exit = True


@pytest.fixture(scope="module")
def base(serve, service: LandmarkService) -> str:
    return serve(build_app(service))


def jpeg(seed: int = 0, width: int = 120, height: int = 80) -> bytes:
    buffer = io.BytesIO()
    make_photo(width, height, seed).save(buffer, "JPEG")
    return buffer.getvalue()


def post(base: str, *files: tuple[str, bytes], field: str = "photo") -> httpx.Response:
    return httpx.post(f"{base}/v1/tag", files=[(field, (name, data, "image/jpeg")) for name, data in files], timeout=30)


def test_one_photo(base: str, service: LandmarkService) -> None:
    response = post(base, ("photo.jpg", jpeg()))
    assert response.status_code == 200, response.text
    (answer,) = response.json()
    jsonschema.validate(answer, ANSWER_SCHEMA)
    assert answer == service.predict(jpeg()).to_dict() and answer["place"]["city"] == "Agra"


def test_several_photos_in_order(base: str, service: LandmarkService) -> None:
    photos = [jpeg(seed, 100 + 40 * seed, 90) for seed in range(3)]
    response = post(base, *[(f"{i}.jpg", data) for i, data in enumerate(photos)])
    assert response.status_code == 200, response.text
    expected = [service.predict(data).to_dict() for data in photos]
    assert response.json() == expected and len({a["probability"] for a in expected}) == 3  # distinct, so order shows


def test_bad_input_gets_json_and_the_right_status(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(response: httpx.Response, status: int, words: str) -> None:
        assert response.status_code == status and words in response.json()["detail"], response.text

    refused(post(base, ("notes.jpg", b"this is not a photo")), 415, "notes.jpg is not an image")
    refused(post(base, ("good.jpg", jpeg()), ("empty.jpg", b"")), 415, "empty.jpg is an empty")
    refused(httpx.post(f"{base}/v1/tag", content=jpeg(), headers={"content-type": "image/jpeg"}), 415, "multipart")
    refused(post(base, ("photo.jpg", jpeg()), field="image"), 422, "No photo")
    refused(httpx.post(f"{base}/v1/tag", files={"photo": (None, "text")}), 422, "No photo")
    refused(post(base, *[(f"{i}.jpg", b"x") for i in range(rest.MAX_PHOTOS + 1)]), 422, "Too many files")
    monkeypatch.setattr(rest, "MAX_FILE_BYTES", 1000)
    refused(post(base, ("big.jpg", jpeg(width=400, height=300))), 413, "big.jpg is larger than")
    monkeypatch.setattr(rest, "MAX_REQUEST_BYTES", 1000)
    refused(post(base, ("big.jpg", jpeg(width=400, height=300))), 413, "request is larger than")
    monkeypatch.undo()
    assert post(base, ("photo.jpg", jpeg())).status_code == 200  # and the server goes on serving


def test_overload_is_503_not_a_pile_up(serve, service: LandmarkService) -> None:
    release, entered = threading.Event(), threading.Event()

    class Slow:  # the service, with a model call that waits until released
        def __getattr__(self, name: str):
            return getattr(service, name)

        def predict_photos(self, photos):
            entered.set()
            release.wait(20)
            return service.predict_photos(photos)

    slow = serve(build_api(Slow(), concurrency=1, waiting=0))  # type: ignore[arg-type]
    first: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: first.append(post(slow, ("a.jpg", jpeg()))))
    worker.start()
    assert entered.wait(20)
    busy = post(slow, ("b.jpg", jpeg()))
    assert busy.status_code == 503 and "busy" in busy.json()["detail"] and busy.headers["retry-after"]
    release.set()
    worker.join(20)
    assert first[0].status_code == 200 and post(slow, ("c.jpg", jpeg())).status_code == 200


def test_landmarks_health_and_docs(base: str, service: LandmarkService) -> None:
    landmarks = httpx.get(f"{base}/v1/landmarks").json()
    assert [entry["name"] for entry in landmarks] == [c.name for c in CLASSES]
    assert landmarks[1]["place"]["country"] == "Italy" and landmarks[-1]["place"]["lat"] is None
    health = httpx.get(f"{base}/v1/health").json()
    assert health["model"] == service.model_id.model_dump() and health["threshold"] == service.threshold
    assert health["backend"] == service.backend and health["uptime_s"] >= 0
    assert httpx.get(f"{base}/docs").status_code == 200
    spec = httpx.get(f"{base}/openapi.json").json()
    tag = spec["paths"]["/v1/tag"]["post"]
    assert "multipart/form-data" in tag["requestBody"]["content"] and {"413", "415", "422", "503"} <= set(
        tag["responses"]
    )
    # the documented answer is the one the server returns: the pydantic Answer, beside the XMP form
    ok = tag["responses"]["200"]["content"]
    assert ok["application/json"]["schema"]["items"] == {"$ref": "#/components/schemas/Answer"}
    assert "application/rdf+xml" in ok and set(spec["components"]["schemas"]["Answer"]["required"]) >= {"level", "top5"}


def test_gradio_tag_endpoint_beside_the_page(base: str, service: LandmarkService, tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(jpeg())
    client = Client(base, verbose=False)
    try:
        assert (
            client.predict(handle_file(str(tmp_path / "photo.jpg")), api_name="/tag")
            == service.predict(jpeg()).to_dict()
        )
        label, _ = client.predict(handle_file(str(tmp_path / "photo.jpg")), api_name="/predict")
        assert label["label"] == "Taj Mahal"
        description = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/tag"]
        assert "structured answer" in str(description), description
    finally:
        client.close()


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed (scripts/setup.sh installs it)")
def test_xmp_packet_of_one_photo(base: str, tmp_path: Path) -> None:
    """?format=xmp: the sidecar `landmark geotag` would write, as ExifTool reads it; 204 when it places nothing."""
    response = httpx.post(f"{base}/v1/tag?format=xmp", files={"photo": ("IMG_1.jpg", jpeg(), "image/jpeg")}, timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/rdf+xml")
    (tmp_path / "IMG_1.jpg.xmp").write_bytes(response.content)
    (read,) = exiftool(tmp_path / "IMG_1.jpg.xmp")
    taj = CLASSES[0]
    assert abs(read["GPSLatitude"] - taj.lat) < 1e-6 and abs(read["GPSLongitude"] - taj.lon) < 1e-6
    assert read["Subject"] == ["Taj Mahal", "Agra", "India"] and read["GeotagPhoto"] == "IMG_1.jpg"
    with_gps = save_photo(tmp_path / "gps.jpg", gps=(48.8584, 2.2945)).read_bytes()
    placed_by_camera = httpx.post(f"{base}/v1/tag?format=xmp", files={"photo": ("gps.jpg", with_gps)}, timeout=30)
    assert placed_by_camera.status_code == 204 and not placed_by_camera.content
    two = httpx.post(f"{base}/v1/tag?format=xmp", files=[("photo", ("a.jpg", jpeg())), ("photo", ("b.jpg", jpeg(1)))])
    assert two.status_code == 422 and "one photo" in two.json()["detail"]
    odd = httpx.post(f"{base}/v1/tag?format=exif", files={"photo": ("a.jpg", jpeg())})
    assert odd.status_code == 422 and "json or xmp" in odd.json()["detail"]
