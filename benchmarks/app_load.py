"""Latency of the app under concurrent users: does the queue keep p95 reasonable when 16 people upload at once?

Starts `app.py` in its own process on loopback (or uses --url), measures a single client's p50 first, then N
gradio_client clients sending M requests each (bounded by --time-limit), and prints p50/p95/p99, p95/single_p50
and the error count.

    PYTHONPATH=. .venv/bin/python benchmarks/app_load.py --model EXPORT_DIR --clients 16 --requests 25
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file

from benchmarks.app_startup import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUEST_TIMEOUT_S = 120


@contextmanager
def serve_app(model: str | None, startup_timeout_s: float = 180) -> Iterator[str]:
    """app.py in a child process (so client threads do not share its interpreter); yields its URL."""
    port = free_port()
    command = [sys.executable, str(REPO_ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port)]
    if model:
        command += ["--model", model]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + startup_timeout_s
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    raise SystemExit(f"app.py exited during start-up:\n{log.read().decode(errors='replace')[-2000:]}")
                try:
                    urllib.request.urlopen(url, timeout=2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"app.py did not answer on {url} within {startup_timeout_s:.0f}s") from None
                    time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def one_request(client: Client, photo: Path) -> float:
    """Seconds for one upload + prediction; raises if the app answered without a top-5."""
    start = time.perf_counter()
    label, _ = client.submit(handle_file(str(photo)), api_name="/predict").result(timeout=REQUEST_TIMEOUT_S)
    elapsed = time.perf_counter() - start
    if not label or not label.get("confidences"):
        raise RuntimeError(f"no top-5 for {photo.name}")
    return elapsed


def run_client(url: str, photos: list[Path], requests: int, deadline: float, offset: int) -> tuple[list[float], int]:
    """One simulated user: REQUESTS sequential uploads (stops early at DEADLINE); returns latencies and errors."""
    latencies, errors = [], 0
    client = Client(url, verbose=False)
    try:
        for photo in itertools.islice(itertools.cycle(photos), offset, offset + requests):
            if time.monotonic() > deadline:
                break
            try:
                latencies.append(one_request(client, photo))
            except Exception as error:  # count every failure (HTTP, queue full, timeout, bad answer) and carry on
                errors += 1
                print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
    finally:
        client.close()
    return latencies, errors


def percentiles(values: list[float]) -> dict[str, float]:
    return {f"p{q}": float(np.percentile(values, q)) for q in (50, 95, 99)} if values else {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="a running app to measure (default: start app.py here)")
    parser.add_argument("--model", default=None, help="model spec for the started app (default: app.py's default)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent users")
    parser.add_argument("--requests", type=int, default=25, help="requests per user")
    parser.add_argument("--single", type=int, default=20, help="requests of the single-client baseline")
    parser.add_argument("--time-limit", type=float, default=300, help="stop issuing requests after this many seconds")
    parser.add_argument(
        "--photos", type=Path, default=REPO_ROOT / "examples", help="folder of photos to upload (*.jpg)"
    )
    args = parser.parse_args(argv)
    photos = sorted(args.photos.glob("*.jpg"))
    if not photos:
        raise SystemExit(f"no *.jpg photos in {args.photos}")

    with serve_app(args.model) if args.url is None else nullcontext(args.url) as url:
        deadline = time.monotonic() + args.time_limit
        run_client(url, photos, 2, deadline, 0)  # warm-up: first requests pay for lazy initialisation
        single, single_errors = run_client(url, photos, args.single, deadline, 0)
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(lambda i: run_client(url, photos, args.requests, deadline, i), range(args.clients)))
        wall = time.perf_counter() - start

    latencies = [t for lats, _ in results for t in lats]
    errors = single_errors + sum(e for _, e in results)
    single_p50 = percentiles(single).get("p50", float("nan"))
    stats = percentiles(latencies)
    print(f"single client: {len(single)} requests, p50 {single_p50 * 1000:.0f} ms")
    print(
        f"{args.clients} clients x {args.requests} requests: {len(latencies)} done in {wall:.1f} s ({len(latencies) / wall:.1f} req/s)"
    )
    if stats:
        print("latency " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in stats.items()))
        print(f"p95 / single p50: {stats['p95'] / single_p50:.1f}x")
    skipped = args.clients * args.requests - len(latencies) - sum(e for _, e in results)
    print(
        f"errors: {errors}" + (f"; {skipped} requests not sent (time limit {args.time_limit:.0f} s)" if skipped else "")
    )


if __name__ == "__main__":
    main()
