"""The optional ONNX files: the network (model.onnx), the same statically quantised to int8 (model.int8.onnx), and
the preprocessing graph in front of both (preprocess.onnx), each checked before it is kept; servers run them on ONNX
Runtime, PIL and numpy alone (runtime/backends.py).

The network files take normalised float [N, 3, S, S] (dynamic batch) -> logits [N, C]. preprocess.onnx is exported
from the Preprocess module model.pt scripts (one definition): uint8 [3, H, W] of any size -> [1, 3, S, S], so a
batch of photos of different sizes is preprocessed one by one and classified in one network call.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterable, Sized
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from .. import threads
from ..artifacts.run_folder import RunConfig
from ..bundle import (
    INT8_FILE,
    ONNX_EMBEDDING,
    ONNX_FILE,
    ONNX_INPUT,
    ONNX_OUTPUT,
    PREPROCESS_FILE,
    PREPROCESS_INPUT,
    PREPROCESS_OUTPUT,
)
from ..data.run_split import run_split_loader
from ..embedding import WithEmbedding
from ..evaluation.threshold import choose_threshold, validation_probabilities
from ..metrics import top_k_accuracy
from ..predictor import LandmarkPredictor
from ..preprocess import Preprocess, PreprocessConfig
from ..preprocess_config import MAX_SIDE
from ..runtime.backends import OnnxPredictor
from .checks import TOLERANCE, ExportError, eager_embeddings, eager_probabilities

PIXEL_TOLERANCE = 1e-3  # max |difference| of preprocess.onnx's normalised pixels to Preprocess (ONNX Runtime's
# antialiased resize rounds differently in the last bits; 1e-3 is 1/8 of one 8-bit grey level at std 0.5)
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


def preprocess_to_onnx(preprocess: Preprocess, path: str | Path) -> Path:
    """Write PREPROCESS as an ONNX graph for photos of any size (torch.export with symbolic height and width)."""
    path = Path(path)
    example = torch.randint(0, 256, (3, 480, 640), dtype=torch.uint8)
    height, width = torch.export.Dim("height", min=1, max=MAX_SIDE), torch.export.Dim("width", min=1, max=MAX_SIDE)
    program = torch.export.export(preprocess.eval(), (example,), dynamic_shapes=({1: height, 2: width},))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            program,
            (example,),
            str(path),
            input_names=[PREPROCESS_INPUT],
            output_names=[PREPROCESS_OUTPUT],
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


def export_onnx(eager: LandmarkPredictor, preprocess: PreprocessConfig, out: Path, images: list[torch.Tensor]) -> dict:
    """OUT/model.onnx (the network, with the embedding as a second output) and OUT/preprocess.onnx (eager's own
    Preprocess module), checked together against EAGER on IMAGES; both are removed if they drift. Returns their max
    probability-or-embedding and pixel differences."""
    network, graph = to_onnx(eager.model, preprocess.input_size, out / ONNX_FILE), out / PREPROCESS_FILE
    try:
        preprocess_to_onnx(eager.preprocess, graph)
        predictor = OnnxPredictor(network, preprocess, preprocess_path=graph)
        with torch.no_grad():
            pixels = max(float(np.abs(predictor.pixels(i.numpy()) - eager.preprocess(i).numpy()).max()) for i in images)
        onnx_probs, embedding = predictor.forward_batch_with_embedding(images)
        probs = float(
            max(
                (onnx_probs - eager_probabilities(eager, images)).abs().max(),
                (embedding - eager_embeddings(eager, images)).abs().max(),
            )
        )
    except Exception:
        network.unlink(missing_ok=True)
        graph.unlink(missing_ok=True)
        raise
    if probs > TOLERANCE or pixels > PIXEL_TOLERANCE:
        network.unlink()
        graph.unlink()
        raise ExportError(
            f"model.onnx behind preprocess.onnx differs from the eager model by {probs:.2e} in probability or embedding "
            f"(tolerance {TOLERANCE:g}) and {pixels:.2e} in normalised pixels (tolerance {PIXEL_TOLERANCE:g}); both were removed."
        )
    return {"max_abs_diff": probs, "preprocess_max_abs_diff": pixels}


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
    loader = run_split_loader(config, "train", limit=calibration_photos, batch_size=16)
    path = quantize_static_int8(out / ONNX_FILE, out / INT8_FILE, (images for images, _ in loader))
    probs, targets = validation_probabilities(
        config, OnnxPredictor(path, config.preprocess, num_threads=threads.count()).logits
    )
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
        "calibration_photos": len(cast(Sized, loader.dataset)),
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
    for images, _ in run_split_loader(config, "valid", limit=photos, batch_size=16):
        feed = {ONNX_INPUT: images.contiguous().numpy()}
        a, b = (torch.from_numpy(s.run([ONNX_EMBEDDING], feed)[0]) for s in (fp32, int8))
        cosines.append((a * b).sum(dim=1))
    return float(torch.cat(cosines).mean())
