"""download.py against a local Range-capable HTTP server: full fetch, resume, bad archives, unreachable URL."""

from __future__ import annotations

import io
import socket
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from landmark_lib.cli import main
from landmark_lib.data.download import DownloadError, ExpectedCounts, download_dataset

from helpers import free_port, time_limit

SMALL = ExpectedCounts(classes=2, train=6, test=4)


@pytest.fixture(autouse=True)
def _time_limit():
    with time_limit(20):
        yield


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def make_zip(train_per_class: int = 3, test_per_class: int = 2, classes: int = 2) -> bytes:
    """A course-layout zip: landmark_images/{train,test}/NN.Name/*.jpg plus a README that is not counted."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("landmark_images/README.md", "tiny test set")
        seed = 0
        for split, n in (("train", train_per_class), ("test", test_per_class)):
            for c in range(classes):
                for i in range(n):
                    seed += 1
                    archive.writestr(f"landmark_images/{split}/{c:02d}.Place_{c}/{i}.jpg", _jpeg(seed))
    return buffer.getvalue()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        server = self.server
        data: bytes = server.payload  # type: ignore[attr-defined]
        server.requests.append(self.headers.get("Range"))  # type: ignore[attr-defined]
        start = 0
        if self.headers.get("Range") and not server.ignore_range:  # type: ignore[attr-defined]
            start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        cut = server.cut_first_after  # type: ignore[attr-defined]
        if cut is not None and len(server.requests) == 1:  # type: ignore[attr-defined]
            self.wfile.write(body[:cut])  # then drop the connection mid-transfer
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def serve():
    """serve(payload, cut_first_after=None) -> (url, list of Range headers the server saw)."""
    servers = []

    def start(payload: bytes, cut_first_after: int | None = None, ignore_range: bool = False) -> tuple[str, list]:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.payload, server.cut_first_after, server.requests = payload, cut_first_after, []
        server.ignore_range = ignore_range
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/landmark_images.zip", server.requests

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _image_count(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*.jpg"))


def test_full_download_verifies_and_extracts(serve, tmp_path):
    url, requests = serve(make_zip())
    target = download_dataset(tmp_path, url=url, expected=SMALL, timeout=5, progress=False)
    assert target == tmp_path / "landmark_images"
    assert _image_count(target / "train") == 6 and _image_count(target / "test") == 4
    assert sorted(p.name for p in (target / "train").iterdir()) == ["00.Place_0", "01.Place_1"]
    assert requests == [None]
    assert not list(tmp_path.glob("*.zip*"))  # zip and .part removed after extraction


def test_interrupted_transfer_resumes_with_range(serve, tmp_path):
    payload = make_zip()
    url, requests = serve(payload, cut_first_after=len(payload) // 3)
    target = download_dataset(tmp_path, url=url, expected=SMALL, timeout=5, keep_zip=True, progress=False)
    assert requests == [None, f"bytes={len(payload) // 3}-"]
    assert (tmp_path / "landmark_images.zip").read_bytes() == payload
    assert _image_count(target) == 10


def test_partial_file_from_earlier_run_is_resumed(serve, tmp_path):
    payload = make_zip()
    (tmp_path / "landmark_images.zip.part").write_bytes(payload[:100])
    url, requests = serve(payload)
    download_dataset(tmp_path, url=url, expected=SMALL, timeout=5, keep_zip=True, progress=False)
    assert requests == ["bytes=100-"]
    assert (tmp_path / "landmark_images.zip").read_bytes() == payload


def test_server_without_range_support_restarts_cleanly(serve, tmp_path):
    payload = make_zip()
    (tmp_path / "landmark_images.zip.part").write_bytes(b"stale bytes")
    url, requests = serve(payload, ignore_range=True)
    download_dataset(tmp_path, url=url, expected=SMALL, timeout=5, keep_zip=True, progress=False)
    assert requests == ["bytes=11-"]
    assert (tmp_path / "landmark_images.zip").read_bytes() == payload


def test_wrong_counts_are_refused(serve, tmp_path):
    url, _ = serve(make_zip(train_per_class=2))
    with pytest.raises(DownloadError, match=r"holds 2 classes, 4 train and 4 test images.*expected 2, 6 and 4"):
        download_dataset(tmp_path, url=url, expected=SMALL, timeout=5, progress=False)
    assert not (tmp_path / "landmark_images").exists()


def test_corrupt_zip_is_refused(serve, tmp_path):
    payload = bytearray(make_zip())
    info = zipfile.ZipFile(io.BytesIO(payload)).getinfo("landmark_images/train/00.Place_0/1.jpg")
    payload[info.header_offset + 30 + len(info.filename) + 20] ^= 0xFF  # a byte of the stored JPEG: CRC fails
    url, _ = serve(bytes(payload))
    with pytest.raises(DownloadError, match="corrupt"):
        download_dataset(tmp_path, url=url, expected=SMALL, timeout=5, progress=False)
    not_zip = tmp_path / "not.zip"
    not_zip.write_bytes(b"<html>Access denied</html>")
    with pytest.raises(DownloadError, match="not a readable zip"):
        download_dataset(tmp_path / "x", url=str(not_zip), expected=SMALL, progress=False)


def test_local_zip_path_is_used_directly(tmp_path):
    archive = tmp_path / "copy.zip"
    archive.write_bytes(make_zip())
    target = download_dataset(tmp_path / "out", url=str(archive), expected=SMALL, progress=False)
    assert _image_count(target) == 10 and archive.exists()


def test_unreachable_url_fails_fast_with_clear_message(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}/x.zip"
    started = time.monotonic()
    code = main(["data", "download", "--dest", str(tmp_path), "--url", url])
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert f"Cannot reach {url}" in err and "--data PATH/landmark_images" in err and "--url" in err


def test_silent_server_times_out(tmp_path):
    """A host that accepts the connection but never answers must not hang the command."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/x.zip"
        started = time.monotonic()
        with pytest.raises(DownloadError, match="Cannot reach"):
            download_dataset(tmp_path, url=url, expected=SMALL, timeout=1, progress=False)
        assert time.monotonic() - started < 5


def test_cli_reports_bad_archive_in_one_line(tmp_path, capsys):
    not_zip = tmp_path / "bad.zip"
    not_zip.write_bytes(b"nope")
    assert main(["data", "download", "--dest", str(tmp_path / "d"), "--url", str(not_zip)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
