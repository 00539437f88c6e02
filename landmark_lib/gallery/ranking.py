"""Model classes and gallery landmarks in one ranking: each gallery landmark's similarity is put on the probability
scale so that the gallery's similarity rule lands exactly on the model's recognition threshold.

A gallery landmark therefore counts as "recognised" only when a photo is at least `similarity` (cosine, chosen on
validation: reports/gallery.md) from one of its photos; below that its score falls off quickly (`softness`), so it
outranks the model's own classes only when it is nearly as close as the rule.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..index.score import IndexScorer
from ..labels import ClassInfo
from ..runtime.loaded import LoadedModel
from . import store
from .enroll import embedding_model
from .search import build_index, landmark_scores
from .store import Gallery


def confidence(similarity: np.ndarray, rule: float, softness: float, threshold: float) -> np.ndarray:
    """Similarity -> score in [0, 1], monotone and continuous: RULE maps to THRESHOLD and 1 to 1 (linearly); below
    RULE the score falls off as exp((s - RULE) / SOFTNESS), so a landmark that is merely somewhat similar does not
    outrank the model's own guess (SOFTNESS is chosen on validation: research/gallery_study.py)."""
    s = np.clip(similarity, -1.0, 1.0)
    below = threshold * np.exp(np.minimum(s - rule, 0.0) / softness)
    above = threshold + (1.0 - threshold) * (s - rule) / (1.0 - rule)
    return np.where(s < rule, below, above).astype(np.float32)


def similarity_of(score: float, rule: float, softness: float, threshold: float) -> float:
    """The inverse of confidence(): the cosine similarity behind a gallery landmark's SCORE (to show it on its own
    scale, not on the model's probability bars)."""
    if score >= threshold:
        return rule + (score - threshold) * (1.0 - rule) / max(1e-9, 1.0 - threshold)
    return rule + softness * float(np.log(max(score, 1e-30) / threshold))


class GalleryRanker:
    """A loaded gallery with its search index; scores_from() gives [N, classes + gallery landmarks] for one ranking."""

    def __init__(self, gallery: Gallery, threshold: float, index_kind: str = "auto"):
        self.gallery, self.threshold = gallery, threshold
        self.index = build_index(gallery.embeddings, index_kind)
        self.rows = gallery.row_landmarks
        self.classes: list[ClassInfo] = [lm.info for lm in gallery.landmarks]

    def landmark_confidence(self, embeddings: np.ndarray) -> np.ndarray:
        """[N, gallery landmarks] on the probability scale."""
        similarity = landmark_scores(self.index, self.rows, embeddings, len(self.classes))
        return confidence(similarity, self.gallery.similarity, self.gallery.softness, self.threshold)

    def similarity(self, score: float) -> float:
        """The cosine similarity of a photo to a landmark whose score (scores_from()) is SCORE."""
        return similarity_of(score, self.gallery.similarity, self.gallery.softness, self.threshold)

    def scores_from(self, probs: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        """The model's PROBS [N, C] beside the gallery landmarks' confidences for the photos' EMBEDDINGS [N, D]."""
        return np.concatenate([probs.astype(np.float32), self.landmark_confidence(embeddings)], axis=1)

    def with_index(self, scorer: IndexScorer) -> IndexScorer:
        """SCORER with this gallery's photos as more entries: taught landmarks meet the same no-landmark photos."""
        return scorer.with_entries(self.gallery.embeddings, [self.classes[i].name for i in self.rows])


def open_ranker(folder: str | os.PathLike | None, served: LoadedModel, threshold: float) -> GalleryRanker | None:
    """The ranker of the gallery in FOLDER (`--gallery DIR`, $LANDMARK_GALLERY), checked against the SERVED model
    (another model's gallery is an error); None without a folder. The
    gallery's similarity rule maps onto THRESHOLD, the service's. A gallery landmark named like a model class is an
    error too."""
    if not folder:
        return None
    gallery = store.load(Path(folder), embedding_model(served))
    shared = sorted(set(gallery.names) & set(served.model.class_names))
    if shared:  # one name would stand for two entries of the ranking (and of every answer's top 5)
        raise store.GalleryError(
            f"{folder} teaches {', '.join(map(repr, shared))}, already a class of the model; remove it from the "
            "gallery (`landmark gallery remove`) and teach it under another --name."
        )
    return GalleryRanker(gallery, threshold)
