import json

from landmark_lib.compare import plot, summarise
from landmark_lib.data.folder import ClassInfo
from landmark_lib.models import ModelSpec
from landmark_lib.preprocess import PreprocessConfig
from landmark_lib.run import RunConfig


def make_run(folder, model, args, top1, epoch_seconds):
    RunConfig(ModelSpec(model), [ClassInfo("a", "A")], PreprocessConfig(), args=args).save(folder)
    (folder / "metrics.csv").write_text("epoch,epoch_seconds\n" + "".join(f"{i + 1},{s}\n" for i, s in enumerate(epoch_seconds)))
    (folder / "eval-test").mkdir()
    (folder / "eval-test" / "metrics.json").write_text(json.dumps({"top1": top1, "top5": 0.99, "macro_f1": 0.9}))


def test_rows_carry_test_metrics_strategy_and_training_time(tmp_path):
    make_run(tmp_path / "s", "scratch", {}, 0.86, [60, 60])
    make_run(tmp_path / "p", "timm:tf_efficientnet_lite0", {"strategy": "partial", "train_stages": 1}, 0.97, [30, 30, 30])
    scratch, partial = summarise(tmp_path / "s"), summarise(tmp_path / "p")
    assert (scratch["strategy"], scratch["top1"], scratch["epochs"], scratch["train_minutes"]) == ("from scratch", 0.86, 2, 2.0)
    assert partial["strategy"] == "partial (last 1 stage)" and partial["train_minutes"] == 1.5
    plot([scratch, partial], tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"
