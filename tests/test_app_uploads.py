"""The public app reads only its own uploads (served either way: launch() or mounted by `landmark serve`), forgets
them after answering, bounds what a client may store and how slowly it may send, never fetches a URL, advertises
only what it accepts, and starts where GRADIO_SERVER_NAME/PORT say."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from gradio_client import Client, handle_file

from landmark_lib.cli import main as landmark
from landmark_lib.serve import web as app
from landmark_lib.serve.page import plain
from landmark_lib.serve.upload_limits import UploadQuota
from landmark_lib.serve.uploads import (
    NOT_AN_UPLOAD,
    DeferredDeletion,
    UploadRefused,
    UploadsOnly,
    discard_upload,
    read_upload,
)
from landmark_lib.serve.web_teach import upload_paths

from helpers import cli_error, make_photo, start_uvicorn, time_limit

FILE_META = {"_type": "gradio.FileData"}


@pytest.fixture(scope="module")
def client(app_url: str) -> Iterator[Client]:
    client = Client(app_url, verbose=False)
    yield client
    client.close()


@pytest.fixture(scope="module")
def mounted_url(service) -> Iterator[str]:
    """The page and the REST API as `landmark serve` (and app.py) serve them: Gradio mounted on FastAPI, no launch()."""
    url, server = start_uvicorn(app.build_app(service))
    yield url + "/"
    server.should_exit = True


@pytest.fixture(params=["launched", "mounted"])
def any_url(request) -> str:
    """Both ways the app is served (Gradio's launch() for --share, and mounted on the REST API)."""
    return request.getfixturevalue("app_url" if request.param == "launched" else "mounted_url")


def jpeg_bytes(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    make_photo(seed=seed).save(buffer, "JPEG")
    return buffer.getvalue()


def upload(app_url: str, data: bytes, name: str = "photo.jpg") -> str:
    response = httpx.post(f"{app_url}gradio_api/upload", files={"files": (name, data, "image/jpeg")}, timeout=30)
    response.raise_for_status()
    return response.json()[0]


def raw_call(base: str, payload: dict, api: str = "predict") -> tuple[int, object]:
    """/gradio_api/call/API over plain HTTP with PAYLOAD as sent (gradio_client would upload local paths itself
    first): (status, detail) when the call is refused at once, else (200, the answer's data)."""
    response = httpx.post(f"{base}gradio_api/call/{api}", json={"data": [payload]}, timeout=30)
    if response.status_code != 200:
        return response.status_code, response.json()["detail"]
    stream = httpx.get(f"{base}gradio_api/call/{api}/{response.json()['event_id']}", timeout=60).text
    lines = stream.strip().splitlines()
    assert lines[-2] == "event: complete", stream
    return 200, json.loads(lines[-1].removeprefix("data: "))


def raw_predict(base: str, payload: dict) -> tuple[dict | None, str]:
    status, answer = raw_call(base, payload)
    assert status == 200, answer
    label, markdown = answer
    return label, markdown


def refused(markdown: str) -> bool:
    return markdown == f"### Cannot read this photo\n\n{plain(NOT_AN_UPLOAD)}"


def test_server_files_are_never_read_and_cannot_be_probed(any_url: str, tmp_path: Path) -> None:
    """Under both ways of serving, a payload naming a server file (with or without Gradio's file metadata, on the page's
    and the JSON endpoint) gets one identical refusal before Gradio copies or reads it; /dev/zero and a FIFO block
    nothing (the health check answers at once afterwards)."""
    from gradio.utils import get_upload_folder

    secret = tmp_path / "server_photo.jpg"
    secret.write_bytes(jpeg_bytes(seed=3))
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    planted = Path(get_upload_folder()) / "planted"  # a link inside the upload folder to a file outside it
    planted.mkdir(parents=True, exist_ok=True)
    (planted / "link.jpg").unlink(missing_ok=True)
    (planted / "link.jpg").symlink_to(secret)
    before = set(Path(get_upload_folder()).rglob("*"))
    paths = [secret, tmp_path / "missing.jpg", fifo, Path("/dev/zero"), Path("/etc/hostname"), planted / "link.jpg"]
    with time_limit(60):
        for path in paths:
            for payload in ({"path": str(path)}, {"path": str(path), "meta": FILE_META}):
                for api in ("predict", "tag"):
                    assert raw_call(any_url, payload, api) == (400, NOT_AN_UPLOAD), (path, payload, api)
        assert httpx.get(f"{any_url}gradio_api/info", timeout=5).status_code == 200
        for path in (secret, Path("/etc/hostname")):  # nor through Gradio's file route
            response = httpx.get(f"{any_url}gradio_api/file={path}", timeout=5)
            assert response.status_code >= 400 and response.content != path.read_bytes()
    assert set(Path(get_upload_folder()).rglob("*")) == before  # nothing was copied in


def test_upload_is_answered_then_deleted(app_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "UPLOAD_GRACE_S", 0.2)
    path = upload(app_url, jpeg_bytes(seed=7), "deleted_after.jpg")
    assert Path(path).is_file()
    label, _ = raw_predict(app_url, {"path": path, "meta": FILE_META, "orig_name": "deleted_after.jpg"})
    assert len(label["confidences"]) == 5
    deadline = time.monotonic() + 10
    while Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(path).exists() and not Path(path).parent.exists()
    assert raw_call(app_url, {"path": path, "meta": FILE_META}) == (400, NOT_AN_UPLOAD)  # a replay finds nothing


def test_the_same_photo_from_two_clients_is_answered_twice(app_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Gradio stores identical uploads at one path: the first answer must not delete the second client's photo."""
    monkeypatch.setattr(app, "UPLOAD_GRACE_S", 60.0)
    first, second = upload(app_url, jpeg_bytes(seed=8), "same.jpg"), upload(app_url, jpeg_bytes(seed=8), "same.jpg")
    assert first == second
    for path in (first, second):
        label, markdown = raw_predict(app_url, {"path": path, "meta": FILE_META, "orig_name": "same.jpg"})
        assert label and len(label["confidences"]) == 5, markdown


def test_examples_survive_being_answered(client: Client) -> None:
    first = client.predict(handle_file(str(min(app.EXAMPLES_DIR.glob("*.jpg")))), api_name="/predict")
    assert len(first[0]["confidences"]) == 5
    assert all(path.is_file() for path in app.EXAMPLES_DIR.glob("*.jpg"))


def test_urls_are_neither_fetched_nor_advertised(client: Client, app_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from gradio import processing_utils

    fetched = []

    async def download(url, *args, **kwargs):
        fetched.append(url)
        raise AssertionError("the server fetched a URL")

    monkeypatch.setattr(processing_utils, "async_ssrf_protected_download", download)
    for payload in (
        {"path": "https://example.com/photo.jpg", "meta": FILE_META},
        {"url": "https://example.com/photo.jpg"},
        {
            "url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
        },
    ):
        assert raw_call(app_url, payload) == (400, NOT_AN_UPLOAD), payload
    assert fetched == []
    schema = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/predict"]["parameters"][0][
        "type"
    ]
    assert "url" not in schema["properties"] and schema["required"] == ["path"]


def test_read_upload_only_reads_regular_files_inside_the_upload_folder(tmp_path: Path) -> None:
    uploads, outside = tmp_path / "uploads", tmp_path / "outside"
    (uploads / "abc").mkdir(parents=True)
    outside.mkdir()
    (uploads / "abc" / "photo.jpg").write_bytes(b"photo bytes")
    (outside / "secret.jpg").write_bytes(b"secret")
    (uploads / "abc" / "link.jpg").symlink_to(outside / "secret.jpg")
    (uploads / "abc" / "dirlink").symlink_to(outside)
    os.mkfifo(uploads / "abc" / "pipe.jpg")
    (uploads / "abc" / "big.jpg").write_bytes(b"x" * 101)
    assert read_upload(str(uploads / "abc" / "photo.jpg"), uploads, 100) == b"photo bytes"
    for path in (
        outside / "secret.jpg",
        uploads / "abc" / "link.jpg",
        uploads / "abc" / "dirlink" / "secret.jpg",
        uploads / "abc" / ".." / ".." / "outside" / "secret.jpg",
        uploads / "abc" / "pipe.jpg",
        uploads / "abc" / "big.jpg",
        uploads / "abc" / "missing.jpg",
        uploads,
        "",
    ):
        with time_limit(5), pytest.raises(UploadRefused) as error:
            read_upload(str(path), uploads, 100)
        assert str(error.value) == NOT_AN_UPLOAD


def test_deferred_deletion_spares_a_file_uploaded_again(tmp_path: Path) -> None:
    answered, again = tmp_path / "h1" / "a.jpg", tmp_path / "h2" / "b.jpg"
    for path in (answered, again):
        path.parent.mkdir()
        path.write_bytes(b"x")
    uploaded = {str(answered), str(again)}
    deletion = DeferredDeletion(uploaded)
    deletion.start()
    deletion.schedule(str(answered), 0.1)
    deletion.schedule(str(again), 0.1)
    replacement = tmp_path / "h2" / "upload.tmp"
    replacement.write_bytes(b"y")
    os.utime(replacement, ns=(1, 1))
    replacement.rename(again)  # the same photo uploaded again (Gradio renames the new upload over the old path)
    time.sleep(1)
    assert not answered.exists() and again.read_bytes() == b"y" and uploaded == {str(again)}


def test_discard_upload_deletes_only_uploads(tmp_path: Path) -> None:
    upload_path, example = tmp_path / "h1" / "photo.jpg", tmp_path / "h2" / "example.jpg"
    for path in (upload_path, example):
        path.parent.mkdir()
        path.write_bytes(b"x")
    uploaded, tracked = {str(upload_path)}, {str(upload_path), str(example)}
    discard_upload(str(upload_path), uploaded, tracked)
    discard_upload(str(example), uploaded, tracked)
    assert not upload_path.parent.exists() and example.is_file()
    assert uploaded == set() and tracked == {str(example)}


async def _reader(scope, receive, send) -> None:
    """Stands for an upload route: reads the body; a disconnect (the quota cut it off) ends it with 400; a body of
    b"bad" is refused (415) like a file that is not a photo."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            await send({"type": "http.response.start", "status": 400})
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 415 if body.startswith(b"bad") else 200})


def _post(quota: UploadQuota, client: str, size: int, declare: int | None = None, fill: bytes = b"x") -> int:
    """The status a client gets for a SIZE-byte upload through QUOTA, sent in 100-byte chunks (DECLARE: the
    Content-Length header claimed, by default SIZE; -1: none)."""
    data = (fill * size)[:size]
    chunks = [data[i : i + 100] for i in range(0, size, 100)]
    declared = size if declare is None else declare
    headers = [(b"content-length", str(declared).encode())] if declared >= 0 else []
    scope = {"type": "http", "method": "POST", "path": "/v1/tag", "headers": headers, "client": (client, 1234)}
    sent: list[dict] = []

    async def receive():
        if not chunks:  # a client that promised more and sent nothing: waits until the quota gives up on it
            await asyncio.sleep(3600)
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks) or declared > size}

    async def send(message):
        sent.append(message)

    asyncio.run(quota(scope, receive, send))
    return sent[0]["status"]


def test_upload_quota_per_client_and_in_total(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("landmark_lib.serve.upload_limits.time.monotonic", lambda: now[0])
    quota = UploadQuota(_reader, per_client=1000, total=2500, window_s=600)
    assert _post(quota, "10.0.0.1", 800) == 200
    assert _post(quota, "10.0.0.1", 300) == 429  # over this client's 1000 bytes
    assert _post(quota, "10.0.0.2", 900) == 200 and _post(quota, "10.0.0.3", 700) == 200
    assert _post(quota, "10.0.0.4", 300) == 429  # over everyone's 2500 bytes
    now[0] += 601
    assert _post(quota, "10.0.0.1", 800) == 200  # the window moved on (Gradio's cleanup deleted those files)
    assert _post(quota, "10.0.0.5", 1200, declare=-1) == 429  # no Content-Length: counted as it arrives, cut off


def test_the_quota_charges_bytes_received_and_refunds_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Header-only requests declaring a big body, bodies abandoned midway and refused uploads cost nothing; the
    message of a full total does not blame the client."""
    quota = UploadQuota(_reader, per_client=1000, total=2500, window_s=600, timing=(0.05, 0.05, 10**9))
    for address in range(9):  # nine addresses declare 900 bytes each and send nothing: cut off after the idle time
        assert _post(quota, f"10.0.1.{address}", 0, declare=900) == 408
    assert _post(quota, "10.0.0.1", 300, declare=900) == 408  # sent 300 of 900, then stalled: refunded
    assert _post(quota, "10.0.0.1", 900, fill=b"bad") == 415  # refused by the route: refunded
    assert quota.total == 0 and quota.used == {}
    assert _post(quota, "10.0.0.1", 1000) == 200  # the whole allowance is still there
    assert quota.total == 1000
    for address in (2, 3):
        assert _post(quota, f"10.0.0.{address}", 700) == 200
    status, detail = _refusal(quota, "10.0.0.9", 200)
    assert status == 429 and "all users together" in detail and "your address" not in detail


def _refusal(quota: UploadQuota, client: str, size: int) -> tuple[int, str]:
    sent: list[dict] = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/gradio_api/upload",
        "headers": [(b"content-length", str(size).encode())],
        "client": (client, 1),
    }

    async def receive():
        return {"type": "http.request", "body": b"x" * size, "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(quota(scope, receive, send))
    return sent[0]["status"], json.loads(sent[1]["body"])["detail"]


def test_one_client_holds_a_bounded_number_of_uploads(monkeypatch: pytest.MonkeyPatch) -> None:
    quota = UploadQuota(_reader, per_client_uploads=2, timing=(5.0, 5.0, 1))
    statuses: list[int] = []

    async def scenario() -> None:
        started = asyncio.Event()

        async def stalled(client: str) -> int:
            sent: list[dict] = []
            scope = {"type": "http", "method": "POST", "path": "/v1/tag", "headers": [], "client": (client, 1)}

            async def receive():
                started.set()
                await asyncio.sleep(0.3)
                return {"type": "http.request", "body": b"x", "more_body": False}

            async def send(message):
                sent.append(message)

            await quota(scope, receive, send)
            return sent[0]["status"]

        results = await asyncio.gather(*(stalled("10.0.0.1") for _ in range(3)), stalled("10.0.0.2"))
        statuses.extend(results)

    asyncio.run(scenario())
    assert sorted(statuses[:3]) == [200, 200, 429] and statuses[3] == 200  # the other client is not affected


def test_launch_installs_the_upload_quota(service) -> None:
    demo = app.build_demo(service)
    try:
        app.launch(demo, "127.0.0.1", None, block=False)
        assert {UploadQuota, UploadsOnly} <= {m.cls for m in demo.app.user_middleware}
    finally:
        demo.close()


def test_gradio_server_name_and_port_are_respected(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from landmark_lib.serve import server

    launched = {}
    fake = SimpleNamespace(hub_source=None, startup_line=lambda: "model")
    monkeypatch.setattr(server.LandmarkService, "from_spec", classmethod(lambda cls, *a, **k: fake))
    monkeypatch.setattr(
        server, "serve", lambda service, host, port, share=False, api_only=False: launched.update(host=host, port=port)
    )
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    assert landmark(["serve"]) == 0
    assert launched == {"host": "0.0.0.0", "port": 7999}
    assert landmark(["serve", "--host", "127.0.0.1", "--port", "8001"]) == 0
    assert launched == {"host": "127.0.0.1", "port": 8001}
    monkeypatch.setenv("GRADIO_SERVER_PORT", "http")
    assert "GRADIO_SERVER_PORT must be a port number" in cli_error(capsys, "serve")


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan", "high"])
def test_threshold_out_of_range_is_a_usage_error(
    value: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args, **kwargs):
        raise AssertionError(f"--threshold {value} was accepted")

    monkeypatch.setattr(app.LandmarkService, "from_spec", classmethod(never))
    with pytest.raises(SystemExit):
        landmark(["serve", "--threshold", value])
    assert "must be a probability between 0 and 1" in capsys.readouterr().err


def test_teach_uploads_leave_no_temp_files(app_url: str) -> None:
    """gr.File's own preprocess made an empty temp file in the upload folder for every path of a Teach request."""
    import gradio as gr
    from gradio.data_classes import FileData, ListFiles
    from gradio.utils import get_upload_folder

    path = upload(app_url, jpeg_bytes(seed=11), "teach.jpg")
    files = upload_paths(gr.File(file_count="multiple"))
    before = set(Path(get_upload_folder()).rglob("*"))
    assert files.preprocess(ListFiles(root=[FileData(path=path)] * 50)) == [path] * 50
    assert set(Path(get_upload_folder()).rglob("*")) == before


def test_slow_uploads_and_header_only_requests_do_not_lock_out_the_rest_api(service) -> None:
    """80 connections trickling a body from ten addresses and a burst of header-only requests: an ordinary photo is
    still answered at once (slots were taken before the body was read: every POST /v1/tag answered 503)."""
    import socket

    url, server = start_uvicorn(app.build_app(service))
    port = int(url.rsplit(":", 1)[1])
    body_head = b'--b\r\nContent-Disposition: form-data; name="photo"; filename="slow.jpg"\r\n\r\n'
    sockets = []
    try:
        for index in range(80):
            sock = socket.create_connection(("127.0.0.1", port), source_address=(f"127.0.0.{2 + index // 8}", 0))
            sock.sendall(
                b"POST /v1/tag HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                + (b"Content-Length: 100000\r\n\r\n" + body_head if index % 2 else b"Content-Length: 100000\r\n\r\n")
            )
            sockets.append(sock)
        for _ in range(2):  # the trickle (the server has seen every connection by then: 2 s)
            time.sleep(1)
            for sock in sockets[1::2]:  # the others sent their headers only (the header-only burst)
                sock.sendall(b"x")  # one more byte of the photo
        start = time.monotonic()
        response = httpx.post(f"{url}/v1/tag", files=[("photo", ("photo.jpg", jpeg_bytes(), "image/jpeg"))], timeout=30)
        assert response.status_code == 200, response.text
        assert time.monotonic() - start < 3
    finally:
        for sock in sockets:
            sock.close()
        server.should_exit = True


def test_multipart_content_type_is_case_insensitive(service) -> None:
    url, server = start_uvicorn(app.build_app(service))
    try:
        request = httpx.Request("POST", f"{url}/v1/tag", files=[("photo", ("p.jpg", jpeg_bytes(), "image/jpeg"))])
        request.headers["content-type"] = request.headers["content-type"].replace(
            "multipart/form-data", "MULTIPART/FORM-DATA"
        )
        response = httpx.Client(timeout=30).send(request)
        assert response.status_code == 200, response.text
    finally:
        server.should_exit = True
