"""The public app reads only its own uploads, forgets them after answering, bounds what a client may store, never
fetches a URL, advertises only what it accepts, and starts where GRADIO_SERVER_NAME/PORT say."""

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
from landmark_lib.serve.uploads import (
    NOT_AN_UPLOAD,
    DeferredDeletion,
    UploadQuota,
    UploadRefused,
    discard_upload,
    read_upload,
)

from helpers import cli_error, make_photo, time_limit

FILE_META = {"_type": "gradio.FileData"}


@pytest.fixture(scope="module")
def client(app_url: str) -> Iterator[Client]:
    client = Client(app_url, verbose=False)
    yield client
    client.close()


def jpeg_bytes(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    make_photo(seed=seed).save(buffer, "JPEG")
    return buffer.getvalue()


def upload(app_url: str, data: bytes, name: str = "photo.jpg") -> str:
    response = httpx.post(f"{app_url}gradio_api/upload", files={"files": (name, data, "image/jpeg")}, timeout=30)
    response.raise_for_status()
    return response.json()[0]


def raw_predict(app_url: str, payload: dict) -> tuple[dict | None, str]:
    """/predict over plain HTTP with PAYLOAD as sent (gradio_client would upload local paths itself first)."""
    event = httpx.post(f"{app_url}gradio_api/call/predict", json={"data": [payload]}, timeout=30).json()["event_id"]
    stream = httpx.get(f"{app_url}gradio_api/call/predict/{event}", timeout=60).text
    lines = stream.strip().splitlines()
    assert lines[-2] == "event: complete", stream
    label, markdown = json.loads(lines[-1].removeprefix("data: "))
    return label, markdown


def refused(markdown: str) -> bool:
    return markdown == f"### Cannot read this photo\n\n{NOT_AN_UPLOAD}"


def test_server_files_are_never_read_and_cannot_be_probed(app_url: str, tmp_path: Path) -> None:
    """A plain {"path": ...} skips Gradio's upload-folder check: the app must refuse it itself, the same way for all."""
    secret = tmp_path / "server_photo.jpg"
    secret.write_bytes(jpeg_bytes())
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with time_limit(60):
        for path in (secret, tmp_path / "missing.jpg", fifo, Path("/dev/zero"), Path("/etc/hostname")):
            label, markdown = raw_predict(app_url, {"path": str(path)})
            assert not label and refused(markdown), (path, markdown)


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
    label, markdown = raw_predict(app_url, {"path": path, "meta": FILE_META})  # a replay finds nothing
    assert not label and refused(markdown)


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
        label, markdown = raw_predict(app_url, payload)
        assert not label and refused(markdown), (payload, markdown)
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
    """Stands for Gradio's upload route: reads the body; a disconnect (the quota cut it off) ends it with 400."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            await send({"type": "http.response.start", "status": 400})
            return
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200})


def _post(quota: UploadQuota, client: str, size: int, declare_length: bool = True) -> int:
    """The status a client gets for a SIZE-byte upload through QUOTA, sent in 100-byte chunks."""
    chunks = [b"x" * min(100, size - i) for i in range(0, size, 100)]
    headers = [(b"content-length", str(size).encode())] if declare_length else []
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/gradio_api/upload",
        "headers": headers,
        "client": (client, 1234),
    }
    sent: list[dict] = []

    async def receive():
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    asyncio.run(quota(scope, receive, send))
    return sent[0]["status"]


def test_upload_quota_per_client_and_in_total(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("landmark_lib.serve.uploads.time.monotonic", lambda: now[0])
    quota = UploadQuota(_reader, per_client=1000, total=2500, window_s=600)
    assert _post(quota, "10.0.0.1", 800) == 200
    assert _post(quota, "10.0.0.1", 300) == 429  # over this client's 1000 bytes
    assert _post(quota, "10.0.0.2", 900) == 200 and _post(quota, "10.0.0.3", 700) == 200
    assert _post(quota, "10.0.0.4", 300) == 429  # over everyone's 2500 bytes
    now[0] += 601
    assert _post(quota, "10.0.0.1", 800) == 200  # the window moved on (Gradio's cleanup deleted those files)
    assert (
        _post(quota, "10.0.0.5", 1200, declare_length=False) == 400
    )  # no Content-Length: counted as it arrives, cut off


def test_launch_installs_the_upload_quota(service) -> None:
    demo = app.build_demo(service)
    try:
        app.launch(demo, "127.0.0.1", None, block=False)
        assert any(m.cls is UploadQuota for m in demo.app.user_middleware)
    finally:
        demo.close()


def test_gradio_server_name_and_port_are_respected(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    launched = {}
    monkeypatch.setattr(
        app.LandmarkService, "from_spec", classmethod(lambda cls, *a, **k: SimpleNamespace(hub_source=None))
    )
    monkeypatch.setattr(app, "serve", lambda service, host, port, share=False: launched.update(host=host, port=port))
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
