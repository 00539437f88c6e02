"""Fetch the canonical 50-class course dataset (resumable), check it is whole, then extract it.

The zip is large and links drop, so the transfer goes to DEST/<name>.zip.part and a rerun (or an automatic
retry) continues it with an HTTP Range request. Only a zip that passes `testzip` and has the expected
number of classes and images is extracted, so a truncated or wrong archive never looks like a dataset.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from tqdm import tqdm

from ..errors import LandmarkError, disk_errors
from .folder import IMAGE_EXTENSIONS

DEFAULT_URL = "https://udacity-dlnfd.s3-us-west-1.amazonaws.com/datasets/landmark_images.zip"
DATASET_DIR = "landmark_images"
CHUNK = 1 << 20


class DownloadError(LandmarkError, RuntimeError):
    """The dataset could not be fetched, verified or extracted; the message says why and what to do."""


@dataclass(frozen=True)
class ExpectedCounts:
    """What a complete archive holds under landmark_images/{train,test}/<class>/ (the course set by default)."""

    classes: int = 50
    train: int = 4996
    test: int = 1250


def _unreachable(url: str, reason: object) -> DownloadError:
    return DownloadError(
        f"Cannot reach {url} ({reason}). To use a local copy instead: get landmark_images.zip on a machine with "
        "internet access, unzip it anywhere and pass --data PATH/landmark_images to `landmark train`, "
        "or rerun this command with --url pointing to the zip file (local path) or to a mirror."
    )


def _local_path(url: str) -> Path | None:
    """A plain path or file:// URL names a local zip: no transfer needed."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if not parsed.scheme or len(parsed.scheme) == 1:  # relative or absolute path, or a Windows drive (C:\\...)
        return Path(url)
    return None


def _open(url: str, start: int, timeout: float):
    """Open the URL from byte `start`; connection problems become the one 'cannot reach' DownloadError."""
    request = urllib.request.Request(url, headers={"User-Agent": "landmark-tagger"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:  # nothing left after `start`: the .part is already whole
            return None
        raise DownloadError(
            f"{url} answered HTTP {error.code} {error.reason}; check the URL or use a mirror with --url."
        ) from None
    except (OSError, ValueError) as error:  # URLError, refused, DNS failure, timeout, malformed URL
        raise _unreachable(url, getattr(error, "reason", error)) from None


def _transfer_once(url: str, part: Path, timeout: float, progress: bool) -> bool:
    """Append what the server sends to `part`; True when the file is complete."""
    start = part.stat().st_size if part.exists() else 0
    response = _open(url, start, timeout)
    if response is None:
        return True
    with response:
        if (
            start
            and response.status == 206
            and not response.headers.get("Content-Range", "").startswith(f"bytes {start}-")
        ):
            part.unlink()  # a different range than asked for: retry from scratch
            return False
        if start and response.status != 206:  # server ignored the Range and sends everything: start over
            start = 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        received = start
        with (
            open(part, "ab" if start else "wb") as out,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
            ) as bar,
        ):
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (
                OSError,
                ValueError,
                http.client.HTTPException,
            ):  # reset, timeout, IncompleteRead: keep what we have
                pass
    return total is None or received >= total


def fetch(url: str, dest: Path, timeout: float = 10.0, attempts: int = 5, progress: bool = True) -> Path:
    """Download `url` to `dest` via `dest.part`, resuming an earlier partial file and retrying dropped transfers."""
    part = dest.with_name(dest.name + ".part")
    for _ in range(max(1, attempts)):
        if _transfer_once(url, part, timeout, progress):
            part.replace(dest)
            return dest
    size = part.stat().st_size if part.exists() else 0
    raise DownloadError(
        f"The transfer from {url} kept breaking off ({size} bytes so far in {part}); rerun the command to resume it."
    )


def count_archive(path: Path) -> tuple[int, int, int]:
    """(classes, train images, test images) under landmark_images/ in the zip; raises DownloadError if it is corrupt."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise DownloadError(f"{path} is not a readable zip archive ({error}); delete it and download again.") from None
    if bad is not None:
        raise DownloadError(f"{path} is corrupt ({bad} fails its CRC check); delete it and download again.")
    classes: set[str] = set()
    counts = {"train": 0, "test": 0}
    for name in names:
        parts = name.split("/")
        if (
            len(parts) == 4
            and parts[0] == DATASET_DIR
            and parts[1] in counts
            and parts[2]
            and not parts[3].startswith(".")
            and Path(parts[3]).suffix.lower() in IMAGE_EXTENSIONS
        ):
            counts[parts[1]] += 1
            if parts[1] == "train":
                classes.add(parts[2])
    return len(classes), counts["train"], counts["test"]


def verify_archive(path: Path, expected: ExpectedCounts) -> None:
    """Refuse an archive that is corrupt or does not hold the expected classes and images."""
    found = count_archive(path)
    wanted = (expected.classes, expected.train, expected.test)
    if found != wanted:
        raise DownloadError(
            f"{path} holds {found[0]} classes, {found[1]} train and {found[2]} test images under {DATASET_DIR}/, "
            f"expected {wanted[0]}, {wanted[1]} and {wanted[2]}; it is not the complete course dataset "
            "(delete it and download again, or check the --url mirror)."
        )


def extract(path: Path, dest: Path) -> Path:
    """Unzip into a temporary folder and rename it into place, so an interrupted unzip leaves no half dataset."""
    tmp = dest / f".{DATASET_DIR}.extracting"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(path) as archive:
            archive.extractall(tmp)  # zipfile drops absolute paths and '..' components
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DownloadError(f"Could not extract {path} into {dest} ({error}); check free disk space.") from None
    target = dest / DATASET_DIR
    (tmp / DATASET_DIR).rename(target)
    shutil.rmtree(tmp, ignore_errors=True)
    return target


def download_dataset(
    dest: str | Path,
    url: str = DEFAULT_URL,
    expected: ExpectedCounts = ExpectedCounts(),
    timeout: float = 10.0,
    keep_zip: bool = False,
    progress: bool = True,
) -> Path:
    """Fetch (or take a local) zip, verify it and extract it; returns DEST/landmark_images."""
    dest = Path(dest).expanduser()
    target = dest / DATASET_DIR
    if target.exists():
        raise DownloadError(f"{target} already exists; use it with --data {target}, or delete it to download again.")
    local = _local_path(url)
    if local is not None and not local.is_file():
        raise DownloadError(f"{local} is not a file; pass --url with the path of landmark_images.zip or a URL.")
    dest.mkdir(parents=True, exist_ok=True)
    if local is not None:
        archive = local
    else:
        archive = dest / (Path(urlparse(url).path).name or f"{DATASET_DIR}.zip")
        if not archive.is_file():
            fetch(url, archive, timeout=timeout, progress=progress)
    verify_archive(archive, expected)
    target = extract(archive, dest)
    if local is None and not keep_zip:
        archive.unlink()
    return target


def run(args: argparse.Namespace) -> None:
    """`landmark data download`."""
    with disk_errors():
        target = download_dataset(args.dest, url=args.url, timeout=args.timeout, keep_zip=args.keep_zip)
    print(f"Dataset ready: {target} (train with --data {target})")
