"""Evaluate a run (or one of its exported files) on a dataset split: metrics, plots and per-image predictions.

Each original file goes through load_rgb -> pil_to_uint8_chw -> the predictor's own preprocessing, exactly the
path a served photo takes, so the numbers describe the model users get.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import textwrap
import time
import warnings
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch.utils.data import DataLoader, Dataset

from .data.folder import (
    DatasetError,
    ImageFolderSplit,
    data_roots,
    load_class_info,
    open_split,
)
from .data.images import ImageLoadError, decode_short_side, load_rgb, pil_to_uint8_chw
from .data.provenance import excluded_mask, keep_only, sample_sources
from .predictor import LandmarkPredictor
from .recognition import best_landmarks, recognition_metrics
from .run import RunConfig, RunError, load_trained_model

GALLERY_SIZE = 24


def compute_metrics(
    probs: torch.Tensor, targets: torch.Tensor, class_names: list[str], display_names: list[str] | None = None,
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
    topk = probs.topk(min(5, n_classes), dim=1).indices
    cm = torch.bincount(targets * n_classes + predicted, minlength=n_classes * n_classes).view(n_classes, n_classes)
    tp, support, n_predicted = cm.diag().double(), cm.sum(dim=1).double(), cm.sum(dim=0).double()
    precision = torch.where(n_predicted > 0, tp / n_predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), torch.zeros_like(tp))
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
    off_diagonal = cm.clone().fill_diagonal_(0)
    counts, flat = off_diagonal.flatten().sort(descending=True, stable=True)
    confused = []
    for count, index in zip(counts[:n_confused].tolist(), flat[:n_confused].tolist()):
        if count == 0:
            break
        t, p = divmod(index, n_classes)
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
    return {
        "top1": float((predicted == targets).double().mean()),
        "top5": float((topk == targets[:, None]).any(dim=1).double().mean()),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "n_images": int(targets.numel()),
        "per_class": per_class,
        "most_confused": confused,
        "confusion_matrix": cm.tolist(),
    }


class _PhotoFiles(Dataset):
    """Decodes original files in the workers; an unreadable file becomes (None, reason) instead of an exception.

    MIN_SHORT_SIDE: decode_short_side of the predictor, as the app decodes photos (same pixels, bounded memory).
    """

    def __init__(self, samples: list[tuple[Path, int]], min_short_side: int | None = None):
        self.samples, self.min_short_side = samples, min_short_side

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, int, int, str]:
        path, target = self.samples[index]
        try:
            return pil_to_uint8_chw(load_rgb(path, self.min_short_side)), target, index, ""
        except ImageLoadError as error:
            return None, target, index, str(error)


def _keep_list(items: list) -> list:
    """Images differ in size, so a batch stays a list (the predictor preprocesses each one)."""
    return items


def _load_predictor(run_dir: str | Path | None, exported: str | Path | None, device: str) -> tuple[torch.nn.Module, RunConfig | None]:
    if exported is None:
        if run_dir is None:
            raise RunError("Nothing to evaluate: pass a run folder, or --exported with an exported model file.")
        model, config = load_trained_model(run_dir)
        return LandmarkPredictor(model, config.preprocess, config.classes).eval().to(device), config
    if not Path(exported).is_file():
        raise RunError(f"Exported model {exported} does not exist; create it with `python export.py RUN_DIR --out DIR`.")
    config = RunConfig.load(run_dir) if run_dir and (Path(run_dir) / "config.json").is_file() else None
    if Path(exported).suffix == ".onnx":  # model.onnx / model.int8.onnx: the network only, behind the same torch preprocessing
        from .export import (
            labels,  # labels.json's entries, as an export folder would hold them
        )
        from .onnx_model import OnnxPredictor

        if config is None:
            return OnnxPredictor.from_export_dir(Path(exported).parent, torch.get_num_threads(), Path(exported).name), None
        return OnnxPredictor(exported, config.preprocess, labels(config), torch.get_num_threads()), config
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch marks TorchScript deprecated; it is our serving format
        return torch.jit.load(str(exported), map_location=device).eval(), config


def _predict(
    predictor: torch.nn.Module, samples: list[tuple[Path, int]], batch_size: int, num_workers: int, tta: bool, device: str
) -> tuple[torch.Tensor, list[int], list[tuple[int, str]]]:
    """Probabilities of the readable images, their sample indices, and (index, reason) of the skipped ones."""
    short_side = decode_short_side(int(predictor.preprocess.resize_size))
    loader = DataLoader(_PhotoFiles(samples, short_side), batch_size=batch_size, num_workers=num_workers, collate_fn=_keep_list)
    probs, kept, skipped = [], [], []
    with torch.no_grad():
        for batch in loader:
            skipped += [(index, reason) for image, _, index, reason in batch if image is None]
            images = [image.to(device) for image, _, _, _ in batch if image is not None]
            if not images:
                continue
            batch_probs = predictor.forward_batch(images)
            if tta:
                batch_probs = (batch_probs + predictor.forward_batch([image.flip(-1) for image in images])) / 2
            probs.append(batch_probs.float().cpu())
            kept += [index for image, _, index, _ in batch if image is not None]
    return (torch.cat(probs) if probs else torch.empty(0)), kept, skipped


def exported_threshold(exported: str | Path) -> float | None:
    """The recognition threshold export.json records for this exported file (the int8 file has its own)."""
    path = Path(exported).parent / "export.json"
    if not path.is_file():
        return None
    info = json.loads(path.read_text(encoding="utf-8"))
    int8 = info.get("onnx_int8") or {}
    value = int8.get("threshold") if Path(exported).name == int8.get("file") else info.get("threshold")
    return None if value is None else float(value)


def open_eval_split(data, splits: str, model_classes: list[str], only_excluded: list[str] | None = None) -> tuple[ImageFolderSplit, list[str]]:
    """DATA's SPLITS ('test', or 'train+test') with the model's classes first, and each photo's source collection.

    Classes the model does not know are appended (it never predicts them, so their photos count as missed, or as
    no-landmark photos). ONLY_EXCLUDED keeps only the photos these --exclude specs match (the cross-source check).
    """
    names = list(model_classes)
    for split in splits.split("+"):
        names += [n for n in open_split(data, split).class_names if n not in names]
    samples, sample_roots, roots, sources = [], [], [], []
    for split in splits.split("+"):
        part = open_split(data, split, class_names=names)
        part_sources = sample_sources(part)
        if only_excluded:
            keep = excluded_mask(part, only_excluded)
            part, part_sources = keep_only(part, keep), [s for s, k in zip(part_sources, keep) if k]
        samples += part.samples
        sample_roots += [r + len(roots) for r in part.sample_roots]
        roots += part.roots
        sources += part_sources
    return ImageFolderSplit(roots, splits, names, samples, sample_roots), sources


def evaluate_run(
    run_dir: str | Path | None,
    split: str = "test",
    data=None,
    out: str | Path | None = None,
    tta: bool = False,
    batch_size: int = 32,
    exported: str | Path | None = None,
    num_workers: int = 2,
    device: str | None = None,
    threshold: float | None = None,
    only_excluded: bool = False,
) -> dict:
    """Evaluate the run's best weights (or the exported file) on DATA/SPLIT, write the report to OUT, return the metrics.

    Besides top-1/top-5/macro-F1: GAP, the no-landmark false-accept rate, coverage and precision at THRESHOLD
    (default: the exported file's own from export.json), overall and per source collection (provenance.csv).
    """
    start = time.time()
    onnx = str(exported or "").endswith(".onnx")  # ONNX files run on ONNX Runtime's CPU provider here
    device = device or ("cuda" if torch.cuda.is_available() and not onnx else "cpu")
    predictor, config = _load_predictor(run_dir, exported, device)
    data = data or (config.args.get("data") if config else None)
    if not data:
        raise DatasetError(f"{run_dir or exported} does not record its dataset folder; pass --data ROOT (the folder holding {split}/<class>/).")
    if threshold is None and exported:
        threshold = exported_threshold(exported)
    model_classes = list(predictor.class_names)
    exclusions = (config.args.get("exclude") if config else None) if only_excluded else None
    if only_excluded and not exclusions:
        raise RunError(f"--only-excluded needs a run trained with --exclude; {run_dir} held nothing out.")
    dataset, sources = open_eval_split(data, split, model_classes, exclusions)
    class_names = dataset.class_names
    display_names = list(predictor.display_names) + [c.display_name for c in load_class_info(data, class_names[len(model_classes):])]
    where = "+".join(str(r) for r in data_roots(data))
    if not dataset.samples:
        raise DatasetError(f"{where} has no {split} images to evaluate.")
    probs, kept, skipped = _predict(predictor, dataset.samples, batch_size, num_workers, tta, device)
    if not kept:
        raise DatasetError(f"None of the {len(dataset.samples)} {split} images in {where} could be decoded.")
    probs = torch.nn.functional.pad(probs, (0, len(class_names) - probs.shape[1]))  # classes the model does not know
    targets = torch.tensor([dataset.samples[i][1] for i in kept])
    metrics = compute_metrics(probs, targets, class_names, display_names)
    metrics["recognition"] = recognition_metrics(probs, targets, class_names, threshold)
    metrics["per_source"] = _per_source(probs, targets, class_names, threshold, [sources[i] for i in kept])
    metrics.update(
        split=split,
        data=[str(r) for r in data_roots(data)],
        run_dir=str(run_dir) if run_dir else None,
        exported=str(exported) if exported else None,
        model=config.model.name if config else None,
        classes_unknown_to_model=class_names[len(model_classes):],
        only_excluded=exclusions,
        tta=tta,
        n_skipped=len(skipped),
        skipped=[{"file": _relative(dataset.samples[i][0]), "reason": r} for i, r in skipped],
    )
    out = Path(out) if out else Path(run_dir or Path(exported).parent) / f"eval-{split}"
    out.mkdir(parents=True, exist_ok=True)
    files = [dataset.samples[i][0] for i in kept]
    _write_predictions(out / "predictions.csv", files, [sources[i] for i in kept], probs, targets, class_names)
    _plot_confusion(out / "confusion_matrix.png", metrics, display_names)
    _plot_per_class(out / "per_class_accuracy.png", metrics)
    _plot_misclassified(out / "misclassified.png", files, probs, targets, display_names)
    metrics["seconds"] = round(time.time() - start, 2)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
    return metrics


def _relative(path: Path) -> str:
    """SPLIT/CLASS/FILE: enough to find the photo in its dataset, without the machine's folders."""
    return str(Path(*path.parts[-3:]))


def _per_source(probs: torch.Tensor, targets: torch.Tensor, class_names: list[str], threshold: float | None, sources: list[str]) -> dict:
    """The recognition metrics and top-1 of each source collection on its own."""
    out = {}
    for source in sorted(set(sources)):
        rows = torch.tensor([s == source for s in sources])
        out[source] = {"n_images": int(rows.sum()), **recognition_metrics(probs[rows], targets[rows], class_names, threshold)}
    return out


def _write_predictions(
    path: Path, files: list[Path], sources: list[str], probs: torch.Tensor, targets: torch.Tensor, class_names: list[str]
) -> None:
    """One row per photo: the top-5 over all classes, and the answer the service gives (best landmark, its confidence)."""
    top = probs.topk(min(5, probs.shape[1]), dim=1)
    landmark_conf, landmark_best = (t[:, 0].tolist() for t in best_landmarks(probs, class_names))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "source", "true", "predicted", "confidence", "correct", "top5", "best_landmark", "landmark_confidence"])
        rows = zip(files, sources, targets.tolist(), top.values.tolist(), top.indices.tolist(), landmark_best, landmark_conf)
        for file, source, target, values, indices, best, conf in rows:
            top5 = ";".join(f"{class_names[i]}:{v:.4f}" for i, v in zip(indices, values))
            predicted = indices[0]
            writer.writerow([_relative(file), source, class_names[target], class_names[predicted], f"{values[0]:.4f}",
                             int(predicted == target), top5, class_names[best], f"{conf:.6f}"])


def _short(name: str, width: int = 26) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _plot_confusion(path: Path, metrics: dict, display_names: list[str]) -> None:
    """Row-normalised (share of each true class), sized so 44-50 class names stay legible."""
    cm = torch.tensor(metrics["confusion_matrix"], dtype=torch.float64)
    rates = cm / cm.sum(dim=1, keepdim=True).clamp(min=1)
    n = len(display_names)
    size = max(6.0, 0.3 * n + 3.0)
    font = max(5.0, min(10.0, 300.0 / n))
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot()
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    labels = [_short(name) for name in display_names]
    ax.set_xticks(range(n), labels, rotation=90, fontsize=font)
    ax.set_yticks(range(n), labels, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for t in range(n):
        for p in range(n):
            if rates[t, p] >= 0.1:
                ax.text(p, t, f"{rates[t, p] * 100:.0f}", ha="center", va="center", fontsize=font * 0.8,
                        color="white" if rates[t, p] > 0.5 else "black")
    ax.set_title(f"Confusion matrix ({metrics['split']}, top-1 {metrics['top1']:.1%}); cells: % of the true class")
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def _plot_per_class(path: Path, metrics: dict) -> None:
    """Classes sorted by accuracy, worst at the top, with their test support."""
    rows = sorted((c for c in metrics["per_class"] if c["accuracy"] is not None), key=lambda c: c["accuracy"], reverse=True)
    fig = Figure(figsize=(8.0, max(3.0, 0.24 * len(rows) + 1.5)))
    ax = fig.add_subplot()
    ax.barh(range(len(rows)), [c["accuracy"] for c in rows], color="tab:blue")
    ax.set_yticks(range(len(rows)), [f"{_short(c['display_name'], 32)} (n={c['support']})" for c in rows], fontsize=7)
    ax.axvline(metrics["top1"], color="tab:red", linestyle="--", label=f"overall top-1 {metrics['top1']:.1%}")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("accuracy (recall)")
    ax.set_title(f"Per-class accuracy ({metrics['split']})")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def _plot_misclassified(
    path: Path, files: list[Path], probs: torch.Tensor, targets: torch.Tensor, display_names: list[str]
) -> None:
    """The most confident mistakes: the ones worth looking at (label noise, look-alikes, collection bias)."""
    confidence, predicted = probs.max(dim=1)
    wrong = (predicted != targets).nonzero().flatten()
    wrong = wrong[confidence[wrong].argsort(descending=True)][:GALLERY_SIZE].tolist()
    columns = 6
    rows = max(1, -(-len(wrong) // columns))
    fig = Figure(figsize=(columns * 2.4, rows * 2.9))
    if not wrong:
        fig.text(0.5, 0.5, "no misclassified images", ha="center", va="center", fontsize=14)
    for slot, i in enumerate(wrong):
        ax = fig.add_subplot(rows, columns, slot + 1)
        image = load_rgb(files[i])
        image.thumbnail((256, 256))
        ax.imshow(image)
        ax.axis("off")
        pred = textwrap.shorten(display_names[int(predicted[i])], 30, placeholder="…")
        true = textwrap.shorten(display_names[int(targets[i])], 30, placeholder="…")
        ax.set_title(f"pred: {pred} ({confidence[i]:.0%})\ntrue: {true}", fontsize=7, color="firebrick")
    fig.suptitle(f"Most confident mistakes ({len(wrong)} shown)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    from .serving import threshold_arg

    parser = argparse.ArgumentParser(description="Evaluate a training run (or an exported model) on a dataset split.")
    parser.add_argument("run_dir", nargs="?", help="run folder (config.json + model.safetensors); optional with --exported")
    parser.add_argument("--split", default="test", help="split folder, or 'train+test' for both (default test)")
    parser.add_argument("--data", nargs="+", help="dataset root(s) (default: the run's --data)")
    parser.add_argument("--out", help="output folder (default: RUN_DIR/eval-SPLIT)")
    parser.add_argument("--tta", action="store_true", help="average with the horizontally flipped image")
    parser.add_argument("--batch-size", type=int, default=32, help="photos per network call (default 32)")
    parser.add_argument("--exported", help="evaluate this exported file (model.pt, model.onnx or model.int8.onnx) instead of the run's weights")
    parser.add_argument("--threshold", type=threshold_arg, help="recognition threshold, 0..1 (default: the exported file's, from export.json)")
    parser.add_argument("--only-excluded", action="store_true", help="only the photos the run's --exclude held out (the cross-source check)")
    args = parser.parse_args(argv)
    try:
        metrics = evaluate_run(args.run_dir, args.split, args.data, args.out, args.tta, args.batch_size, args.exported,
                               threshold=args.threshold, only_excluded=args.only_excluded)
    except (RunError, DatasetError) as error:
        sys.exit(f"error: {error}")
    out = args.out or Path(args.run_dir or Path(args.exported).parent) / f"eval-{args.split}"
    rec = metrics["recognition"]
    summary = f"GAP {rec['gap']:.4f}  landmark top-1 {rec['landmark_top1']:.2%}" if rec["gap"] is not None else "no landmark photos"
    if rec.get("false_accept_rate") is not None:
        summary += f"  no-landmark false accepts {rec['false_accept_rate']:.2%} ({rec['false_accepts']}/{rec['no_landmark_photos']})"
    if rec.get("coverage") is not None:
        summary += f"  coverage {rec['coverage']:.2%}  precision {rec['precision'] or 0:.2%} at {rec['threshold']:.3f}"
    print(
        f"{args.split}: top-1 {metrics['top1']:.2%}  top-5 {metrics['top5']:.2%}  macro-F1 {metrics['macro_f1']:.4f}  {summary}  "
        f"on {metrics['n_images']} images ({metrics['n_skipped']} skipped), {metrics['seconds']:.0f}s -> {out}"
    )


if __name__ == "__main__":
    main()
