"""What a model expects of a photo (crop size, resize side, normalisation): plain data that needs no torch, so a
server on ONNX Runtime can read it from export.json. The Preprocess module (preprocess.py) applies it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_SIDE = (
    2**15
)  # the largest photo side the exported files accept (preprocess.onnx, model.pt2); decoding keeps photos far smaller


@dataclass
class PreprocessConfig:
    """What a model expects: crop size, the shorter side to resize to before the crop, normalisation."""

    input_size: int = 128
    crop_pct: float = 0.875
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    @property
    def resize_size(self) -> int:
        return int(round(self.input_size / self.crop_pct))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_timm(cls, data_config: dict, input_size: int | None = None) -> PreprocessConfig:
        """The preprocessing a timm backbone was pretrained with (timm's resolve_model_data_config), at INPUT_SIZE."""
        _, height, _ = data_config["input_size"]
        return cls(
            input_size=int(input_size or height),
            crop_pct=float(data_config.get("crop_pct", 0.875)),
            mean=tuple(data_config["mean"]),
            std=tuple(data_config["std"]),
            interpolation=str(data_config.get("interpolation", "bilinear")),
        )

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessConfig:
        return cls(
            input_size=int(data["input_size"]),
            crop_pct=float(data["crop_pct"]),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            interpolation=str(data["interpolation"]),
        )
