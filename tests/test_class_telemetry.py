"""A classifier's telemetry: its metric grid, its per-class counters against a plain count of
the stream, awkward class texts through the exposition (promtool and a parser), and the live
series of an in-process classification run equal to its learner's own numbers."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from prom_server import free_port, require_binary
from streamlearn.app import build
from streamlearn.classify.learner import ClassLearner
from streamlearn.classify.metrics import MULTICLASS_METRICS, ClassMetrics, score
from streamlearn.classify.space import ClassSpace
from streamlearn.config import Settings
from streamlearn.drift.config import DriftSettings
from streamlearn.observe.class_counts import class_tallies, label_value
from streamlearn.observe.telemetry import Telemetry


def test_tallies_are_the_counts_of_true_and_predicted_classes() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 4, size=2000)
    predicted = np.where(rng.random(2000) < 0.7, y, rng.integers(0, 4, size=2000))
    metrics = ClassMetrics(binary=False)
    for true, guess in zip(y.tolist(), predicted.tolist(), strict=True):
        proba = tuple(1.0 if c == guess else 0.0 for c in range(4))
        metrics.update(*score(true, proba, binary=False))
    labels = ["a", "b", "c", "d", "e"]  # "e": known to the space, never seen
    tallies = class_tallies(labels, metrics.confusion)
    assert [t.label for t in tallies] == labels
    assert [t.labels for t in tallies] == [*np.bincount(y, minlength=4).tolist(), 0]
    assert [t.predictions for t in tallies] == [*np.bincount(predicted, minlength=4).tolist(), 0]
    right = np.bincount(y[y == predicted], minlength=4).tolist()
    assert [t.correct for t in tallies] == [*right, 0]


AWKWARD = ["no", 'dog "big"', "eel\\x", "line\nbreak", "café 🐟", "lone \udce9"]


def test_a_classifiers_exposition_is_clean_and_reads_back(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    confusion = [[i + j for j in range(len(AWKWARD))] for i in range(len(AWKWARD))]
    telemetry = Telemetry(
        registry,
        source="file",
        model_spec="softmax",
        model_metric_names=MULTICLASS_METRICS,
        class_counts=lambda: class_tallies(AWKWARD, confusion),
        error_buckets=None,
    )
    telemetry.model_metrics = lambda: {("accuracy", "rolling"): 0.75}
    telemetry.received(10)
    telemetry.abs_errors(np.array([0.0, 1.0, 1.0]))  # the router's 0/1 errors: not a histogram
    exposition = generate_latest(registry)

    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr.decode()
    assert (result.stdout + result.stderr).decode().strip() == ""

    families = {f.name: f for f in text_string_to_metric_families(exposition.decode())}
    assert "streamlearn_prediction_abs_error" not in families
    grid = {
        (s.labels["metric"], s.labels["window"]): s.value
        for s in families["streamlearn_model_metric"].samples
    }
    assert set(grid) == {(m, w) for m in MULTICLASS_METRICS for w in ("cumulative", "rolling")}
    assert grid[("accuracy", "rolling")] == 0.75
    assert np.isnan(grid[("cross_entropy", "cumulative")])
    labels = {s.labels["class"]: s.value for s in families["streamlearn_class_labels"].samples}
    assert labels == {
        label_value(label): float(sum(row)) for label, row in zip(AWKWARD, confusion, strict=True)
    }
    correct = {s.labels["class"]: s.value for s in families["streamlearn_class_correct"].samples}
    assert correct["line\nbreak"] == confusion[3][3]
    assert "lone \\udce9" in correct  # no bytes spell a lone surrogate: written escaped


def test_a_regressors_series_are_unchanged() -> None:
    exposition = generate_latest(Telemetry(CollectorRegistry(), source="file").registry).decode()
    assert "streamlearn_prediction_abs_error_bucket" in exposition
    assert "streamlearn_class_" not in exposition
    metrics = {
        line.split("{")[1].split("}")[0]
        for line in exposition.splitlines()
        if line.startswith("streamlearn_model_metric{")
    }
    assert metrics == {
        f'metric="{m}",window="{w}"'
        for m in ("mae", "rmse", "r2")
        for w in ("cumulative", "rolling")
    }


def test_a_classification_run_exports_its_learners_numbers(tmp_path: Path) -> None:
    """An in-process replay of a binary stream with ``--metrics-port``: once learned, every
    class series equals the learner's own number and the stream's count."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(600, 2))
    labels = np.where(x[:, 0] - x[:, 1] + 0.5 * rng.normal(size=600) > 0, "yes", "no")
    data = tmp_path / "clicks.csv"
    data.write_text(
        "a,b,y\n" + "".join(f"{a:.5f},{b:.5f},{y}\n" for (a, b), y in zip(x, labels, strict=True))
    )
    settings = Settings(
        source=str(data),
        follow=True,
        model="logistic",
        model_from_flag=True,
        lr=0.1,
        rolling_window=100,
        metrics_port=free_port(),
        drift=DriftSettings(drift_detector="none"),
    )
    app = build(settings)
    thread = threading.Thread(target=app.daemon.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while app.daemon.learner.records_learned < 600 and time.monotonic() < deadline:
            time.sleep(0.05)
        telemetry = app.daemon.telemetry
        assert telemetry is not None
        with app.daemon.lock:
            learner = app.daemon.learner
            assert isinstance(learner, ClassLearner) and learner.records_learned == 600
            cumulative, rolling = learner.summary(), learner.rolling_summary()
        for name in ("accuracy", "log_loss", "f1", "roc_auc"):
            for window, values in (("cumulative", cumulative), ("rolling", rolling)):
                exported = telemetry.value("streamlearn_model_metric", metric=name, window=window)
                assert exported == values[name], (name, window)
        # A fresh logistic model answers 50/50: every record is scored, none left out.
        assert Counter(labels.tolist()) == {
            label: telemetry.value("streamlearn_class_labels_total", **{"class": label})
            for label in ("no", "yes")
        }
        confusion = cumulative["confusion"]
        for label in ("no", "yes"):
            predicted = sum(row.get(label, 0) for row in confusion.values())
            assert (
                telemetry.value("streamlearn_class_predictions_total", **{"class": label})
                == predicted
            )
            assert telemetry.value("streamlearn_class_correct_total", **{"class": label}) == (
                confusion.get(label, {}).get(label, 0)
            )
        assert telemetry.value("streamlearn_prediction_abs_error_count") is None
    finally:
        app.daemon.stop()
        thread.join(30)
        app.close()


@pytest.mark.parametrize("text", ["plain", 'q"uote', "back\\slash", "new\nline", "ünï"])
def test_valid_text_is_its_own_label_value(text: str) -> None:
    assert label_value(text) == text


def test_a_warm_started_classifiers_baseline_and_served_accuracy() -> None:
    """The frozen model A's metrics are a classifier's; the baseline guard's error rates
    (it compares 0/1 errors) are exported as accuracies."""
    from types import SimpleNamespace

    from river import linear_model, optim

    from streamlearn.classify.metrics import BINARY_METRICS
    from streamlearn.models.champion import GuardOptions
    from streamlearn.observe.face import make_telemetry

    space = ClassSpace(binary=True)
    baseline = linear_model.LogisticRegression(optimizer=optim.SGD(0.5))
    rng = np.random.default_rng(3)
    for a in rng.normal(size=200).tolist():  # A learns "yes when a > 0", then is frozen
        baseline.learn_one({"a": a}, a > 0)
    learner = ClassLearner(
        linear_model.LogisticRegression(optimizer=optim.SGD(0.01)),
        space,
        rolling_window=50,
        baseline=baseline,
        guard=GuardOptions(),
    )
    for a in rng.normal(size=300).tolist():
        learner.step({"a": a}, space.encode("yes" if a > 0 else "no"))
    daemon = SimpleNamespace(
        learner=learner, lock=threading.Lock(), monitor=None, model_spec="logistic",
        pseudo=None, ready=True, paused_reason=None,
    )  # fmt: skip
    telemetry = make_telemetry(daemon, SimpleNamespace(kind="file"), None)  # type: ignore[arg-type]
    assert telemetry.model_metric_names == BINARY_METRICS
    base = learner.baseline_summary()
    assert base is not None
    for name in BINARY_METRICS:
        exported = telemetry.value("streamlearn_baseline_metric", metric=name, window="cumulative")
        assert exported == base[name], name
    assert learner.guard is not None
    rolling_rate = learner.guard.rolling()[1]["mae"]
    assert rolling_rate is not None
    assert (
        telemetry.value("streamlearn_baseline_metric", metric="accuracy", window="rolling")
        == 1.0 - rolling_rate
    )
    served = learner.guard.summary()["served_metrics"]["mae"]
    assert (
        telemetry.value("streamlearn_served_metric", metric="accuracy", window="cumulative")
        == 1.0 - served
    )
    assert telemetry.value("streamlearn_served_metric", metric="mae", window="cumulative") is None
    assert telemetry.value("streamlearn_serving_baseline") in (0.0, 1.0)
