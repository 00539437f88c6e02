"""Export a run into a bundle (landmark_lib/bundle.py): model.pt that needs only torch, labels.json and export.json,
optionally model.onnx and model.int8.onnx, with the recognition thresholds chosen on the run's validation photos,
the exported file evaluated on the check split, and the model card.

Each file is checked against the eager model before it is kept: model.pt in a fresh torch-only process, model.onnx
on ONNX Runtime, model.int8.onnx by its validation top-1 (within one point of fp32).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from .. import atomic, bundle
from ..artifacts import checksums, export_info
from ..artifacts.export_info import ExportInfo
from ..artifacts.run_folder import RunConfig
from ..data.folder import data_roots
from ..data.images import decode_short_side
from ..data.run_split import run_data_on_disk
from ..embedding import embedding_dim
from ..evaluation.evaluate import evaluate_run
from ..evaluation.threshold import choose_threshold, validation_probabilities
from ..labels import write_labels
from ..models.retrieval import has_retrieval_neck
from ..models.trained import load_trained_model
from ..predictor import LandmarkPredictor
from .checks import TOLERANCE, ExportError, check_images
from .hub import push_to_hub, write_card
from .index import write_index
from .onnx import PIXEL_TOLERANCE, export_onnx, export_onnx_int8
from .pt2 import export_pt2
from .report import metrics_summary, summary_lines
from .speed import measure
from .timm_files import write_timm_files
from .torchscript import save, to_torchscript, verify


def export_run(
    run_dir: str | Path,
    out: str | Path,
    check_data: str | Path | list[str] | None = None,
    check_split: str = "test",
    evaluate: bool = True,
    batch_size: int = 32,
    threshold: float | None = None,
    target_precision: float = 0.95,
    max_false_accept: float = 0.02,
    onnx: bool = False,
    int8: bool = False,
    calibration_photos: int = 128,
    pt2: bool = False,
    overwrite: bool = False,
    require_int8: bool = False,
) -> dict:
    """Write OUT/model.pt, labels.json and export.json (+ metrics.json, + model.onnx with ONNX, + model.int8.onnx with
    INT8); raise ExportError if a file drifts. Returns what export.json holds.

    OUT must be new or empty unless OVERWRITE; the export is built in a folder beside it and swapped in only when
    complete, so a failed or killed export leaves the earlier one as it was. An int8 file refused by its accuracy
    check leaves a complete fp32 export (export.json says why), unless REQUIRE_INT8 makes that an ExportError.
    CHECK_DATA defaults to the run's dataset when it is on disk; without one the check uses generated images only
    and nothing is evaluated.
    """
    out = Path(out)
    _check_out(out, Path(run_dir), overwrite)
    model, config = load_trained_model(run_dir)
    run_data = config.train.data
    if check_data is None and run_data and all((root / check_split).is_dir() for root in data_roots(run_data)):
        check_data = run_data
    if int8 and not run_data_on_disk(config):
        raise ExportError(
            f"int8 quantisation is calibrated on the run's training photos and checked on its validation photos, but its "
            f"dataset ({run_data}) is not on disk; put it back there, or export with --format onnx."
        )
    build = atomic.temp_folder(out)
    try:
        checks = (check_data, check_split, evaluate, batch_size)
        rule, formats = (threshold, target_precision, max_false_accept), (onnx, int8, calibration_photos, pt2)
        info = _build(run_dir, model, config, (build, out), checks, rule, formats)
        if require_int8 and info["onnx_int8_refused"]:
            raise ExportError(f"{info['onnx_int8_refused']} (--require-int8: {out} was left as it was)")
        atomic.replace_folder(build, out)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return info


def _check_out(out: Path, run_dir: Path, overwrite: bool) -> None:
    """Refuse an OUT that holds files unless OVERWRITE, and always one that holds the run itself."""
    if out.exists() and not out.is_dir():
        raise ExportError(
            f"--out {out} is a file; export into a folder (a new one, or an earlier export with --overwrite)."
        )
    if run_dir.resolve() == out.resolve() or out.resolve() in run_dir.resolve().parents:
        raise ExportError(f"--out {out} holds the run {run_dir} itself; export into another folder.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ExportError(
            f"{out} already holds files; export into a new folder, or pass --overwrite to replace it "
            "(the old export stays until the new one is complete)."
        )


def _build(
    run_dir, model, config: RunConfig, folders: tuple[Path, Path], checks: tuple, rule: tuple, formats: tuple
) -> dict:
    """Every file of the export in the empty folder OUT (renamed to FINAL afterwards); what export.json holds.
    CHECKS: (check data, check split, evaluate, batch size); RULE: see _thresholds_and_int8; FORMATS: (onnx, int8,
    calibration photos, pt2)."""
    (out, final), (check_data, check_split, evaluate, batch_size) = folders, checks
    onnx, int8, calibration_photos, pt2 = formats
    eager = LandmarkPredictor(model, config.preprocess, config.classes).eval()
    images = _check_images(config, check_data, check_split)
    max_abs_diff = _write_torchscript(eager, config, out, images)
    other_files = _write_other_formats(eager, config, out, images, pt2)
    onnx_info = _write_onnx(eager, config, out, images) if onnx or int8 else None
    calibration, int8_info, int8_refused = _thresholds_and_int8(
        config, model, out, rule, calibration_photos if int8 else None
    )
    evaluated = evaluate and check_data
    metrics = (
        _evaluate(run_dir, out, check_data, check_split, batch_size, calibration, int8_info, final)
        if evaluated
        else None
    )
    record = {
        "max_abs_diff": max_abs_diff,
        "check_images": len(images),
        "onnx": onnx_info,
        "onnx_int8": int8_info,
        "onnx_int8_refused": int8_refused,
        **other_files,
        bundle.SPEED_KEY: measure(out, config.preprocess) if onnx_info else None,
        "embedding": embedding_record(model),
        **_index(model, config, run_dir, out),
    }
    info = _record(run_dir, config, calibration, record, check_data, metrics, out)
    export_info.write(out, ExportInfo.from_dict(info))
    return info


def _index(model: torch.nn.Module, config: RunConfig, run_dir: str | Path, out: Path) -> dict:
    """OUT/index.npz of the run's photos and its first operating points (export.json's 'index', 'operating_points');
    none without the run's photos on disk."""
    if not run_data_on_disk(config):
        return {"index": None, "operating_points": None}
    index_info, points = write_index(model, config, run_dir, out)
    return {"index": index_info, "operating_points": points}


def _write_other_formats(
    eager: LandmarkPredictor, config: RunConfig, out: Path, images: list[torch.Tensor], pt2: bool
) -> dict:
    """model.pt2 (with PT2) and, for timm runs, timm's config.json + model.safetensors; export.json's entries."""
    # timm's own Hub format rebuilds timm's architecture: a network with our retrieval neck is not one of them
    timm = config.model.name.startswith("timm:") and not has_retrieval_neck(eager.model)
    return {
        "pt2": export_pt2(eager, out, images) if pt2 else None,
        "timm": write_timm_files(eager.model, config.classes, config.preprocess, out) if timm else None,
    }


def _record(
    run_dir: str | Path,
    config: RunConfig,
    calibration: dict | None,
    checks: dict,
    check_data,
    metrics: dict | None,
    out: Path,
) -> dict:
    """export.json (artifacts/export_info.py): where the files come from, the thresholds, how each file was checked (CHECKS)."""
    return {
        "source_run": str(run_dir),
        "threshold": None if calibration is None else calibration["threshold"],
        "threshold_calibration": calibration,
        "model": config.model.name,
        "model_options": config.model.options,
        "weights_source": config.weights_source,
        "num_classes": len(config.classes),
        "preprocess": config.preprocess.to_dict(),
        "input": "uint8 RGB tensor [3, H, W] of any size (forward) or a list of them (forward_batch); "
        "also a float batch [N, 3, H, W] in 0..1 as torchvision's ToTensor makes it (forward -> [N, num_classes])",
        **checks,
        "check_data": [str(r) for r in data_roots(check_data)] if check_data else None,
        "train_args": config.args,
        "metrics": metrics,
        "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "files": checksums.record(out),  # servers check every file against these before loading it
    }


def _check_images(config: RunConfig, check_data, check_split: str) -> list[torch.Tensor]:
    """The photos every file is checked on, from every class folder of the data (held-out classes' too)."""
    folders = config.class_names + list(config.train.holdout_classes or [])
    return check_images(
        check_data, check_split, folders, min_short_side=decode_short_side(config.preprocess.resize_size)
    )


def embedding_record(network: torch.nn.Module) -> dict:
    """export.json's 'embedding': what galleries (landmark_lib/gallery/) compare photos by."""
    return {
        "dim": embedding_dim(network),
        "what": "the retrieval network's GeM-pooled backbone features (before the projection the classifier reads; "
        "trained through it with a sub-center ArcFace margin), L2-normalised"
        if has_retrieval_neck(network)
        else "the network's pooled features (the classifier's input), L2-normalised",
        "torchscript": "model.pt forward_batch_with_embedding(images) -> (probabilities, embeddings)",
        "onnx": f"second output '{bundle.ONNX_EMBEDDING}'",
    }


def _write_torchscript(eager: LandmarkPredictor, config: RunConfig, out: Path, images: list[torch.Tensor]) -> float:
    """OUT/model.pt and labels.json; model.pt is removed again if it does not reproduce EAGER on IMAGES."""
    scripted = to_torchscript(eager)
    model_file = out / bundle.MODEL_FILE
    save(scripted, model_file)
    write_labels(out / bundle.LABELS_FILE, config.classes)
    try:
        return verify(scripted, model_file, eager, images)
    except ExportError:
        model_file.unlink()  # a file that does not reproduce the model must not be shipped by mistake
        raise


def _thresholds_and_int8(
    config: RunConfig, model: torch.nn.Module, out: Path, rule: tuple, calibration_photos: int | None
) -> tuple[dict | None, dict | None, str | None]:
    """(the fp32 threshold's calibration, the int8 file's export.json entry, why int8 was refused), all decided on the
    run's validation photos. RULE: (threshold given on the command line or None, target precision, max false accept).
    Without the run's photos on disk only a given threshold is known."""
    threshold, target_precision, max_false_accept = rule
    given = {"threshold": threshold, "rule": "given on the command line"} if threshold is not None else None
    if not run_data_on_disk(config):
        return given, None, None
    valid_fp32 = validation_probabilities(config, model)  # the weights loaded above, not a second copy
    calibration = given or choose_threshold(*valid_fp32, config.class_names, target_precision, max_false_accept)
    if calibration_photos is None:
        return calibration, None, None
    int8_info = export_onnx_int8(config, out, valid_fp32, calibration_photos, given, target_precision, max_false_accept)
    refused = int8_info.pop("refused", None)
    return calibration, None if refused else int8_info, refused


def _write_onnx(eager: LandmarkPredictor, config: RunConfig, out: Path, images: list[torch.Tensor]) -> dict:
    """OUT/model.onnx and preprocess.onnx, checked against EAGER; what export.json records about them."""
    import onnxruntime

    size = config.preprocess.input_size
    return {
        "file": bundle.ONNX_FILE,
        "input": f"'{bundle.ONNX_INPUT}': float32 [N, 3, {size}, {size}], the output of {bundle.PREPROCESS_FILE}",
        "output": f"'{bundle.ONNX_OUTPUT}': float32 [N, num_classes] (softmax not included)",
        "embedding_output": f"'{bundle.ONNX_EMBEDDING}': float32 [N, {embedding_dim(eager.model)}], L2-normalised pooled features",
        "preprocess_file": bundle.PREPROCESS_FILE,
        "preprocess": f"'{bundle.PREPROCESS_INPUT}': uint8 RGB [3, H, W] of any size -> '{bundle.PREPROCESS_OUTPUT}': "
        f"float32 [1, 3, {size}, {size}] (resize, centre crop, normalise: exported from the Preprocess module model.pt scripts)",
        **export_onnx(eager, config.preprocess, out, images),
        "tolerance": {"probability": TOLERANCE, "normalised_pixels": PIXEL_TOLERANCE},
        "onnxruntime": onnxruntime.__version__,
    }


def _evaluate(
    run_dir: str | Path,
    out: Path,
    check_data,
    split: str,
    batch_size: int,
    calibration: dict | None,
    int8_info: dict | None,
    final: Path,
) -> dict:
    """OUT/metrics.json: model.pt on the check split at its threshold (and the int8 file at its own); the summary
    export.json and the model card show. The reports name the files where they will be (FINAL), not the build folder."""
    threshold = None if calibration is None else calibration["threshold"]
    metrics = evaluate_run(
        run_dir,
        split,
        check_data,
        out / f"eval-{split}",
        batch_size=batch_size,
        exported=out / bundle.MODEL_FILE,
        threshold=threshold,
    )
    _name_final_file(metrics, out / f"eval-{split}", final)
    atomic.write_text(out / bundle.METRICS_FILE, json.dumps(metrics, indent=2, ensure_ascii=False))
    if int8_info:
        int8_metrics = evaluate_run(
            run_dir,
            split,
            check_data,
            out / f"eval-{split}-int8",
            batch_size=batch_size,
            exported=out / bundle.INT8_FILE,
            threshold=int8_info["threshold"],
        )
        _name_final_file(int8_metrics, out / f"eval-{split}-int8", final)
        int8_info["metrics"] = metrics_summary(int8_metrics)
    return metrics_summary(metrics)


def _name_final_file(metrics: dict, report: Path, final: Path) -> None:
    """METRICS (and REPORT/metrics.json) name the evaluated file in the FINAL folder the export is renamed to."""
    metrics["exported"] = str(final / Path(metrics["exported"]).name)
    atomic.write_text(report / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False))


def run(args: argparse.Namespace) -> None:
    """`landmark export RUN --out DIR`: export, print what was written, write the model card, push if asked."""
    info = export_run(
        args.run_dir,
        args.out,
        args.check_data,
        args.check_split,
        not args.no_eval,
        args.batch_size,
        args.threshold,
        args.target_precision,
        args.max_false_accept,
        onnx=args.format != "torchscript",
        int8=args.format == "onnx-int8",
        calibration_photos=args.calibration_photos,
        pt2=args.pt2,
        overwrite=args.overwrite,
        require_int8=args.require_int8,
    )
    print("\n".join(summary_lines(info, args.out, evaluated=not args.no_eval)))
    # The card travels with the export (committed defaults, Hub uploads); OWNER/NAME is a placeholder until pushed.
    write_card(args.out, args.push_to_hub)
    if info.get("onnx_int8_refused"):  # the fp32 export is complete and servable: a warning, not a failure
        print(f"warning: {info['onnx_int8_refused']} (--require-int8 makes this an error)", file=sys.stderr)
    if args.push_to_hub:
        pushed = push_to_hub(args.out, args.push_to_hub, revision=args.revision, private=args.private)
        print(f"pushed to {pushed.url} at commit {pushed.commit}")
        print(f"serve it pinned: LANDMARK_MODEL=hf://{pushed.repo_id}@{pushed.commit}; Space front matter:")
        print(f"preload_from_hub:\n  - {pushed.preload_entry()}")
