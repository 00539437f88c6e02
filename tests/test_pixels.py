"""The pixels a model sees: one Preprocess definition for model.pt, preprocess.onnx and model.pt2, and the pinned gap
to the training cache, which resizes with PIL (bicubic) once per photo before the same Preprocess crops it."""

from __future__ import annotations

import pytest
import torch

from landmark_lib.data.cache import resize_square
from landmark_lib.data.images import pil_to_uint8_chw
from landmark_lib.data.transforms import EvalTransform
from landmark_lib.preprocess import Preprocess, PreprocessConfig

from helpers import make_photo

CONFIG = PreprocessConfig(input_size=64)  # resize side 73
# (width, height): odd and even sizes, both orientations, a tie of the resize rounding (10 x 25 -> 73 x 182.5)
SIZES = [(10, 25), (25, 10), (91, 64), (120, 80), (80, 120), (300, 199), (641, 480), (1000, 333)]


def grey_levels(a: torch.Tensor, b: torch.Tensor, preprocess: Preprocess) -> torch.Tensor:
    """|A - B| of two normalised batches, on the 0..255 scale of the photo."""
    return ((a - b).abs() * preprocess.std).flatten()


def test_a_photo_cached_at_the_resize_side_reaches_the_model_unchanged():
    preprocess = Preprocess(CONFIG).eval()
    photo = make_photo(CONFIG.resize_size, CONFIG.resize_size)
    with torch.no_grad():
        direct = preprocess(pil_to_uint8_chw(photo))
        cached = EvalTransform(CONFIG)(resize_square(photo, CONFIG.resize_size)).unsqueeze(0)
    assert float(grey_levels(direct, cached, preprocess).max()) == 0.0


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_training_cache_stays_within_the_pinned_gap_of_the_served_pixels(width: int, height: int):
    """The cache resizes with PIL's bicubic and rounds the size with round(); serving resizes with torch (the
    config's interpolation, antialiased) and rounds half up. On these photos (a gradient with a hard-edged block)
    the mean gap is 0.5-3.3 grey levels; a change that widens it (another resize, another rounding) fails here."""
    preprocess = Preprocess(CONFIG).eval()
    photo = make_photo(width, height, seed=width)
    with torch.no_grad():
        served = preprocess(pil_to_uint8_chw(photo))
        cached = EvalTransform(CONFIG)(resize_square(photo, CONFIG.resize_size)).unsqueeze(0)
    assert served.shape == cached.shape == (1, 3, CONFIG.input_size, CONFIG.input_size)
    assert float(grey_levels(served, cached, preprocess).mean()) <= 4.0


@pytest.mark.slow
def test_model_pt2_computes_model_pt_pixels_also_at_rounding_ties():
    """model.pt2 runs the same Preprocess (it once had its own, rounding half to even: 10 x 25 photos differed)."""
    import warnings

    from landmark_lib.export.pt2 import ExportablePredictor
    from landmark_lib.predictor import LandmarkPredictor

    from helpers import CLASSES, tiny_net

    eager = LandmarkPredictor(tiny_net(), CONFIG, CLASSES).eval()
    side = torch.export.Dim("height", min=2, max=2**15), torch.export.Dim("width", min=2, max=2**15)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        example = (torch.zeros(3, 97, 131, dtype=torch.uint8),)
        program = torch.export.export(
            ExportablePredictor(eager).eval(), example, dynamic_shapes={"image": dict(zip((1, 2), side))}
        )
    for width, height in SIZES:
        image = pil_to_uint8_chw(make_photo(width, height, seed=width))
        with torch.no_grad():
            assert torch.equal(program.module()(image), eager(image)), (width, height)
