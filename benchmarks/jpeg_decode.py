"""How much faster a phone-sized JPEG decodes when the server asks PIL for a reduced scale (DCT scaling).

Makes a JPEG of --size pixels from an example photo, then times load_rgb on its bytes in full and with
min_short_side (what LandmarkService.predict passes: twice the model's resize size), interleaved.

    PYTHONPATH=. .venv/bin/python benchmarks/jpeg_decode.py --size 4000x3000 --min-short-side 512
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

from PIL import Image

from landmark_lib.data.images import load_rgb_bytes

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=REPO_ROOT / "examples" / "petra.jpg")
    parser.add_argument("--size", default="4000x3000", help="WxH of the generated JPEG (12 MP: a phone photo)")
    parser.add_argument(
        "--min-short-side", type=int, default=512, help="the served model's 2 x resize size (Lite0: 512)"
    )
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    buffer = io.BytesIO()
    Image.open(args.photo).convert("RGB").resize((width, height)).save(buffer, "JPEG", quality=92)
    data = buffer.getvalue()
    times: dict[str, list[float]] = {"full": [], "reduced": []}
    sizes = {}
    for _ in range(args.iters + 1):  # the first round warms up
        for name, target in (("full", None), ("reduced", args.min_short_side)):
            start = time.perf_counter()
            sizes[name] = load_rgb_bytes(data, "photo.jpg", target).size
            times[name].append((time.perf_counter() - start) * 1000)
    result = {name: statistics.median(values[1:]) for name, values in times.items()}
    print(
        f"{width}x{height} JPEG ({len(data) / 1e6:.1f} MB): full decode {result['full']:.0f} ms -> {sizes['full']}, "
        f"with min_short_side={args.min_short_side} {result['reduced']:.0f} ms -> {sizes['reduced']}: "
        f"{result['full'] / result['reduced']:.1f}x faster (median of {args.iters})"
    )
    return {**result, "sizes": sizes}


if __name__ == "__main__":
    main()
