"""`landmark gallery evaluate EXPORT`: how well a model trained with --holdout-classes learns its held-out landmarks
from n photos each, without retraining, and what that costs the classes it knows.

For each n the first n train photos of every held-out landmark (a fixed shuffle, so smaller n are subsets of larger
ones) are enrolled; the similarity rule is chosen on the run's validation photos (none of them shows a held-out
landmark: a rule that lets gallery landmarks claim at most --max-false-accept of them), never on test photos. Then
the test split is answered by the same ranking the server uses (gallery/ranking.py).
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import atomic, bundle
from ..artifacts import export_info
from ..artifacts.train_config import TrainConfig
from ..data.cache import build_cache
from ..data.classes import load_class_info
from ..data.folder import DatasetError, open_split
from ..data.holdout import kept_classes, without_holdout
from ..data.run_split import run_split
from ..gallery.enroll import decode, embedding_model, run_model
from ..gallery.ranking import GalleryRanker
from ..gallery.search import landmark_scores
from ..gallery.store import new_gallery
from ..labels import BACKGROUND_CLASS
from ..serve.service import LandmarkService


def protocol_photos(train: TrainConfig, resize_size: int, limit_valid: int = 600) -> dict[str, list[tuple[Path, str]]]:
    """(file, class) lists: 'pool' (held-out train photos, shuffled), 'valid' (the run's validation rows, spread),
    'test' (the whole test split)."""
    holdout = train.holdout_classes
    if not holdout:
        raise DatasetError("the export's run was not trained with --holdout-classes; train one (reports/gallery.md).")
    if not train.data:
        raise DatasetError("the export records no training data folder (its run's --data); export its run again.")
    split = open_split(train.data, "train")
    pool = [(p, split.class_names[t]) for p, t in split.samples if split.class_names[t] in set(holdout)]
    random.Random(0).shuffle(pool)
    pool.sort(key=lambda item: item[1])  # stable: per class, the shuffled order
    cached = without_holdout(build_cache(split, resize_size, train.cache_dir), split.class_names, holdout)
    kept = replace(split, class_names=kept_classes(split.class_names, holdout))
    _, valid_rows = run_split(kept, cached, train)
    valid_rows = np.sort(valid_rows)[np.linspace(0, len(valid_rows) - 1, min(limit_valid, len(valid_rows))).astype(int)]
    valid = [(Path(cached.files[r]), kept.class_names[cached.targets[r]]) for r in valid_rows]
    test = open_split(train.data, "test", class_names=split.class_names)
    return {"pool": pool, "valid": valid, "test": [(p, test.class_names[t]) for p, t in test.samples]}


def embed_all(service, model, photos: dict, out: Path) -> dict[str, dict]:
    """Each part's probabilities and embeddings (kept in OUT/embeddings-<model>.npz: a rerun reads them)."""
    cache = out / f"embeddings-{model.sha256[:12]}.npz"  # another export's must not be reused
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return {k: {"probs": data[f"{k}_probs"], "emb": data[f"{k}_emb"]} for k in photos}
    result: dict[str, dict[str, np.ndarray]] = {}
    arrays: dict[str, np.ndarray] = {}
    for part, items in photos.items():
        chunks = [
            run_model(service.model, [decode(service, p) for p, _ in items[i : i + 64]])
            for i in tqdm(range(0, len(items), 64), desc=f"embedding {part} photos", unit="batch of 64")
        ]
        result[part] = {"probs": np.concatenate([c[0] for c in chunks]), "emb": np.concatenate([c[1] for c in chunks])}
        arrays[f"{part}_probs"], arrays[f"{part}_emb"] = result[part]["probs"], result[part]["emb"]
    with atomic.atomic_path(cache) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, allow_pickle=False, **arrays)
    return result


def first_per_class(items: list[tuple[Path, str]], n: int) -> list[tuple[Path, str]]:
    """The first N items of every class, in order."""
    taken: Counter = Counter()
    out = []
    for path, name in items:
        if taken[name] < n:
            out.append((path, name))
            taken[name] += 1
    return out


def enrolled_gallery(pool: list[tuple[Path, str]], pool_emb: np.ndarray, n: int, model, classes: dict):
    """The gallery of the first N pool photos of every held-out landmark (CLASSES: name -> ClassInfo)."""
    gallery = new_gallery(Path("."), model)
    for name in sorted({c for _, c in pool}):
        rows = [i for i, (_, c) in enumerate(pool) if c == name][:n]
        gallery.add(classes[name], [{"source": str(pool[i][0]), "sha256": ""} for i in rows], pool_emb[rows])
    return gallery


def choose_similarity(ranker: GalleryRanker, valid_emb: np.ndarray, max_false_accept: float) -> float:
    """The smallest cosine that at most MAX_FALSE_ACCEPT of the validation photos (none shows a gallery landmark)
    reach for any gallery landmark."""
    best = landmark_scores(ranker.index, ranker.rows, valid_emb, len(ranker.classes)).max(axis=1)
    return float(np.clip(np.quantile(best, 1.0 - max_false_accept) + 1e-6, 0.01, 0.999))


def answers(service: LandmarkService, part: dict, ranker: GalleryRanker | None) -> tuple[np.ndarray, np.ndarray]:
    """(best answer's name, recognised) per photo, decided as the server decides (LandmarkService.rank): the model
    alone, or with RANKER's landmarks; with a photo index, recognised = the recognition score reaches the confident
    operating point."""
    ranking = service.rank(part["probs"], part["emb"], ranker)
    return ranking.best_names(), ranking.scores >= service.points.confident


SOFTNESS = (0.1, 0.05, 0.03, 0.02, 0.01, 0.005)  # tried most generous first (gallery/ranking.py)
MAX_KNOWN_DROP = 0.005  # validation known-class top-1 the gallery may cost


def choose_softness(service, ranker: GalleryRanker, valid: dict, labels: np.ndarray) -> float:
    """The most generous softness whose known-class validation top-1 drops by at most MAX_KNOWN_DROP."""
    known = labels != BACKGROUND_CLASS
    before = (answers(service, valid, None)[0] == labels)[known].mean()
    for softness in SOFTNESS:
        ranker.gallery.softness = softness
        after = (answers(service, valid, ranker)[0] == labels)[known].mean()
        if before - after <= MAX_KNOWN_DROP:
            return softness
    return SOFTNESS[-1]


def shot_metrics(service, data: dict, labels: dict, holdout: set, gallery, max_false_accept: float) -> dict:
    """One row of the table: held-out top-1, known-class top-1 and no-landmark false accepts, with the gallery.
    LABELS: each part's true classes ('valid' chooses the rule and softness, 'test' is reported)."""
    ranker = GalleryRanker(gallery, service.threshold, "exact")
    gallery.similarity = choose_similarity(ranker, data["valid"]["emb"], max_false_accept)
    gallery.softness = choose_softness(service, ranker, data["valid"], labels["valid"])
    test_labels: np.ndarray = labels["test"]
    held, known = np.isin(test_labels, list(holdout)), ~np.isin(test_labels, [*holdout, BACKGROUND_CLASS])
    none = test_labels == BACKGROUND_CLASS
    best, recognised = answers(service, data["test"], ranker)
    return {
        "similarity_rule": gallery.similarity,
        "softness": gallery.softness,
        "heldout_top1": float((best[held] == test_labels[held]).mean()),
        "heldout_recognised_and_right": float(((best == test_labels) & recognised)[held].mean()),
        "known_top1": float((best[known] == test_labels[known]).mean()),
        "no_landmark_false_accept": float(recognised[none].mean()),
        "heldout_photos": int(held.sum()),
        "known_photos": int(known.sum()),
        "no_landmark_photos": int(none.sum()),
    }


def spread_known(test: list[tuple[Path, str]], holdout: set, limit: int | None) -> list[tuple[Path, str]]:
    """TEST with at most LIMIT known-class photos, evenly spread over the (class-sorted) list; the held-out and
    no-landmark photos all stay."""
    known = [i for i, (_, c) in enumerate(test) if c not in holdout and c != BACKGROUND_CLASS]
    if limit is None or limit >= len(known):
        return test
    dropped = set(known) - set(np.array(known)[np.linspace(0, len(known) - 1, limit).round().astype(int)].tolist())
    return [item for i, item in enumerate(test) if i not in dropped]


def run_study(
    export: Path,
    shots: list[int],
    out: Path,
    max_false_accept: float,
    backend: str = "auto",
    known_photos: int | None = None,
) -> dict:
    """results.json's content: the model alone, then one row per n."""
    service = LandmarkService(export / bundle.MODEL_FILE, backend=backend)
    train = export_info.read(export).report.train_config() or TrainConfig()
    photos = protocol_photos(train, int(service.model.preprocess.resize_size))
    photos["pool"] = first_per_class(photos["pool"], max(shots))  # only what some n enrolls is embedded
    holdout = set(train.holdout_classes or [])
    photos["test"] = spread_known(photos["test"], holdout, known_photos)
    out.mkdir(parents=True, exist_ok=True)
    model = embedding_model(service)
    data = embed_all(service, model, photos, out)
    labels = np.array([c for _, c in photos["test"]])
    classes = {c.name: c for c in load_class_info(train.data or [], sorted(holdout))}
    best, recognised = answers(service, data["test"], None)
    known, none = ~np.isin(labels, [*holdout, BACKGROUND_CLASS]), labels == BACKGROUND_CLASS
    result: dict = {
        "export": str(export),
        "backend": service.backend,
        "threshold": service.points.confident,
        "score": service.points.score,
        "max_false_accept": max_false_accept,
        "before": {
            "known_top1": float((best[known] == labels[known]).mean()),
            "no_landmark_false_accept": float(recognised[none].mean()),
        },
        "shots": {},
    }
    for n in shots:
        gallery = enrolled_gallery(photos["pool"], data["pool"]["emb"], n, model, classes)
        parts = {"valid": np.array([c for _, c in photos["valid"]]), "test": labels}
        result["shots"][n] = shot_metrics(service, data, parts, holdout, gallery, max_false_accept)
    atomic.write_text(out / "results.json", json.dumps(result, indent=2))
    return result


def chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shots = sorted(result["shots"], key=int)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([int(n) for n in shots], [100 * result["shots"][n]["heldout_top1"] for n in shots], "o-", label="top-1")
    ax.plot(
        [int(n) for n in shots],
        [100 * result["shots"][n]["heldout_recognised_and_right"] for n in shots],
        "s--",
        label="recognised and right",
    )
    ax.axhline(90, color="grey", lw=0.8, ls=":")
    ax.set(xscale="log", xlabel="photos enrolled per landmark (n)", ylabel="% of held-out test photos", ylim=(0, 100))
    ax.set_xticks([int(n) for n in shots], [str(n) for n in shots])
    ax.legend(loc="lower right")
    ax.set_title("22 held-out landmarks taught without retraining", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(result: dict) -> list[str]:
    before = result["before"]
    lines = [
        "| n | similarity rule (softness) | held-out top-1 | recognised and right | known-class top-1 (before {:.2%}) | no-landmark false accepts (before {:.2%}) |".format(
            before["known_top1"], before["no_landmark_false_accept"]
        ),
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, row in sorted(result["shots"].items(), key=lambda item: int(item[0])):
        lines.append(
            f"| {n} | {row['similarity_rule']:.3f} ({row['softness']}) | {row['heldout_top1']:.2%} | {row['heldout_recognised_and_right']:.2%} | "
            f"{row['known_top1']:.2%} | {row['no_landmark_false_accept']:.2%} |"
        )
    return lines


def run(args: argparse.Namespace) -> None:
    result = run_study(args.export, args.shots, args.out, args.max_false_accept, args.backend, args.known_photos)
    chart(result, args.out / "top1_vs_n.png")
    print("\n".join(table(result)))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'top1_vs_n.png'}")
