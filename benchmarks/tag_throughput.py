"""Batch tagging throughput: `landmark tag`'s end-to-end rate (find, read, decode in threads, model, JSONL write with
fsync per batch) against the model's own rate on the same photos already decoded, at the same batch size, in one run.

    PYTHONPATH=. .venv/bin/python benchmarks/tag_throughput.py --photos /tmp/bench_photos --batch-size 16 --repeats 3

The variants alternate (raw, end-to-end at each --workers, raw, ...) so that load from other jobs on shared cores
hits them alike; the median of the repeats is reported, with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from landmark_lib.serve.service import LandmarkService
from landmark_lib.tagging import command as tag
from landmark_lib.tagging.batch import decode
from landmark_lib.tagging.photo_walk import walk_photos


def raw_rate(service: LandmarkService, photos: list, batch_size: int) -> float:
    """Photos per second of service.predict_photos alone (the model with its own resize, crop and normalise)."""
    start = time.perf_counter()
    for i in range(0, len(photos), batch_size):
        service.predict_photos(photos[i : i + batch_size])
    return len(photos) / (time.perf_counter() - start)


def end_to_end_rate(service: LandmarkService, folder: Path, batch_size: int, workers: int) -> float:
    """Photos per second of the tagger's own loop (tag.tag_to) writing a fresh JSONL file."""
    with tempfile.TemporaryDirectory() as scratch:
        args = argparse.Namespace(photo_dir=folder, out=Path(scratch, "tags.jsonl"), batch_size=batch_size)
        args.workers = workers
        start = time.perf_counter()
        counts = tag.tag_to(service, args, resume=False)
        elapsed = time.perf_counter() - start
    return (counts["tagged"] + counts["unreadable"]) / elapsed


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, required=True, help="a folder of a few hundred real photos")
    parser.add_argument("--model", default=None, help="export folder (default: $LANDMARK_MODEL, then models/default)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", default="1,2", help="decoding threads to time, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    service = LandmarkService.from_spec(args.model)
    photos = [decode(service, found.path) for found in walk_photos(args.photos)]
    photos = [p for p in photos if not isinstance(p, str)]
    raw_rate(service, photos[: args.batch_size * 2], args.batch_size)  # warm-up
    workers = [int(w) for w in args.workers.split(",")]
    rates: dict[str, list[float]] = {"raw": [], **{f"workers={w}": [] for w in workers}}
    for _ in range(args.repeats):
        rates["raw"].append(raw_rate(service, photos, args.batch_size))
        for w in workers:
            rates[f"workers={w}"].append(end_to_end_rate(service, args.photos, args.batch_size, w))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    result = {
        "photos": len(photos),
        "batch_size": args.batch_size,
        "backend": service.backend,
        "model_threads": service.threads,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "photos_per_s": medians,
        "all_runs": rates,
        "share_of_raw": {name: medians[name] / medians["raw"] for name in medians if name != "raw"},
    }
    print(
        f"{len(photos)} photos, batch {args.batch_size}, backend {service.backend}, load {load_before} -> "
        f"{result['load_after']}"
    )
    for name, rate in medians.items():
        share = "" if name == "raw" else f"  ({rate / medians['raw']:.0%} of raw)"
        print(f"  {name:>10}: {rate:7.1f} photos/s{share}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
