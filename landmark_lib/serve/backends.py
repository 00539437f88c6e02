"""The two runtimes a server runs an export with, behind one interface (Classifier): TorchScript (model.pt) and
ONNX Runtime (model.onnx, model.int8.onnx), and the choice between them.

Only the network goes to ONNX: the resize of photos of any size stays in the torch Preprocess module, so every
backend sees identical pixels. On CPU, ONNX Runtime answers about 1.7x faster than TorchScript and int8 another 1.6x
(benchmarks/serving_speed.py), which is why 'auto' prefers them.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Protocol

import torch

from .. import bundle, checksums
from ..labels import ClassInfo, Columns, read_labels, to_columns
from ..preprocess import Preprocess, PreprocessConfig
from .resolve import ModelNotFoundError

log = logging.getLogger(__name__)


class ModelFolderError(ModelNotFoundError):
    """An export folder whose files are damaged, mixed from several exports or do not fit each other."""


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

    def __init__(
        self,
        onnx_path: str | Path,
        preprocess: PreprocessConfig,
        classes: list[ClassInfo] | None = None,
        num_threads: int = 1,
    ):
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
        return cls(
            folder / file,
            PreprocessConfig.from_dict(info["preprocess"]),
            read_labels(folder / bundle.LABELS_FILE),
            num_threads,
        )

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

    def forward_batch_with_embedding(self, images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(probabilities [N, C], L2-normalised embeddings [N, D]), like model.pt's method of the same name."""
        outputs = [o.name for o in self.session.get_outputs()]
        if bundle.ONNX_EMBEDDING not in outputs:
            raise ModelFolderError(
                f"{self.onnx_path} has no '{bundle.ONNX_EMBEDDING}' output (an export from before embeddings); export the model again."
            )
        with torch.inference_mode():
            batch = torch.cat([self.preprocess(image) for image in images], dim=0)
            logits, embedding = self.session.run(
                [bundle.ONNX_OUTPUT, bundle.ONNX_EMBEDDING], {bundle.ONNX_INPUT: batch.contiguous().numpy()}
            )
            embedding = torch.from_numpy(embedding).float()  # int8 output: re-normalised (its quantised length drifts)
            return torch.softmax(torch.from_numpy(logits).float(), dim=-1), torch.nn.functional.normalize(
                embedding, dim=1
            )


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


def _read_json(path: Path, what: str) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelFolderError(
            f"{path} is damaged ({what} cannot be read: {error}); restore the export folder or export it again."
        ) from None


def _export_info(model_path: Path) -> dict:
    path = model_path.parent / bundle.EXPORT_FILE
    info = _read_json(path, "the export record") if path.is_file() else {}
    if not isinstance(info, dict):
        raise ModelFolderError(
            f"{path} is not an export record (a JSON object); restore the export folder or export it again."
        )
    return info


def _check_file(folder: Path, name: str, info: dict) -> None:
    """FOLDER/NAME is the file the export wrote (sha256 in export.json), else ModelFolderError."""
    problem = checksums.problem(folder, name, info.get(checksums.FILES_KEY))
    if problem:
        raise ModelFolderError(problem)


def _labels(folder: Path, info: dict) -> list[ClassInfo] | None:
    path = folder / bundle.LABELS_FILE
    if not path.is_file():
        return None
    _check_file(folder, bundle.LABELS_FILE, info)
    labels = _read_json(path, "the class list")
    if not isinstance(labels, list) or not all(isinstance(e, dict) and isinstance(e.get("name"), str) for e in labels):
        raise ModelFolderError(
            f"{path} is not a list of {{name, display_name, ...}} entries; restore the export folder or export it again."
        )
    return read_labels(path)


def _preprocess(info: dict) -> PreprocessConfig | None:
    if "preprocess" not in info:
        return None
    try:
        return PreprocessConfig.from_dict(info["preprocess"])
    except (KeyError, TypeError, ValueError):
        raise ModelFolderError(
            f"the preprocessing in {bundle.EXPORT_FILE} is malformed ({info['preprocess']!r:.80}); export the model again."
        ) from None


def _check_fits(model: Classifier, file: Path, info: dict, labels: list[ClassInfo] | None) -> None:
    """One blank photo through MODEL: as many outputs as classes, and the preprocessing export.json describes."""
    names = list(model.class_names)
    if labels is not None and [c.name for c in labels] != names:
        raise ModelFolderError(
            f"{file.parent / bundle.LABELS_FILE} lists other classes than {file.name}: the folder mixes files of two exports; export it again."
        )
    expected = _preprocess(info)
    if expected and (expected.input_size, expected.resize_size) != (
        int(model.preprocess.input_size),
        int(model.preprocess.resize_size),
    ):
        raise ModelFolderError(
            f"{file.name} preprocesses photos differently from what {bundle.EXPORT_FILE} records; the folder mixes two exports: export it again."
        )
    size = int(model.preprocess.input_size)
    try:
        with torch.inference_mode():
            outputs = model.forward_batch([torch.zeros(3, size, size, dtype=torch.uint8)]).shape[-1]
    except Exception as error:  # noqa: BLE001 - wrong input size, broken graph: whatever the runtime says, in one line
        raise ModelFolderError(
            f"{file} does not run on a {size}x{size} photo ({type(error).__name__}); export it again."
        ) from None
    if outputs != len(names) or (info.get("num_classes") is not None and int(info["num_classes"]) != outputs):
        raise ModelFolderError(
            f"{file} has {outputs} outputs but its export lists {len(names)} classes (export.json: {info.get('num_classes')}); "
            "the folder mixes files of two exports: export it again."
        )


def _load_backend(model_path: Path, backend: str, threads: int, info: dict) -> Classifier:
    """The model of one backend, after checking its file, the labels and that they fit; ModelFolderError if not."""
    folder = model_path.parent
    labels = _labels(folder, info)
    if backend in bundle.ONNX_BACKENDS:
        file = folder / bundle.ONNX_BACKENDS[backend][1]
        _check_file(folder, file.name, info)
        preprocess = _preprocess(info)
        if preprocess is None:
            raise ModelFolderError(
                f"{folder / bundle.EXPORT_FILE} records no preprocessing for {file.name}; export it again."
            )
        try:
            model = OnnxPredictor(file, preprocess, labels, threads)
        except Exception as error:  # noqa: BLE001 - ONNX Runtime's own errors (invalid protobuf, ...) have no common base class
            raise ModelFolderError(
                f"{file} cannot be loaded by ONNX Runtime ({type(error).__name__}); export it again."
            ) from None
    else:
        file = model_path
        if model_path.name == bundle.MODEL_FILE:
            _check_file(folder, bundle.MODEL_FILE, info)
        try:
            model = load_torchscript(model_path)
        except Exception as error:  # noqa: BLE001 - a truncated or foreign file: torch raises RuntimeError, pickle errors, ...
            raise ModelFolderError(
                f"{model_path} is not a loadable TorchScript model ({type(error).__name__}); restore it or export it again."
            ) from None
    _check_fits(model, file, info, labels)
    return model


def load_verified(model_path: Path, backend: str = "auto", num_threads: int = 1) -> tuple[str, Classifier]:
    """(backend, model) for the export holding MODEL_PATH, every file checked against export.json before use.

    With 'auto', an ONNX file that fails its checks (damaged, from another export, not loadable) is skipped with a
    warning and the next verified file is served; a file asked for by name, model.pt and labels.json are required:
    their failure is a ModelFolderError in one sentence.
    """
    info = _export_info(model_path)
    if info and checksums.FILES_KEY not in info:
        log.warning(
            f"{model_path.parent / bundle.EXPORT_FILE} records no checksums (an export from before they were recorded), "
            "so its files are not verified; export it again or run `landmark checksums FOLDER`."
        )
    first, order = choose_backend(model_path, backend), [*bundle.ONNX_BACKENDS, "torchscript"]
    candidates = (
        [first]
        if backend != "auto"
        else [
            b
            for b in order[order.index(first) :]
            if b == "torchscript" or bundle.has_verified(model_path.parent, b, info)
        ]
    )
    for candidate in candidates:
        try:
            return candidate, _load_backend(model_path, candidate, num_threads, info)
        except ModelFolderError as error:
            if candidate == candidates[-1]:
                raise
            log.warning(f"{error} Serving the next verified file instead.")
    raise AssertionError("unreachable: the last candidate returns or raises")


load = load_verified  # what a server calls
