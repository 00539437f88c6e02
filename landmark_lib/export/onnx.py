"""The optional ONNX files: the network alone (model.onnx), and statically quantised to int8 (model.int8.onnx), each
checked before it is kept; servers run them on ONNX Runtime behind the same torch preprocessing (serve/backends.py).

Only the network goes to ONNX (normalised float [N, 3, S, S] -> logits [N, C], dynamic batch): the resize of photos
of any size stays in the torch Preprocess module, so every file sees identical pixels.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from ..bundle import INT8_FILE, ONNX_EMBEDDING, ONNX_FILE, ONNX_INPUT, ONNX_OUTPUT
from ..embedding import WithEmbedding
from ..evaluation.metrics import top_k_accuracy
from ..evaluation.threshold import choose_threshold, validation_probabilities
from ..predictor import LandmarkPredictor
from ..preprocess import PreprocessConfig
from ..serve.backends import OnnxPredictor
from ..train.run import RunConfig
from ..train.run_photos import run_photos_loader
from .checks import TOLERANCE, ExportError, eager_embeddings, eager_probabilities

MAX_INT8_TOP1_DROP = 0.01  # int8 is worth its speed only if it stays within one point of fp32 top-1 on validation
MIN_INT8_EMBEDDING_COSINE = 0.95  # mean cosine of int8 to fp32 embeddings on validation photos: gallery search needs it


def to_onnx(network: nn.Module, input_size: int, path: str | Path) -> Path:
    """Write NETWORK (eval mode) as one self-contained .onnx file with a dynamic batch dimension and two outputs: the
    logits and the L2-normalised embedding (landmark_lib/embedding.py)."""
    path = Path(path)
    example = torch.rand(2, 3, input_size, input_size)  # batch 2: torch.export specialises a batch of 1 to a constant
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter(
            "ignore"
        )  # the exporter is chatty about deprecated internals; the result is verified by callers
        torch.onnx.export(
            WithEmbedding(network).eval(),
            (example,),
            str(path),
            input_names=[ONNX_INPUT],
            output_names=[ONNX_OUTPUT, ONNX_EMBEDDING],
            dynamic_shapes=({0: batch},),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    return path


def quantize_static_int8(fp32: str | Path, out: str | Path, calibration: Iterable[torch.Tensor]) -> Path:
    """OUT: FP32 with int8 weights (per channel) and uint8 activations whose ranges come from CALIBRATION batches.

    Static QDQ quantisation after ONNX Runtime's recommended pre-processing (shape inference, graph optimisation):
    on CPU the int8 convolutions run about 1.6x faster than fp32 (benchmarks/serving_speed.py). Callers must check
    accuracy on held-out photos; the ranges are only as good as the calibration photos are typical.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration)

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {ONNX_INPUT: batch.contiguous().numpy()}

    logging.disable(logging.WARNING)  # the quantisation tools log hints at WARNING on the root logger
    try:
        with tempfile.TemporaryDirectory() as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            quant_pre_process(str(fp32), str(prepared))
            quantize_static(
                str(prepared),
                str(out),
                Batches(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
    finally:
        logging.disable(logging.NOTSET)
    return Path(out)


def export_onnx(eager: LandmarkPredictor, preprocess: PreprocessConfig, out: Path, images: list[torch.Tensor]) -> float:
    """OUT/model.onnx (the network only); returns its max probability or embedding diff to EAGER, removing the file
    if it drifts."""
    path = to_onnx(eager.model, preprocess.input_size, out / ONNX_FILE)
    probs, embedding = OnnxPredictor(path, preprocess).forward_batch_with_embedding(images)
    max_abs_diff = float(
        max(
            (probs - eager_probabilities(eager, images)).abs().max(),
            (embedding - eager_embeddings(eager, images)).abs().max(),
        )
    )
    if max_abs_diff > TOLERANCE:
        path.unlink()
        raise ExportError(
            f"model.onnx differs from the eager model by {max_abs_diff:.2e} in probability or embedding (tolerance {TOLERANCE:g}); it was removed."
        )
    return max_abs_diff


def export_onnx_int8(
    config: RunConfig,
    out: Path,
    valid_fp32: tuple[torch.Tensor, torch.Tensor],
    calibration_photos: int,
    calibration: dict | None,
    target_precision: float,
    max_false_accept: float,
) -> dict:
    """OUT/model.int8.onnx from OUT/model.onnx; removed again if it loses > 1 point of validation top-1 (the returned
    dict then has 'refused': why, and the rest of the export stays usable).

    Calibrated on CALIBRATION_PHOTOS training photos spread over the classes; its threshold is chosen on validation
    like the fp32 one (or CALIBRATION, when the threshold was given on the command line).
    """
    loader = run_photos_loader(config, "train", limit=calibration_photos, batch_size=16)
    path = quantize_static_int8(out / ONNX_FILE, out / INT8_FILE, (images for images, _ in loader))
    probs, targets = validation_probabilities(config, OnnxPredictor(path, config.preprocess).logits)
    fp32_top1, int8_top1 = top_k_accuracy(*valid_fp32, 1), top_k_accuracy(probs, targets, 1)
    cosine = int8_embedding_cosine(config, out)
    if cosine < MIN_INT8_EMBEDDING_COSINE:
        path.unlink()
        return {
            "refused": (
                f"The int8 model's embeddings agree with fp32 at mean cosine {cosine:.3f} on validation photos (at least "
                f"{MIN_INT8_EMBEDDING_COSINE} is needed for gallery search), so {INT8_FILE} was removed; the fp32 files are "
                "exported and served. Calibrate on more photos (--calibration-photos) or export with --format onnx."
            )
        }
    if int8_top1 < fp32_top1 - MAX_INT8_TOP1_DROP:
        path.unlink()
        return {
            "refused": (
                f"The int8 model reaches {int8_top1:.2%} top-1 on the run's validation photos against {fp32_top1:.2%} for fp32 "
                f"(at most {MAX_INT8_TOP1_DROP:.0%} lower is accepted), so {INT8_FILE} was removed; the fp32 files are exported "
                "and served. Export with --format onnx, or calibrate on more photos (--calibration-photos)."
            )
        }
    import onnxruntime

    chosen = calibration or choose_threshold(probs, targets, config.class_names, target_precision, max_false_accept)
    return {
        "file": INT8_FILE,
        "quantization": "onnxruntime quantize_static, QDQ, int8 per-channel weights, uint8 activations (MinMax)",
        "calibration_photos": len(loader.dataset),
        "calibration_source": "the run's training rows (never its validation rows or the test split)",
        "valid_top1_fp32": fp32_top1,
        "valid_top1_int8": int8_top1,
        "valid_agreement_with_fp32": float((probs.argmax(dim=1) == valid_fp32[0].argmax(dim=1)).float().mean()),
        "valid_embedding_cosine_to_fp32": cosine,
        "threshold": chosen["threshold"],
        "threshold_calibration": chosen,
        "onnxruntime": onnxruntime.__version__,
    }


def int8_embedding_cosine(config: RunConfig, out: Path, photos: int = 64) -> float:
    """Mean cosine between OUT's int8 and fp32 ONNX embeddings on PHOTOS of the run's validation photos."""
    fp32, int8 = (OnnxPredictor(out / name, config.preprocess).session for name in (ONNX_FILE, INT8_FILE))
    cosines = []
    for images, _ in run_photos_loader(config, "valid", limit=photos, batch_size=16):
        feed = {ONNX_INPUT: images.contiguous().numpy()}
        a, b = (torch.from_numpy(s.run([ONNX_EMBEDDING], feed)[0]) for s in (fp32, int8))
        cosines.append((a * b).sum(dim=1))
    return float(torch.cat(cosines).mean())
