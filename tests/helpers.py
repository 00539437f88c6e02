"""Tiny learnable landmark datasets made on the fly (no network, no ../shared)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = [(200, 40, 40), (40, 160, 60), (40, 70, 200), (220, 200, 40), (160, 60, 200), (40, 200, 200)]


def make_photo(class_index: int, rng: np.random.Generator, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """A noisy 'photo' whose class is told by the colour and position of a block: easy to learn, not constant."""
    width, height = size
    pixels = rng.integers(0, 90, (height, width, 3), dtype=np.uint8)
    colour = np.array(COLOURS[class_index % len(COLOURS)], dtype=np.int16)
    top = (class_index * 7) % max(1, height // 2)
    pixels[top : top + height // 2, width // 4 : 3 * width // 4] = np.clip(colour + rng.integers(-25, 25, 3), 0, 255)
    return Image.fromarray(pixels)


def make_dataset(root: Path, classes: int = 3, train_per_class: int = 12, test_per_class: int = 4, seed: int = 0) -> Path:
    """root/{train,test}/<NN.Class_Name>/*.jpg, like the canonical course layout."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for c in range(classes):
            folder = Path(root) / split / f"{c:02d}.Landmark_{chr(65 + c)}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                make_photo(c, rng, size=(int(rng.integers(64, 120)), int(rng.integers(64, 120)))).save(folder / f"{i:03d}.jpg", quality=90)
    return Path(root)
