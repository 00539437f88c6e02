"""REST API vs the Gradio path, next to the model's own time, in one run: starts `app.py --model DIR` (the page and
the REST API in one process) on loopback and sends a 640x480 JPEG

  - REST single photo: sequential POST /v1/tag, one photo each (p50 / p90 latency),
  - 8 clients: REST POST /v1/tag vs Gradio /predict (gradio_client: upload + queue + event stream), requests/s,
  - batches: POST /v1/tag with 16 photos per request, photos/s,

and before the server starts, the model's own time in this process (LandmarkService.predict_photos on decoded
photos, same backend and threads as the app: batch 1 and batch 16) and the decode time of the JPEG.

    PYTHONPATH=. .venv/bin/python benchmarks/rest_api.py --model models/default [--requests 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from gradio_client import Client, handle_file
from PIL import Image

from benchmarks.app_startup import free_port, kill_tree, wait_until
from landmark_lib import threads
from landmark_lib.runtime.photos import read_photo
from landmark_lib.serve.service import LandmarkService
from landmark_lib.serve.web import CONCURRENCY

REPO_ROOT = Path(__file__).resolve().parents[1]
BATCH = 16


def photo_jpeg(source: Path) -> bytes:
    """SOURCE resized to 640x480, as a quality-90 JPEG (a typical upload after a phone app's resize)."""
    with Image.open(source) as image:
        buffer = io.BytesIO()
        image.convert("RGB").resize((640, 480), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
        return buffer.getvalue()


def timed(fn, repeats: int) -> list[float]:
    """Seconds of each of REPEATS calls of FN (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def model_time(model: str, jpeg: bytes, repeats: int) -> dict:
    """The model's own time in this process, the app's backend and threads: decode, batch 1 and batch 16."""
    service = LandmarkService.from_spec(model, num_threads=threads.per_request(CONCURRENCY))
    photo = read_photo(jpeg, "photo.jpg", service.max_short_side)
    decode = statistics.median(timed(lambda: read_photo(jpeg, "photo.jpg", service.max_short_side), repeats))
    one = statistics.median(timed(lambda: service.predict_photos([photo]), repeats))
    batch = statistics.median(timed(lambda: service.predict_photos([photo] * BATCH), max(3, repeats // 4)))
    return {
        "backend": service.backend,
        "threads": service.threads,
        "decode_ms": decode * 1000,
        "batch1_ms": one * 1000,
        "batch1_per_s": 1 / one,
        "batch16_photos_per_s": BATCH / batch,
    }


def post(client: httpx.Client, url: str, jpeg: bytes, count: int = 1) -> None:
    files = [("photo", (f"{i}.jpg", jpeg, "image/jpeg")) for i in range(count)]
    response = client.post(f"{url}/v1/tag", files=files, timeout=60)
    if response.status_code != 200 or len(response.json()) != count:
        raise RuntimeError(f"POST /v1/tag answered {response.status_code}: {response.text[:200]}")


def rate(clients: int, requests: int, make_client, call) -> float:
    """Requests/s of REQUESTS calls spread over CLIENTS threads, each with its own client (made before timing)."""
    local = [make_client() for _ in range(clients)]
    counter, lock = iter(range(requests)), threading.Lock()

    def work(client) -> None:
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            call(client)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(work, local))
    seconds = time.perf_counter() - start
    for client in local:
        client.close()
    return requests / seconds


def server_figures(url: str, jpeg: bytes, photo_path: Path, requests: int) -> dict:
    """The HTTP measurements against the running app at URL."""
    with httpx.Client() as client:
        single = sorted(timed(lambda: post(client, url, jpeg), requests))
        batches = timed(lambda: post(client, url, jpeg, BATCH), max(3, requests // 8))
    rest_8 = rate(8, requests * 2, httpx.Client, lambda c: post(c, url, jpeg))

    def gradio(client: Client) -> None:
        label, _ = client.predict(handle_file(str(photo_path)), api_name="/predict")
        if not label or not label.get("confidences"):
            raise RuntimeError("the Gradio path answered without a top-5")

    gradio_8 = rate(8, requests, lambda: Client(url, verbose=False, download_files=False), gradio)
    return {
        "rest_single_p50_ms": statistics.median(single) * 1000,
        "rest_single_p90_ms": single[int(0.9 * (len(single) - 1))] * 1000,
        "rest_8_clients_per_s": rest_8,
        "gradio_8_clients_per_s": gradio_8,
        "rest_batch16_photos_per_s": BATCH / statistics.median(batches),
    }


def measure(model: str, photo: Path, requests: int, timeout: float) -> dict:
    jpeg = photo_jpeg(photo)
    own = model_time(model, jpeg, requests)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(REPO_ROOT / "app.py"), "--model", model, "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "GRADIO_ANALYTICS_ENABLED": "False"}
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as log:
        photo_path = Path(tmp) / "photo.jpg"
        photo_path.write_bytes(jpeg)
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        try:
            deadline = time.monotonic() + timeout
            wait_until(deadline, process, log, lambda: httpx.get(f"{url}/v1/health", timeout=2).raise_for_status())
            served = server_figures(url, jpeg, photo_path, requests)
        finally:
            kill_tree(process)
    return {"model": model, "photo": f"{photo.name} as 640x480 JPEG ({len(jpeg)} bytes)", "own": own, **served}


def table(r: dict) -> str:
    own = r["own"]
    rows = [
        ("REST, one photo per request, sequential: p50 latency", f"{r['rest_single_p50_ms']:.1f} ms (p90 {r['rest_single_p90_ms']:.1f})", f"{own['decode_ms'] + own['batch1_ms']:.1f} ms (decode {own['decode_ms']:.1f} + model {own['batch1_ms']:.1f})"),
        ("REST, 8 clients, one photo each", f"{r['rest_8_clients_per_s']:.1f} req/s", f"{own['batch1_per_s']:.1f} photos/s at batch 1"),
        ("Gradio /predict, 8 clients (gradio_client)", f"{r['gradio_8_clients_per_s']:.1f} req/s", f"REST / Gradio = {r['rest_8_clients_per_s'] / r['gradio_8_clients_per_s']:.1f}x"),
        (f"REST, {BATCH} photos per request, sequential", f"{r['rest_batch16_photos_per_s']:.1f} photos/s", f"{own['batch16_photos_per_s']:.1f} photos/s at batch {BATCH}"),
    ]  # fmt: skip
    lines = ["| | served | the model's own time (same process kind, no HTTP) |", "| --- | ---: | ---: |"]
    return "\n".join([*lines, *(f"| {a} | {b} | {c} |" for a, b, c in rows)])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO_ROOT / "models" / "default"), help="export folder (app.py --model)")
    parser.add_argument("--photo", type=Path, default=REPO_ROOT / "examples" / "colosseum.jpg", help="photo to send")
    parser.add_argument(
        "--requests", type=int, default=60, help="requests per sequential figure (x2 for REST 8 clients)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300, help="give up waiting for the app after this many seconds"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    result = measure(args.model, args.photo, max(8, args.requests), args.timeout)
    print(f"app.py --model {args.model}, backend {result['own']['backend']}, {result['photo']}, {os.cpu_count()} cores")
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
