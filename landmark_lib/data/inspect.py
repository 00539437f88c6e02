"""Look at a dataset before training on it: counts, unreadable files, train/test leakage, statistics, pictures.

Leakage matters most: a test photo that is a copy (md5) or a re-encoded/resized copy (64-bit dHash within
a few bits) of a train photo inflates test accuracy. Mean/std come from train only, so test never leaks in.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .. import threads
from ..errors import disk_errors
from .cache import resize_square
from .folder import IMAGE_EXTENSIONS, ImageFolderSplit, class_folders, open_split
from .images import ImageLoadError, load_rgb

SPLITS = ("train", "test")


def dhash(image: Image.Image) -> int:
    """64-bit difference hash: grayscale 9x8 (Lanczos), bit set where the right pixel is brighter than the left."""
    pixels = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances between uint64 hashes a[:, None] and b[None, :]."""
    x = a[:, None] ^ b[None, :]
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int64)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    return table[x.view(np.uint8).reshape(*x.shape, 8)].sum(-1, dtype=np.int64)


@dataclass
class _Record:
    md5: str
    dhash: int = 0
    pixel_sum: np.ndarray | None = None
    pixel_sq: np.ndarray | None = None
    pixels: int = 0
    error: str = ""


class _Scan(Dataset):
    """Per file: md5 of the bytes, decode (or the reason it fails), dHash and pixel sums at `stats_size`."""

    def __init__(self, files: list[Path], stats_size: int):
        self.files, self.stats_size = files, stats_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> _Record:
        path = self.files[index]
        record = _Record(md5=hashlib.md5(path.read_bytes()).hexdigest())
        try:
            image = load_rgb(path)
        except ImageLoadError as error:
            record.error = str(error)
            return record
        small = np.asarray(resize_square(image, self.stats_size), dtype=np.float64).reshape(-1, 3) / 255.0
        record.dhash, record.pixels = dhash(image), len(small)
        record.pixel_sum, record.pixel_sq = small.sum(0), (small**2).sum(0)
        return record


def _scan(files: list[Path], stats_size: int, workers: int, desc: str) -> list[_Record]:
    loader = DataLoader(_Scan(files, stats_size), batch_size=16, num_workers=workers, collate_fn=list)
    return [r for batch in tqdm(loader, desc=desc, unit="batch") for r in batch]


def _other_files(root: Path, split: str) -> list[str]:
    """Files in class folders that are ignored because their extension is not an image extension."""
    split_dir = root / split
    return sorted(
        str(p.relative_to(root))
        for folder in class_folders(split_dir)
        for p in (split_dir / folder).rglob("*")
        if p.is_file() and p.suffix.lower() not in IMAGE_EXTENSIONS
    )


def _duplicates(root: Path, splits: dict, records: dict, threshold: int) -> tuple[list[dict], list[dict]]:
    """Exact (same md5) and near (dHash distance <= threshold, different bytes) train/test pairs."""

    def valid(split: str) -> list[tuple[str, str, _Record]]:
        return [
            (str(path.relative_to(root)), splits[split].class_names[target], record)
            for (path, target), record in zip(splits[split].samples, records[split])
            if not record.error
        ]

    train, test = valid("train"), valid("test")
    by_md5: dict[str, list[str]] = {}
    for name, _, record in train:
        by_md5.setdefault(record.md5, []).append(name)
    exact = [{"test": name, "train": match} for name, _, r in test for match in by_md5.get(r.md5, [])]
    near: list[dict] = []
    if train and test:
        train_hashes = np.array([r.dhash for _, _, r in train], dtype=np.uint64)
        for start in range(0, len(test), 256):
            block = test[start : start + 256]
            distances = hamming(np.array([r.dhash for _, _, r in block], dtype=np.uint64), train_hashes)
            for i, j in zip(*np.nonzero(distances <= threshold)):
                (test_name, test_class, test_rec), (train_name, train_class, train_rec) = block[i], train[j]
                if test_rec.md5 != train_rec.md5:
                    near.append(
                        {
                            "test": test_name,
                            "train": train_name,
                            "distance": int(distances[i, j]),
                            "same_class": test_class == train_class,
                        }
                    )
    return exact, near


def _sample_grid(
    split: ImageFolderSplit, records: list[_Record], path: Path, per_class: int, max_classes: int, thumb: int = 96
) -> None:
    """One row per class (up to max_classes), `per_class` random readable photos, as one mosaic image."""
    import matplotlib.pyplot as plt

    by_class: dict[int, list[Path]] = {}
    for (file, target), record in zip(split.samples, records):
        if not record.error:
            by_class.setdefault(target, []).append(file)
    classes = list(range(len(split.class_names)))[:max_classes]
    rng = random.Random(0)
    mosaic = np.full((len(classes) * thumb, per_class * thumb, 3), 255, dtype=np.uint8)
    for row, target in enumerate(classes):
        files = by_class.get(target, [])
        for col, file in enumerate(sorted(rng.sample(files, min(per_class, len(files))))):
            square = np.asarray(resize_square(load_rgb(file), thumb))
            mosaic[row * thumb : (row + 1) * thumb, col * thumb : (col + 1) * thumb] = square
    scale = 1.2 / thumb  # inches per pixel
    fig, ax = plt.subplots(figsize=(per_class * thumb * scale + 2.5, len(classes) * thumb * scale + 0.6))
    ax.imshow(mosaic)
    ax.set_yticks([(row + 0.5) * thumb for row in range(len(classes))])
    ax.set_yticklabels([split.class_names[t] for t in classes], fontsize=8)
    ax.set_xticks([])
    shown = (
        f"first {len(classes)} of {len(split.class_names)} classes"
        if len(classes) < len(split.class_names)
        else (f"{len(classes)} classes")
    )
    ax.set_title(f"{split.name} samples ({shown})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _distribution_chart(class_names: list[str], counts: dict[str, dict[str, int]], path: Path) -> None:
    """Horizontal bars of readable images per class, train and test side by side."""
    import matplotlib.pyplot as plt

    y = np.arange(len(class_names))
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.22 * len(class_names)))
    for offset, split in ((-0.2, "train"), (0.2, "test")):
        ax.barh(y + offset, [counts[split].get(c, 0) for c in class_names], height=0.4, label=split)
    ax.set_yticks(y)
    ax.set_yticklabels(class_names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.set_title("class distribution")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _mean_std(records: list[_Record]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std over all pixels of the readable training photos (NaN without any)."""
    pixels = sum(r.pixels for r in records)
    if not pixels:
        return [float("nan")] * 3, [float("nan")] * 3
    total = np.sum([r.pixel_sum for r in records if r.pixel_sum is not None], axis=0) / pixels
    sq = np.sum([r.pixel_sq for r in records if r.pixel_sq is not None], axis=0) / pixels
    return total.tolist(), np.sqrt(np.maximum(sq - total**2, 0.0)).tolist()


def inspect_dataset(
    root: str | Path,
    out_dir: str | Path,
    stats_size: int = 64,
    near_threshold: int = 4,
    samples_per_class: int = 4,
    max_classes: int = 50,
    workers: int = 2,
) -> dict:
    """Scan ROOT/{train,test}, write report.json, samples.png and class_distribution.png to OUT_DIR; return the report.

    Layout problems raise DatasetError (from open_split); unreadable files are listed, never fatal.
    """
    import matplotlib

    matplotlib.use("Agg")
    root = Path(root).expanduser()
    train = open_split(root, "train")
    splits = {"train": train, "test": open_split(root, "test", train.class_names)}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = {s: _scan([p for p, _ in splits[s].samples], stats_size, workers, f"scanning {s}") for s in SPLITS}

    counts: dict[str, dict[str, int]] = {s: {c: 0 for c in train.class_names} for s in SPLITS}
    skipped = []
    for s in SPLITS:
        for (path, target), record in zip(splits[s].samples, records[s]):
            if record.error:
                skipped.append({"file": str(path.relative_to(root)), "reason": record.error})
            else:
                counts[s][train.class_names[target]] += 1

    mean, std = _mean_std([r for r in records["train"] if not r.error])

    exact, near = _duplicates(root, splits, records, near_threshold)
    samples_png, chart_png = out / "samples.png", out / "class_distribution.png"
    _sample_grid(train, records["train"], samples_png, samples_per_class, max_classes)
    _distribution_chart(train.class_names, counts, chart_png)

    report = {
        "root": str(root),
        "classes": train.class_names,
        "counts": counts,
        "totals": {s: {"files": len(splits[s].samples), "images": sum(counts[s].values())} for s in SPLITS},
        "skipped": skipped,
        "ignored_files": [f for s in SPLITS for f in _other_files(root, s)],
        "exact_duplicates": exact,
        "near_duplicates": near,
        "near_threshold": near_threshold,
        "train_mean": mean,
        "train_std": std,
        "stats_size": stats_size,
        "pictures": {"samples": str(samples_png), "class_distribution": str(chart_png)},
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def summary(report: dict, limit: int = 10) -> str:
    """The report as a few lines for a person: totals, what was skipped, leakage, statistics, where files went."""
    n = len(report["classes"])
    lines = [f"Dataset {report['root']}: {n} class{'' if n == 1 else 'es'}"]
    for s in SPLITS:
        per_class = list(report["counts"][s].values())
        total = report["totals"][s]
        lines.append(
            f"  {s}: {total['images']} images ({total['files'] - total['images']} unreadable skipped), "
            f"{min(per_class)}-{max(per_class)} per class"
        )

    def listing(title: str, items: list[str]) -> None:
        lines.append(f"{title} ({len(items)}):" if items else f"{title}: none")
        lines.extend(f"  {item}" for item in items[:limit])
        if len(items) > limit:
            lines.append(f"  ... {len(items) - limit} more in report.json")

    listing("Unreadable files skipped", [f"{s['file']}: {s['reason']}" for s in report["skipped"]])
    if report["ignored_files"]:
        listing("Non-image files ignored", report["ignored_files"])
    listing("Exact train/test duplicates", [f"{d['test']} == {d['train']}" for d in report["exact_duplicates"]])
    listing(
        f"Near train/test duplicates (dHash distance <= {report['near_threshold']})",
        [
            f"{d['test']} ~ {d['train']} (distance {d['distance']}{'' if d['same_class'] else ', other class'})"
            for d in report["near_duplicates"]
        ],
    )
    fmt = lambda values: "[" + ", ".join(f"{v:.4f}" for v in values) + "]"  # noqa: E731
    lines.append(
        f"Train RGB mean {fmt(report['train_mean'])}, std {fmt(report['train_std'])} "
        f"(images resized to {report['stats_size']} px)"
    )
    pictures = report["pictures"]
    lines.append(
        f"Wrote {Path(pictures['samples']).parent / 'report.json'}, {pictures['samples']}, "
        f"{pictures['class_distribution']}"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    """`landmark data inspect ROOT`: the report's files, then its summary."""
    out = args.out or Path("runs") / f"inspect-{args.root.expanduser().resolve().name}"
    with disk_errors():
        report = inspect_dataset(
            args.root,
            out,
            samples_per_class=args.samples_per_class,
            max_classes=args.max_classes,
            workers=threads.count() if args.workers is None else args.workers,
        )
    print(summary(report))
