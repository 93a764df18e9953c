"""Drift detection for classifiers: the 0/1 error, the binary detectors, and each action.

The stream: two features, the class is ``a + b > 0`` (5 % of the labels flipped) until a
record where the boundary turns by a quarter (``a - b > 0``): half the points change class.
The monitor is driven by a stand-in for the classification learner (predict the class
probabilities, then learn, as River's ``progressive_val_score``); the models after an
action are checked against a River model trained on the records the action says it
learned (the oracle).
"""

from __future__ import annotations

import json
import logging
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from river import naive_bayes

from streamhelpers import cli
from streamlearn.classify.space import ClassSpace
from streamlearn.drift.build import build_monitor
from streamlearn.drift.challenger import Challenger
from streamlearn.drift.config import (
    ACTIONS,
    BINARY_DETECTORS,
    CLASSIFICATION_DETECTOR,
    DETECTOR_NAMES,
    DriftConfig,
    DriftConfigError,
    DriftSettings,
)
from streamlearn.drift.monitor import DriftMonitor
from streamlearn.drift.scoring import class_error
from streamlearn.models.registry import build_model
from streamlearn.observe.telemetry import Telemetry
from streamlearn.state import CheckpointStore

ROWS, CHANGE = 6000, 3000
#: Every detector must flag the quarter turn within this many records (EDDM is the slowest
#: here, 309-472 records; the others within 60).
MAX_DELAY = 500
BINARY_CHOICES = ("ddm", "eddm", "hddm-a", "hddm-w")

Row = tuple[dict[str, float], float]


def class_stream(rows: int = ROWS, change: int = CHANGE, seed: int = 0) -> list[Row]:
    """``(x, class code)``: the class is ``a + b > 0`` before ``change``, ``a - b > 0``
    from it on, with 5 % of the labels flipped."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 2))
    before, after = X[:, 0] + X[:, 1] > 0, X[:, 0] - X[:, 1] > 0
    y = np.where(np.arange(rows) < change, before, after) ^ (rng.random(rows) < 0.05)
    return [({"a": float(a), "b": float(b)}, float(c)) for (a, b), c in zip(X, y, strict=True)]


@dataclass
class StandInLearner:
    """What the monitor uses of a classification learner: the model, and ``reset_model``."""

    model: Any
    classes: ClassSpace
    models: list[Any] = field(default_factory=list)

    def reset_model(self, model: Any) -> None:
        self.model = model
        self.models.append(model)

    def step(self, x: dict[str, float], y: float) -> tuple[float, ...] | None:
        """Test then train: the class probabilities by code given before learning."""
        proba = self.classes.proba(self.model.predict_proba_one(x))
        self.model.learn_one(x, self.classes.model_label(y))
        return proba


@dataclass
class StandInHost:
    """The ``ModelHost`` a classification loop hands the monitor."""

    learner: StandInLearner
    model_factory: Callable[[], Any] | None = naive_bayes.GaussianNB
    warm_model_factory: Callable[[], Any] | None = None
    telemetry: Any = None
    records_seen: int = 0


def host_for(model: Any = None, **kwargs: Any) -> StandInHost:
    space = ClassSpace(binary=True)
    return StandInHost(StandInLearner(model or naive_bayes.GaussianNB(), space), **kwargs)


def run(monitor: DriftMonitor, host: StandInHost, rows: list[Row], start: int = 0) -> list[int]:
    """The record path: step, then ``observe`` each scored record; where the model changed."""
    changed = []
    for index, (x, y) in enumerate(rows, start):
        model = host.learner.model
        proba = host.learner.step(x, y)
        if proba is not None:
            monitor.observe(index, x, y, proba, host)
        if host.learner.model is not model:
            changed.append(index)
    return changed


def monitor_for(host: StandInHost, **config: Any) -> DriftMonitor:
    config.setdefault("detector", CLASSIFICATION_DETECTOR)
    return DriftMonitor(DriftConfig(**config), classes=host.learner.classes)


def trained(model: Any, rows: list[Row]) -> Any:
    for x, y in rows:
        model.learn_one(x, y == 1.0)
    return model


def same_model(model: Any, oracle: Any) -> None:
    """Equal answers on a grid of points, to the last bit (the same sums in the same order)."""
    for a in np.linspace(-2, 2, 9):
        for b in np.linspace(-2, 2, 9):
            x = {"a": float(a), "b": float(b)}
            assert model.predict_proba_one(x) == oracle.predict_proba_one(x)


def events(monitor: DriftMonitor) -> list[int]:
    return [event["record"] for event in monitor.summary()["drift_events"]]


# -- the error ------------------------------------------------------------------------------


def test_the_error_is_one_when_the_first_most_probable_class_is_wrong() -> None:
    assert class_error(1.0, (0.2, 0.8)) == 0.0
    assert class_error(0.0, (0.2, 0.8)) == 1.0
    assert class_error(1.0, (0.4, 0.4, 0.2)) == 1.0  # a tie goes to the first class
    assert class_error(2.0, (0.3, 0.7)) == 1.0  # a class the prediction did not know yet
    monitor = DriftMonitor(DriftConfig(warmup=0), classes=ClassSpace(binary=False))
    host = host_for()
    monitor.observe(0, {}, 2.0, (0.1, 0.2, 0.7), host)
    monitor.observe(1, {}, 0.0, (0.1, 0.2, 0.7), host)
    # Two values in the reference block: 0.0, then 1.0, not |y - yhat| of anything.
    assert monitor.error_watch.reference == [0.0, 1.0]


# -- detection ------------------------------------------------------------------------------


@pytest.mark.parametrize("detector", [*BINARY_CHOICES, "adwin"])
@pytest.mark.parametrize("seed", [0, 2])
@pytest.mark.slow
def test_each_detector_flags_the_quarter_turn_and_stays_quiet_without_it(
    detector: str, seed: int
) -> None:
    host = host_for()
    monitor = monitor_for(host, detector=detector)
    run(monitor, host, class_stream(seed=seed))
    found = events(monitor)
    assert found, f"{detector} missed the change"
    assert CHANGE <= found[0] < CHANGE + MAX_DELAY, found
    assert monitor.summary()["drift_events"][0]["detector"] == detector.replace("-", "_")

    quiet_host = host_for()
    quiet = monitor_for(quiet_host, detector=detector)
    run(quiet, quiet_host, class_stream(change=ROWS, seed=seed + 50))
    assert events(quiet) == []
    assert quiet.records_observed == ROWS - 1  # the first record is learned unscored


@pytest.mark.parametrize("detector", BINARY_CHOICES)
def test_a_binary_detector_reads_the_error_as_it_is_after_the_warm_up(detector: str) -> None:
    monitor = DriftMonitor(DriftConfig(detector=detector, warmup=10), classes=ClassSpace(True))
    assert monitor.observe_errors(range(10), [0.0] * 10, None) == 10  # not falling: over
    watch = monitor.error_watch
    # No reference block: the unit is 1, the detector starts with the next record.
    assert watch.phase == "monitoring" and watch.scale == 1.0
    assert monitor.summary()["drift"]["state"]["signals"]["error"] == {
        "phase": "monitoring",
        "warmup_rounds": 1,
        "scale": 1.0,
    }


@pytest.mark.parametrize("detector", BINARY_CHOICES)
@pytest.mark.parametrize("on_drift", ["alert", "reset"])
@pytest.mark.slow
def test_observe_errors_in_bulk_equals_observe_for_a_classifier(
    detector: str, on_drift: str
) -> None:
    # The compiled block path hands the monitor arrays of 0/1 errors: the same events, and
    # a block stops right after a reset.
    rows = class_stream(seed=3)
    host = host_for()
    one = monitor_for(host, detector=detector, on_drift=on_drift, cooldown=500)
    changed = run(one, host, rows)
    # The errors the record path saw, model by model: replay them in blocks.
    bulk = monitor_for(host, detector=detector, on_drift=on_drift, cooldown=500)
    indices, errors = _errors_of(rows, changed)
    stops, done, rng = [], 0, np.random.default_rng(1)
    while done < len(errors):
        size = int(rng.integers(1, 700))
        block = slice(done, done + size)
        seen = bulk.observe_errors(indices[block], errors[block], host_for())
        if seen < len(indices[block]):
            stops.append(int(indices[done + seen - 1]))
        done += seen
    assert bulk.summary() == one.summary()
    assert stops == (changed if on_drift == "reset" else [])
    assert events(one), "the change must be flagged for this test to mean anything"


def _errors_of(rows: list[Row], resets: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The scored records and their 0/1 errors, for a GaussianNB made afresh after each
    record of ``resets`` (a fresh model cannot score its first record)."""
    space, model = ClassSpace(binary=True), naive_bayes.GaussianNB()
    indices, errors = [], []
    for index, (x, y) in enumerate(rows):
        proba = space.proba(model.predict_proba_one(x))
        model.learn_one(x, space.model_label(y))
        if proba is not None:
            indices.append(index)
            errors.append(class_error(y, proba))
        if index in resets:
            model = naive_bayes.GaussianNB()
    return np.array(indices), np.array(errors)


# -- actions ---------------------------------------------------------------------------------


class Factory:
    """A model factory that remembers what it built."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make
        self.built: list[Any] = []

    def __call__(self) -> Any:
        self.built.append(self.make())
        return self.built[-1]


def test_alert_leaves_the_classifier_as_it_was() -> None:
    rows = class_stream(seed=4)
    host = host_for()
    monitor = monitor_for(host, on_drift="alert")
    assert run(monitor, host, rows) == []
    assert events(monitor) and monitor.summary()["drift"]["actions"]["alert"] >= 1
    same_model(host.learner.model, trained(naive_bayes.GaussianNB(), rows))


def test_reset_gives_a_fresh_classifier_that_learns_from_the_next_record() -> None:
    rows = class_stream(seed=5)
    factory = Factory(naive_bayes.GaussianNB)
    registry = CollectorRegistry()
    host = host_for(model_factory=factory)
    monitor = monitor_for(host, on_drift="reset")
    host.telemetry = Telemetry(registry, **monitor.telemetry_labels())
    changed = run(monitor, host, rows)
    assert len(changed) == 1, monitor.summary()["drift_events"]
    r = changed[0]
    assert CHANGE <= r < CHANGE + MAX_DELAY
    assert host.learner.model is factory.built[-1] and len(factory.built) == 1
    same_model(host.learner.model, trained(naive_bayes.GaussianNB(), rows[r + 1 :]))
    summary = monitor.summary()
    assert summary["drift_events"] == [
        {
            "record": r,
            "detector": CLASSIFICATION_DETECTOR.replace("-", "_"),
            "signal": "error",
            "action": "reset",
        }
    ]
    assert summary["drift"]["actions"]["reset"] == 1
    telemetry = host.telemetry
    assert telemetry.value("streamlearn_drift_actions_total", action="reset") == 1
    name = CLASSIFICATION_DETECTOR.replace("-", "_")
    assert telemetry.value("streamlearn_drift_detections_total", detector=name, signal="error") == 1
    # A classifier's monitor exports the binary detectors' series too, at 0.
    for detector in BINARY_DETECTORS:
        if detector != name:
            assert (
                telemetry.value(
                    "streamlearn_drift_detections_total", detector=detector, signal="error"
                )
                == 0
            )


def test_rollback_restores_the_warm_start_classifier() -> None:
    rows = class_stream(seed=6)
    first_concept = class_stream(rows=500, change=500, seed=60)
    warm = Factory(lambda: trained(naive_bayes.GaussianNB(), first_concept))
    host = host_for(model=warm(), warm_model_factory=warm)
    monitor = monitor_for(host, on_drift="rollback")
    changed = run(monitor, host, rows)
    assert len(changed) == 1
    r = changed[0]
    assert CHANGE <= r < CHANGE + MAX_DELAY
    assert host.learner.model is warm.built[-1] and len(warm.built) == 2
    oracle = trained(trained(naive_bayes.GaussianNB(), first_concept), rows[r + 1 :])
    same_model(host.learner.model, oracle)
    assert monitor.summary()["drift"]["actions"]["rollback"] == 1


def test_background_swaps_in_the_challenger_once_its_error_rate_is_lower() -> None:
    rows = class_stream(seed=7)
    factory = Factory(naive_bayes.GaussianNB)
    host = host_for(model_factory=factory)
    monitor = monitor_for(host, on_drift="background", swap_window=100)
    changed = run(monitor, host, rows)
    summary = monitor.summary()
    assert len(changed) == 1, summary
    (swap,) = summary["drift"]["swaps"]
    r, s = swap["started"], swap["record"]
    assert changed == [s] and CHANGE <= r < s <= r + 1000
    assert summary["drift_events"][0]["record"] == r
    assert summary["drift"]["actions"]["background"] == summary["drift"]["actions"]["swap"] == 1
    # The challenger learned every record from r + 1 on (it went on after the swap).
    assert host.learner.model is factory.built[-1] and len(factory.built) == 1
    same_model(host.learner.model, trained(naive_bayes.GaussianNB(), rows[r + 1 :]))
    # Its error rate and the model's over the window ending at the swap, from an oracle:
    # the old model's errors (it learned every record up to s) and the challenger's.
    space = ClassSpace(binary=True)
    old, fresh = naive_bayes.GaussianNB(), naive_bayes.GaussianNB()
    mine, theirs = [], []
    for index, (x, y) in enumerate(rows[: s + 1]):
        theirs.append(class_error(y, space.proba(old.predict_proba_one(x)) or (1.0,)))
        old.learn_one(x, y == 1.0)
        if index > r:
            proba = space.proba(fresh.predict_proba_one(x))
            if proba is not None:
                mine.append(class_error(y, proba))
            fresh.learn_one(x, y == 1.0)
    assert swap["challenger_mae"] == math.fsum(mine[-100:]) / 100
    assert swap["model_mae"] == math.fsum(theirs[-100:]) / 100
    assert swap["challenger_mae"] < swap["model_mae"]


def test_a_challenger_that_cannot_predict_yet_learns_unscored() -> None:
    host = host_for()
    monitor = monitor_for(host, detector="ddm", on_drift="background", warmup=0)
    monitor.challenger = Challenger(naive_bayes.GaussianNB(), window=10, started=0)
    monitor.observe(1, {"a": 1.0, "b": 0.0}, 1.0, (0.2, 0.8), host)
    assert monitor.challenger.scored == 0  # a fresh GaussianNB answers {}: not scored...
    monitor.observe(2, {"a": 1.0, "b": 0.0}, 0.0, (0.2, 0.8), host)
    assert monitor.challenger.scored == 1  # ...but it learned: now it answers
    assert list(monitor.challenger.mine) == [1.0] and list(monitor.challenger.theirs) == [1.0]


# -- options and state -----------------------------------------------------------------------


@pytest.mark.parametrize("detector", BINARY_CHOICES)
def test_a_binary_detector_with_a_regressor_is_a_usage_error_that_says_why(detector: str) -> None:
    with pytest.raises(DriftConfigError) as caught:
        build_monitor(DriftSettings(drift_detector=detector))
    message = str(caught.value)
    assert f"--drift-detector {detector} reads a 0/1 error" in message
    assert "needs a classifier" in message and "adwin" in message
    monitor = build_monitor(DriftSettings(drift_detector=detector), classes=ClassSpace(True))
    assert monitor is not None and monitor.classification
    assert monitor.config.detector_name == detector.replace("-", "_")


def test_a_binary_detector_does_not_watch_features() -> None:
    with pytest.raises(DriftConfigError, match="a binary detector reads only 0/1 values"):
        DriftConfig(detector="ddm", features=("a",))
    monitor = build_monitor(
        DriftSettings(drift_detector="adwin", drift_features="a"), classes=ClassSpace(True)
    )
    assert monitor is not None and monitor.config.signals == ("error", "feature:a")


def test_the_telemetry_labels_of_a_regressor_are_unchanged() -> None:
    labels = DriftMonitor().telemetry_labels()
    assert labels["drift_detectors"] == DETECTOR_NAMES == ("adwin", "page_hinkley", "kswin")
    assert tuple(labels["drift_actions"]) == ACTIONS
    classifier = DriftMonitor(classes=ClassSpace(binary=True)).telemetry_labels()
    assert classifier["drift_detectors"] == (*DETECTOR_NAMES, *BINARY_DETECTORS)


@pytest.mark.parametrize("detector", ["ddm", "hddm-w", "adwin"])
@pytest.mark.parametrize("cut", [300, 2000, 3050, 4500])
@pytest.mark.slow
def test_a_classifier_monitor_restored_from_a_checkpoint_continues_exactly(
    detector: str, cut: int
) -> None:
    rows = class_stream(seed=8)
    whole_host = host_for(model_factory=naive_bayes.GaussianNB)
    whole = monitor_for(whole_host, detector=detector, on_drift="reset", cooldown=0)
    expected = run(whole, whole_host, rows)

    host = host_for(model_factory=naive_bayes.GaussianNB)
    first = monitor_for(host, detector=detector, on_drift="reset", cooldown=0)
    changed = run(first, host, rows[:cut])
    # The checkpoint: one pickle of the learner and the monitor.
    learner, monitor = pickle.loads(pickle.dumps((host.learner, first)))
    assert monitor.scoring.classes is learner.classes
    restored = build_monitor(
        DriftSettings(drift_detector=detector, on_drift="reset", drift_cooldown=0),
        restored=monitor,
        classes=learner.classes,
    )
    assert restored is monitor
    host.learner = learner
    changed += run(restored, host, rows[cut:], start=cut)
    assert changed == expected
    assert restored.summary() == whole.summary()


def test_a_monitor_pickled_before_classifiers_scores_the_absolute_error() -> None:
    monitor = DriftMonitor(DriftConfig(warmup=0))
    state = monitor.__dict__.copy()
    del state["scoring"]  # as pickled by the versions before it
    old = DriftMonitor.__new__(DriftMonitor)
    old.__setstate__(state)
    old.observe(0, {}, 3.0, 1.0, host_for())
    assert old.error_watch.reference == [2.0] and not old.classification


def test_detections_are_logged_for_a_classifier(caplog: pytest.LogCaptureFixture) -> None:
    host = host_for()
    monitor = monitor_for(host, detector="hddm-w")
    with caplog.at_level(logging.WARNING, logger="streamlearn.drift.monitor"):
        run(monitor, host, class_stream(seed=0))
    (record,) = [r for r in caplog.records if "drift at record" in r.getMessage()]
    assert "hddm_w flagged a rise of the error; alert only" in record.getMessage()


# -- the command line -------------------------------------------------------------------------


def _class_csv(path: Path, rows: list[Row]) -> None:
    lines = ["a,b,label"] + [f"{x['a']!r},{x['b']!r},{int(y)}" for x, y in rows]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["logistic", "GaussianNB"])
def test_a_classification_replay_with_ddm_resets_the_classifier(tmp_path: Path, model: str) -> None:
    # logistic learns CSV blocks in the kernels (the monitor gets arrays of 0/1 errors);
    # GaussianNB goes record by record (the monitor gets each record's probabilities).
    rows = class_stream(seed=0)
    path, state = tmp_path / "turn.csv", tmp_path / "state"
    _class_csv(path, rows)
    result = cli(
        "replay", str(path), "--target", "label", "--model", model, "--state-dir", str(state),
        "--drift-detector", "ddm", "--on-drift", "reset", "--inspect-json", timeout=300,
    )  # fmt: skip
    summary = json.loads(result.stdout)
    assert summary["task"] == "classification"
    resets = [e for e in summary["drift_events"] if e["action"] == "reset"]
    assert resets and resets[0]["detector"] == "ddm" and resets[0]["signal"] == "error"
    assert CHANGE <= resets[0]["record"] < CHANGE + MAX_DELAY
    assert summary["drift"]["actions"]["reset"] == len(resets)
    assert "drift at record" in result.stderr
    r = resets[-1]["record"]
    # The oracle: a fresh model that learned only the records after the last reset.
    if model == "logistic":
        oracle = build_model("logistic")
        trained(oracle, rows[r + 1 :])
        assert summary["weights"] == pytest.approx(oracle.weights, rel=0, abs=1e-12)
        assert summary["intercept"] == pytest.approx(oracle.intercept, rel=0, abs=1e-12)
    else:
        loaded = CheckpointStore(state).load()
        assert loaded is not None
        oracle = naive_bayes.GaussianNB()  # a multiclass model: it learns the label text
        for x, y in rows[r + 1 :]:
            oracle.learn_one(x, str(int(y)))
        same_model(loaded.state["learner"].model, oracle)
    assert summary["records_learned"] == ROWS  # the metrics carry on over the reset


@pytest.mark.slow
def test_a_binary_detector_for_a_regressor_is_refused_on_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "numbers.csv"
    path.write_text("a,y\n" + "".join(f"{i},{2 * i}.5\n" for i in range(20)))
    result = cli("replay", str(path), "--drift-detector", "hddm-w", check=False)
    assert result.returncode == 2
    assert "--drift-detector hddm-w reads a 0/1 error" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: --drift-detector hddm-w reads")
