"""Which score tells landmark photos from everyday photos best, measured on a run's validation photos (never test).

Three scores from the same network's logits, each turned into a "name it or not" rule at the same false-accept
target, are compared by the coverage of landmark photos they keep, the precision of what they name, GAP and AUROC:

- background: the best landmark's probability in the full softmax, where the trained `no_landmark` class takes
  probability away from every landmark (what the app serves; needs only the exported probabilities);
- msp: the best landmark's probability in a softmax over the landmark logits alone (the background column ignored:
  how a model without a background class rejects);
- energy: log-sum-exp of the landmark logits (the energy score of Liu et al., 2020).

    landmark rejection runs/NAME --max-false-accept 0.02 --json reports/rejection.json
"""

from __future__ import annotations

import argparse
import json

import torch

from ..data.folder import DatasetError
from ..evaluation.threshold import validation_logits
from ..labels import BACKGROUND_CLASS
from ..metrics import gap
from ..models.trained import load_trained_model
from ..recognition import is_landmark_target, landmark_columns


def scores(logits: torch.Tensor, class_names: list[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Score name -> (confidence [N], best landmark index [N]) for each rejection score."""
    columns = landmark_columns(class_names)
    landmark_logits = logits[:, columns]
    best = columns[landmark_logits.argmax(dim=1)]
    return {
        "background": (torch.softmax(logits, dim=1)[:, columns].max(dim=1).values, best),
        "msp": (torch.softmax(landmark_logits, dim=1).max(dim=1).values, best),
        "energy": (torch.logsumexp(landmark_logits, dim=1), best),
    }


def auroc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """Probability that a random landmark photo scores above a random no-landmark photo (ties count half)."""
    diff = positive[:, None] - negative[None, :]
    return float(((diff > 0).double() + 0.5 * (diff == 0).double()).mean())


def compare(
    logits: torch.Tensor, targets: torch.Tensor, class_names: list[str], max_false_accept: float = 0.02
) -> dict:
    """Each score's coverage, precision and false accepts at MAX_FALSE_ACCEPT, its GAP and AUROC."""
    if BACKGROUND_CLASS not in class_names or not (targets == class_names.index(BACKGROUND_CLASS)).any():
        raise DatasetError(
            f"Comparing rejection scores needs validation photos of a '{BACKGROUND_CLASS}' class; train with one."
        )
    landmark = is_landmark_target(targets, class_names)
    out = {}
    for name, (confidence, best) in scores(logits, class_names).items():
        correct = (best == targets) & landmark
        others = confidence[~landmark].sort(descending=True).values
        allowed = int(max_false_accept * len(others))  # no-landmark photos that may score above the cut
        cut = float(others[allowed]) if allowed < len(others) else float("-inf")
        named = confidence > cut
        out[name] = {
            "coverage": float(named[landmark].double().mean()),
            "precision": float(correct[named].double().sum() / max(1, int((named & landmark).sum()))),
            "false_accept_rate": float(named[~landmark].double().mean()),
            "gap": gap(confidence, correct, int(landmark.sum())),
            "auroc": auroc(confidence[landmark], confidence[~landmark]),
        }
    return {
        "max_false_accept": max_false_accept,
        "landmark_photos": int(landmark.sum()),
        "no_landmark_photos": int((~landmark).sum()),
        "scores": out,
    }


def run(args: argparse.Namespace) -> None:
    """`landmark rejection`: the comparison as a markdown table (and JSON)."""
    model, config = load_trained_model(args.run_dir)
    result = compare(*validation_logits(config, model), config.class_names, args.max_false_accept)
    result["run"] = str(args.run_dir)
    print(
        f"{result['landmark_photos']} landmark / {result['no_landmark_photos']} no-landmark validation photos; "
        f"rule: at most {args.max_false_accept:.0%} of no-landmark photos named"
    )
    print("| score | coverage | precision | false accepts | GAP | AUROC |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, row in result["scores"].items():
        print(
            f"| {name} | {row['coverage']:.2%} | {row['precision']:.2%} | {row['false_accept_rate']:.2%} | {row['gap']:.4f} | {row['auroc']:.4f} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
