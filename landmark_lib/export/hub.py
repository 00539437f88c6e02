"""Publish an export folder to the Hugging Face Hub with a model card that says what the model can and cannot do."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError, HTTPError

from .. import bundle
from ..artifacts import export_info
from ..artifacts.export_info import ExportInfo
from ..errors import LandmarkError
from ..labels import BACKGROUND_CLASS, ClassInfo, read_labels

QUTB_COMPLEX = ("qutub_minar", "alai_darwaza", "alai_minar", "iron_pillar_of_delhi", "jamali_kamali_tomb")
LICENSE = "apache-2.0"  # the EfficientNet-Lite ImageNet weights the shipped models start from are Apache-2.0
LICENSE_NOTE = (
    "The weights are released under Apache-2.0, the licence of the EfficientNet-Lite ImageNet weights they were "
    "fine-tuned from (and of this project's code). The training and evaluation photos are not part of this release: "
    "they come from public repositories that state no licence for the images (one small set of everyday photos is "
    "CC0), so they were used as third-party material for research and evaluation only; check that your use of the "
    "model fits your own situation."
)
DEFAULT_REPO_ID = "OWNER/landmark-tagger"  # the card of an export not pushed anywhere (yet)
EVAL_DATASET_TYPE = "imagefolder"  # local ImageFolder trees, not Hub datasets: no Hub dataset id is claimed


class HubError(LandmarkError, RuntimeError):
    """A push that failed (offline, no token, no permission); the export files stay on disk."""


@dataclass(frozen=True)
class Pushed:
    """Where a push went: the repo URL and the commit it made (or found, when nothing changed)."""

    url: str
    repo_id: str
    commit: str

    def preload_entry(self) -> str:
        """The Space front matter's preload_from_hub entry for this commit: repo, files, commit."""
        return f"{self.repo_id} {','.join(bundle.SERVE_FILES)} {self.commit}"


def _dataset_name(info: ExportInfo) -> str:
    config = info.report.train_config()
    data = info.report.check_data or (config.data if config else None) or ["landmark photos"]
    return "+".join(Path(d).name for d in data)


def base_model(info: ExportInfo) -> str | None:
    """The Hub repo of the ImageNet weights a timm run started from (timm's own pretrained_cfg), None otherwise."""
    if not (info.report.model or "").startswith("timm:") or info.report.weights_source in (None, "random"):
        return None
    from timm.models import get_pretrained_cfg  # only timm runs pay for importing timm

    cfg = get_pretrained_cfg((info.report.model or "")[len("timm:") :])
    return getattr(cfg, "hf_hub_id", None) if cfg else None


def _eval_results(metrics: dict, dataset: str) -> list[EvalResult]:
    common = dict(
        task_type="image-classification",
        dataset_type=EVAL_DATASET_TYPE,
        dataset_name=dataset,
        dataset_split=metrics["split"],
    )
    values = [
        ("accuracy", "Top-1 accuracy", None, metrics["top1"]),
        ("top_5_accuracy", "Top-5 accuracy", None, metrics["top5"]),
        ("f1", "Macro F1", "macro", metrics["macro_f1"]),
        # Google Landmark Recognition's metric, on landmark and no-landmark photos (metrics.json keeps it per file)
        ("gap", "GAP", None, metrics.get("gap", (metrics.get("recognition") or {}).get("gap"))),
    ]
    return [
        EvalResult(metric_type=kind, metric_name=name, metric_config=config, metric_value=round(value, 4), **common)
        for kind, name, config, value in values
        if value is not None
    ]


def _card_data(info: ExportInfo, metrics: dict | None, repo_id: str) -> ModelCardData:
    tags = ["landmark-recognition", "image-classification", "torchscript"]
    if (info.report.model or "").startswith("timm:"):
        tags.append("timm")
    tags += [tag for record, tag in ((info.serving.onnx, "onnx"), (info.serving.pt2, "torch-export")) if record]
    return ModelCardData(
        # timm runs carry timm's own config.json + model.safetensors (timm.create_model("hf-hub:...") loads them)
        library_name="timm" if info.report.timm else "pytorch",
        pipeline_tag="image-classification",
        base_model=base_model(info),
        tags=tags,
        metrics=["accuracy", "f1"],
        license=LICENSE,
        model_name=repo_id.split("/")[-1],
        eval_results=_eval_results(metrics, _dataset_name(info)) if metrics else None,
    )


def _classes_section(labels: list[ClassInfo]) -> str:
    rows = ["| # | landmark | place | lat, lon |", "| ---: | --- | --- | --- |"]
    for i, label in enumerate(labels):
        coords = f"{label.lat:.3f}, {label.lon:.3f}" if label.lat is not None else ""
        rows.append(f"| {i} | {label.display_name} (`{label.name}`) | {label.place} | {coords} |")
    return "\n".join(rows)


def _training_section(info: ExportInfo) -> str:
    pre = info.serving.preprocess or {}
    options = ", ".join(f"{key}={value}" for key, value in (info.report.model_options or {}).items())
    lines = [
        f"- Architecture: `{info.report.model}` ({options or 'default options'}); initial weights: {info.report.weights_source or 'unknown'}.",
        f"- Input: {info.report.input}. Preprocessing (inside the file): resize the shorter side to "
        f"{round(pre['input_size'] / pre['crop_pct'])} px ({pre['interpolation']}, antialiased), centre crop "
        f"{pre['input_size']} px, normalise with mean {list(pre['mean'])} and std {list(pre['std'])}.",
    ]
    config = info.report.train_config()
    if config:
        lines.append(f"- Trained with: `landmark train {' '.join(config.recipe())}` (other options at their defaults).")
    return "\n".join(lines)


def _files_section(info: ExportInfo) -> str:
    """What each file is, so a server can pick: TorchScript for torch only, ONNX (fp32 or int8) for ONNX Runtime."""
    lines = [
        "- `model.pt`: TorchScript with preprocessing and softmax inside; needs only `torch`. Takes a uint8 RGB tensor "
        "[3, H, W] (-> [classes]) or torchvision's `ToTensor()(photo).unsqueeze_(0)` (float [1, 3, H, W], 0..1 -> [1, classes]).",
        "- `labels.json`: index -> class name, display name, city, country, coordinates. `export.json`: how the files "
        "were made and checked, and the recognition threshold.",
    ]
    if info.serving.onnx:
        onnx = info.serving.onnx
        lines.append(
            f"- `{onnx['file']}`: the network alone for ONNX Runtime; input {onnx['input']}; output {onnx['output']}. "
            f"Matches `model.pt` within {onnx['max_abs_diff']:.0e} in probability."
        )
        if onnx.get("preprocess_file"):
            lines.append(
                f"- `{onnx['preprocess_file']}`: the preprocessing for the ONNX files, {onnx['preprocess']}; with it "
                "they serve on ONNX Runtime, PIL and numpy alone (no torch)."
            )
    if info.serving.pt2:
        lines.append(
            f"- `model.pt2`: the same model as a `torch.export` ExportedProgram (input {info.serving.pt2['input']}; "
            f"`torch.export.load`, labels in its extra file `labels.json`); matches within {info.serving.pt2['max_abs_diff']:.0e}."
        )
    if info.report.timm:
        lines.append(
            "- `config.json` + `model.safetensors`: the fine-tuned network in timm's own format "
            "(architecture, `label_names`, preprocessing in `pretrained_cfg`); returns logits, no softmax."
        )
    if info.serving.onnx_int8:
        q = info.serving.onnx_int8
        test = q.get("metrics")
        lines.append(
            f"- `{q['file']}`: the same interface, statically quantised ({q['quantization']}) with {q['calibration_photos']} "
            f"training photos; validation top-1 {q['valid_top1_int8']:.2%} (fp32 {q['valid_top1_fp32']:.2%})"
            + (f", {test['split']} top-1 {test['top1']:.2%}, top-5 {test['top5']:.2%}" if test else "")
            + f"; its own recognition threshold {q['threshold']:.3f}."
        )
    return "\n".join(lines)


def _metrics_section(metrics: dict | None) -> str:
    if not metrics:
        return "Not evaluated at export time."
    lines = [
        f"On the `{metrics['split']}` split ({metrics['n_images']} photos, originals decoded exactly as a server would, "
        "evaluated with the exported file):",
        "",
        "| metric | value |",
        "| --- | ---: |",
        f"| top-1 accuracy | {metrics['top1']:.2%} |",
        f"| top-5 accuracy | {metrics['top5']:.2%} |",
        f"| macro F1 | {metrics['macro_f1']:.4f} |",
    ]
    weakest = sorted((c for c in metrics.get("per_class", []) if c["support"]), key=lambda c: c["f1"])[:5]
    if weakest:
        lines += ["", "Weakest classes (F1): " + ", ".join(f"{c['display_name']} {c['f1']:.2f}" for c in weakest) + "."]
    confused = metrics.get("most_confused", [])[:5]
    if confused:
        lines += [
            "",
            "Most confused (true -> predicted, photos): "
            + "; ".join(f"{p['true_display_name']} -> {p['predicted_display_name']} ({p['count']})" for p in confused)
            + ".",
        ]
    return "\n".join(lines)


def _limitations_section(labels: list[ClassInfo], dataset: str) -> str:
    names = {label.name for label in labels}
    scope = (
        "Open set: photos of none of these landmarks should land in `no_landmark`, but photos of other famous places "
        "and look-alike buildings still reach some landmark's probability; serve it with the photo index and its "
        "operating points (above) rather than a threshold on the probability."
        if BACKGROUND_CLASS in names
        else f"Closed set: every photo is assigned to one of these {len(labels)} landmarks, including photos of none "
        "of them; use the top probability as a confidence threshold before showing a tag."
    )
    bullets = [
        scope,
        "Coordinates are approximate (about 3 decimals) and mark one point of sites that are areas or long structures.",
        "Intended use: suggesting landmark tags and places for travel photos, with a human able to correct them. "
        "Not for surveillance, locating people, or any decision that matters without review.",
    ]
    if dataset == "world_landmarks":
        bullets.insert(
            1,
            "The classes come from five photo collections with different styles (small Google-Landmarks-like "
            "tourist photos vs. web and stock photos with watermarks) and very unequal sizes (32 to 796 training "
            "photos); the model can partly learn the collection rather than the landmark, so accuracy on your "
            "photos may be lower than the numbers above.",
        )
    qutb = sorted(names & set(QUTB_COMPLEX))
    if len(qutb) > 1:
        pillar = ""
        if "iron_pillar_of_delhi" in qutb:
            pillar = " `iron_pillar_of_delhi` photos often show the surrounding mosque ruins without the pillar."
        bullets.insert(
            1,
            f"{', '.join(f'`{n}`' for n in qutb)} are in (or next to) the Qutb complex in Delhi and look "
            f"alike; expect confusions among them.{pillar}",
        )
    if names & {"sapa_rice_terraces", "ha_long_bay", "haleakala_national_park"}:
        bullets.insert(
            1,
            "Landscape classes (rice terraces, bays, national parks) include close-ups, people and trail "
            "shots; expect lower confidence on them.",
        )
    return "\n".join(f"- {b}" for b in bullets)


def _usage_section(repo_id: str) -> str:
    return f"""```python
import json

import numpy as np
import torch
from huggingface_hub import hf_hub_download
from PIL import Image, ImageOps

model = torch.jit.load(hf_hub_download("{repo_id}", "model.pt")).eval()
labels = json.load(open(hf_hub_download("{repo_id}", "labels.json"), encoding="utf-8"))

photo = ImageOps.exif_transpose(Image.open("photo.jpg")).convert("RGB")
image = torch.from_numpy(np.array(photo)).permute(2, 0, 1)  # uint8 [3, H, W], any size
with torch.no_grad():
    probs = model(image)  # or model.forward_batch([image1, image2, ...]) -> [N, classes]
for p, i in zip(*probs.topk(3)):
    print(f"{{labels[i]['display_name']}} ({{labels[i]['city']}}, {{labels[i]['country']}}): {{p:.1%}}")
```

The file needs only `torch` (no project code, no timm); the class names and places are also attributes of the
module (`model.class_names`, `model.display_names`, `model.cities`, `model.countries`, `model.latitudes`, `model.longitudes`)."""


def _timm_usage(repo_id: str) -> str:
    return f"""

With timm (the network alone; the preprocessing is in its `pretrained_cfg`):

```python
import timm

model = timm.create_model("hf-hub:{repo_id}", pretrained=True).eval()
transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))
probs = model(transform(photo).unsqueeze(0)).softmax(-1)  # names: model.pretrained_cfg["label_names"]
```"""


CARD_TEMPLATE = Path(__file__).with_name("model_card.md")  # Jinja, rendered by huggingface_hub's ModelCard


def build_model_card(export_dir: str | Path, repo_id: str) -> ModelCard:
    """The card for an export folder (labels.json, export.json, metrics.json; landmark_lib/bundle.py), from
    CARD_TEMPLATE."""
    export_dir = bundle.require(export_dir)
    labels = read_labels(export_dir / bundle.LABELS_FILE)
    info = export_info.read(export_dir)
    metrics_file = export_dir / bundle.METRICS_FILE
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else None
    usage = _usage_section(repo_id) + (_timm_usage(repo_id) if info.report.timm else "")
    return ModelCard.from_template(
        _card_data(info, metrics, repo_id),
        template_path=str(CARD_TEMPLATE),
        title=repo_id.split("/")[-1],
        labels=labels,
        open_set=any(label.name == BACKGROUND_CLASS for label in labels),
        operating_points=info.serving.operating_points_of("onnx"),
        classes_table=_classes_section(labels),
        training=_training_section(info),
        evaluation=_metrics_section(metrics),
        files=_files_section(info),
        limitations=_limitations_section(labels, _dataset_name(info)),
        usage=usage,
        license_note=LICENSE_NOTE,
    )


def write_card(export_dir: str | Path, repo_id: str | None = None) -> None:
    """EXPORT_DIR/README.md from what the folder holds now (export writes it; calibrate rewrites it with its points)."""
    build_model_card(export_dir, repo_id or DEFAULT_REPO_ID).save(Path(export_dir) / bundle.CARD_FILE)


def push_to_hub(
    export_dir: str | Path,
    repo_id: str,
    revision: str | None = None,
    private: bool = False,
    token: str | None = None,
) -> Pushed:
    """Write README.md (the card) into EXPORT_DIR and upload the export in one commit. Pushing the same files again
    makes no new commit (the Hub's pre-upload says they are there). Raises HubError in one sentence."""
    export_dir = bundle.require(export_dir)
    build_model_card(export_dir, repo_id).save(export_dir / bundle.CARD_FILE)
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, repo_type="model", exist_ok=True, private=private)
        if revision:
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(export_dir),
            repo_type="model",
            revision=revision,
            allow_patterns=list(bundle.FILES),
            commit_message=f"Upload landmark model ({export_dir.name})",
        )
    except (OSError, HTTPError, HFValidationError, ValueError) as error:
        raise HubError(
            f"Could not push to the Hugging Face Hub repo {repo_id} ({_reason(error)}); check the network and your token "
            f"(`hf auth login`); the export files are still in {export_dir}."
        ) from error
    return Pushed(str(url), repo_id, commit.oid)


def _reason(error: Exception) -> str:
    """The server's own words when it sent some (e.g. "You don't have the rights ..."), else the error's first line."""
    text = getattr(error, "server_message", None) or str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
