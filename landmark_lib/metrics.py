"""The numbers a model is judged by: top-k accuracy, macro-F1, per-class scores, the confusion matrix, and the
recognition metrics of Google Landmark Recognition (GAP, coverage, precision, false accepts of no-landmark photos).

Training (validation each epoch), export (the int8 check) and evaluation all count top-k here.
"""

from __future__ import annotations

import torch

from .recognition import best_landmarks, is_landmark_target


def top_k_hits(scores: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    """[N] bool: whether each photo's true class is among its K highest scores (logits or probabilities)."""
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices
    return (top == targets[:, None]).any(dim=1)


def top_k_accuracy(scores: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    return float(top_k_hits(scores, targets.long(), k).double().mean())


def compute_metrics(
    probs: torch.Tensor,
    targets: torch.Tensor,
    class_names: list[str],
    display_names: list[str] | None = None,
    n_confused: int = 10,
) -> dict:
    """Top-1/top-5 accuracy, macro-F1, per-class scores, the confusion matrix and the most-confused class pairs.

    Macro-F1 averages over the classes that occur as a target or a prediction (a split may lack some classes).
    Per-class accuracy is the recall of that class (None where the split has no image of it).
    """
    display_names = display_names or class_names
    n_classes = len(class_names)
    targets = targets.long()
    predicted = probs.argmax(dim=1)
    cm = torch.bincount(targets * n_classes + predicted, minlength=n_classes * n_classes).view(n_classes, n_classes)
    tp, support, n_predicted = cm.diag().double(), cm.sum(dim=1).double(), cm.sum(dim=0).double()
    precision = torch.where(n_predicted > 0, tp / n_predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(
        precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), torch.zeros_like(tp)
    )
    present = (support > 0) | (n_predicted > 0)
    per_class = [
        {
            "name": class_names[i],
            "display_name": display_names[i],
            "support": int(support[i]),
            "n_predicted": int(n_predicted[i]),
            "accuracy": float(recall[i]) if support[i] > 0 else None,
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
        }
        for i in range(n_classes)
    ]
    return {
        "top1": top_k_accuracy(probs, targets, 1),
        "top5": top_k_accuracy(probs, targets, 5),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "n_images": int(targets.numel()),
        "per_class": per_class,
        "most_confused": _most_confused(cm, class_names, display_names, n_confused),
        "confusion_matrix": cm.tolist(),
    }


def _most_confused(cm: torch.Tensor, class_names: list[str], display_names: list[str], n: int) -> list[dict]:
    """The N largest off-diagonal cells of the confusion matrix: which landmark is taken for which, how often."""
    counts, flat = cm.clone().fill_diagonal_(0).flatten().sort(descending=True, stable=True)
    support = cm.sum(dim=1).double()
    confused = []
    for count, index in zip(counts[:n].tolist(), flat[:n].tolist()):
        if count == 0:
            break
        t, p = divmod(index, len(class_names))
        confused.append(
            {
                "true": class_names[t],
                "true_display_name": display_names[t],
                "predicted": class_names[p],
                "predicted_display_name": display_names[p],
                "count": count,
                "fraction_of_true": count / float(support[t]),
            }
        )
    return confused


def gap(confidence: torch.Tensor, correct: torch.Tensor, n_landmark_photos: int) -> float | None:
    """Global Average Precision (Google Landmark Recognition): predictions ranked by confidence,
    GAP = (1/M) * sum_i P(i) * rel(i), M = photos that show a known landmark; a no-landmark photo is never right."""
    if n_landmark_photos == 0:
        return None
    order = confidence.argsort(descending=True, stable=True)
    rel = correct[order].double()
    precision_at_i = rel.cumsum(0) / torch.arange(1, len(rel) + 1, dtype=torch.float64)
    return float((precision_at_i * rel).sum() / n_landmark_photos)


def recognition_metrics(
    probs: torch.Tensor, targets: torch.Tensor, class_names: list[str], threshold: float | None
) -> dict:
    """GAP over all photos; on landmark photos top-1 of the best landmark, coverage (share named) and precision at
    THRESHOLD; on no-landmark photos the false-accept rate (share named as a landmark) at THRESHOLD."""
    confidence, best = (t[:, 0] for t in best_landmarks(probs, class_names))
    landmark = is_landmark_target(targets, class_names)
    correct = (best == targets) & landmark
    n_landmark, n_other = int(landmark.sum()), int((~landmark).sum())
    out = {
        "gap": gap(confidence, correct, n_landmark),
        "landmark_photos": n_landmark,
        "no_landmark_photos": n_other,
        "landmark_top1": float(correct[landmark].double().mean()) if n_landmark else None,
        "threshold": threshold,
    }
    if threshold is not None:
        named = confidence >= threshold
        out.update(
            coverage=float(named[landmark].double().mean()) if n_landmark else None,
            precision=float(correct[named].double().sum() / int((named & landmark).sum()))
            if (named & landmark).any()
            else None,
            false_accept_rate=float(named[~landmark].double().mean()) if n_other else None,
            false_accepts=int(named[~landmark].sum()),
        )
    return out
