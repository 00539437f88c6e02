"""The two runtimes a server runs an export with, behind one interface (Classifier): TorchScript (model.pt) and
ONNX Runtime (model.onnx, model.int8.onnx), and the choice between them.

Only the network goes to ONNX: the resize of photos of any size stays in the torch Preprocess module, so every
backend sees identical pixels. On CPU, ONNX Runtime answers about 1.7x faster than TorchScript and int8 another 1.6x
(benchmarks/serving_speed.py), which is why 'auto' prefers them.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Protocol

import torch

from .. import bundle
from ..labels import ClassInfo, Columns, read_labels, to_columns
from ..preprocess import Preprocess, PreprocessConfig
from .resolve import ModelNotFoundError


class Classifier(Protocol):
    """What serving and evaluation need from a loaded model: uint8 RGB images [3, H, W] of any size in, class
    probabilities out, the Preprocess module it applies, and the class metadata as the attributes labels.Columns
    names (class_names, display_names, cities, countries, latitudes, longitudes; labels.from_columns reads them)."""

    class_names: list[str]
    preprocess: Preprocess

    def forward_batch(self, images: list[torch.Tensor]) -> torch.Tensor: ...

    def __call__(self, image: torch.Tensor) -> torch.Tensor: ...


def load_torchscript(path: str | Path, device: str = "cpu") -> Classifier:
    """model.pt: preprocessing, network, softmax and class metadata in one file that needs only torch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch marks TorchScript deprecated; it is our export format
        return torch.jit.load(str(path), map_location=device).eval()


def ort_session(path: str | Path, num_threads: int = 1):
    """A CPU ONNX Runtime session with NUM_THREADS intra-op threads (the same budget torch gets)."""
    import onnxruntime as ort  # only the ONNX backends need it

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(num_threads))
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initialisers etc. are noise for users
    # ONNX Runtime's worker threads busy-wait after each call by default; in a process that also runs torch (our
    # preprocessing, other requests) that spinning steals the cores torch needs, so let them sleep.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxPredictor:
    """A Classifier on ONNX Runtime: uint8 RGB images [3, H, W] -> torch Preprocess -> ONNX network -> softmax."""

    def __init__(self, onnx_path: str | Path, preprocess: PreprocessConfig, classes: list[ClassInfo] | None = None, num_threads: int = 1):
        self.onnx_path = Path(onnx_path)
        self.session = ort_session(self.onnx_path, num_threads)
        self.preprocess = Preprocess(preprocess).eval()
        for field, values in zip(Columns._fields, to_columns(classes or [])):  # the attributes model.pt carries
            setattr(self, field, values)

    @classmethod
    def from_export_dir(cls, folder: str | Path, num_threads: int = 1, file: str = bundle.ONNX_FILE) -> OnnxPredictor:
        """FOLDER/FILE (model.onnx or model.int8.onnx) with the preprocessing from export.json and the classes from labels.json."""
        folder = Path(folder)
        info = bundle.read_info(folder)
        return cls(folder / file, PreprocessConfig.from_dict(info["preprocess"]), read_labels(folder / bundle.LABELS_FILE), num_threads)

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised float batch [N, 3, S, S] -> logits [N, C] from ONNX Runtime."""
        (output,) = self.session.run([bundle.ONNX_OUTPUT], {bundle.ONNX_INPUT: batch.contiguous().numpy()})
        return torch.from_numpy(output)

    def forward_batch(self, images: list[torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            batch = torch.cat([self.preprocess(image) for image in images], dim=0)
            return torch.softmax(self.logits(batch).float(), dim=-1)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.forward_batch([image])[0]


def choose_backend(model_path: Path, backend: str = "auto") -> str:
    """'onnx-int8', 'onnx' or 'torchscript' for the export holding MODEL_PATH.

    auto picks the fastest file the exporter wrote and verified: the int8 ONNX model (kept by the exporter only within
    one point of fp32 validation top-1), else the fp32 ONNX model, else TorchScript.
    """
    if backend not in bundle.BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(bundle.BACKENDS)}, not {backend!r}")
    folder = model_path.parent
    if backend in bundle.ONNX_BACKENDS:
        if not bundle.has_verified(folder, backend):
            raise ModelNotFoundError(
                f"{folder / bundle.ONNX_BACKENDS[backend][1]} (with {bundle.EXPORT_FILE} and {bundle.LABELS_FILE} recording it) "
                f"does not exist; export with `landmark export RUN --out DIR --format {backend}`."
            )
        return backend
    if backend == "auto":
        return next((name for name in bundle.ONNX_BACKENDS if bundle.has_verified(folder, name)), "torchscript")
    return "torchscript"


def load(model_path: Path, backend: str = "auto", num_threads: int = 1) -> tuple[str, Classifier]:
    """(chosen backend, its loaded model) for the export holding MODEL_PATH (see choose_backend)."""
    chosen = choose_backend(model_path, backend)
    if chosen in bundle.ONNX_BACKENDS:
        return chosen, OnnxPredictor.from_export_dir(model_path.parent, num_threads, bundle.ONNX_BACKENDS[chosen][1])
    return chosen, load_torchscript(model_path)
