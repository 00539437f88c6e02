"""How often an export names a landmark for photos that show none, per collection and category, at its served
operating points (and how many of a landmark folder's photos it names, and names right). Used for the before/after
tables of reports/real_world.md: the old model on collections it never trained on, both models on test/.

    PYTHONPATH=. .venv/bin/python benchmarks/no_landmark_check.py --model models/default \\
        --data ../shared/data/landmarks_negatives --split test --json /tmp/check.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from collections import defaultdict
from pathlib import Path

from landmark_lib.runtime.photos import read_photo
from landmark_lib.serve.service import LandmarkService


def provenance(root: Path, split: str) -> list[dict]:
    with (root / "provenance.csv").open(newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r["split"] == split]


def check(model: str, roots: list[Path], split: str, classes: list[str], batch: int = 16) -> dict:
    """{'by_collection': {...}, 'by_category': {...}} with photos, named (any level), confident, right."""
    service = LandmarkService.from_spec(model, num_threads=int(os.environ.get("OMP_NUM_THREADS", "1")))
    rows = [(root, r) for root in roots for r in provenance(root, split) if not classes or r["class"] in classes]
    counts: dict[str, dict[str, dict[str, int]]] = {"by_collection": {}, "by_category": {}}
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        photos = [
            read_photo(root / split / r["class"] / r["file"], r["file"], service.max_short_side) for root, r in chunk
        ]
        for (_, r), answer in zip(chunk, service.predict_photos(photos)):
            category = r.get("category") or ("no_landmark" if r["class"] == "no_landmark" else "landmark")
            for table, key in (("by_collection", r["source_set"]), ("by_category", category)):
                c = counts[table].setdefault(key, defaultdict(int))
                c["photos"] += 1
                c["named"] += answer.level is not None
                c["confident"] += answer.level == "confident"
                c["right"] += answer.level is not None and answer.best.name == r["class"]
    return {
        "model": model,
        "split": split,
        "operating_points": vars(service.points),
        **{t: {k: dict(v) for k, v in sorted(table.items())} for t, table in counts.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="export folder")
    parser.add_argument("--data", nargs="+", type=Path, required=True, help="dataset roots with provenance.csv")
    parser.add_argument("--split", default="test", help="train or test")
    parser.add_argument("--classes", nargs="*", default=[], help="only these class folders (default: all)")
    parser.add_argument("--json", type=Path, help="write the counts here")
    args = parser.parse_args()
    result = check(args.model, args.data, args.split, args.classes)
    for table in ("by_category", "by_collection"):
        for key, c in result[table].items():
            print(
                f"{table[3:]:10s} {key:32s} {c['photos']:5d} photos: named {c['named'] / c['photos']:7.2%} "
                f"(confident {c['confident'] / c['photos']:7.2%}), right {c['right'] / c['photos']:7.2%}"
            )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
