import json

from landmark_lib.labels import ClassInfo
from landmark_lib.models import ModelSpec
from landmark_lib.research.compare import chart_bottom, markdown, plot, single_photo_latency, summarise

from helpers import make_run

SMALL = {"width": 0.25, "depth": 1}


def evaluated_run(folder, model, args, top1, epoch_seconds, options=None, input_size=224):
    """A run's config (no weights: comparing reads only) with its metrics.csv and eval-test/metrics.json."""
    make_run(
        folder,
        ModelSpec(model, options or {}),
        [ClassInfo("a", "A"), ClassInfo("b", "B")],
        input_size,
        args,
        weights=False,
    )
    (folder / "metrics.csv").write_text(
        "epoch,epoch_seconds\n" + "".join(f"{i + 1},{s}\n" for i, s in enumerate(epoch_seconds))
    )
    (folder / "eval-test").mkdir()
    (folder / "eval-test" / "metrics.json").write_text(json.dumps({"top1": top1, "top5": 0.99, "macro_f1": 0.9}))
    return folder


def test_rows_carry_test_metrics_strategy_time_and_parameters(tmp_path):
    evaluated_run(tmp_path / "s", "scratch", {}, 0.86, [60, 60], SMALL, 64)
    evaluated_run(
        tmp_path / "p", "timm:tf_efficientnet_lite0", {"strategy": "partial", "train_stages": 1}, 0.97, [30, 30, 30]
    )
    evaluated_run(tmp_path / "l", "timm:tf_efficientnet_lite0", {"strategy": "linear"}, 0.94, [6])
    (tmp_path / "p" / "feature_cache.json").write_text(json.dumps({"seconds": 1200.0}))
    scratch, partial, linear = (summarise(tmp_path / name) for name in "spl")
    assert (scratch["strategy"], scratch["top1"], scratch["epochs"], scratch["train_minutes"]) == (
        "from scratch",
        0.86,
        2,
        2.0,
    )
    assert (
        partial["strategy"] == "partial (last 1 stage)"
        and partial["train_minutes"] == 1.5
        and partial["feature_minutes"] == 20.0
    )
    assert scratch["trained_params"] == scratch["total_params"] and scratch["feature_minutes"] is None
    # Lite0 with a 2-class head: the probe trains only the classifier (1280 * 2 + 2), partial far more, both of ~3.4 M
    assert (
        linear["trained_params"] == 1280 * 2 + 2 and 3.3e6 < linear["total_params"] == partial["total_params"] < 3.5e6
    )
    assert linear["trained_params"] < 1e6 < partial["trained_params"] < partial["total_params"]
    table = markdown([scratch, partial], {"scratch@64": 3.21})
    assert "| 97.00% |" in table and "| 20.0 min |" in table and "| 3.2 |" in table.splitlines()[2]
    plot([scratch, partial], tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"


def test_latency_is_measured_once_per_architecture_and_orders_sizes(tmp_path):
    small = evaluated_run(tmp_path / "small", "scratch", {}, 0.8, [1], SMALL, 64)
    same = evaluated_run(tmp_path / "same", "scratch", {}, 0.8, [1], SMALL, 64)
    big = evaluated_run(tmp_path / "big", "scratch", {}, 0.8, [1], {"width": 1.0, "depth": 2}, 224)
    latency = single_photo_latency([small, same, big], iters=5, photo_size=(120, 160))
    assert set(latency) == {"scratch@64", "scratch@224"}
    assert 0 < latency["scratch@64"] < latency["scratch@224"]


def test_the_chart_shows_every_bar_even_below_one_half():
    assert chart_bottom([0.97, 0.99, 0.95]) == 0.5  # all high: zoomed in on the differences
    assert chart_bottom([0.97, 0.42, 0.9]) == 0.0  # a 0.42 bar would be hidden below a 0.5 axis
