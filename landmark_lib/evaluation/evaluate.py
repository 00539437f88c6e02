"""Evaluate a run (or one of its exported files) on a dataset split: metrics, plots and per-image predictions.

Each original file goes through load_rgb -> pil_to_uint8_chw -> the predictor's own preprocessing, exactly the
path a served photo takes, so the numbers describe the model users get.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .. import bundle, threads
from ..artifacts import export_info
from ..artifacts.run_folder import CONFIG_FILE, RunConfig, RunError
from ..data.classes import load_class_info
from ..data.folder import DatasetError, ImageFolderSplit, data_roots, open_split
from ..data.images import ImageLoadError, decode_short_side, load_rgb, pil_to_uint8_chw
from ..data.provenance import excluded_mask, keep_only, sample_sources
from ..metrics import compute_metrics, recognition_metrics
from ..models.trained import load_trained_model
from ..predictor import LandmarkPredictor
from ..recognition import best_landmarks
from ..runtime.backends import Classifier, OnnxPredictor, load_torchscript
from .plots import plot_confusion, plot_misclassified, plot_per_class


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


def _load_predictor(
    run_dir: str | Path | None, exported: str | Path | None, device: str
) -> tuple[Classifier, RunConfig | None]:
    if exported is None:
        if run_dir is None:
            raise RunError("Nothing to evaluate: pass a run folder, or --exported with an exported model file.")
        model, config = load_trained_model(run_dir)
        predictor: Classifier = LandmarkPredictor(model, config.preprocess, config.classes).eval().to(device)
        return predictor, config
    if not Path(exported).is_file():
        raise RunError(f"Exported model {exported} does not exist; create it with `landmark export RUN_DIR --out DIR`.")
    run_config = RunConfig.load(run_dir) if run_dir and (Path(run_dir) / CONFIG_FILE).is_file() else None
    if (
        Path(exported).suffix == ".onnx"
    ):  # model.onnx / model.int8.onnx: the network, behind preprocess.onnx (or the torch Preprocess for old exports)
        if run_config is None:
            return OnnxPredictor.from_export_dir(Path(exported).parent, threads.count(), Path(exported).name), None
        graph = Path(exported).with_name(bundle.PREPROCESS_FILE)  # the served preprocessing graph, when exported
        return OnnxPredictor(
            exported,
            run_config.preprocess,
            run_config.classes,
            threads.count(),
            graph if graph.is_file() else None,
        ), run_config
    return load_torchscript(exported, device), run_config


def _predict(
    predictor: Classifier, samples: list[tuple[Path, int]], batch_size: int, num_workers: int, tta: bool, device: str
) -> tuple[torch.Tensor, list[int], list[tuple[int, str]]]:
    """Probabilities of the readable images, their sample indices, and (index, reason) of the skipped ones."""
    short_side = decode_short_side(int(predictor.preprocess.resize_size))
    loader = DataLoader(
        _PhotoFiles(samples, short_side), batch_size=batch_size, num_workers=num_workers, collate_fn=_keep_list
    )
    probs, kept, skipped = [], [], []
    with torch.no_grad():
        for batch in tqdm(loader, desc="evaluating", unit="batch"):
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
    return export_info.read(Path(exported).parent).serving.threshold_of(bundle.backend_of_file(Path(exported).name))


def open_eval_split(
    data, splits: str, model_classes: list[str], only_excluded: list[str] | None = None
) -> tuple[ImageFolderSplit, list[str]]:
    """DATA's SPLITS ('test', or 'train+test') with the model's classes first, and each photo's source collection.

    Classes the model does not know are appended (it never predicts them, so their photos count as missed, or as
    no-landmark photos). ONLY_EXCLUDED keeps only the photos these --exclude specs match (the cross-source check).
    """
    names = list(model_classes)
    for split in splits.split("+"):
        names += [n for n in open_split(data, split).class_names if n not in names]
    samples: list[tuple[Path, int]] = []
    sample_roots: list[int] = []
    roots: list[Path] = []
    sources: list[str] = []
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
    data = data or _run_data(config, run_dir or exported, split)
    if threshold is None and exported:
        threshold = exported_threshold(exported)
    model_classes = list(predictor.class_names)
    exclusions = _exclusions(config, run_dir) if only_excluded else None
    dataset, sources = open_eval_split(data, split, model_classes, exclusions)
    class_names = dataset.class_names
    display_names = list(predictor.display_names) + [
        c.display_name for c in load_class_info(data, class_names[len(model_classes) :])
    ]
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
    metrics.update(_what_was_evaluated(split, data, run_dir, exported, config))
    metrics.update(
        classes_unknown_to_model=class_names[len(model_classes) :],
        only_excluded=exclusions,
        tta=tta,
        n_skipped=len(skipped),
    )
    metrics["skipped"] = [{"file": _relative(dataset.samples[i][0]), "reason": r} for i, r in skipped]
    out = Path(out) if out else default_out(run_dir, exported, split)
    files = [dataset.samples[i][0] for i in kept]
    _write_report(out, metrics, files, [sources[i] for i in kept], probs, targets, class_names, display_names)
    metrics["seconds"] = round(time.time() - start, 2)
    (out / "metrics.json").write_text(
        json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8"
    )  # last: a report is complete once it exists
    return metrics


def _what_was_evaluated(
    split: str, data, run_dir: str | Path | None, exported: str | Path | None, config: RunConfig | None
) -> dict:
    return {
        "split": split,
        "data": [str(r) for r in data_roots(data)],
        "run_dir": str(run_dir) if run_dir else None,
        "exported": str(exported) if exported else None,
        "model": config.model.name if config else None,
    }


def _run_data(config: RunConfig | None, source: str | Path | None, split: str):
    """The dataset root(s) the run was trained on, when --data is not given."""
    data = config.train.data if config else None
    if not data:
        raise DatasetError(
            f"{source} does not record its dataset folder; pass --data ROOT (the folder holding {split}/<class>/)."
        )
    return data


def _exclusions(config: RunConfig | None, run_dir: str | Path | None) -> list[str]:
    """The --exclude specs the run was trained with (the cross-source check evaluates exactly those photos)."""
    exclusions = config.train.exclude if config else None
    if not exclusions:
        raise RunError(f"--only-excluded needs a run trained with --exclude; {run_dir} held nothing out.")
    return exclusions


def default_out(run_dir: str | Path | None, exported: str | Path | None, split: str) -> Path:
    """RUN_DIR/eval-SPLIT for a run's weights; for an exported file runs/eval-FOLDER-FILE-SPLIT, never the model's
    own folder (a shipped export, a Hub snapshot: its files are what servers verify)."""
    if exported is None:
        if run_dir is None:
            raise ValueError("default_out needs a run folder or an exported file")
        return Path(run_dir) / f"eval-{split}"
    exported = Path(exported)
    return Path("runs") / f"eval-{exported.resolve().parent.name}-{exported.name.replace('.', '-')}-{split}"


def _write_report(
    out: Path,
    metrics: dict,
    files: list[Path],
    sources: list[str],
    probs: torch.Tensor,
    targets: torch.Tensor,
    class_names: list[str],
    display_names: list[str],
) -> None:
    """OUT/predictions.csv and the three plots (metrics.json is written last, with the evaluation's duration)."""
    out.mkdir(parents=True, exist_ok=True)
    _write_predictions(out / "predictions.csv", files, sources, probs, targets, class_names)
    plot_confusion(out / "confusion_matrix.png", metrics, display_names)
    plot_per_class(out / "per_class_accuracy.png", metrics)
    plot_misclassified(out / "misclassified.png", files, probs, targets, display_names)


def _relative(path: Path) -> str:
    """SPLIT/CLASS/FILE: enough to find the photo in its dataset, without the machine's folders."""
    return str(Path(*path.parts[-3:]))


def _per_source(
    probs: torch.Tensor, targets: torch.Tensor, class_names: list[str], threshold: float | None, sources: list[str]
) -> dict:
    """The recognition metrics and top-1 of each source collection on its own."""
    out = {}
    for source in sorted(set(sources)):
        rows = torch.tensor([s == source for s in sources])
        out[source] = {
            "n_images": int(rows.sum()),
            **recognition_metrics(probs[rows], targets[rows], class_names, threshold),
        }
    return out


def _write_predictions(
    path: Path,
    files: list[Path],
    sources: list[str],
    probs: torch.Tensor,
    targets: torch.Tensor,
    class_names: list[str],
) -> None:
    """One row per photo: the top-5 over all classes, and the answer the service gives (best landmark, its confidence)."""
    top = probs.topk(min(5, probs.shape[1]), dim=1)
    landmark_conf, landmark_best = (t[:, 0].tolist() for t in best_landmarks(probs, class_names))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "file",
                "source",
                "true",
                "predicted",
                "confidence",
                "correct",
                "top5",
                "best_landmark",
                "landmark_confidence",
            ]
        )
        rows = zip(
            files, sources, targets.tolist(), top.values.tolist(), top.indices.tolist(), landmark_best, landmark_conf
        )
        for file, source, target, values, indices, best, conf in rows:
            top5 = ";".join(f"{class_names[i]}:{v:.4f}" for i, v in zip(indices, values))
            predicted = indices[0]
            writer.writerow(
                [
                    _relative(file),
                    source,
                    class_names[target],
                    class_names[predicted],
                    f"{values[0]:.4f}",
                    int(predicted == target),
                    top5,
                    class_names[best],
                    f"{conf:.6f}",
                ]
            )


def summary(metrics: dict, out: Path) -> str:
    """The one line `landmark evaluate` prints: accuracy, then GAP / false accepts / coverage at the threshold."""
    rec = metrics["recognition"]
    text = (
        f"GAP {rec['gap']:.4f}  landmark top-1 {rec['landmark_top1']:.2%}"
        if rec["gap"] is not None
        else "no landmark photos"
    )
    if rec.get("false_accept_rate") is not None:
        text += f"  no-landmark false accepts {rec['false_accept_rate']:.2%} ({rec['false_accepts']}/{rec['no_landmark_photos']})"
    if rec.get("coverage") is not None:
        text += f"  coverage {rec['coverage']:.2%}  precision {rec['precision'] or 0:.2%} at {rec['threshold']:.3f}"
    return (
        f"{metrics['split']}: top-1 {metrics['top1']:.2%}  top-5 {metrics['top5']:.2%}  macro-F1 {metrics['macro_f1']:.4f}  {text}  "
        f"on {metrics['n_images']} images ({metrics['n_skipped']} skipped), {metrics['seconds']:.0f}s -> {out}"
    )


def run(args: argparse.Namespace) -> None:
    """`landmark evaluate`: write the report, print its one-line summary."""
    metrics = evaluate_run(
        args.run_dir,
        args.split,
        args.data,
        args.out,
        args.tta,
        args.batch_size,
        args.exported,
        threshold=args.threshold,
        only_excluded=args.only_excluded,
    )
    print(summary(metrics, Path(args.out) if args.out else default_out(args.run_dir, args.exported, args.split)))
