"""The export's photo index (index/store.py) and its first operating points.

Every photo of the run's training folders that the run trained or validated on goes into index.npz. The operating
points written here are chosen on the run's validation photos against an index of its training photos only (a
photo must not find itself); `landmark calibrate` replaces them with thresholds chosen on collections the model
never saw, which is what they should be for photos from the world (evaluation/calibrate.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from ..artifacts.run_folder import RunConfig
from ..evaluation.operating_points import choose_operating_points
from ..index.score import NEIGHBOURS, SERVED_SCORE, Evidence, IndexScorer
from ..index.store import INDEX_FILE, PhotoIndex
from ..labels import BACKGROUND_CLASS
from ..train.run_embeddings import RunEmbeddings, run_embeddings


def photo_index(photos: RunEmbeddings, class_names: list[str], rows: np.ndarray) -> PhotoIndex:
    """The PhotoIndex of PHOTOS' ROWS (a boolean mask)."""
    return PhotoIndex(
        photos.embeddings[rows].astype(np.float16),
        photos.targets[rows].astype(np.int32),
        tuple(class_names),
        photos.collections[rows],
    )


def score_queries(
    photos: RunEmbeddings,
    class_names: list[str],
    queries: np.ndarray,
    bank: np.ndarray,
    neighbours: int = NEIGHBOURS,
) -> tuple[Evidence, np.ndarray, np.ndarray]:
    """(evidence for every score, named correctly, is a landmark photo) of the QUERIES rows, compared with an index
    of the BANK rows (one search: each score is derived from the same evidence)."""
    scorer = IndexScorer.from_index(photo_index(photos, class_names, bank), neighbours)
    evidence, named = scorer.best_landmarks(photos.embeddings[queries], photos.probabilities[queries], class_names)
    targets = photos.targets[queries]
    is_landmark = targets != (class_names.index(BACKGROUND_CLASS) if BACKGROUND_CLASS in class_names else -1)
    return evidence, (named == targets) & is_landmark, is_landmark


def write_index(model: nn.Module, config: RunConfig, run_dir: str | Path, out: Path) -> tuple[dict, dict]:
    """OUT/index.npz and (what export.json records about it, operating points chosen on the run's validation photos)."""
    photos = run_embeddings(model, config, run_dir)
    kept = photos.parts != "excluded"
    photo_index(photos, config.class_names, kept).save(out)
    evidence, correct, is_landmark = score_queries(
        photos, config.class_names, photos.parts == "valid", photos.parts == "train"
    )
    score = evidence.score(SERVED_SCORE)
    categories = photos.categories[photos.parts == "valid"]
    points = choose_operating_points(score, correct, is_landmark, categories, "the run's validation photos")
    record = {
        "file": INDEX_FILE,
        "photos": int(kept.sum()),
        "dim": int(photos.embeddings.shape[1]),
        "dtype": "float16",
        "neighbours": NEIGHBOURS,
        "score": SERVED_SCORE,
    }
    return record, {"score": SERVED_SCORE, **points}
