"""Single-photo latency with one core kept busy by another process, at a given thread count or landmark's default.

Starts a busy loop (`python -c "while True: pass"`) as a child process, loads the export in this process with
--threads (default: landmark_lib/threads.py's choice), then times --calls single-photo predictions of one example
photo (decoding excluded) and reports the median. The busy loop is killed at the end, also on errors.

    PYTHONPATH=. .venv/bin/python benchmarks/busy_core_latency.py --model models/default --backend torchscript --threads 2
    PYTHONPATH=. .venv/bin/python benchmarks/busy_core_latency.py --model models/default --backend torchscript
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from landmark_lib import threads
from landmark_lib.bundle import BACKENDS
from landmark_lib.runtime.photos import read_photo
from landmark_lib.serve.service import LandmarkService

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO_ROOT / "models" / "default"), help="export folder")
    parser.add_argument("--backend", choices=BACKENDS, default="torchscript")
    parser.add_argument("--threads", type=int, default=None, help="threads for the model (default: landmark's)")
    parser.add_argument("--calls", type=int, default=40, help="timed single-photo calls (after 5 untimed)")
    parser.add_argument("--no-busy", action="store_true", help="measure without the busy loop (the quiet figure)")
    parser.add_argument("--photo", type=Path, default=REPO_ROOT / "examples" / "eiffel_tower.jpg")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    busy = None if args.no_busy else subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        count = threads.use(args.threads)  # after the busy loop starts: the default sees it only via the load average
        service = LandmarkService.from_spec(args.model, backend=args.backend, num_threads=count)
        photo = read_photo(args.photo.read_bytes(), args.photo.name, service.max_short_side)
        times = []
        for call in range(args.calls + 5):
            start = time.perf_counter()
            service.predict_photos([photo])
            if call >= 5:
                times.append((time.perf_counter() - start) * 1000)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    result = {
        "backend": service.backend,
        "threads": count,
        "threads_given": args.threads,
        "busy_core": busy is not None,
        "median_ms": round(statistics.median(times), 1),
        "p90_ms": round(sorted(times)[int(0.9 * (len(times) - 1))], 1),
        "calls": args.calls,
        "load_before": round(load_before, 2),
        "cpus": os.cpu_count(),
    }
    print(
        f"{result['backend']}, {count} threads ({'given' if args.threads else 'default'}), "
        f"{'one core busy' if busy else 'no busy loop'}: median {result['median_ms']} ms, p90 {result['p90_ms']} ms "
        f"per photo over {args.calls} calls; 1-minute load average before {result['load_before']} on {result['cpus']} CPUs"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
