"""Teaching landmarks from photos (landmark_lib/gallery/): the store and its CLI, exact vs FAISS search, serving."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from landmark_lib.cli import main
from landmark_lib.gallery import store
from landmark_lib.gallery.search import ExactIndex, FaissIndex
from landmark_lib.runtime.photos import read_photo
from landmark_lib.serve.service import LandmarkService

from helpers import class_photo, cli_error, export_tiny_model, make_dataset, make_photo, time_limit


@pytest.fixture(scope="module")
def taught(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gallery with one landmark taught from three photos of it (the same scene at three sizes)."""
    tmp = tmp_path_factory.mktemp("gallery")
    photos = tmp / "tower"
    photos.mkdir()
    for i, size in enumerate([(120, 80), (150, 100), (96, 64)]):
        make_photo(120, 80, seed=7).resize(size).save(photos / f"{i}.jpg", quality=95)
    gallery = tmp / "gallery"
    args = ["gallery", "add", str(gallery), str(photos), "--name", "old_tower", "--display-name", "Old Tower"]
    place = ["--city", "Porto", "--country", "Portugal", "--lat", "41.1", "--lon", "-8.6", "--similarity", "0.9"]
    assert main([*args, *place, "--model", str(model_dir)]) == 0
    return gallery


@pytest.mark.slow
def test_add_list_remove_round_trip(taught: Path, model_dir: Path, tmp_path: Path, capsys) -> None:
    data = json.loads((taught / "gallery.json").read_text())
    (landmark,) = data["landmarks"]
    assert landmark["info"]["display_name"] == "Old Tower" and landmark["info"]["city"] == "Porto"
    assert [p["source"].rsplit("/", 1)[-1] for p in landmark["photos"]] == ["0.jpg", "1.jpg", "2.jpg"]
    assert all(len(p["sha256"]) == 64 for p in landmark["photos"])
    export = json.loads((model_dir / "export.json").read_text())
    assert data["model"]["sha256"] == export["files"]["model.pt"]["sha256"]
    embeddings = np.load(taught / data["embeddings"])
    assert embeddings.shape == (3, data["model"]["dim"]) and np.allclose(
        np.linalg.norm(embeddings, axis=1), 1, atol=1e-4
    )

    copy = tmp_path / "copy"
    store.save(_copy(taught, copy))
    assert (
        main(
            [
                "gallery",
                "add",
                str(copy),
                str(taught.parent / "tower" / "0.jpg"),
                "--name",
                "cafe",
                "--model",
                str(model_dir),
            ]
        )
        == 0
    )
    assert main(["gallery", "list", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "old_tower\tOld Tower\tPorto, Portugal\t3 photos" in out and "cafe\tCafe\t-\t1 photo\n" in out
    assert main(["gallery", "remove", str(copy), "old_tower"]) == 0
    left = store.load(copy)
    assert left.names == ["cafe"] and left.embeddings.shape[0] == 1
    assert sorted(p.name for p in copy.iterdir() if p.suffix == ".npy") == [
        json.loads((copy / "gallery.json").read_text())["embeddings"]
    ]
    assert "has no landmark 'old_tower'" in cli_error(capsys, "gallery", "remove", str(copy), "old_tower")
    assert "--replace" in cli_error(
        capsys, "gallery", "add", str(copy), str(taught.parent / "tower"), "--name", "cafe", "--model", str(model_dir)
    )


def _copy(src: Path, dst: Path) -> store.Gallery:
    gallery = store.load(src)
    gallery.folder = dst
    return gallery


def test_a_gallery_made_with_another_model_is_refused(taught: Path, tmp_path: Path, capsys) -> None:
    other = export_tiny_model(tmp_path / "other", bias_class=1)
    error = cli_error(
        capsys, "gallery", "add", str(taught), str(taught.parent / "tower"), "--name", "x", "--model", str(other)
    )
    assert "was made with another model" in error and "landmark gallery add" in error
    with pytest.raises(store.GalleryError, match="another model"):
        LandmarkService(other / "model.pt", num_threads=1, gallery=taught)


def _spoil_record(key: str, value):
    def spoil(data: dict, folder: Path) -> dict:
        return {**data, key: value}

    return spoil


def _spoil_info(key: str, value):
    def spoil(data: dict, folder: Path) -> dict:
        data["landmarks"][0]["info"][key] = value
        return data

    return spoil


def _spoil_rows(change):
    def spoil(data: dict, folder: Path) -> dict:
        rows = np.load(folder / data["embeddings"])
        change(rows)
        np.save(folder / data["embeddings"], rows)
        return data

    return spoil


def _fifo_embeddings(data: dict, folder: Path) -> dict:
    (folder / data["embeddings"]).unlink()
    os.mkfifo(folder / data["embeddings"])
    return data


def _outside_embeddings(data: dict, folder: Path) -> dict:
    outside = folder.parent / f"{folder.name}-outside.npy"
    (folder / data["embeddings"]).rename(outside)
    (folder / data["embeddings"]).symlink_to(outside)
    return data


def _npz_embeddings(data: dict, folder: Path) -> dict:
    np.savez(folder / "embeddings-abc.npz", np.load(folder / data["embeddings"]))
    return {**data, "embeddings": "embeddings-abc.npz"}


SPOILED = {  # what each did before: silently wrong answers, a 500 from /v1/tag, a traceback or a hang
    "similarity 1.0": (_spoil_record("similarity", 1.0), '"similarity" of 1.0'),
    "similarity NaN": (_spoil_record("similarity", float("nan")), '"similarity" of nan'),
    "similarity -5": (_spoil_record("similarity", -5), '"similarity" of -5'),
    "softness 0": (_spoil_record("softness", 0), '"softness" of 0'),
    "softness -1": (_spoil_record("softness", -1), '"softness" of -1'),
    "lat north": (_spoil_info("lat", "north"), "\"lat\" of 'old_tower' must be a number of degrees"),
    "display name 7": (_spoil_info("display_name", 7), "\"display_name\" of 'old_tower' must be text"),
    "photos 5": (_spoil_record("landmarks", [{"info": {"name": "a"}, "photos": 5}]), "not {info, photos"),
    "landmarks null": (_spoil_record("landmarks", None), '"landmarks" that are not a list'),
    "list": (lambda data, folder: [], "not a gallery record (a JSON object), it holds list"),
    "null": (lambda data, folder: None, "it holds NoneType"),
    "embeddings elsewhere": (_spoil_record("embeddings", "../elsewhere.npy"), "not a file embeddings-<hex>.npy"),
    "embeddings npz": (_npz_embeddings, "not a file embeddings-<hex>.npy"),
    "embeddings link": (_outside_embeddings, "not a regular file"),
    "embeddings FIFO": (_fifo_embeddings, "not a regular file"),
    "NaN embedding": (_spoil_rows(lambda rows: rows.__setitem__((0, 0), np.nan)), "not finite unit vectors"),
    "zero embedding": (_spoil_rows(lambda rows: rows.__setitem__(1, 0.0)), "not finite unit vectors"),
    "inf embedding": (_spoil_rows(lambda rows: rows.__setitem__((2, 1), np.inf)), "not finite unit vectors"),
}


@pytest.mark.parametrize("case", SPOILED)
def test_a_gallery_with_bad_values_is_one_sentence(taught: Path, model_dir: Path, tmp_path: Path, case: str) -> None:
    spoil, message = SPOILED[case]
    folder = tmp_path / "spoiled"
    shutil.copytree(taught, folder)
    data = json.loads((folder / "gallery.json").read_text())
    (folder / "gallery.json").write_text(json.dumps(spoil(data, folder)))
    with time_limit(10), pytest.raises(store.GalleryError) as error:
        LandmarkService(model_dir / "model.pt", num_threads=1, gallery=folder)
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_a_gallery_landmark_named_like_a_model_class_is_refused(taught: Path, model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "clash"
    shutil.copytree(taught, folder)
    data = json.loads((folder / "gallery.json").read_text())
    data["landmarks"][0]["info"]["name"] = "colosseum"
    (folder / "gallery.json").write_text(json.dumps(data))
    with pytest.raises(store.GalleryError, match="'colosseum', already a class of the model"):
        LandmarkService(model_dir / "model.pt", num_threads=1, gallery=folder)


def test_exact_and_faiss_search_give_the_same_top_k() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(3000, 20)] + 0.1 * rng.normal(size=(20, 64)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact_scores, exact_rows = ExactIndex(vectors).search(queries, 10)
    for faiss_index in (FaissIndex(vectors), FaissIndex(vectors, nlist=16, nprobe=16)):  # flat; IVF scanning every list
        scores, rows = faiss_index.search(queries, 10)
        assert (rows == exact_rows).all() and np.allclose(scores, exact_scores, atol=1e-5)


def test_serving_recognises_a_taught_landmark_and_rejects_an_unrelated_photo(taught: Path, model_dir: Path) -> None:
    service = LandmarkService(model_dir / "model.pt", num_threads=1, gallery=taught)
    plain = LandmarkService(model_dir / "model.pt", num_threads=1)
    seen, unrelated = service.predict_photos(
        [
            read_photo(make_photo(120, 80, seed=7).resize((140, 93))),
            read_photo(class_photo(4, np.random.default_rng(1))),
        ]
    )
    assert seen.recognised and seen.best.name == "old_tower" and seen.landmark.city == "Porto"
    assert seen.landmark.lat == pytest.approx(41.1) and seen.best.display_name == "Old Tower"
    assert unrelated.best.name != "old_tower" or not unrelated.recognised
    before = plain.predict_photos([read_photo(class_photo(4, np.random.default_rng(1)))])[0]
    assert unrelated.best.name == before.best.name and unrelated.recognised == before.recognised
    assert "old_tower" in [g.name for g in unrelated.top] or len(unrelated.top) == 5


@pytest.mark.slow
def test_evaluate_protocol_on_a_tiny_holdout_run(tmp_path: Path, capsys) -> None:
    """A run trained without 'c_gate' (--holdout-classes), exported; the protocol enrolls its train photos."""
    from landmark_lib.labels import ClassInfo
    from landmark_lib.preprocess import PreprocessConfig

    data = make_dataset(
        tmp_path / "data", ["a_tower", "b_bridge", "c_gate", "no_landmark"], train_per_class=8, test_per_class=3
    )
    classes = [
        ClassInfo("a_tower", "A Tower"),
        ClassInfo("b_bridge", "B Bridge"),
        ClassInfo("no_landmark", "No landmark"),
    ]
    args = {
        "data": [str(data)],
        "holdout_classes": ["c_gate"],
        "cache_dir": str(tmp_path / "cache"),
        "seed": 0,
        "valid_fraction": 0.25,
    }
    export_tiny_model(
        tmp_path / "export",
        export_info={"train_args": args, "num_classes": 3, "preprocess": PreprocessConfig(64).to_dict()},
        classes=classes,
    )
    out = tmp_path / "eval"
    assert (
        main(
            [
                "gallery",
                "evaluate",
                str(tmp_path / "export"),
                "--shots",
                "1",
                "5",
                "--out",
                str(out),
                "--max-false-accept",
                "0.2",
            ]
        )
        == 0
    )
    result = json.loads((out / "results.json").read_text())
    assert sorted(result["shots"]) == ["1", "5"] and (out / "top1_vs_n.png").stat().st_size > 1000
    row = result["shots"]["5"]
    assert (row["heldout_photos"], row["known_photos"], row["no_landmark_photos"]) == (3, 6, 3)
    assert 0 < row["similarity_rule"] < 1 and 0 <= row["heldout_top1"] <= 1
    assert row["heldout_top1"] > 0  # before enrolling, c_gate could never be an answer
    assert "| 5 |" in capsys.readouterr().out


class _NoDeletion:
    def __init__(self) -> None:
        self.scheduled: list[str] = []

    def schedule(self, path: str, delay: float) -> None:
        self.scheduled.append(path)


def test_teach_tab_keeps_a_taught_landmark_in_the_visitors_session_only(
    service: LandmarkService, tmp_path: Path
) -> None:
    from landmark_lib.serve.web_teach import session_ranker, teach

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    paths = []
    for i, size in enumerate([(120, 80), (150, 100), (96, 64)]):
        paths.append(str(uploads / f"{i}.jpg"))
        make_photo(120, 80, seed=7).resize(size).save(paths[-1], quality=95)
    trial = str(uploads / "trial.jpg")
    make_photo(120, 80, seed=7).resize((140, 93)).save(trial, quality=95)
    deletion, limits = _NoDeletion(), (10**7, 60.0)
    state, message = teach(service, None, "Old Tower", paths, str(uploads), limits, deletion)
    assert "Taught 'Old Tower' from 3 photos" in message and deletion.scheduled == paths
    assert "agree with each other at cosine similarity" in message and "Recognise" in message
    state["gallery"].similarity = 0.9
    seen = service.predict_photos([read_photo(trial)], gallery=session_ranker(service, state))[0]
    assert (seen.recognised, seen.best.display_name) == (True, "Old Tower")
    other = service.predict_photos([read_photo(trial)], gallery=session_ranker(service, None))[0]  # another visitor
    assert other.best.display_name != "Old Tower"
    outside = tmp_path / "secret.jpg"
    make_photo().save(outside)
    assert "Cannot read" in teach(service, state, "X", [str(outside)], str(uploads), limits, deletion)[1]
    deletion.scheduled.clear()  # a refused photo first: the uploads after it are never read, but still deleted
    assert "Cannot read" in teach(service, state, "X", [str(outside), *paths], str(uploads), limits, deletion)[1]
    assert deletion.scheduled == [str(outside), *paths]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".jpg") == []  # nothing written


def test_a_served_gallery_is_listed_wherever_the_known_landmarks_are(taught: Path, model_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from landmark_lib.serve.page import landmark_table
    from landmark_lib.serve.rest import build_api

    service = LandmarkService(model_dir / "model.pt", num_threads=1, gallery=taught)
    client = TestClient(build_api(service))
    listed = client.get("/v1/landmarks").json()
    assert [(item["name"], item["source"]) for item in listed][-1] == ("old_tower", "gallery")
    assert {item["source"] for item in listed[:-1]} == {"model"} and listed[-1]["place"]["city"] == "Porto"
    health = client.get("/v1/health").json()
    assert health["landmarks"] == health["model_landmarks"] + 1 and health["gallery"] == {"landmarks": ["old_tower"]}
    table = landmark_table(service.classes, service.gallery_classes)
    assert "| Old Tower (gallery) | Porto" in table and "1 of them from its gallery" in table
    assert "+ 1 from the gallery" in service.startup_line() and "(Old Tower)" in service.startup_line()
