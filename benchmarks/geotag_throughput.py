"""Geotagging throughput: `landmark geotag`'s first pass (walk, decode in threads, model, sidecar decision, merge and
atomic write per placed photo, run log) against the tagger's own end-to-end rate (`landmark tag` to JSONL) on the
same photos, same batch size and decoding threads, in one run.

    PYTHONPATH=. .venv/bin/python benchmarks/geotag_throughput.py --photos /tmp/bench_photos --repeats 3

Sidecars go into a fresh temporary --sidecar-dir each run (the photo folder is only read). The variants alternate
(tag, geotag, tag, ...) so that load from other jobs hits them alike; medians of the repeats are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.tag_throughput import end_to_end_rate
from landmark_lib.geotag import command, library
from landmark_lib.serve.service import LandmarkService


def geotag_rate(service: LandmarkService, folder: Path, batch_size: int, workers: int) -> tuple[float, dict]:
    """Photos per second of geotag's first pass writing sidecars into a fresh --sidecar-dir; and its counts."""
    with tempfile.TemporaryDirectory() as scratch:
        args = argparse.Namespace(library=folder, sidecar_dir=Path(scratch), sidecar_name="ext", force=False)
        args.review, args.dry_run, args.batch_size, args.workers = None, False, batch_size, workers
        start = time.perf_counter()
        counts = command.first_pass(service, args, "write", library.log_path(args))
        elapsed = time.perf_counter() - start
    return sum(counts.values()) / elapsed, dict(counts)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, required=True, help="a folder of a few hundred real photos")
    parser.add_argument("--model", default=None, help="export folder (default: $LANDMARK_MODEL, then models/default)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="decoding threads (both variants)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    service = LandmarkService.from_spec(args.model)
    rates: dict[str, list[float]] = {"tag": [], "geotag": []}
    counts: dict = {}
    for _ in range(args.repeats):
        rates["tag"].append(end_to_end_rate(service, args.photos, args.batch_size, args.workers))
        rate, counts = geotag_rate(service, args.photos, args.batch_size, args.workers)
        rates["geotag"].append(rate)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    result = {
        "photos": sum(counts.values()),
        "geotag_actions": counts,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "backend": service.backend,
        "model_threads": service.threads,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "photos_per_s": medians,
        "all_runs": rates,
        "geotag_share_of_tag": medians["geotag"] / medians["tag"],
    }
    print(f"{result['photos']} photos {counts}, batch {args.batch_size}, backend {service.backend}")
    print(f"load {load_before} -> {result['load_after']}")
    for name, rate in medians.items():
        print(f"  {name:>7}: {rate:7.1f} photos/s")
    print(f"  geotag at {result['geotag_share_of_tag']:.0%} of the tagger's rate")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
