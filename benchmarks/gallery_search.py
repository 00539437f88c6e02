"""Gallery search latency (exact and FAISS, 1k to 1M entries of synthetic clustered vectors) and the time to teach
a landmark from 10 photos with the served model.

Vectors: D-dim unit vectors around one centre per "landmark" (100 photos each), queries near random entries; the
exact search is one matrix product (chunked at 1M so memory stays bounded), FAISS is what gallery/search.py builds
for that size. Recall@5 compares FAISS's top 5 with the exact one.

    PYTHONPATH=. .venv/bin/python benchmarks/gallery_search.py --sizes 1000 10000 100000 1000000 \
        --photos ../shared/data/landmarks_extra/train/eiffel_tower --model models/default
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from landmark_lib.gallery.search import ExactIndex, FaissIndex

CHUNK = 100_000


def chunk(size: int, start: int, dim: int, centres: np.ndarray) -> np.ndarray:
    """Rows START..START+CHUNK of the synthetic gallery (deterministic: regenerated, never all held at once)."""
    rng = np.random.default_rng(start)
    rows = np.arange(start, min(start + CHUNK, size))
    x = centres[rows // 100 % len(centres)] + 0.6 * rng.normal(size=(len(rows), dim)).astype(np.float32) / np.sqrt(dim)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_top(size: int, dim: int, centres: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """(rows [Q, k], seconds per query) of the exact search, chunk by chunk with a running top-k."""
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_r = np.zeros((len(queries), k), np.int64)
    seconds = 0.0
    for start in range(0, size, CHUNK):
        vectors = chunk(size, start, dim, centres)
        began = time.perf_counter()
        s, r = ExactIndex(vectors).search(queries, k)
        both_s, both_r = np.concatenate([best_s, s], 1), np.concatenate([best_r, r + start], 1)
        order = np.argsort(-both_s, axis=1)[:, :k]
        best_s, best_r = np.take_along_axis(both_s, order, 1), np.take_along_axis(both_r, order, 1)
        seconds += time.perf_counter() - began
    return best_r, seconds / len(queries)


def search_row(size: int, dim: int, queries_n: int, k: int = 5) -> dict:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(max(1, size // 100), dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    picks = rng.choice(size, queries_n, replace=False)
    queries = np.stack([chunk(size, p - p % CHUNK, dim, centres)[p % CHUNK] for p in picks])
    queries += 0.3 * rng.normal(size=queries.shape).astype(np.float32) / np.sqrt(dim)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact_rows, exact_s = exact_top(size, dim, centres, queries, k)
    began = time.perf_counter()
    index = build_faiss(size, dim, centres)
    build_s = time.perf_counter() - began
    one = []
    for q in queries:
        t = time.perf_counter()
        _, rows = index.search(q[None], k)
        one.append(time.perf_counter() - t)
    _, rows = index.search(queries, k)
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(rows, exact_rows)]))
    kind = type(index.index).__name__
    return {
        "entries": size,
        "dim": dim,
        "exact_ms_per_photo": 1000 * exact_s,
        "faiss_index": kind,
        "faiss_build_s": build_s,
        "faiss_ms_per_photo": 1000 * float(np.median(one)),
        "faiss_recall_at_5": recall,
    }


def build_faiss(size: int, dim: int, centres: np.ndarray) -> FaissIndex:
    """gallery/search.py's FAISS index for SIZE rows, filled chunk by chunk (IVF trained on the first chunk)."""
    first = chunk(size, 0, dim, centres)
    index = FaissIndex(first, nlist=int(np.sqrt(size)) if size >= 200_000 else None)
    for start in range(CHUNK, size, CHUNK):
        index.index.add(chunk(size, start, dim, centres))
    return index


def add_time(model: str, photos: Path, count: int = 10) -> dict:
    """Seconds to teach a landmark from COUNT photos: loading the model, then embedding + writing the gallery."""
    from landmark_lib.cli import main
    from landmark_lib.gallery.enroll import photo_files

    files = photo_files([photos])[:count]
    folder = Path(tempfile.mkdtemp())
    try:
        began = time.perf_counter()
        if main(["gallery", "add", str(folder / "g"), *map(str, files), "--name", "benchmark", "--model", model]):
            raise SystemExit("gallery add failed (see the error above)")
        return {"photos": len(files), "seconds_total_in_process": time.perf_counter() - began}
    finally:
        shutil.rmtree(folder)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000, 1000000], help="gallery entries")
    p.add_argument("--dim", type=int, default=1280, help="embedding size (Lite0's pooled features: 1280)")
    p.add_argument("--queries", type=int, default=20, help="timed single-photo searches per size")
    p.add_argument("--photos", type=Path, help="folder of photos for the add-a-landmark timing (default: skip)")
    p.add_argument(
        "--model", default="models/default", help="served model for the add timing (an export with embeddings)"
    )
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args()
    rows = [search_row(n, args.dim, args.queries) for n in args.sizes]
    print("| entries | exact ms/photo | FAISS index | FAISS build s | FAISS ms/photo | FAISS recall@5 |")
    print("| ---: | ---: | --- | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['entries']:,} | {r['exact_ms_per_photo']:.2f} | {r['faiss_index']} | {r['faiss_build_s']:.1f} | {r['faiss_ms_per_photo']:.2f} | {r['faiss_recall_at_5']:.3f} |"
        )
    add = add_time(args.model, args.photos) if args.photos else None
    if add:
        print(
            f"teach a landmark from {add['photos']} photos: {add['seconds_total_in_process']:.1f} s (model load + embed + save)"
        )
    if args.json:
        args.json.write_text(json.dumps({"search": rows, "add": add}, indent=2))


if __name__ == "__main__":
    main()
