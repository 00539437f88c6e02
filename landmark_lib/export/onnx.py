"""The optional ONNX artefact: the network alone, run by ONNX Runtime behind the same torch preprocessing.

Only the network goes to ONNX (normalised float [N, 3, S, S] -> logits [N, C], dynamic batch): the resize of photos of
any size stays in the torch Preprocess module, so both artefacts see identical pixels. On CPU, ONNX Runtime runs
the convolutions markedly faster than TorchScript (see benchmarks/serving_speed.py), which is why serving prefers it.
"""
from __future__ import annotations

import json
import logging
import math
import tempfile
import warnings
from pathlib import Path
from typing import Iterable, List

import torch
from torch import nn

from .preprocess import Preprocess, PreprocessConfig

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def to_onnx(network: nn.Module, input_size: int, path: str | Path) -> Path:
    """Write NETWORK (eval mode) as one self-contained .onnx file with a dynamic batch dimension."""
    path = Path(path)
    example = torch.rand(2, 3, input_size, input_size)  # batch 2: torch.export specialises a batch of 1 to a constant
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter is chatty about deprecated internals; the result is verified by callers
        torch.onnx.export(
            network.eval(), (example,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},), dynamo=True, external_data=False, verbose=False,
        )
    return path


def quantize_static_int8(fp32: str | Path, out: str | Path, calibration: Iterable[torch.Tensor]) -> Path:
    """OUT: FP32 with int8 weights (per channel) and uint8 activations whose ranges come from CALIBRATION batches.

    Static QDQ quantisation after ONNX Runtime's recommended pre-processing (shape inference, graph optimisation):
    on CPU the int8 convolutions run about 1.6x faster than fp32 (benchmarks/serving_speed.py). Callers must check
    accuracy on held-out photos; the ranges are only as good as the calibration photos are typical.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quant_pre_process, quantize_static

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration)

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch.contiguous().numpy()}

    logging.disable(logging.WARNING)  # the quantisation tools log hints at WARNING on the root logger
    try:
        with tempfile.TemporaryDirectory() as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            quant_pre_process(str(fp32), str(prepared))
            quantize_static(
                str(prepared), str(out), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            )
    finally:
        logging.disable(logging.NOTSET)
    return Path(out)


def ort_session(path: str | Path, num_threads: int = 1):
    """A CPU ONNX Runtime session with NUM_THREADS intra-op threads (the same budget torch gets)."""
    import onnxruntime as ort  # optional dependency: only the ONNX path needs it

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(num_threads))
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initialisers etc. are noise for users
    # ONNX Runtime's worker threads busy-wait after each call by default; in a process that also runs torch (our
    # preprocessing, other requests) that spinning steals the cores torch needs, so let them sleep.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxPredictor:
    """Same interface as the exported LandmarkPredictor (forward_batch, class metadata, .preprocess) on ONNX Runtime.

    uint8 RGB images [3, H, W] -> torch Preprocess -> ONNX network -> softmax probabilities.
    """

    def __init__(self, onnx_path: str | Path, preprocess: PreprocessConfig, labels: list[dict] | None = None, num_threads: int = 1):
        self.onnx_path = Path(onnx_path)
        self.session = ort_session(self.onnx_path, num_threads)
        self.preprocess = Preprocess(preprocess).eval()
        labels = labels or []
        self.class_names: List[str] = [entry["name"] for entry in labels]
        self.display_names: List[str] = [entry.get("display_name") or entry["name"] for entry in labels]
        self.cities: List[str] = [entry.get("city") or "" for entry in labels]
        self.countries: List[str] = [entry.get("country") or "" for entry in labels]
        self.latitudes: List[float] = [math.nan if entry.get("lat") is None else float(entry["lat"]) for entry in labels]
        self.longitudes: List[float] = [math.nan if entry.get("lon") is None else float(entry["lon"]) for entry in labels]

    @classmethod
    def from_export_dir(cls, folder: str | Path, num_threads: int = 1, file: str = ONNX_FILE) -> "OnnxPredictor":
        """FOLDER/FILE (model.onnx or model.int8.onnx) with the preprocessing from export.json and the classes from labels.json."""
        folder = Path(folder)
        info = json.loads((folder / "export.json").read_text(encoding="utf-8"))
        labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
        return cls(folder / file, PreprocessConfig.from_dict(info["preprocess"]), labels, num_threads)

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised float batch [N, 3, S, S] -> logits [N, C] from ONNX Runtime."""
        (output,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: batch.contiguous().numpy()})
        return torch.from_numpy(output)

    def forward_batch(self, images: list[torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            batch = torch.cat([self.preprocess(image) for image in images], dim=0)
            return torch.softmax(self.logits(batch).float(), dim=-1)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.forward_batch([image])[0]
