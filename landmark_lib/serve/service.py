"""The service: an export loaded once, turning photos into answers (the five closest landmarks, where the best one
is, and whether it is recognised). The Gradio app, the batch tagger and the benchmarks share it, so all three give
the same answer for a photo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import threads
from ..artifacts import export_info
from ..artifacts.answer import TOP_K, Guess, Prediction, model_id
from ..artifacts.model_identity import identify
from ..data.images import decode_short_side
from ..gallery.ranking import GalleryRanker, open_ranker
from ..index.score import NEIGHBOURS, IndexScorer
from ..index.store import open_recorded
from ..labels import BACKGROUND_CLASS, ClassInfo, from_columns, plural
from ..recognition import DEFAULT_THRESHOLD, OperatingPoints, check_threshold, top_landmarks
from ..runtime import backends
from ..runtime.loaded import LoadedModel
from ..runtime.photos import ImageInput, Photo, model_pixels, read_photo
from ..runtime.resolve import ResolvedModel, resolve_model


@dataclass(frozen=True)
class Ranking:
    """A batch ranked by LandmarkService.rank: CLASSES (the model's, then a gallery's), the TOP_K VALUES and INDICES
    [N, K] into them, and the best one's recognition SCORES [N] (the operating points apply to these)."""

    classes: list[ClassInfo]
    values: np.ndarray
    indices: np.ndarray
    scores: np.ndarray

    def best_names(self) -> np.ndarray:
        return np.array([self.classes[i].name for i in self.indices[:, 0]])


__all__ = ["Guess", "LandmarkService", "Prediction"]  # the answer types live in answer.py


class LandmarkService:
    """The exported model, loaded once; thread-safe predictions for the app, the tagger and benchmarks.

    BACKEND: 'auto' (the verified file the export measured fastest, see backends.serving_order), 'onnx-int8', 'onnx'
    or 'torchscript'. All run the one Preprocess definition (scripted in model.pt, exported as preprocess.onnx) and
    expose the same class metadata; fp32 ONNX and TorchScript agree within 1e-4, int8 within the exporter's
    validation check (and it brings its own threshold). With an ONNX backend nothing here imports torch.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | ResolvedModel,
        threshold: float | None = None,
        num_threads: int | None = None,
        backend: str = "auto",
        gallery: str | os.PathLike | None = None,
    ):
        source = model_path if isinstance(model_path, ResolvedModel) else ResolvedModel(Path(model_path))
        self.model_path = source.path
        self.threads = num_threads or threads.count()  # intra-op threads of each call (threads.py)
        self.backend, self.model = backends.load_verified(self.model_path, backend, self.threads)
        info = export_info.read(self.model_path.parent)
        given_threshold = threshold
        self.identity = identify(self.model_path, self.backend, info, source.hub_repo, source.hub_commit)
        self.model_id = model_id(self.identity, self.backend)
        # (OWNER/NAME, resolved commit) when served from the Hub, else None: what the page footer and health report
        self.hub_source = (source.hub_repo, source.hub_commit) if source.hub_repo and source.hub_commit else None
        if threshold is None:
            threshold = info.serving.threshold_of(self.backend)
        self.threshold = DEFAULT_THRESHOLD if threshold is None else check_threshold(threshold)
        self.classes = from_columns(self.model)
        self.class_names = [c.name for c in self.classes]
        self.display_names = [c.display_name for c in self.classes]
        self.landmark_names = [c.display_name for c in self.classes if c.name != BACKGROUND_CLASS]
        # Big photos are decoded (JPEG: DCT scaling) or shrunk in PIL to about this short side first, which bounds memory
        # and time; the model's own antialiased resize then works as usual.
        self.max_short_side = decode_short_side(self.model.preprocess.resize_size)
        self.gallery_path = gallery or os.environ.get("LANDMARK_GALLERY") or None
        # the gallery is checked against the loaded model (not this half-built service)
        loaded = LoadedModel(self.model_path, self.backend, self.model, self.identity)
        self.gallery = open_ranker(self.gallery_path, loaded, self.threshold)
        # the served gallery's landmarks, answered like the model's: every list of what is known includes them
        self.gallery_classes = self.gallery.classes if self.gallery else []
        # The recognition score and its two thresholds (index/score.py, recognition.OperatingPoints): with a photo
        # index, a photo must be close to its landmark's training photos and not to the no-landmark ones.
        recorded = info.serving.operating_points_of(self.backend)
        self.points = OperatingPoints.from_export(recorded, self.threshold)
        if given_threshold is not None:  # --threshold sets the confident point on the served score
            self.points = replace(self.points, confident=self.threshold)
        self.scorer = self._open_scorer(info) if recorded else None

    def _open_scorer(self, info: export_info.ExportInfo) -> IndexScorer | None:
        index_record = info.serving.index or {}
        index = open_recorded(self.model_path.parent, info, self.class_names, int(index_record.get("dim", 0)))
        if index is None:
            return None
        scorer = IndexScorer.from_index(index, int(index_record.get("neighbours", NEIGHBOURS)))
        return scorer if self.gallery is None else self.gallery.with_index(scorer)

    @classmethod
    def from_spec(
        cls,
        spec: str | os.PathLike | None,
        threshold: float | None = None,
        num_threads: int | None = None,
        backend: str = "auto",
        gallery: str | os.PathLike | None = None,
    ) -> LandmarkService:
        """SPEC: an export folder, a model.pt or hf://OWNER/NAME[@REVISION]; None: $LANDMARK_MODEL, else models/default.
        GALLERY: a gallery folder (landmark_lib/gallery/) whose landmarks rank beside the classes; None: $LANDMARK_GALLERY."""
        return cls(resolve_model(spec), threshold=threshold, num_threads=num_threads, backend=backend, gallery=gallery)

    def known_landmarks(self) -> list[tuple[ClassInfo, str]]:
        """(landmark, 'model' or 'gallery') for everything this service can name: the model's classes (not the
        background class), then the served gallery's."""
        model = [(c, "model") for c in self.classes if c.name != BACKGROUND_CLASS]
        return model + [(c, "gallery") for c in self.gallery_classes]

    def startup_line(self) -> str:
        """What the server logs at start: the model, its backend, and the landmarks it knows (the gallery's too)."""
        model = len(self.landmark_names)
        line = (
            f"model {self.model_path} ({self.backend}, {self.threads} threads per request): {plural(model, 'landmark')}"
        )
        if self.gallery_classes:
            names = ", ".join(c.display_name for c in self.gallery_classes[:5])
            more = f" and {len(self.gallery_classes) - 5} more" if len(self.gallery_classes) > 5 else ""
            line += f" + {len(self.gallery_classes)} from the gallery {self.gallery_path} ({names}{more})"
        return line

    def rank(self, probs: np.ndarray, embeddings: np.ndarray | None, gallery: GalleryRanker | None = None) -> Ranking:
        """The model's PROBS [N, C] (and its EMBEDDINGS [N, D], None without a gallery or index) ranked with
        GALLERY's landmarks (None: the service's), and the best one's recognition score: what every answer and the
        gallery study (research/gallery_study.py) decide by."""
        scorer = self.scorer if gallery is None or self.scorer is None else gallery.with_index(self.scorer)
        gallery = gallery or self.gallery
        if gallery is not None and embeddings is not None:
            probs = gallery.scores_from(probs, embeddings)
        classes = self.classes + (gallery.classes if gallery else [])  # the model's, then the taught landmarks
        names = [c.name for c in classes]
        values, indices = top_landmarks(probs, names, TOP_K)  # never the background class
        if scorer is None or embeddings is None:
            scores = values[:, 0]
        else:
            scores = scorer.best_landmarks(embeddings, probs, names)[0].score(self.points.score)
        return Ranking(classes, values, indices, scores)

    def predict_photos(self, photos: list[Photo], gallery: GalleryRanker | None = None) -> list[Prediction]:
        """Several decoded photos in one network call (forward_batch); GALLERY (a GalleryRanker, e.g. a visitor's own
        in the Teach tab) instead of the service's."""
        if not photos:
            return []
        arrays = [model_pixels(p.image, self.max_short_side) for p in photos]
        if (gallery or self.gallery) is None and self.scorer is None:
            probs, embeddings = backends.probabilities(self.model, arrays), None
        else:
            probs, embeddings = backends.probabilities_with_embedding(self.model, arrays)
        ranking = self.rank(probs, embeddings, gallery)
        classes, predictions = ranking.classes, []
        for photo, row_values, row_indices, score in zip(
            photos, ranking.values.tolist(), ranking.indices.tolist(), ranking.scores.tolist()
        ):
            top = [Guess(classes[i].name, classes[i].display_name, float(v)) for v, i in zip(row_values, row_indices)]
            predictions.append(
                Prediction(
                    top,
                    classes[row_indices[0]],
                    photo.location,
                    self.points.level(score),
                    float(score),
                    self.points,
                    self.model_id,
                )
            )
        return predictions

    def predict(self, source: ImageInput, name: str = "image") -> Prediction:
        """One photo (PIL image, path or bytes) -> Prediction; raises ImageLoadError for files that are not usable photos."""
        return self.predict_photos([read_photo(source, name, self.max_short_side)])[0]
