"""The export folder ("bundle"): the files an export writes, export.json, and what a server may take from them.

    model.pt          TorchScript: preprocessing, network, softmax and the class metadata; needs only torch
    labels.json       the classes in output order (landmark_lib.labels.ClassInfo)
    export.json       how the files were made and checked: preprocess, the threshold of each backend, the ONNX
                      files' checks ('onnx', 'onnx_int8'), the evaluation summary ('metrics'), the training arguments
    metrics.json      the exported model.pt evaluated on the check split
    model.onnx        the network alone (normalised float [N, 3, S, S] -> logits), for ONNX Runtime
    model.int8.onnx   the same, statically quantised to int8, with its own threshold
    config.json       timm runs: timm's own config (architecture, num_classes, label_names, pretrained_cfg) ...
    model.safetensors ... and weights, so timm.create_model("hf-hub:OWNER/NAME", pretrained=True) loads them
    model.pt2         torch.export ExportedProgram of model.pt's forward (dynamic height/width), labels inside
    preprocess.onnx   the preprocessing (uint8 [3, H, W] of any size -> [1, 3, S, S]), exported from the Preprocess
                      module model.pt scripts: with it the ONNX files serve on ONNX Runtime, PIL and numpy alone
    index.npz         the embedding of every training photo with its label and collection (landmark_lib/index/):
                      the recognition score compares a photo with its nearest ones
    README.md         the model card

The file names and the names inside the files live here; export.json's content is read and written only by
artifacts/export_info.py (ExportInfo), so the exporter, the evaluator and the server agree on which file has which
threshold.
"""

from __future__ import annotations

from pathlib import Path

from .errors import LandmarkError

MODEL_FILE = "model.pt"
LABELS_FILE = "labels.json"
EXPORT_FILE = "export.json"
METRICS_FILE = "metrics.json"
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
PT2_FILE = "model.pt2"
TIMM_CONFIG_FILE = "config.json"
TIMM_WEIGHTS_FILE = "model.safetensors"
PREPROCESS_FILE = "preprocess.onnx"
CARD_FILE = "README.md"
INDEX_FILE = "index.npz"  # landmark_lib/index/store.py reads and writes it
FILES = (
    MODEL_FILE,
    ONNX_FILE,
    INT8_FILE,
    PREPROCESS_FILE,
    INDEX_FILE,
    PT2_FILE,
    TIMM_CONFIG_FILE,
    TIMM_WEIGHTS_FILE,
    LABELS_FILE,
    EXPORT_FILE,
    METRICS_FILE,
    CARD_FILE,
)
REQUIRED_FILES = (MODEL_FILE, LABELS_FILE, EXPORT_FILE)  # what every export has, whatever its format
SERVE_FILES = (
    MODEL_FILE,
    LABELS_FILE,
    EXPORT_FILE,
    ONNX_FILE,
    INT8_FILE,
    PREPROCESS_FILE,
    INDEX_FILE,
)  # what a server downloads from the Hub

ONNX_INPUT = "input"  # float32 [N, 3, S, S], a photo after the torch preprocessing
ONNX_OUTPUT = "logits"  # float32 [N, num_classes], softmax not included
PREPROCESS_INPUT = "image"  # preprocess.onnx: uint8 RGB [3, H, W], any size
PREPROCESS_OUTPUT = "pixels"  # float32 [1, 3, S, S], the input of the network files
SPEED_KEY = "speed"  # export.json: each verified file's time for one photo at batch 1, and which is served
ONNX_EMBEDDING = "embedding"  # float32 [N, D]: the pooled features, L2-normalised (landmark_lib/embedding.py)

BACKENDS = ("auto", "onnx-int8", "onnx", "torchscript")
# backend (= export --format) -> (export.json key recording its check, file); fastest first
ONNX_BACKENDS = {"onnx-int8": ("onnx_int8", INT8_FILE), "onnx": ("onnx", ONNX_FILE)}


class NotAnExportError(LandmarkError, FileNotFoundError):
    """A folder that export did not write (no export.json / labels.json)."""


def require(folder: str | Path, *names: str) -> Path:
    """FOLDER, after checking that the export wrote the files NAMES (default: export.json and labels.json)."""
    folder = Path(folder)
    missing = [name for name in names or (EXPORT_FILE, LABELS_FILE) if not (folder / name).is_file()]
    if missing:
        raise NotAnExportError(
            f"{folder} is not an export folder (no {', '.join(missing)}); write it with `landmark export RUN --out {folder}`."
        )
    return folder


def backend_of_file(name: str) -> str:
    """The backend that serves the file NAME ('model.int8.onnx' -> 'onnx-int8'); anything else is TorchScript."""
    return next((backend for backend, (_, file) in ONNX_BACKENDS.items() if file == name), "torchscript")
