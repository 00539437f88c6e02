"""Cold start and memory of the app: how long from `python app.py` to the first answer, and how much RAM it takes.

Starts `app.py --model DIR` on loopback as a child process, then reports
  - seconds from process start to the first REST answer (GET /v1/health), to the first page answer (GET / with the
    Gradio page mounted, not the 503 "starting" page) and to the first answered prediction (gradio_client),
  - the model's threads per request (from the app's start-up line),
  - RSS of the app process tree (psutil, children included) when ready and its peak during a short request burst.
Everything is bounded by --timeout; the server is killed at the end, also on errors.

    PYTHONPATH=. .venv/bin/python benchmarks/app_startup.py --model exports/effnet [--backend torchscript] [--burst 20]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from gradio_client import Client, handle_file

from landmark_lib.bundle import BACKENDS

REPO_ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


class MemorySampler(threading.Thread):
    """Samples the RSS of a process and all its descendants every INTERVAL seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.process, self.interval = psutil.Process(pid), interval
        self.samples: list[tuple[float, int]] = []  # (monotonic time, bytes)
        self._stop_event = threading.Event()

    def rss(self) -> int:
        total = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:  # a child that just exited
                continue
        return total

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.samples.append((time.monotonic(), self.rss()))
            except psutil.Error:  # the app itself exited; the caller notices
                return
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def peak(self, since: float = 0.0) -> int:
        return max((rss for t, rss in self.samples if t >= since), default=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_tree(process: subprocess.Popen) -> None:
    """Terminate the app and anything it started; kill what does not exit within 10 s."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        children = []
    for proc in [process, *children]:
        try:
            proc.terminate()
        except (psutil.Error, ProcessLookupError):
            pass
    _, alive = psutil.wait_procs([psutil.Process(p.pid) for p in children if p.is_running()], timeout=10)
    for proc in alive:
        proc.kill()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def predict(client: Client, photo: Path, timeout: float) -> None:
    label, _ = client.submit(handle_file(str(photo)), api_name="/predict").result(timeout=timeout)
    if not label or not label.get("confidences"):
        raise RuntimeError(f"the app answered {photo.name} without a top-5")


def wait_until(deadline: float, process: subprocess.Popen, log, attempt):
    """Retry ATTEMPT() until it returns without an OSError/connection error; fail if the app exits or time runs out."""
    while True:
        if process.poll() is not None:
            log.seek(0)
            raise SystemExit(f"app.py exited during start-up:\n{log.read().decode(errors='replace')[-2000:]}")
        try:
            return attempt()
        except Exception as error:  # not listening yet: connection refused, HTTP errors while Gradio starts
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"app.py did not answer within the time limit ({type(error).__name__}: {error})"
                ) from None
            time.sleep(0.1)


def measure(
    model: str, backend: str, photos: list[Path], burst: int, clients: int, timeout: float, repo: Path = REPO_ROOT
) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [
        sys.executable,
        str(repo / "app.py"),
        "--model",
        model,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend",
        backend,
    ]
    env = {**os.environ, "PYTHONPATH": str(repo), "GRADIO_ANALYTICS_ENABLED": "False"}
    with tempfile.TemporaryFile() as log:
        start = time.monotonic()
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=repo)
        sampler = MemorySampler(process.pid)
        sampler.start()
        try:
            deadline = start + timeout
            wait_until(deadline, process, log, lambda: urllib.request.urlopen(f"{url}v1/health", timeout=2).close())
            rest_ready = time.monotonic() - start
            wait_until(deadline, process, log, lambda: urllib.request.urlopen(url, timeout=2).close())  # 503: raises
            http_ready = time.monotonic() - start
            client = wait_until(deadline, process, log, lambda: Client(url, verbose=False, download_files=False))
            predict(client, photos[0], max(1.0, deadline - time.monotonic()))
            first_prediction = time.monotonic() - start
            ready_rss = sampler.rss()

            burst_start = time.monotonic()
            clients_list = [client] + [Client(url, verbose=False, download_files=False) for _ in range(clients - 1)]
            jobs = list(zip(itertools.cycle(clients_list), itertools.islice(itertools.cycle(photos), burst)))
            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(lambda job: predict(job[0], job[1], max(1.0, deadline - time.monotonic())), jobs))
            burst_seconds = time.monotonic() - burst_start
            for c in clients_list:
                c.close()
            time.sleep(2 * sampler.interval)  # one more sample after the last answer
            log.seek(0)
            threads = re.search(rb"(\d+) threads per request", log.read())
        finally:
            sampler.stop()
            kill_tree(process)
    return {
        "model": model,
        "backend": backend,
        "threads_per_request": int(threads[1]) if threads else None,
        "seconds_to_rest": round(rest_ready, 2),
        "seconds_to_http": round(http_ready, 2),
        "cold_start_seconds": round(first_prediction, 2),
        "rss_ready_mib": round(ready_rss / MIB, 1),
        "peak_rss_mib": round(sampler.peak() / MIB, 1),
        "peak_rss_burst_mib": round(sampler.peak(burst_start) / MIB, 1),
        "burst": {"requests": burst, "clients": clients, "seconds": round(burst_seconds, 2)},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", required=True, help="export folder (or model.pt / hf://...) passed to app.py --model"
    )
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="passed to app.py --backend")
    parser.add_argument("--burst", type=int, default=20, help="requests in the burst after the first prediction")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients during the burst")
    parser.add_argument(
        "--timeout", type=float, default=300, help="give up (and kill the app) after this many seconds in all"
    )
    parser.add_argument("--photos", type=Path, default=REPO_ROOT / "examples", help="folder of *.jpg photos to upload")
    parser.add_argument(
        "--repeats", type=int, default=1, help="cold starts to measure (one start is noisy); the median is reported"
    )
    parser.add_argument(
        "--repo", type=Path, default=REPO_ROOT, help="checkout whose app.py to start, e.g. an older one to compare"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    photos = sorted(args.photos.glob("*.jpg"))
    if not photos:
        raise SystemExit(f"no *.jpg photos in {args.photos}")

    load_before = os.getloadavg()[0]
    starts = [
        measure(
            args.model,
            args.backend,
            photos,
            max(0, args.burst),
            max(1, args.clients),
            args.timeout,
            args.repo.resolve(),
        )
        for _ in range(max(1, args.repeats))
    ]
    result = sorted(starts, key=lambda r: r["cold_start_seconds"])[len(starts) // 2]  # the median start
    result["cold_starts_seconds"] = [r["cold_start_seconds"] for r in starts]
    result["load_before"] = round(load_before, 2)
    for key in ("seconds_to_rest", "seconds_to_http"):
        result[f"median_{key}"] = statistics.median(r[key] for r in starts)
        result[f"all_{key}"] = [r[key] for r in starts]
    print(
        f"app.py --model {result['model']} --backend {result['backend']} (CPU: {os.cpu_count()} cores, "
        f"{result['threads_per_request']} threads per request; 1-minute load average before: {load_before:.2f})"
    )
    print(
        f"first REST answer (/v1/health): median {result['median_seconds_to_rest']:.2f} s {result['all_seconds_to_rest']}; "
        f"first page answer (/): median {result['median_seconds_to_http']:.2f} s {result['all_seconds_to_http']}"
    )
    print(
        f"cold start: {result['cold_start_seconds']:.2f} s to the first answered prediction "
        f"(HTTP up after {result['seconds_to_http']:.2f} s); median of {len(starts)}: {result['cold_starts_seconds']}"
    )
    print(
        f"memory: RSS {result['rss_ready_mib']:.0f} MiB when ready; peak {result['peak_rss_burst_mib']:.0f} MiB during "
        f"{args.burst} requests from {args.clients} clients ({result['burst']['seconds']:.1f} s), peak overall {result['peak_rss_mib']:.0f} MiB"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
