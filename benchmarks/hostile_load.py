"""Hostile load on the app: do normal users still get answers in time while others send hostile files and payloads?

Starts `app.py` in its own process (or uses --url) and first measures a clean run (N users sending normal photos
only); then sends each hostile request alone (time, peak memory); then N gradio_client users alternate a normal photo
(examples/*.jpg) with a hostile request: small valid PNGs that decode to gigabytes (16-bit, alpha, palette, a
1 x 20,000,000 strip), thin strips, a near-budget RGBA PNG, an 8000x8000 JPEG, tiny progressive and CMYK JPEGs whose
headers claim 14142x14142 and 9000x9000 pixels, a JPEG of 1010 scans, a 5000x5000 lossless WebP, broken files,
server paths (/dev/zero, /etc/passwd) and URL/base64 payloads sent over raw HTTP. Samples the app process's RSS (with
its children) every 20 ms and reports normal p50/p95 against the clean run's, hostile outcomes, the peak RSS above
the idle process, errors and whether the app survived.

    PYTHONPATH=. .venv/bin/python benchmarks/hostile_load.py --clients 8 --rounds 10 --json reports/hostile_load.json
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import httpx
import numpy as np
import psutil
from gradio_client import Client, handle_file
from PIL import Image

from benchmarks.app_load import REPO_ROOT, REQUEST_TIMEOUT_S, percentiles, serve_app


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _flat_png(width: int, height: int, bit_depth: int, colour_type: int) -> bytes:
    """A complete, valid PNG of WIDTH x HEIGHT identical rows: a few hundred KB that decode to gigabytes."""
    channels = {0: 1, 2: 3, 3: 1, 6: 4}[colour_type]
    row = b"\0" + bytes([0x5A]) * (width * channels * bit_depth // 8)
    deflate = zlib.compressobj(1)
    batch = max(1, 2**20 // len(row))  # rows per compress call (a 1-pixel-wide PNG has millions of them)
    data = b"".join(deflate.compress(row * min(batch, height - y)) for y in range(0, height, batch)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    palette = _chunk(b"PLTE", bytes(range(256)) * 3) if colour_type == 3 else b""
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + palette + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _progressive_jpeg(size: int, claimed: int | None = None, scans: int = 0, mode: str = "RGB") -> bytes:
    """A flat progressive JPEG of SIZE x SIZE; CLAIMED: the side its header says instead; SCANS: copies of its last
    scan appended (libjpeg replays each over every coefficient block)."""
    data = bytearray(_encoded(Image.new(mode, (size, size), (90, 60, 30, 10)[: len(mode)]), "JPEG", progressive=True))
    if claimed:
        sof = data.find(b"\xff\xc2")
        data[sof + 5 : sof + 9] = struct.pack(">HH", claimed, claimed)
    if scans:
        last, end = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
        data = data[:end] + data[last:end] * scans + data[end:]
    return bytes(data)


def hostile_files(folder: Path) -> list[Path]:
    """The hostile uploads, written to FOLDER (each a few bytes to a few MB; decoded naively, up to gigabytes)."""
    rng = np.random.default_rng(0)
    files = {
        "deep16_10000x10000.png": _flat_png(10_000, 10_000, 16, 0),
        "rgba16_8000x8000.png": _flat_png(8_000, 8_000, 16, 6),
        "palette_13000x13000.png": _flat_png(13_000, 13_000, 8, 3),
        "strip_1x30000.png": _encoded(Image.fromarray(rng.integers(0, 256, (30_000, 1, 3), dtype=np.uint8)), "PNG"),
        "strip_30000x2.jpg": _encoded(Image.fromarray(rng.integers(0, 256, (2, 30_000, 3), dtype=np.uint8)), "JPEG"),
        "rgba_3990x3990.png": _encoded(Image.new("RGBA", (3990, 3990), (20, 120, 200, 128)), "PNG", compress_level=1),
        "jpeg_8000x8000.jpg": _encoded(Image.new("RGB", (8000, 8000), (90, 60, 30)), "JPEG", quality=90),
        "progressive_claims_14142.jpg": _progressive_jpeg(64, claimed=14142),
        "cmyk_progressive_claims_9000.jpg": _progressive_jpeg(64, claimed=9000, mode="CMYK"),
        "jpeg_1010_scans.jpg": _progressive_jpeg(4000, scans=1000),
        "lossless_5000x5000.webp": _encoded(Image.new("RGB", (5000, 5000), (30, 60, 90)), "WEBP", lossless=True),
        "grey_1x20000000.png": _flat_png(1, 20_000_000, 8, 0),
        "zero_byte.jpg": b"",
        "truncated.jpg": _encoded(Image.new("RGB", (640, 480), (1, 2, 3)), "JPEG")[:300],
        "postscript.jpg": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in files]


# Payloads sent as they are over HTTP (a gradio_client would upload local files first).
RAW_PAYLOADS = [
    {"path": "/dev/zero"},
    {"path": "/etc/passwd"},
    {"path": str(REPO_ROOT / "examples" / "taj_mahal.jpg")},
    {"path": "http://169.254.169.254/latest/meta-data/", "meta": {"_type": "gradio.FileData"}},
    {"url": "data:image/png;base64," + "A" * 1000},
]


def raw_request(url: str, payload: dict) -> str:
    response = httpx.post(f"{url}gradio_api/call/predict", json={"data": [payload]}, timeout=REQUEST_TIMEOUT_S)
    if response.status_code == 400:  # refused before Gradio read anything (uploads.UploadsOnly)
        return "refused"
    event = response.json()["event_id"]
    stream = httpx.get(f"{url}gradio_api/call/predict/{event}", timeout=REQUEST_TIMEOUT_S).text
    if "event: complete" not in stream:
        raise RuntimeError(f"no answer for {payload}: {stream[-200:]}")
    label, _ = json.loads(stream.strip().splitlines()[-1].removeprefix("data: "))
    return "answered" if label else "refused"


def upload_request(client: Client, path: Path) -> str:
    label, markdown = client.submit(handle_file(str(path)), api_name="/predict").result(timeout=REQUEST_TIMEOUT_S)
    if not label and not markdown.startswith("### Cannot read this photo"):
        raise RuntimeError(f"neither an answer nor a refusal for {path.name}: {markdown[:120]}")
    return "answered" if label else "refused"


def run_client(url: str, photos: list[Path], hostile: list, rounds: int, offset: int) -> dict:
    """ROUNDS of (normal photo, hostile request), or of normal photos only without HOSTILE; returns latencies of both
    and the hostile outcomes."""
    normal, bad, outcomes, errors = [], [], {}, []
    client = Client(url, verbose=False)
    try:
        for i in range(rounds):
            requests = [("normal", photos[(offset + i) % len(photos)])]
            if hostile:
                requests.append(("hostile", hostile[(offset * rounds + i) % len(hostile)]))
            for kind, item in requests:
                start = time.perf_counter()
                try:
                    outcome = upload_request(client, item) if isinstance(item, Path) else raw_request(url, item)
                except Exception as error:  # noqa: BLE001 - every failure is counted and printed, the run goes on
                    errors.append(
                        f"{kind} {item if isinstance(item, dict) else item.name}: {type(error).__name__}: {error}"
                    )
                    continue
                elapsed = time.perf_counter() - start
                if kind == "normal":
                    normal.append(elapsed)
                    if outcome != "answered":
                        errors.append(f"normal photo {item.name} was refused")
                else:
                    bad.append(elapsed)
                    name = item.name if isinstance(item, Path) else json.dumps(item)[:60]
                    outcomes.setdefault(name, set()).add(outcome)
    finally:
        client.close()
    return {"normal": normal, "hostile": bad, "outcomes": outcomes, "errors": errors}


class RssSampler(threading.Thread):
    """Peak resident memory of a process and its children, sampled every 20 ms (reset() starts a new peak)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.process, self.peak, self.stop = psutil.Process(pid), 0, threading.Event()

    def rss(self) -> int:
        return sum(p.memory_info().rss for p in [self.process, *self.process.children(recursive=True)])

    def reset(self) -> int:
        self.peak = self.rss()
        return self.peak

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.rss())
            except psutil.Error:
                return
            time.sleep(0.02)


def solo(url: str, hostile: list, sampler: RssSampler) -> dict:
    """Each hostile request alone: seconds, outcome and peak RSS above the RSS just before it."""
    client, rows = Client(url, verbose=False), {}
    try:
        for item in hostile:
            name = item.name if isinstance(item, Path) else json.dumps(item)[:60]
            before = sampler.reset()
            start = time.perf_counter()
            try:
                outcome = upload_request(client, item) if isinstance(item, Path) else raw_request(url, item)
            except Exception as error:  # noqa: BLE001 - the row says what went wrong
                outcome = f"error: {type(error).__name__}: {str(error)[:80]}"
            seconds = time.perf_counter() - start
            time.sleep(0.1)
            rows[name] = {
                "seconds": round(seconds, 2),
                "outcome": outcome,
                "peak_above_mib": round((sampler.peak - before) / 2**20),
            }
    finally:
        client.close()
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", default=None, help="a running app to measure (default: start app.py here; memory needs --pid then)"
    )
    parser.add_argument("--pid", type=int, default=None, help="the app's process id when --url is given")
    parser.add_argument("--model", default=None, help="model spec for the started app (default: app.py's default)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent users")
    parser.add_argument("--rounds", type=int, default=10, help="(normal, hostile) request pairs per user")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--leave-out",
        nargs="*",
        default=[],
        metavar="NAME",
        help="hostile requests not to send, by file name or path (e.g. /dev/zero against a version that reads it forever)",
    )
    args = parser.parse_args(argv)
    photos = sorted((REPO_ROOT / "examples").glob("*.jpg"))

    with (
        tempfile.TemporaryDirectory() as tmp,
        serve_app(args.model) if args.url is None else nullcontext(args.url) as url,
    ):
        hostile = [
            h
            for h in [*hostile_files(Path(tmp)), *RAW_PAYLOADS]
            if (h.name if isinstance(h, Path) else h.get("path", h.get("url", ""))) not in args.leave_out
        ]
        pid = args.pid or next(c.pid for c in psutil.Process().children() if "app.py" in " ".join(c.cmdline()))
        warm = run_client(url, photos, [photos[0]], 2, 0)  # first requests pay for lazy initialisation
        time.sleep(1)
        sampler = RssSampler(pid)
        idle = sampler.rss()
        sampler.start()
        with ThreadPoolExecutor(args.clients) as pool:  # the clean run: the same users, normal photos only
            clean = list(pool.map(lambda i: run_client(url, photos, [], args.rounds, i), range(args.clients)))
        clean_peak = sampler.peak
        sampler.reset()
        alone = solo(url, hostile, sampler)
        sampler.reset()
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(lambda i: run_client(url, photos, hostile, args.rounds, i), range(args.clients)))
        wall = time.perf_counter() - start
        sampler.stop.set()
        sampler.join()
        alive = psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        after = run_client(url, photos, [photos[0]], 1, 0)
        rss_after = sampler.rss()

    normal = [t for r in results for t in r["normal"]]
    bad = [t for r in results for t in r["hostile"]]
    outcomes: dict[str, set] = {}
    for r in results:
        for name, seen in r["outcomes"].items():
            outcomes.setdefault(name, set()).update(seen)
    errors = warm["errors"] + after["errors"] + [e for r in results + clean for e in r["errors"]]
    clean_normal = percentiles([t for r in clean for t in r["normal"]])
    report = {
        "clients": args.clients,
        "rounds": args.rounds,
        "wall_s": round(wall, 1),
        "normal": {"count": len(normal), **{k: round(v, 3) for k, v in percentiles(normal).items()}},
        "clean": {"count": sum(len(r["normal"]) for r in clean), **{k: round(v, 3) for k, v in clean_normal.items()}},
        "normal_p95_over_clean": round(percentiles(normal)["p95"] / clean_normal["p95"], 2) if normal else None,
        "rss_clean_peak_mib": round(clean_peak / 2**20),
        "hostile": {"count": len(bad), **{k: round(v, 3) for k, v in percentiles(bad).items()}},
        "outcomes": {name: sorted(seen) for name, seen in sorted(outcomes.items())},
        "alone": alone,
        "rss_idle_mib": round(idle / 2**20),
        "rss_peak_mib": round(sampler.peak / 2**20),
        "rss_peak_above_idle_mib": round((sampler.peak - idle) / 2**20),
        "rss_after_mib": round(rss_after / 2**20),
        "errors": errors,
        "app_alive": alive,
        "answers_after": len(after["normal"]) == 1,
    }
    print(f"{args.clients} clients x {args.rounds} rounds (normal + hostile) in {wall:.1f} s")
    print(
        f"clean run (normal photos only): p50 {report['clean'].get('p50', float('nan')):.2f} s, "
        f"p95 {report['clean'].get('p95', float('nan')):.2f} s; under hostile load the normal p95 is "
        f"{report['normal_p95_over_clean']}x the clean one"
    )
    print(
        f"normal: {len(normal)} requests, p50 {report['normal'].get('p50', float('nan')):.2f} s, p95 {report['normal'].get('p95', float('nan')):.2f} s"
        f"; hostile: {len(bad)} requests, p95 {report['hostile'].get('p95', float('nan')):.2f} s"
    )
    print(
        f"app RSS: idle {report['rss_idle_mib']} MiB, peak {report['rss_peak_mib']} MiB (+{report['rss_peak_above_idle_mib']}), "
        f"after {report['rss_after_mib']} MiB; alive {alive}; answers afterwards {report['answers_after']}"
    )
    print(
        "| hostile request, alone | seconds | peak RSS above the RSS before it | outcome |\n| --- | ---: | ---: | --- |"
    )
    for name, row in alone.items():
        print(f"| `{name}` | {row['seconds']:.2f} | {row['peak_above_mib']} MiB | {row['outcome']} |")
    for name, seen in report["outcomes"].items():
        print(f"  under load, {name}: {', '.join(seen)}")
    print(f"errors: {len(errors)}" + "".join(f"\n  {e}" for e in errors[:10]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
