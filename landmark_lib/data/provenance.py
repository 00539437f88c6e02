"""Which collection each photo comes from (ROOT/provenance.csv's `source_set`), and holding collections out.

A model can learn a collection's look instead of the landmark, so metrics are reported per source and the
cross-source check trains without some sources (`--exclude SOURCE[:CLASS]`) and evaluates on exactly them.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from .folder import DatasetError, ImageFolderSplit


@lru_cache(maxsize=16)
def _provenance(root: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    path = root / "provenance.csv"
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as f:
        return {(row["split"], row["class"], row["file"]): row for row in csv.DictReader(f)}


def _column(split: ImageFolderSplit, column: str, default) -> list[str]:
    values = []
    for (path, _), root_index in zip(split.samples, split.sample_roots):
        root = split.roots[root_index]
        row = _provenance(root.resolve()).get((split.name, path.parent.name, path.name)) or {}
        values.append(row.get(column) or default(root))
    return values


def sample_sources(split: ImageFolderSplit) -> list[str]:
    """The source collection of every sample: provenance.csv's source_set, else the root folder's name."""
    return _column(split, "source_set", lambda root: root.name)


def sample_categories(split: ImageFolderSplit) -> list[str]:
    """The kind of photo of every sample (provenance.csv's `category`: other_landmark, building, nature, everyday),
    '' where the dataset does not record one."""
    return _column(split, "category", lambda root: "")


def parse_exclusions(specs: list[str] | None) -> list[tuple[str, str | None]]:
    """'SOURCE' or 'SOURCE:CLASS' -> (source, class or None)."""
    out = []
    for spec in specs or []:
        source, _, cls = spec.partition(":")
        if not source:
            raise DatasetError(
                f"--exclude '{spec}' names no source; use SOURCE or SOURCE:CLASS (sources are provenance.csv's source_set)."
            )
        out.append((source, cls or None))
    return out


def excluded_mask(split: ImageFolderSplit, specs: list[str] | None) -> list[bool]:
    """True for every sample an exclusion matches; an exclusion that matches nothing is an error (a typo)."""
    rules = parse_exclusions(specs)
    sources = sample_sources(split)
    names = [split.class_names[t] for _, t in split.samples]
    mask = [False] * len(sources)
    for source, cls in rules:
        hits = [i for i, (s, n) in enumerate(zip(sources, names)) if s == source and (cls is None or n == cls)]
        if not hits:
            known = ", ".join(sorted(set(sources))[:12])
            raise DatasetError(
                f"--exclude {source}{':' + cls if cls else ''} matches no photo in {split.label}/{split.name}; known sources: {known}."
            )
        for i in hits:
            mask[i] = True
    return mask


def keep_only(split: ImageFolderSplit, keep: list[bool]) -> ImageFolderSplit:
    """The split restricted to the samples where KEEP is true (class list unchanged)."""
    samples = [s for s, k in zip(split.samples, keep) if k]
    sample_roots = [r for r, k in zip(split.sample_roots, keep) if k]
    return replace(split, samples=samples, sample_roots=sample_roots)
