"""Nearest gallery photos for query embeddings: one matrix product for small galleries, FAISS for large ones.

Both return the same top-k: below IVF_MIN_ROWS FAISS runs a flat (exhaustive) inner-product index; from there an
inverted-file index that scans NPROBE of its lists, approximate, with its recall measured in
benchmarks/gallery_search.py against the exact search.
"""

from __future__ import annotations

import math

import numpy as np

FAISS_MIN_ROWS = (
    200_000  # 'auto' switches to FAISS (IVF) here: below, one matrix product is faster (reports/gallery.md)
)
IVF_MIN_ROWS = 200_000  # FAISS switches from exhaustive to an inverted-file index here


class ExactIndex:
    """Cosine similarity of every query to every row (rows and queries L2-normalised): one matrix product."""

    def __init__(self, vectors: np.ndarray):
        self.vectors = np.ascontiguousarray(vectors, np.float32)

    def __len__(self) -> int:
        return len(self.vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities [Q, k'], rows [Q, k']) best first, k' = min(k, rows)."""
        k = min(k, len(self.vectors))
        scores = np.asarray(queries, np.float32) @ self.vectors.T
        top = (
            np.argpartition(-scores, k - 1, axis=1)[:, :k]
            if k < scores.shape[1]
            else np.tile(np.arange(k), (len(scores), 1))
        )
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        rows = np.take_along_axis(top, order, axis=1)
        return np.take_along_axis(scores, rows, axis=1), rows


class FaissIndex:
    """The same search on FAISS: exhaustive inner product below IVF_MIN_ROWS, else IVF (NLIST lists, NPROBE scanned)."""

    def __init__(self, vectors: np.ndarray, nlist: int | None = None, nprobe: int | None = None):
        import faiss

        vectors = np.ascontiguousarray(vectors, np.float32)
        dim = vectors.shape[1]
        self.index: faiss.IndexFlatIP | faiss.IndexIVFFlat
        if nlist is None and len(vectors) < IVF_MIN_ROWS:
            self.index = faiss.IndexFlatIP(dim)
        else:
            nlist = nlist or int(4 * math.sqrt(len(vectors)))
            ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            ivf.train(vectors[np.random.default_rng(0).permutation(len(vectors))[: 40 * nlist]])
            ivf.nprobe = nprobe or max(1, nlist // 32)
            self.index = ivf
        self.index.add(vectors)

    def __len__(self) -> int:
        return self.index.ntotal

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self))
        scores, rows = self.index.search(np.ascontiguousarray(queries, np.float32), k)
        return scores, rows


def build_index(vectors: np.ndarray, kind: str = "auto") -> ExactIndex | FaissIndex:
    """KIND: 'exact', 'faiss' or 'auto' (exact below FAISS_MIN_ROWS rows)."""
    if kind == "exact" or (kind == "auto" and len(vectors) < FAISS_MIN_ROWS):
        return ExactIndex(vectors)
    return FaissIndex(vectors)


def landmark_scores(
    index: ExactIndex | FaissIndex, row_landmarks: np.ndarray, queries: np.ndarray, count: int, k: int = 50
) -> np.ndarray:
    """[Q, COUNT]: each landmark's best similarity among the query's K nearest rows (-1 where none of its rows is)."""
    out = np.full((len(queries), count), -1.0, np.float32)
    if not len(index) or not count:
        return out
    scores, rows = index.search(queries, k)
    for q in range(len(queries)):
        valid = rows[q] >= 0  # FAISS pads with -1 when a probed list runs short
        np.maximum.at(out[q], row_landmarks[rows[q][valid]], scores[q][valid])
    return out
