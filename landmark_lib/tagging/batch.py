"""Files into rows, one batch at a time: decode each file (or say why it cannot be), run the photos through the model
in one call, build the rows. Both engines (the local loop in tag.py and the Ray UDF in tag_ray.py) call this."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from ..data.images import ImageLoadError
from ..runtime.photos import Photo, read_photo
from ..serve.service import LandmarkService, Prediction
from .photo_walk import Found, display
from .rows import row

Decoded = tuple[Found, Photo | str]  # a file and its decoded photo, or why it cannot be tagged


def decode(service: LandmarkService, path: Path, data: bytes | None = None) -> Photo | str:
    """The decoded photo (from PATH, or from its bytes DATA already read), or why it cannot be tagged: one odd file
    (even one that breaks the decoder) never stops a run."""
    try:
        return read_photo(
            path if data is None else data, name=display(path.name), min_short_side=service.max_short_side
        )
    except ImageLoadError as error:
        return display(str(error).replace(str(path), path.name))
    except Exception as error:  # noqa: BLE001 - a decoder bug on one file must not lose the tags of all the others
        return f"{display(path.name)} could not be decoded ({type(error).__name__}: {display(str(error))})."


def predict(service: LandmarkService, batch: list[Photo]) -> list[Prediction | str]:
    """Predictions for BATCH; if the batch call fails, one photo at a time, so only the photo at fault gets an error."""
    try:
        return list(service.predict_photos(batch))
    except Exception:  # noqa: BLE001 - find which photo it was below
        if len(batch) == 1:
            return ["the model failed on this photo; tag it on its own to see the error."]
        return [answer for photo in batch for answer in predict(service, [photo])]


def tag_batch(service: LandmarkService, folder: Path, batch: list[Decoded]) -> list[dict]:
    """The rows of BATCH in order: the photos go through the model in one call, the others get their reason."""
    photos = [photo for _, photo in batch if not isinstance(photo, str)]
    answers = iter(predict(service, photos))
    rows = []
    for found, photo in batch:
        answer = photo if isinstance(photo, str) else next(answers)
        name = display(found.path.relative_to(folder))
        if isinstance(answer, str):
            rows.append(row(name, found.size, found.mtime_ns, error=answer))
            tqdm.write(f"skipped {name}: {answer}")
        else:
            rows.append(row(name, found.size, found.mtime_ns, answer))
    return rows
