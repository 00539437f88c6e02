"""Time of the recognition score against an export's photo index (index/score.py): one photo's embedding compared
with the named landmark's photos and with every no-landmark photo, as the server does after the network call.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/index_score.py --model models/default --repeats 200
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from landmark_lib.artifacts import export_info
from landmark_lib.index.score import IndexScorer
from landmark_lib.index.store import open_recorded
from landmark_lib.labels import read_labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/default"), help="export folder with index.npz")
    parser.add_argument("--repeats", type=int, default=200, help="photos timed one at a time")
    args = parser.parse_args()
    info = export_info.read(args.model)
    names = [c.name for c in read_labels(args.model / "labels.json")]
    index = open_recorded(args.model, info, names, int((info.serving.index or {})["dim"]))
    assert index is not None, f"{args.model} has no photo index"
    start = time.perf_counter()
    scorer = IndexScorer.from_index(index)
    load_ms = (time.perf_counter() - start) * 1000
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(index.embeddings), args.repeats)
    queries = index.embeddings[rows].astype(np.float32) + rng.normal(0, 0.05, (args.repeats, index.dim)).astype(
        np.float32
    )
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    probs = np.full((1, len(names)), 1.0 / len(names), dtype=np.float32)
    times = []
    for i, q in enumerate(queries):
        probs[:] = 0.0
        probs[0, index.labels[rows[i]]] = 1.0
        t = time.perf_counter()
        scorer.best_landmarks(q[None], probs, names)[0].score()
        times.append((time.perf_counter() - t) * 1000)
    result = {"photos_in_index": len(index.embeddings), "dim": index.dim, "scorer_load_ms": round(load_ms, 1),
              "median_ms_per_photo": round(float(np.median(times)), 3), "p95_ms_per_photo": round(float(np.percentile(times, 95)), 3)}  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
