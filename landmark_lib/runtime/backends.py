"""The two runtimes a server runs an export with, behind one interface (Classifier): TorchScript (model.pt) and
ONNX Runtime (model.onnx, model.int8.onnx), and the choice between them.

The ONNX files run behind preprocess.onnx, the preprocessing graph exported from the same Preprocess module model.pt
scripts (checked against it at export), so serving them needs only ONNX Runtime, PIL and numpy: torch is imported
only for TorchScript (and for old exports without that graph). 'auto' serves the verified file the export measured
fastest at batch 1 (export.json 'speed').
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .. import bundle
from ..artifacts import export_info
from ..artifacts.export_info import ExportInfo
from ..labels import ClassInfo, read_labels, to_columns
from ..preprocess_config import PreprocessConfig
from . import model_folder
from .model_folder import ModelFolderError
from .resolve import ModelNotFoundError

if TYPE_CHECKING:
    import torch

    from ..preprocess import Preprocess

log = logging.getLogger(__name__)


class Classifier(Protocol):
    """What serving and evaluation need from a loaded model: uint8 RGB images [3, H, W] of any size in, class
    probabilities out, the Preprocess module it applies, and the class metadata as the attributes labels.Columns
    names (class_names, display_names, cities, countries, latitudes, longitudes; labels.from_columns reads them)."""

    class_names: list[str]
    display_names: list[str]
    cities: list[str]
    countries: list[str]
    latitudes: list[float]
    longitudes: list[float]

    @property
    def preprocess(self) -> PreprocessConfig | Preprocess:
        """The config (ONNX) or the Preprocess module (model.pt): both have input_size and resize_size."""

    def forward_batch(self, images: list[torch.Tensor]) -> torch.Tensor: ...

    def forward_batch_with_embedding(self, images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]: ...

    def __call__(self, image: torch.Tensor) -> torch.Tensor: ...


def load_torchscript(path: str | Path, device: str = "cpu", num_threads: int | None = None) -> Classifier:
    """model.pt: preprocessing, network, softmax and class metadata in one file that needs only torch (NUM_THREADS:
    torch's intra-op threads for this process, when given)."""
    import torch  # only the TorchScript backend needs it

    if num_threads:
        torch.set_num_threads(num_threads)

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
    """A Classifier on ONNX Runtime: uint8 RGB images [3, H, W] -> preprocess.onnx -> ONNX network -> softmax, in numpy
    (`probabilities`); forward_batch and logits take torch tensors for evaluation and export (torch imported then).

    Without PREPROCESS_PATH (exports made before preprocess.onnx) the torch Preprocess module preprocesses instead.
    """

    def __init__(
        self,
        onnx_path: str | Path,
        preprocess: PreprocessConfig,
        classes: list[ClassInfo] | None = None,
        num_threads: int = 1,
        preprocess_path: str | Path | None = None,
    ):
        self.onnx_path = Path(onnx_path)
        self.session = ort_session(self.onnx_path, num_threads)
        self.preprocess = preprocess
        self.preprocess_session = ort_session(preprocess_path, num_threads) if preprocess_path else None
        self.torch_preprocess = None if preprocess_path else _torch_preprocess(preprocess)
        columns = to_columns(classes or [])  # the attributes model.pt carries
        self.class_names, self.display_names = columns.class_names, columns.display_names
        self.cities, self.countries = columns.cities, columns.countries
        self.latitudes, self.longitudes = columns.latitudes, columns.longitudes

    @classmethod
    def from_export_dir(cls, folder: str | Path, num_threads: int = 1, file: str = bundle.ONNX_FILE) -> OnnxPredictor:
        """FOLDER/FILE (model.onnx or model.int8.onnx) with the preprocessing from export.json and the classes from labels.json."""
        folder = Path(folder)
        info = export_info.read(folder)
        graph = info.serving.preprocess_file
        return cls(
            folder / file,
            PreprocessConfig.from_dict(info.serving.preprocess or {}),
            read_labels(folder / bundle.LABELS_FILE),
            num_threads,
            folder / graph if graph else None,
        )

    def pixels(self, image: np.ndarray) -> np.ndarray:
        """uint8 [3, H, W] -> the network's input [1, 3, S, S] (float32)."""
        if self.torch_preprocess is None:
            assert self.preprocess_session is not None  # one of the two is always set (__init__)
            return self.preprocess_session.run([bundle.PREPROCESS_OUTPUT], {bundle.PREPROCESS_INPUT: image})[0]
        import torch

        with torch.inference_mode():
            return self.torch_preprocess(torch.from_numpy(image)).numpy()

    def _run(self, images: list[np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        batch = np.concatenate([self.pixels(np.ascontiguousarray(image)) for image in images], axis=0)
        return self.session.run(outputs, {bundle.ONNX_INPUT: batch})

    def probabilities(self, images: list[np.ndarray]) -> np.ndarray:
        """uint8 RGB images [3, H, W] of any size -> class probabilities [N, C] (float32), one network call."""
        return _softmax(self._run(images, [bundle.ONNX_OUTPUT])[0])

    def probabilities_with_embedding(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities [N, C], L2-normalised embeddings [N, D]) in one call, like model.pt's
        forward_batch_with_embedding (the int8 file's embedding is re-normalised: its quantised length drifts)."""
        if bundle.ONNX_EMBEDDING not in [o.name for o in self.session.get_outputs()]:
            raise ModelFolderError(
                f"{self.onnx_path} has no '{bundle.ONNX_EMBEDDING}' output (an export from before embeddings); export the model again."
            )
        logits, embedding = self._run(images, [bundle.ONNX_OUTPUT, bundle.ONNX_EMBEDDING])
        embedding = embedding.astype(np.float32)
        return _softmax(logits), embedding / np.maximum(np.linalg.norm(embedding, axis=1, keepdims=True), 1e-12)

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised float batch [N, 3, S, S] -> logits [N, C] from ONNX Runtime."""
        import torch

        (output,) = self.session.run([bundle.ONNX_OUTPUT], {bundle.ONNX_INPUT: batch.contiguous().numpy()})
        return torch.from_numpy(output)

    def forward_batch(self, images: list[torch.Tensor]) -> torch.Tensor:
        import torch

        return torch.from_numpy(self.probabilities([image.numpy() for image in images]))

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self.forward_batch([image])[0]

    def forward_batch_with_embedding(self, images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        probs, embedding = self.probabilities_with_embedding([image.numpy() for image in images])
        return torch.from_numpy(probs), torch.from_numpy(embedding)


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def _torch_preprocess(config: PreprocessConfig) -> Preprocess:
    from ..preprocess import Preprocess

    return Preprocess(config).eval()


def probabilities(model: Classifier, images: list[np.ndarray]) -> np.ndarray:
    """MODEL's class probabilities [N, C] for uint8 RGB arrays [3, H, W]: numpy in and out, whatever the backend."""
    if isinstance(model, OnnxPredictor):
        return model.probabilities(images)
    import torch

    with torch.inference_mode():
        return model.forward_batch([torch.from_numpy(np.ascontiguousarray(image)) for image in images]).numpy()


def probabilities_with_embedding(model: Classifier, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """MODEL's (probabilities [N, C], L2-normalised embeddings [N, D]) for uint8 RGB arrays [3, H, W], numpy in and
    out whatever the backend (the gallery compares photos by the embeddings)."""
    if isinstance(model, OnnxPredictor):
        return model.probabilities_with_embedding(images)
    import torch

    with torch.inference_mode():
        probs, embedding = model.forward_batch_with_embedding(
            [torch.from_numpy(np.ascontiguousarray(image)) for image in images]
        )
    return probs.numpy(), embedding.numpy()


def serving_order(folder: Path, info: ExportInfo) -> list[str]:
    """The backends 'auto' tries, best first: the verified files by the time the export measured for each at batch 1
    (export.json 'speed'), then verified ones it did not measure (int8, fp32 ONNX), TorchScript always among them."""
    verified = [b for b in bundle.ONNX_BACKENDS if export_info.has_verified(folder, b, info)] + ["torchscript"]
    measured = [b for b in info.serving.fastest() if b in verified]
    return measured + [b for b in verified if b not in measured]


def choose_backend(model_path: Path, backend: str = "auto") -> str:
    """'onnx-int8', 'onnx' or 'torchscript' for the export holding MODEL_PATH ('auto': serving_order's first)."""
    if backend not in bundle.BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(bundle.BACKENDS)}, not {backend!r}")
    folder = model_path.parent
    if backend in bundle.ONNX_BACKENDS:
        if not export_info.has_verified(folder, backend):
            raise ModelNotFoundError(
                f"{folder / bundle.ONNX_BACKENDS[backend][1]} (with {bundle.EXPORT_FILE} and {bundle.LABELS_FILE} recording it) "
                f"does not exist; export with `landmark export RUN --out DIR --format {backend}`."
            )
        return backend
    if backend == "auto":
        return serving_order(folder, model_folder.read_verified_info(model_path))[0]
    return "torchscript"


def _check_fits(model: Classifier, file: Path, info: ExportInfo, labels: list[ClassInfo] | None) -> None:
    """One blank photo through MODEL: as many outputs as classes, and the preprocessing export.json describes."""
    names = list(model.class_names)
    if labels is not None and [c.name for c in labels] != names:
        raise ModelFolderError(
            f"{file.parent / bundle.LABELS_FILE} lists other classes than {file.name}: the folder mixes files of two exports; export it again."
        )
    expected = model_folder.preprocess(info)
    if expected and (expected.input_size, expected.resize_size) != (
        int(model.preprocess.input_size),
        int(model.preprocess.resize_size),
    ):
        raise ModelFolderError(
            f"{file.name} preprocesses photos differently from what {bundle.EXPORT_FILE} records; the folder mixes two exports: export it again."
        )
    size = int(model.preprocess.input_size)
    try:
        outputs = probabilities(model, [np.zeros((3, size, size), dtype=np.uint8)]).shape[-1]
    except Exception as error:  # noqa: BLE001 - wrong input size, broken graph: whatever the runtime says, in one line
        raise ModelFolderError(
            f"{file} does not run on a {size}x{size} photo ({type(error).__name__}); export it again."
        ) from None
    recorded = info.report.num_classes
    if outputs != len(names) or (recorded is not None and int(recorded) != outputs):
        raise ModelFolderError(
            f"{file} has {outputs} outputs but its export lists {len(names)} classes (export.json: {recorded}); "
            "the folder mixes files of two exports: export it again."
        )


def _load_backend(
    model_path: Path, backend: str, threads: int, info: ExportInfo, labels: list[ClassInfo] | None
) -> Classifier:
    """The model of one backend, after checking its file and that it fits the (checked) LABELS; ModelFolderError if
    not."""
    folder = model_path.parent
    if backend in bundle.ONNX_BACKENDS:
        file = folder / bundle.ONNX_BACKENDS[backend][1]
        model_folder.check_file(folder, file.name, info)
        preprocess = model_folder.preprocess(info)
        if preprocess is None:
            raise ModelFolderError(
                f"{folder / bundle.EXPORT_FILE} records no preprocessing for {file.name}; export it again."
            )
        graph = info.serving.preprocess_file
        if graph:
            model_folder.check_file(folder, graph, info)
        model: Classifier
        try:
            model = OnnxPredictor(file, preprocess, labels, threads, folder / graph if graph else None)
        except Exception as error:  # noqa: BLE001 - ONNX Runtime's own errors (invalid protobuf, ...) have no common base class
            raise ModelFolderError(
                f"{file} cannot be loaded by ONNX Runtime ({type(error).__name__}); export it again."
            ) from None
    else:
        file = model_path
        if model_path.name == bundle.MODEL_FILE:
            model_folder.check_file(folder, bundle.MODEL_FILE, info)
        try:
            model = load_torchscript(model_path, num_threads=threads)
        except Exception as error:  # noqa: BLE001 - a truncated or foreign file: torch raises RuntimeError, pickle errors, ...
            raise ModelFolderError(
                f"{model_path} is not a loadable TorchScript model ({type(error).__name__}); restore it or export it again."
            ) from None
    _check_fits(model, file, info, labels)
    return model


def load_verified(model_path: Path, backend: str = "auto", num_threads: int = 1) -> tuple[str, Classifier]:
    """(backend, model) for the export holding MODEL_PATH, every file checked against export.json before use.

    With 'auto', an ONNX file that fails its checks (damaged, from another export, not loadable) is skipped with a
    warning and the next verified file is served; a file asked for by name, model.pt, and what every backend shares
    (export.json's values and settings, labels.json: runtime/model_folder.py) are required: their failure is a
    ModelFolderError in one sentence, never a fallback.
    """
    info = model_folder.read_verified_info(model_path)
    labels = model_folder.labels(model_path.parent, info)
    first = choose_backend(model_path, backend)
    candidates = serving_order(model_path.parent, info) if backend == "auto" else [first]
    for candidate in candidates:
        try:
            return candidate, _load_backend(model_path, candidate, num_threads, info, labels)
        except ModelFolderError as error:
            if candidate == candidates[-1]:
                raise
            log.warning(f"{error} Serving the next verified file instead.")
    raise AssertionError("unreachable: the last candidate returns or raises")
