"""An export's answers on fixed photos (top-5 landmarks and probabilities, per backend) as JSON, and the comparison
of two such files: run it on two checkouts to show that a change kept every answer.

    PYTHONPATH=. .venv/bin/python benchmarks/predictions.py --model models/default --json /tmp/before.json   # checkout A
    PYTHONPATH=. .venv/bin/python benchmarks/predictions.py --model models/default --json /tmp/after.json    # checkout B
    .venv/bin/python benchmarks/predictions.py --compare /tmp/before.json /tmp/after.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("onnx-int8", "onnx", "torchscript")


def predictions(model: Path, photos: list[Path]) -> dict:
    """{backend: {photo: {top5, probabilities, recognised, threshold}}} for every backend the export has."""
    try:
        from landmark_lib.serve.service import LandmarkService
    except ImportError:  # a checkout from before the package layout of issue 9, for before/after comparisons
        from landmark_lib.serving import LandmarkService

    out = {}
    for backend in BACKENDS:
        try:
            service = LandmarkService.from_spec(model, num_threads=1, backend=backend)
        except FileNotFoundError:  # the export has no file for this backend
            continue
        answers = {}
        for photo in photos:
            answer = service.predict(photo)
            answers[photo.name] = {
                "top5": [g.name for g in answer.top],
                "probabilities": [g.probability for g in answer.top],
                "recognised": answer.recognised,
                "threshold": answer.threshold,
            }
        out[backend] = answers
    return out


def compare(before: dict, after: dict) -> list[str]:
    """One line per backend: photos with the same top-5, the largest probability difference, same decisions."""
    lines = []
    for backend in sorted(set(before) | set(after)):
        if backend not in before or backend not in after:
            lines.append(f"{backend}: only in {'after' if backend in after else 'before'}")
            continue
        a, b = before[backend], after[backend]
        same_top5 = sum(a[p]["top5"] == b[p]["top5"] for p in a if p in b)
        diff = max(abs(x - y) for p in a if p in b for x, y in zip(a[p]["probabilities"], b[p]["probabilities"]))
        same_answer = sum(
            (a[p]["recognised"], a[p]["threshold"]) == (b[p]["recognised"], b[p]["threshold"]) for p in a if p in b
        )
        lines.append(
            f"{backend}: {len(a)} photos, same top-5 {same_top5}/{len(a)}, max |probability difference| {diff:.2e}, "
            f"same recognised/threshold {same_answer}/{len(a)}"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "default", help="export folder")
    parser.add_argument(
        "--photos", type=Path, default=REPO_ROOT / "examples", help="folder of the fixed photos (*.jpg)"
    )
    parser.add_argument("--json", type=Path, help="write the answers here")
    parser.add_argument(
        "--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"), help="compare two written files instead"
    )
    args = parser.parse_args(argv)
    if args.compare:
        print("\n".join(compare(*(json.loads(p.read_text()) for p in args.compare))))
        return
    result = predictions(args.model, sorted(args.photos.glob("*.jpg")))
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text)
    print(f"{', '.join(result)}: {len(next(iter(result.values())))} photos" + (f" -> {args.json}" if args.json else ""))


if __name__ == "__main__":
    main()
