"""Markdown tables for reports/real_world.md from evaluation folders (`landmark evaluate`'s metrics.json).

    python benchmarks/real_world_tables.py reports/real_world/old-test=old reports/real_world/new-test=new

Prints: the side-by-side summary (landmark top-1, GAP, no-landmark false accepts, coverage, precision), the same per
source collection, and the per-class table of the last folder (worst first).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def pct(value: float | None) -> str:
    return "" if value is None else f"{value:.2%}"


def load(spec: str) -> tuple[str, dict]:
    folder, _, label = spec.partition("=")
    return label or Path(folder).name, json.loads((Path(folder) / "metrics.json").read_text(encoding="utf-8"))


def summary(evals: list[tuple[str, dict]]) -> str:
    rows = [
        "| model | photos | landmark top-1 | top-5 (all classes) | GAP | no-landmark named | coverage | precision | threshold |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, m in evals:
        r = m["recognition"]
        far = (
            ""
            if r.get("false_accept_rate") is None
            else f"{pct(r['false_accept_rate'])} ({r['false_accepts']}/{r['no_landmark_photos']})"
        )
        rows.append(
            f"| {label} | {m['n_images']} | {pct(r['landmark_top1'])} | {pct(m['top5'])} | {r['gap']:.4f} | {far} | "
            f"{pct(r.get('coverage'))} | {pct(r.get('precision'))} | {r['threshold']} |"
        )
    return "\n".join(rows)


def per_source(evals: list[tuple[str, dict]]) -> str:
    labels = [label for label, _ in evals]
    head = "| source | photos | " + " | ".join(f"{label}: top-1 / named" for label in labels) + " |"
    rows = [head, "| --- | ---: |" + " ---: |" * len(labels)]
    for source in sorted(evals[-1][1]["per_source"]):
        cells = []
        for _, m in evals:
            r = m["per_source"].get(source, {})
            named = r.get("false_accept_rate") if r.get("landmark_photos", 0) == 0 else r.get("coverage")
            cells.append(f"{pct(r.get('landmark_top1')) or '-'} / {pct(named)}")
        n = evals[-1][1]["per_source"][source]["n_images"]
        rows.append(f"| {source} | {n} | " + " | ".join(cells) + " |")
    return (
        "\n".join(rows)
        + "\n\n(top-1: closest landmark right, on landmark photos; named: coverage on landmark photos, false accepts on no-landmark photos)"
    )


def per_class(metrics: dict) -> str:
    rows = ["| class | support | accuracy | precision | F1 |", "| --- | ---: | ---: | ---: | ---: |"]
    for c in sorted((c for c in metrics["per_class"] if c["support"]), key=lambda c: (c["accuracy"], c["name"])):
        rows.append(
            f"| {c['display_name']} | {c['support']} | {pct(c['accuracy'])} | {c['precision']:.3f} | {c['f1']:.3f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "evals", nargs="+", help="EVAL_DIR[=LABEL], oldest first; the per-class table is the last one's"
    )
    args = parser.parse_args(argv)
    evals = [load(spec) for spec in args.evals]
    print(summary(evals), "", per_source(evals), "", per_class(evals[-1][1]), sep="\n")


if __name__ == "__main__":
    main()
