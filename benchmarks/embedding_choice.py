"""Which embedding teaches new landmarks better, decided without test photos (reports/gallery.md): for a run trained
with --holdout-classes, each held-out landmark's train photos 1-10 (the gallery protocol's shuffle) are enrolled and
photos 21-35 are queries; printed: the share of queries whose nearest enrolled photo shows their landmark, with the
neck's projection and with its GeM-pooled backbone features (the export's embedding).

    OMP_NUM_THREADS=2 PYTHONPATH=. .venv/bin/python benchmarks/embedding_choice.py RUN EXPORT_OF_RUN
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from landmark_lib.artifacts import export_info
from landmark_lib.models.trained import load_trained_model
from landmark_lib.predictor import LandmarkPredictor
from landmark_lib.research.gallery_study import protocol_photos
from landmark_lib.runtime.photos import model_pixels, read_photo


def both_embeddings(run: Path, photos: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """(projection [N, 512], pooled [N, 1280]) of PHOTOS, unit rows, from the run's eager network."""
    model, config = load_trained_model(run)
    eager = LandmarkPredictor(model, config.preprocess, config.classes).eval()
    seen: dict[str, torch.Tensor] = {}
    model.global_pool.register_forward_hook(lambda m, i, o: seen.update(projection=o.detach()))
    model.global_pool.pool.register_forward_hook(lambda m, i, o: seen.update(pooled=o.detach()))
    rows: dict[str, list[np.ndarray]] = {"projection": [], "pooled": []}
    for path in photos:
        pixels = torch.from_numpy(model_pixels(read_photo(path).image, 512))
        with torch.no_grad():
            eager.forward_batch_with_embedding([pixels])
        for kind in rows:
            rows[kind].append(seen[kind][0].numpy())
    unit = {k: np.stack(v) / np.linalg.norm(np.stack(v), axis=1, keepdims=True) for k, v in rows.items()}
    return unit["projection"], unit["pooled"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a run trained with --holdout-classes and a retrieval neck")
    parser.add_argument("export", type=Path, help="its export (names the run's data and held-out landmarks)")
    args = parser.parse_args()
    train = export_info.read(args.export).report.train_config()
    pool = protocol_photos(train, 256)["pool"]
    enrol, query = [], []
    for name in sorted({c for _, c in pool}):
        files = [p for p, c in pool if c == name]
        enrol += [(p, name) for p in files[:10]]
        query += [(p, name) for p in files[20:35]]
    projection, pooled = both_embeddings(args.run, [p for p, _ in enrol + query])  # one model load, one pass
    enrol_names, query_names = np.array([c for _, c in enrol]), np.array([c for _, c in query])
    for kind, rows in (("projection", projection), ("pooled", pooled)):
        e, q = rows[: len(enrol)], rows[len(enrol) :]
        right = (enrol_names[(q @ e.T).argmax(1)] == query_names).mean()
        print(f"{kind}: {len(q)} queries, nearest enrolled photo right {right:.1%}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
