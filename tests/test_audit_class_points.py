"""Points of the classification issue (13) that no other test pinned: the rolling metrics
of a replay against River's own rolling metrics, the default of ``--max-classes``, and why
``--help`` says adwin is the default drift detector."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from river import datasets, evaluate, linear_model, utils
from river import metrics as rm

from streamhelpers import cli, inspect_json

WINDOW = 100


def _write(
    path: Path, rows: list[tuple[dict[str, Any], Any]], label: Callable[[Any], str]
) -> list[tuple[dict[str, float], Any]]:
    names = list(rows[0][0])
    lines = [",".join([*names, "label"])]
    lines += [",".join([*(repr(float(x[n])) for n in names), label(y)]) for x, y in rows]
    path.write_text("\n".join(lines) + "\n")
    return [({n: float(x[n]) for n in names}, y) for x, y in rows]


def _rolling(rows: list, make: Callable[[], Any], metric: type) -> Any:
    """River's ``progressive_val_score`` of ``make()`` with ``metric`` over the last WINDOW."""
    rolling = utils.Rolling(metric, window_size=WINDOW)
    evaluate.progressive_val_score(rows, make(), rolling)
    return rolling


def _confusion(rolling: Any, name: Callable[[Any], str]) -> dict[str, dict[str, int]]:
    data = rolling.obj.data
    return {
        name(t): {name(p): int(c) for p, c in row.items() if c}
        for t, row in data.items()
        if any(row.values())
    }


def _replay(path: Path, state: Path, spec: str) -> dict[str, Any]:
    cli("replay", str(path), "--model", spec, "--target", "label", "--state-dir", str(state),
        "--drift-detector", "none", "--rolling-window", str(WINDOW), timeout=300)  # fmt: skip
    return inspect_json(state)


@pytest.mark.slow
def test_binary_rolling_metrics_equal_rivers_rolling_progressive_val_score(tmp_path: Path):
    text = {True: "yes", False: "no"}.__getitem__
    rows = _write(
        tmp_path / "p.csv", list(itertools.islice(datasets.Phishing(), 350)), lambda y: text(y)
    )
    rows = [(x, bool(y)) for x, y in rows]
    summary = _replay(tmp_path / "p.csv", tmp_path / "state", "LogisticRegression")
    assert summary["rolling_window"] == WINDOW
    rolling = summary["rolling_metrics"]
    make = linear_model.LogisticRegression
    assert rolling["accuracy"] == _rolling(rows, make, rm.Accuracy).get()
    assert rolling["f1"] == _rolling(rows, make, rm.F1).get()
    assert rolling["roc_auc"] == _rolling(rows, make, rm.ROCAUC).get()
    # River's rolling mean reverts its running sum; the daemon adds the window afresh.
    assert rolling["log_loss"] == pytest.approx(_rolling(rows, make, rm.LogLoss).get(), rel=1e-12)
    assert rolling["confusion"] == _confusion(_rolling(rows, make, rm.ConfusionMatrix), text)
    assert sum(sum(row.values()) for row in rolling["confusion"].values()) == WINDOW
    assert rolling != summary["metrics"]  # the window is not the whole stream


@pytest.mark.slow
def test_multiclass_rolling_metrics_equal_rivers_rolling_progressive_val_score(tmp_path: Path):
    rows = _write(tmp_path / "s.csv", list(itertools.islice(datasets.ImageSegments(), 400)), str)
    summary = _replay(tmp_path / "s.csv", tmp_path / "state", "SoftmaxRegression")
    rolling = summary["rolling_metrics"]
    make = linear_model.SoftmaxRegression
    assert rolling["accuracy"] == _rolling(rows, make, rm.Accuracy).get()
    assert rolling["macro_f1"] == pytest.approx(_rolling(rows, make, rm.MacroF1).get(), rel=1e-14)
    cross_entropy = _rolling(rows, make, rm.CrossEntropy).get()
    assert rolling["cross_entropy"] == pytest.approx(cross_entropy, rel=1e-12)
    assert rolling["confusion"] == _confusion(_rolling(rows, make, rm.ConfusionMatrix), str)
    assert "f1" not in rolling and "roc_auc" not in rolling


@pytest.mark.slow
def test_max_classes_defaults_to_100_then_dead_letters(tmp_path: Path):
    path = tmp_path / "many.csv"
    path.write_text("a,label\n" + "".join(f"{i},c{i}\n" for i in range(102)))
    letters = tmp_path / "dead.jsonl"
    summary = _replay_json(path, "GaussianNB", "--dead-letter", str(letters))
    assert len(summary["classes"]) == 100 and summary["records_learned"] == 100
    reasons = letters.read_text().splitlines()
    assert len(reasons) == 2 and all('"too_many_classes"' in line for line in reasons)


def _replay_json(path: Path, spec: str, *extra: str) -> dict[str, Any]:
    result = cli("replay", str(path), "--model", spec, "--target", "label",
                 "--drift-detector", "none", "--inspect-json", *extra, timeout=300)  # fmt: skip
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


@pytest.mark.parametrize("command", ["run", "replay"])
def test_help_names_the_default_drift_detector_and_why(command: str):
    text = " ".join(cli(command, "--help").stdout.split())
    start = text.index("--drift-detector [")
    entry = text[start : text.index("--drift-features", start)]
    assert "adwin is the default for both because" in entry
    assert "misses the fewest changes with the fewest false alarms (classifier)" in entry
    assert entry.rstrip().endswith("default: adwin]")


def test_a_pseudo_labels_weight_scales_the_seeds_step_of_logistic():
    """Issue 13, point 7: the weight works as for regression (``alpha * w * (p - y)``), and a
    pseudo-label is learned, never scored."""
    from streamlearn.classify.learner import ClassLearner
    from streamlearn.classify.space import ClassSpace
    from streamlearn.models.registry import build_model

    space = ClassSpace(binary=True)
    space.encode("no"), space.encode("yes")
    learner = ClassLearner(build_model("logistic", lr=0.1), space)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3))
    y = (X @ np.array([1.0, -2.0, 0.5]) > 0).astype(float)
    theta, theta0, w = np.zeros(3), 0.0, 0.3
    for xi, yi in zip(X, y, strict=True):
        learner.learn_weighted({f"x{j}": float(v) for j, v in enumerate(xi)}, yi, w)
        z = theta0 + float(theta @ xi)
        p = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
        step = 0.1 * w * (p - yi)
        theta, theta0 = theta - step * xi, theta0 - step
    model = learner.model
    np.testing.assert_allclose(
        [model.weights[f"x{j}"] for j in range(3)], theta, atol=1e-12, rtol=0
    )
    assert model.intercept == pytest.approx(theta0, abs=1e-12, rel=0)
    assert learner.pseudo_learned == 300 and learner.records_learned == 0
    assert learner.summary()["accuracy"] is None  # metrics are for true labels only


def test_the_class_series_stay_within_max_classes(tmp_path: Path):
    """Issue 13, point 10: per-class series are bounded by ``--max-classes``: labels beyond
    it are dead letters, never a series."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from streamlearn.app import build
    from streamlearn.broker import free_port
    from streamlearn.config import Settings
    from streamlearn.drift.config import DriftSettings

    data = tmp_path / "colours.csv"
    names = ["red", "green", "blue", "pink", "tan", "teal"]
    data.write_text("a,y\n" + "".join(f"{i % 7},{names[i % 6]}\n" for i in range(300)))
    settings = Settings(
        source=str(data), follow=False, model="GaussianNB", max_classes=3,
        metrics_port=free_port(), drift=DriftSettings(drift_detector="none"),
    )  # fmt: skip
    app = build(settings)
    try:
        summary = app.daemon.run()
        assert app.daemon.telemetry is not None
        exposition = generate_latest(app.daemon.telemetry.registry).decode()  # type: ignore[attr-defined]
    finally:
        app.close()
    assert summary["classes"] == ["red", "green", "blue"]
    assert summary["rejected_by_reason"] == {"too_many_classes": 150}
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    for family in ("streamlearn_class_labels", "streamlearn_class_predictions"):
        classes = {s.labels["class"] for s in families[family].samples}
        assert classes == {"red", "green", "blue"}, family
