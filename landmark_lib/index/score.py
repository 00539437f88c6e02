"""The recognition score: how sure we are that a photo shows the landmark the classifier named, using the photo
index (index/store.py). Four scores are computed for each photo, so evaluation can compare them (reports/real_world.md):

    probability           the classifier's probability of the named landmark (what was served before the index)
    similarity            mean cosine to the K nearest index photos of the named landmark
    margin                similarity minus the mean cosine to the K nearest no-landmark photos (the GLR 2020
                          winners' non-landmark penalty: a look-alike is close to our landmark *and* to other
                          buildings; a real photo of it is closer to its own photos)
    probability_x_margin  probability x max(0, margin): both the classifier and the neighbours must agree

The served score is recorded in export.json's operating points; numpy only, one matrix product per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..labels import BACKGROUND_CLASS
from ..recognition import top_landmarks
from .store import PhotoIndex

NEIGHBOURS = 3
SCORES = ("probability", "similarity", "margin", "probability_x_margin")
SERVED_SCORE = "probability_x_margin"


@dataclass(frozen=True)
class Evidence:
    """Per photo: the named landmark's probability, SIMILARITY to its nearest photos, and BACKGROUND similarity to
    the nearest no-landmark photos."""

    probability: np.ndarray
    similarity: np.ndarray
    background: np.ndarray

    def score(self, kind: str = SERVED_SCORE) -> np.ndarray:
        margin = self.similarity - self.background
        scores = {
            "probability": self.probability,
            "similarity": self.similarity,
            "margin": margin,
            "probability_x_margin": self.probability * np.maximum(margin, 0.0),
        }
        if kind not in scores:
            raise ValueError(f"unknown recognition score {kind!r}; choose one of {', '.join(SCORES)}")
        return scores[kind].astype(np.float32)


def _mean_top_k(similarities: np.ndarray, k: int) -> np.ndarray:
    """[M] mean of the K largest values of each row of [M, R] (all of them when R < K; -1 when R = 0)."""
    if similarities.shape[1] == 0:
        return np.full(len(similarities), -1.0, dtype=np.float32)
    k = min(k, similarities.shape[1])
    return np.partition(similarities, -k, axis=1)[:, -k:].mean(axis=1)


class IndexScorer:
    """A loaded PhotoIndex, ready to score batches of photos (embeddings from the served model): BACKGROUND [B, D]
    the no-landmark photos, PHOTOS each landmark's own [n, D] (float32: matrix products are 2-4x faster here)."""

    def __init__(self, background: np.ndarray, photos: dict[str, np.ndarray], neighbours: int = NEIGHBOURS):
        self.background, self.photos, self.neighbours = background, photos, neighbours

    @classmethod
    def from_index(cls, index: PhotoIndex, neighbours: int = NEIGHBOURS) -> IndexScorer:
        embeddings = index.embeddings.astype(np.float32)
        photos = {name: embeddings[index.rows_of(name)] for name in index.names if name != BACKGROUND_CLASS}
        return cls(embeddings[index.rows_of(BACKGROUND_CLASS)], photos, neighbours)

    def with_entries(self, embeddings: np.ndarray, names: list[str]) -> IndexScorer:
        """This index plus a gallery's photos (EMBEDDINGS [G, D], NAMES[i] the landmark of row i): a taught landmark
        is compared with its own photos and with the same no-landmark photos as the trained ones. Shares the arrays."""
        rows = np.asarray(embeddings, dtype=np.float32)
        taught = {name: rows[[i for i, n in enumerate(names) if n == name]] for name in dict.fromkeys(names)}
        return IndexScorer(self.background, {**self.photos, **taught}, self.neighbours)

    def evidence(self, embeddings: np.ndarray, probability: np.ndarray, names: list[str]) -> Evidence:
        """EMBEDDINGS [M, D] (unit rows) of photos whose named landmarks are NAMES with PROBABILITY [M]."""
        queries = np.asarray(embeddings, dtype=np.float32)
        background = _mean_top_k(queries @ self.background.T, self.neighbours)
        similarity = np.full(len(queries), -1.0, dtype=np.float32)
        for name in dict.fromkeys(names):
            photos = [i for i, n in enumerate(names) if n == name]
            own = self.photos.get(name, np.zeros((0, queries.shape[1]), dtype=np.float32))
            similarity[photos] = _mean_top_k(queries[photos] @ own.T, self.neighbours)
        return Evidence(np.asarray(probability, dtype=np.float32), similarity, background)

    def best_landmarks(
        self, embeddings: np.ndarray, probabilities: np.ndarray, class_names: list[str]
    ) -> tuple[Evidence, np.ndarray]:
        """(evidence for each photo's most probable landmark, its class index [M]) for PROBABILITIES [M, C] over
        CLASS_NAMES (the model's classes, then any gallery landmarks; the background class is never named)."""
        values, indices = top_landmarks(probabilities, class_names, 1)
        names = [class_names[i] for i in indices[:, 0]]
        return self.evidence(embeddings, values[:, 0], names), indices[:, 0]
