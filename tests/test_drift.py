"""Drift detection and drift actions: detections where the stream changes, and each action's effect.

The streams are linear targets whose weights change abruptly at a known row; the models'
weights are checked against a plain numpy replay of the seed's update (the oracle).
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry
from river import linear_model, optim

from streamhelpers import cli, sgd_oracle, write_csv
from streamlearn.cli.drift_options import drift_options
from streamlearn.drift import detectors
from streamlearn.drift import monitor as drift
from streamlearn.drift.build import build_monitor
from streamlearn.drift.config import ACTIONS, DETECTOR_NAMES, DriftConfig, DriftSettings
from streamlearn.drift.monitor import DriftMonitor
from streamlearn.learner import Learner
from streamlearn.loop import Daemon, inspect_state
from streamlearn.models.registry import build_model
from streamlearn.models.sgd import SGDRegressor
from streamlearn.observe.telemetry import Telemetry
from streamlearn.records import CsvDecoder
from streamlearn.state import CheckpointStore
from streamlearn.testing import ListSource

#: The promise the tests hold the default detector to: flagged within this many records.
MAX_DELAY = 300


def drift_stream(
    n: int = 4000,
    change: int = 2000,
    d: int = 3,
    seed: int = 0,
    noise: float = 0.1,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """X ~ N(0, 1); y = X @ w1 + 1.5 before ``change``, X @ w2 + 1.5 from it on (plus noise)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w1, w2 = rng.normal(size=d), rng.normal(size=d)
    signal = np.where(np.arange(n) < change, X @ w1, X @ w2) + 1.5
    return X, scale * (signal + rng.normal(scale=noise, size=n))


def csv_rows(X: np.ndarray, y: np.ndarray) -> list[bytes]:
    return [
        (",".join(repr(float(v)) for v in X[i]) + "," + repr(float(y[i]))).encode()
        for i in range(len(y))
    ]


def decoder(d: int = 3) -> CsvDecoder:
    return CsvDecoder([*(f"x{j}" for j in range(d)), "y"])


class Factory:
    """A model factory that remembers what it built (to tell which model is in use)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make
        self.built: list[Any] = []

    def __call__(self) -> Any:
        model = self.make()
        self.built.append(model)
        return model


def make_daemon(
    rows: Sequence[bytes],
    monitor: DriftMonitor | None,
    *,
    model: Any = None,
    model_factory: Callable[[], Any] | None = None,
    warm_model_factory: Callable[[], Any] | None = None,
    telemetry: Any = None,
    rolling_window: int = 1000,
    **kwargs: Any,
) -> Daemon:
    model = model if model is not None else build_model("sgd", lr=0.01)
    return Daemon(
        ListSource(rows),
        decoder(),
        Learner(model, rolling_window=rolling_window),
        model_spec="sgd",
        model_factory=model_factory or (lambda: build_model("sgd", lr=0.01)),
        warm_model_factory=warm_model_factory,
        monitor=monitor,
        telemetry=telemetry,
        **kwargs,
    )


def weights_of(model: Any, d: int = 3) -> tuple[np.ndarray, float]:
    return np.array([model.weights.get(f"x{j}", 0.0) for j in range(d)]), model.intercept


def sgd_from(
    theta: np.ndarray, theta0: float, X: np.ndarray, y: np.ndarray, lr: float
) -> tuple[np.ndarray, float]:
    """The seed's update from given starting weights (the oracle of a warm model)."""
    theta = theta.astype(float).copy()
    for i in range(X.shape[0]):
        error = float(X[i] @ theta + theta0) - y[i]
        theta = theta - lr * error * X[i]
        theta0 = theta0 - lr * error
    return theta, theta0


def records(events: list[dict[str, Any]]) -> list[int]:
    return [event["record"] for event in events]


# -- detection ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("detector", "seed", "warmup"),
    [
        ("adwin", 0, 500),
        ("adwin", 1, 500),
        ("adwin", 2, 0),  # no warm-up: the one-sided test alone ignores the falling error
        ("page-hinkley", 0, 500),
        ("page-hinkley", 1, 0),
        ("kswin", 0, 500),
        ("kswin", 1, 0),
    ],
)
def test_an_abrupt_change_is_flagged_soon_and_nothing_before_it(
    detector: str, seed: int, warmup: int
) -> None:
    # scale=10: a cold model's error starts near 20 and falls to about 1 (the early-learning
    # phase), then the weights change at row 2000.
    n, change = 3000 if detector == "kswin" else 4000, 2000
    X, y = drift_stream(n, change, seed=seed, scale=10.0)
    config = DriftConfig(detector=detector, warmup=warmup)
    daemon = make_daemon(csv_rows(X, y), DriftMonitor(config))
    summary = daemon.run()
    events = summary["drift_events"]
    assert events, "the change was not detected"
    assert all(event["record"] >= change for event in events), records(events)
    first = events[0]
    assert change <= first["record"] < change + MAX_DELAY
    assert first == {
        "record": first["record"],
        "detector": config.detector_name,
        "signal": "error",
        "action": "alert",
    }
    assert summary["drift"]["events_total"] == len(events)


def test_a_long_stable_stream_with_heavy_tailed_noise_raises_no_alarm() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(20000, 3))
    y = X @ rng.normal(size=3) + rng.laplace(size=20000)
    daemon = make_daemon(csv_rows(X, y), DriftMonitor())
    summary = daemon.run()
    assert summary["drift_events"] == []
    assert summary["drift"]["state"]["signals"]["error"]["phase"] == "monitoring"


@pytest.mark.parametrize("drift_type", ["lea", "gra", "gsg"])
def test_a_growing_hoeffding_tree_is_not_drift(drift_type: str) -> None:
    """A Hoeffding tree's error falls in steps as it grows: the error is watched only once
    it has stopped falling, so the tree's own learning curve raises no alarm (it did, at
    record 1463 of all three of River's FriedmanDrift streams of seed 42, which share their
    records up to the first change), and the change itself is still flagged soon."""
    from river import tree
    from river.datasets import synth

    change = 3000
    stream = synth.FriedmanDrift(
        drift_type=drift_type,
        position=(change, 2 * change, 3 * change)[: 3 if drift_type == "lea" else 2],
        transition_window=0,
        seed=42,
    )
    learner = Learner(tree.HoeffdingAdaptiveTreeRegressor(seed=1))
    monitor = DriftMonitor()
    host = _stub_daemon()
    host.learner = learner
    for index, (x, y) in enumerate(stream.take(change + 1000)):
        yhat = learner.step(x, y)
        monitor.observe(index, x, y, yhat, host)
    found = records(list(monitor.events))
    assert all(record >= change for record in found), found
    assert monitor.error_watch.phase == "monitoring"
    if drift_type != "lea":  # lea's first change is local: a small region of the inputs
        assert found and found[0] < change + MAX_DELAY


def test_event_indices_are_stream_rows_including_rejected_and_unlabeled_ones() -> None:
    X, y = drift_stream(4000, 2000, seed=3)
    rows = csv_rows(X, y)
    clean = make_daemon(rows, DriftMonitor()).run()["drift_events"]
    assert clean
    # 30 rejected and 20 unlabeled rows before the change shift every index by 50; the
    # model sees the same labeled records, so it flags the same one.
    noisy_rows = [b"1,oops,3,4"] * 30 + rows[:1000] + [b"0.5,0.5,0.5,"] * 20 + rows[1000:]
    noisy = make_daemon(noisy_rows, DriftMonitor())
    summary = noisy.run()
    assert summary["records_rejected"] == 30 and summary["records_unlabeled"] == 20
    assert records(summary["drift_events"]) == [r + 50 for r in records(clean)]
    first = summary["drift_events"][0]["record"]
    # The row at that index is the labeled row clean flagged.
    assert noisy_rows[first] == rows[records(clean)[0]]


def test_a_feature_shift_is_flagged_on_that_feature_only_and_counted_in_telemetry() -> None:
    X, y = drift_stream(4000, 4000, seed=4)  # the target function never changes
    X[2000:, 1] += 3.0  # ...but x1's distribution moves by 3 standard deviations
    y = y + 0.0
    config = DriftConfig(features=("x0", "x1"))
    registry = CollectorRegistry()
    telemetry = Telemetry(
        registry,
        drift_detectors=DETECTOR_NAMES,
        drift_signals=config.signals,
        drift_actions=ACTIONS,
    )
    daemon = make_daemon(csv_rows(X, y), DriftMonitor(config), telemetry=telemetry)
    summary = daemon.run()
    feature_events = [e for e in summary["drift_events"] if e["signal"].startswith("feature:")]
    assert feature_events
    assert {e["signal"] for e in feature_events} == {"feature:x1"}
    assert 2000 <= feature_events[0]["record"] < 2000 + MAX_DELAY
    for signal in config.signals:
        expected = summary["drift"]["detections"][signal]
        value = telemetry.value(
            "streamlearn_drift_detections_total", detector="adwin", signal=signal
        )
        assert value == expected
    assert (
        telemetry.value("streamlearn_drift_actions_total", action="alert")
        == (summary["drift"]["actions"]["alert"])
    )
    assert summary["drift"]["actions"]["alert"] >= 1


# -- actions ------------------------------------------------------------------------------


def test_alert_changes_nothing_in_the_model() -> None:
    X, y = drift_stream(4000, 2000, seed=0)
    rows = csv_rows(X, y)
    watched = make_daemon(rows, DriftMonitor(DriftConfig(on_drift="alert")))
    summary = watched.run()
    assert summary["drift_events"] and summary["drift"]["actions"]["alert"] >= 1
    theta, theta0, _ = sgd_oracle(X, y, 0.01)
    learned, intercept = weights_of(watched.learner.model)
    np.testing.assert_allclose(learned, theta, rtol=0, atol=1e-12)
    assert intercept == pytest.approx(theta0, abs=1e-12)
    # ...and the same predictions as a daemon without a monitor.
    plain = make_daemon(rows, None, rolling_window=4000)
    watched_again = make_daemon(rows, DriftMonitor(), rolling_window=4000)
    plain.run()
    watched_again.run()
    assert list(watched_again.learner.recent_yhat) == list(plain.learner.recent_yhat)


def test_reset_replaces_the_model_by_a_fresh_one_that_learns_from_the_next_record() -> None:
    X, y = drift_stream(4000, 2000, seed=1)
    factory = Factory(lambda: SGDRegressor(lr=0.01))
    registry = CollectorRegistry()
    telemetry = Telemetry(registry, drift_detectors=DETECTOR_NAMES, drift_actions=ACTIONS)
    daemon = make_daemon(
        csv_rows(X, y),
        DriftMonitor(DriftConfig(on_drift="reset")),
        model=SGDRegressor(lr=0.01),
        model_factory=factory,
        telemetry=telemetry,
    )
    summary = daemon.run()
    resets = [e for e in summary["drift_events"] if e["action"] == "reset"]
    assert len(resets) == 1, summary["drift_events"]
    r = resets[0]["record"]
    assert 2000 <= r < 2000 + MAX_DELAY
    assert daemon.learner.model is factory.built[-1]
    # The oracle: a fresh model that learned only rows r+1..end.
    theta, theta0, _ = sgd_oracle(X[r + 1 :], y[r + 1 :], 0.01)
    learned, intercept = weights_of(daemon.learner.model)
    np.testing.assert_allclose(learned, theta, rtol=0, atol=1e-12)
    assert intercept == pytest.approx(theta0, abs=1e-12)
    # Learner metrics carry on over the reset: every record is scored once.
    assert summary["records_learned"] == 4000
    assert summary["drift"]["actions"]["reset"] == 1
    assert telemetry.value("streamlearn_drift_actions_total", action="reset") == 1
    assert telemetry.value(
        "streamlearn_drift_detections_total", detector="adwin", signal="error"
    ) == len(summary["drift_events"])
    # The detectors restarted (warm-up, then a new unit) and flag nothing on the new model.
    assert summary["drift"]["state"]["signals"]["error"]["phase"] == "monitoring"


def test_rollback_goes_back_to_the_warm_start_model() -> None:
    X, y = drift_stream(4000, 2000, seed=2)
    warm_theta, warm_theta0 = np.array([0.3, -0.2, 0.1]), 1.0

    def warm() -> SGDRegressor:
        initial = {f"x{j}": float(w) for j, w in enumerate(warm_theta)}
        return SGDRegressor(lr=0.01, initial_weights=initial, initial_intercept=warm_theta0)

    factory = Factory(warm)
    daemon = make_daemon(
        csv_rows(X, y),
        DriftMonitor(DriftConfig(on_drift="rollback")),
        model=factory(),
        warm_model_factory=factory,
    )
    summary = daemon.run()
    rollbacks = [e for e in summary["drift_events"] if e["action"] == "rollback"]
    assert len(rollbacks) == 1, summary["drift_events"]
    r = rollbacks[0]["record"]
    assert 2000 <= r < 2000 + MAX_DELAY
    assert len(factory.built) == 2 and daemon.learner.model is factory.built[1]
    # The oracle: the warm weights as they were at the start, then rows r+1..end.
    theta, theta0 = sgd_from(warm_theta, warm_theta0, X[r + 1 :], y[r + 1 :], 0.01)
    learned, intercept = weights_of(daemon.learner.model)
    np.testing.assert_allclose(learned, theta, rtol=0, atol=1e-12)
    assert intercept == pytest.approx(theta0, abs=1e-12)


def test_rollback_without_a_warm_start_model_only_alerts(caplog: pytest.LogCaptureFixture) -> None:
    X, y = drift_stream(4000, 2000, seed=2)
    daemon = make_daemon(csv_rows(X, y), DriftMonitor(DriftConfig(on_drift="rollback")))
    with caplog.at_level(logging.WARNING, logger="streamlearn.drift.monitor"):
        summary = daemon.run()
    assert summary["drift_events"][0]["action"] == "alert"
    assert summary["drift"]["actions"]["rollback"] == 0
    assert "no warm-start model" in caplog.text
    theta, _, _ = sgd_oracle(X, y, 0.01)
    np.testing.assert_allclose(weights_of(daemon.learner.model)[0], theta, rtol=0, atol=1e-12)


def settling_model() -> linear_model.LinearRegression:
    """A linear model whose step size decays as 1/sqrt(t): once settled, it adapts slowly.

    The case background retraining is for: after a change, a fresh model (large steps
    again) catches up faster than the settled one re-learns.
    """
    return linear_model.LinearRegression(
        optimizer=optim.SGD(optim.schedulers.InverseScaling(0.05, power=0.5)),
        intercept_lr=optim.schedulers.InverseScaling(0.05, power=0.5),
    )


def test_background_swaps_in_a_challenger_that_then_beats_the_kept_model() -> None:
    n, change = 6000, 3000
    X, y = drift_stream(n, change, seed=0)
    rows = csv_rows(X, y)
    factory = Factory(settling_model)
    background = make_daemon(
        rows,
        DriftMonitor(DriftConfig(on_drift="background", swap_window=300)),
        model=settling_model(),
        model_factory=factory,
        rolling_window=n,
    )
    kept = make_daemon(
        rows,
        DriftMonitor(DriftConfig(on_drift="alert")),
        model=settling_model(),
        model_factory=settling_model,
        rolling_window=n,
    )
    summary = background.run()
    kept.run()
    events = summary["drift_events"]
    assert events[0]["action"] == "background"
    detected = events[0]["record"]
    assert change <= detected < change + MAX_DELAY
    swaps = summary["drift"]["swaps"]
    assert len(swaps) == 1 and summary["drift"]["actions"]["swap"] == 1
    swap = swaps[0]
    # Compared over a full window of records after the detection, on the same records.
    assert swap["started"] == detected and swap["record"] >= detected + 300
    assert swap["challenger_mae"] < swap["model_mae"]
    assert background.learner.model is factory.built[0]  # the challenger, now the model

    def abs_errors(daemon: Daemon) -> np.ndarray:
        learner = daemon.learner
        return np.abs(np.array(learner.recent_y) - np.array(learner.recent_yhat))

    swapped, alert = abs_errors(background), abs_errors(kept)
    # Before the swap the challenger never touched the model: identical predictions.
    np.testing.assert_array_equal(swapped[: swap["record"] + 1], alert[: swap["record"] + 1])
    after = slice(swap["record"] + 1, n)
    assert swapped[after].mean() < 0.5 * alert[after].mean()


def test_background_drops_a_challenger_that_never_wins() -> None:
    X, y = drift_stream(6000, 2000, seed=1)
    factory = Factory(lambda: SGDRegressor(lr=1e-6))  # learns next to nothing
    daemon = make_daemon(
        csv_rows(X, y),
        DriftMonitor(DriftConfig(on_drift="background", swap_window=100)),
        model_factory=factory,
    )
    model = daemon.learner.model
    summary = daemon.run()
    assert summary["drift"]["actions"]["background"] == 1
    assert summary["drift"]["actions"]["discard"] == 1
    assert summary["drift"]["actions"]["swap"] == 0
    assert daemon.learner.model is model
    assert summary["drift"]["state"]["challenger"] is None
    theta, _, _ = sgd_oracle(X, y, 0.01)
    np.testing.assert_allclose(weights_of(model)[0], theta, rtol=0, atol=1e-12)


def test_cooldown_keeps_one_change_from_being_acted_on_twice() -> None:
    # Page-Hinkley (alert, no restart) flags the rising error several times in a row.
    X, y = drift_stream(4000, 2000, seed=0)
    for cooldown, acted in ((0, None), (1000, 1)):
        config = DriftConfig(detector="page-hinkley", cooldown=cooldown)
        summary = make_daemon(csv_rows(X, y), DriftMonitor(config)).run()
        events = summary["drift_events"]
        assert len(events) >= 2, events
        alerts = [e for e in events if e["action"] == "alert"]
        if acted is None:
            assert len(alerts) == len(events)
        else:
            assert len(alerts) == acted
            assert all(e["action"] == "suppressed" for e in events[1:])
            assert summary["drift"]["suppressed"] == len(events) - 1


# -- state ------------------------------------------------------------------------------


def test_events_survive_a_checkpoint_and_a_resume_continues_exactly(tmp_path: Path) -> None:
    X, y = drift_stream(4000, 2000, seed=1)
    rows = csv_rows(X, y)
    extra = {"on_drift": "reset"}
    whole = make_daemon(rows, build_monitor(DriftSettings(**extra)))
    expected = whole.run()
    assert expected["drift_events"]

    # Stop after 2100 rows (past the detection), checkpoint to disk, resume in a new daemon.
    store = CheckpointStore(tmp_path / "state")
    first = make_daemon(rows[:2100], build_monitor(DriftSettings(**extra)), store=store)
    first.run()
    store.close()
    loaded = CheckpointStore(tmp_path / "state").load()
    assert loaded is not None
    assert inspect_state(loaded.state)["drift_events"] == first.inspect()["drift_events"]
    assert loaded.state["extensions"]["drift"].summary()["drift_events"]

    state = pickle.loads(pickle.dumps(loaded.state))
    resumed = Daemon(
        ListSource(rows, resume=state["source"]),
        decoder(),
        state["learner"],
        model_spec="sgd",
        model_factory=lambda: build_model("sgd", lr=0.01),
        restored=state,
        monitor=build_monitor(DriftSettings(**extra), restored=state["extensions"]["drift"]),
    )
    summary = resumed.run()
    assert summary["drift_events"] == expected["drift_events"]
    assert summary["drift"] == expected["drift"]
    assert summary["weights"] == expected["weights"]


def test_changed_options_on_resume_keep_the_history() -> None:
    X, y = drift_stream(4000, 2000, seed=1)
    monitor = build_monitor(DriftSettings())
    assert monitor is not None
    make_daemon(csv_rows(X, y), monitor).run()
    restored = pickle.loads(pickle.dumps(monitor))
    same = build_monitor(DriftSettings(), restored=restored)
    assert same is restored
    changed = build_monitor(DriftSettings(drift_detector="page-hinkley"), restored=restored)
    assert changed is not None and changed is not restored
    assert changed.summary()["drift_events"] == monitor.summary()["drift_events"]
    assert changed.summary()["drift"]["events_total"] == monitor.events_total
    assert changed.config.detector_name == "page_hinkley"
    assert changed.summary()["drift"]["state"]["signals"]["error"]["phase"] == "warmup"
    assert build_monitor(DriftSettings(drift_detector="none"), restored=restored) is None


def test_the_event_list_is_bounded_and_the_total_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drift, "MAX_EVENTS", 3)
    # The weights change every 500 rows; no warm-up or cooldown, so each change counts.
    rng = np.random.default_rng(9)
    X = rng.normal(size=(6000, 3))
    weights = rng.normal(scale=3.0, size=(12, 3))
    y = np.einsum("ij,ij->i", X, np.repeat(weights, 500, axis=0))
    config = DriftConfig(warmup=0, cooldown=0, on_drift="reset")
    summary = make_daemon(csv_rows(X, y), DriftMonitor(config)).run()
    total = summary["drift"]["events_total"]
    assert total > 3
    assert summary["drift"]["events_kept"] == 3 == len(summary["drift_events"])
    assert summary["drift"]["actions"]["reset"] == total
    assert records(summary["drift_events"]) == sorted(records(summary["drift_events"]))
    assert summary["drift_events"][-1]["record"] >= 5000


# -- options ------------------------------------------------------------------------------


@click.command()
@drift_options
def _demo(**params: Any) -> None:
    monitor = build_monitor(DriftSettings.from_params(params))
    click.echo(json.dumps(None if monitor is None else monitor.summary()["drift"]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--drift-detector", "cusum"], "'cusum' is not one of"),
        (["--on-drift", "retrain"], "'retrain' is not one of"),
        (["--drift-warmup", "-1"], "--drift-warmup must be at least 0 records"),
        (["--drift-swap-window", "5"], "--drift-swap-window must be at least 10 records"),
        (["--drift-cooldown", "x"], "'x' is not a valid integer"),
        (["--drift-features", "a,a"], "names 'a' twice"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(_demo, args)
    assert result.exit_code == 2
    assert message in result.output


def test_options_come_from_flags_and_environment() -> None:
    runner = CliRunner()
    result = runner.invoke(
        _demo,
        ["--drift-features", "a, b", "--drift-warmup", "0"],
        env={"STREAMLEARN_ON_DRIFT": "background", "STREAMLEARN_DRIFT_DETECTOR": "kswin"},
    )
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)
    assert config["detector"] == "kswin"
    assert config["on_drift"] == "background"
    assert config["signals"] == ["error", "feature:a", "feature:b"]
    assert config["warmup"] == 0
    assert json.loads(runner.invoke(_demo, ["--drift-detector", "none"]).output) is None
    refused = runner.invoke(_demo, ["--drift-detector", "none", "--on-drift", "reset"])
    assert refused.exit_code != 0
    assert "--on-drift reset needs a drift detector" in str(refused.exception)


def test_unknown_drift_features_are_refused_when_the_stream_features_are_known() -> None:
    with pytest.raises(ValueError, match="temp"):
        build_monitor(DriftSettings(drift_features="x0,temp"), known_features=["x0", "x1"])
    monitor = build_monitor(DriftSettings(drift_features="x0"), known_features=["x0", "x1"])
    assert monitor is not None and monitor.config.signals == ("error", "feature:x0")


# -- the real command line ------------------------------------------------------------------


def test_replay_with_on_drift_reset_through_the_cli(tmp_path: Path) -> None:
    X, y = drift_stream(4000, 2000, seed=1)
    path = tmp_path / "drift.csv"
    write_csv(path, X, y)
    result = cli("replay", str(path), "--on-drift", "reset", "--inspect-json")
    summary = json.loads(result.stdout)
    resets = [e for e in summary["drift_events"] if e["action"] == "reset"]
    assert len(resets) == 1
    r = resets[0]["record"]
    assert 2000 <= r < 2000 + MAX_DELAY
    assert resets[0]["detector"] == "adwin" and resets[0]["signal"] == "error"
    theta, theta0, _ = sgd_oracle(X[r + 1 :], y[r + 1 :], 0.01)
    np.testing.assert_allclose(
        [summary["weights"][f"x{j}"] for j in range(3)], theta, rtol=0, atol=1e-12
    )
    assert summary["intercept"] == pytest.approx(theta0, abs=1e-12)
    assert "drift at record" in result.stderr


class _StubLearner:
    """Just what a reset needs: a model to replace (counted)."""

    def __init__(self) -> None:
        self.model: Any = object()
        self.resets = 0

    def reset_model(self, model: Any) -> None:
        self.model = model
        self.resets += 1


def _stub_daemon() -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(
        learner=_StubLearner(), model_factory=object, warm_model_factory=None, telemetry=None
    )


def _rising_errors(seed: int = 5) -> np.ndarray:
    """Absolute errors whose scale rises, falls (not drift for the error) and rises again."""
    rng = np.random.default_rng(seed)
    scales = [0.1, 1.0, 0.2, 0.2, 3.0, 0.5, 5.0]
    return np.abs(np.concatenate([rng.normal(0, scale, 2000) for scale in scales]))


def _feed_one_by_one(
    monitor: DriftMonitor, errors: np.ndarray, daemon: Any, start: int = 0
) -> list[int]:
    """``observe`` per record (the first is record ``start``); the records where the model changed."""
    changed = []
    for index, error in enumerate(errors.tolist(), start):
        model = getattr(getattr(daemon, "learner", None), "model", None)
        monitor.observe(index, {}, error, 0.0, daemon)
        if getattr(getattr(daemon, "learner", None), "model", None) is not model:
            changed.append(index)
    return changed


def _feed_in_blocks(
    monitor: DriftMonitor,
    errors: np.ndarray,
    daemon: Any,
    *,
    as_list: bool,
    seed: int,
    start: int = 0,
    mixed: bool = False,
) -> list[int]:
    """``observe_errors`` on random blocks, as the fast path calls it; where it stopped early.

    ``mixed``: every other block goes record by record through ``observe`` (as the daemon
    does while a challenger trains, or for lines the compiled parser left to the decoder).
    """
    rng = np.random.default_rng(seed)
    stops, done = [], 0
    while done < len(errors):
        size = int(rng.integers(1, 1500))
        block = errors[done : done + size]
        if mixed and rng.integers(2):
            stops += _feed_one_by_one(monitor, block, daemon, start=start + done)
            done += len(block)
            continue
        indices = np.arange(start + done, start + done + len(block))
        seen = monitor.observe_errors(
            indices.tolist() if as_list else indices, block.tolist() if as_list else block, daemon
        )
        assert 1 <= seen <= len(block)
        if seen < len(block):
            stops.append(start + done + seen - 1)
        done += seen
    return stops


@pytest.mark.parametrize(
    ("detector", "on_drift", "as_list", "mixed"),
    [
        ("adwin", "alert", True, False),
        ("adwin", "alert", False, False),
        ("adwin", "reset", False, False),
        ("adwin", "reset", True, False),
        ("adwin", "alert", False, True),
        ("adwin", "reset", False, True),
        ("page-hinkley", "alert", True, False),
        ("page-hinkley", "reset", False, True),
    ],
)
def test_observe_errors_in_bulk_equals_observe_record_by_record(
    detector: str, on_drift: str, as_list: bool, mixed: bool
) -> None:
    # The fast path hands the monitor arrays (or lists) of errors, in blocks that split the
    # warm-up and the reference block anywhere; detections, actions and the records where
    # a reset stopped the block must not move.
    errors = _rising_errors()
    config = DriftConfig(detector=detector, warmup=100, cooldown=500, on_drift=on_drift)
    one, bulk = DriftMonitor(config), DriftMonitor(config)
    daemon_one, daemon_bulk = _stub_daemon(), _stub_daemon()
    changed = _feed_one_by_one(one, errors, daemon_one)
    stops = _feed_in_blocks(
        bulk, errors, daemon_bulk, as_list=as_list, seed=len(detector), mixed=mixed
    )
    assert one.summary() == bulk.summary()
    assert one.records_observed == bulk.records_observed == len(errors)
    events = one.summary()["drift_events"]
    assert len(events) >= 2
    assert any(event["action"] == on_drift for event in events)
    if on_drift == "reset":
        # A block stops right after each reset, and only there.
        assert stops == changed == [e["record"] for e in events if e["action"] == "reset"]
        assert daemon_one.learner.resets == daemon_bulk.learner.resets == len(changed) >= 2
    else:
        assert stops == changed == []


def test_the_adwin_watch_feeds_the_compiled_detector_and_only_rises_count() -> None:
    errors = _rising_errors()
    monitor = DriftMonitor(DriftConfig(warmup=100, cooldown=0))
    assert monitor.observe_errors(np.arange(len(errors)), errors, None) == len(errors)
    watch = monitor.error_watch
    assert type(watch.detector).__module__ == "streamlearn.drift.adwin"
    # Records 4000-5999 (scale 1.0 -> 0.2) fall: no event there, though ADWIN flags it.
    records = [event["record"] for event in monitor.summary()["drift_events"]]
    assert records and not any(4000 <= r < 4200 for r in records)
    assert any(2000 <= r < 2300 for r in records) and any(8000 <= r < 8300 for r in records)


def _river_adwin(name: str, *, rising: bool) -> Any:
    """The detector the monitor built before our ADWIN: River's."""
    from river import drift as river_drift

    assert name == "adwin"
    return river_drift.ADWIN(delta=0.002)


# Cuts in warm-up, just after the reference block, before and after a reset, right after
# a fall ADWIN flagged (record 4055: River starts anew on the next update) and mid-window.
@pytest.mark.parametrize("cut", [50, 650, 1990, 2150, 4056, 7000])
@pytest.mark.parametrize("convert", [True, False])
def test_a_monitor_pickled_with_rivers_adwin_continues_exactly(
    monkeypatch: pytest.MonkeyPatch, cut: int, convert: bool
) -> None:
    # Checkpoints written before our ADWIN hold River's detector: the restored monitor
    # continues as if nothing had changed, with River's detector converted to ours (or,
    # when its state cannot be read, with River's kept).
    errors = _rising_errors(seed=8)
    config = DriftConfig(warmup=500, cooldown=300, on_drift="reset")

    with monkeypatch.context() as patch:
        patch.setattr(detectors, "make_detector", _river_adwin)
        old = DriftMonitor(config)
        expected_changes = _feed_one_by_one(old, errors, _stub_daemon())
        expected = old.summary()
        before = DriftMonitor(config)
        _feed_one_by_one(before, errors[:cut], _stub_daemon())
        data = pickle.dumps(before)
        river_inside = before.error_watch.ready
        assert (b"river.drift" in data) == river_inside
        if cut == 4056:
            assert before.error_watch.detector.drift_detected

    if not convert:
        from streamlearn.drift.adwin import ADWIN

        monkeypatch.setattr(ADWIN, "from_river", classmethod(lambda cls, *a, **k: None))
    restored = pickle.loads(data)
    if river_inside:
        module = type(restored.error_watch.detector).__module__
        assert module == ("streamlearn.drift.adwin" if convert else "river.drift.adwin")
    changes = _feed_one_by_one(restored, errors[cut:], _stub_daemon(), start=cut)
    assert restored.summary() == expected
    assert [c for c in expected_changes if c >= cut] == changes

    # The same through observe_errors (the fast path), from the same checkpoint.
    again = pickle.loads(data)
    stops = _feed_in_blocks(again, errors[cut:], _stub_daemon(), as_list=False, seed=3, start=cut)
    assert again.summary() == expected
    assert stops == changes


def test_a_monitor_with_our_adwin_pickles_small_and_resumes_mid_window() -> None:
    errors = _rising_errors(seed=2)
    config = DriftConfig(warmup=100, cooldown=300, on_drift="reset")
    whole = DriftMonitor(config)
    _feed_in_blocks(whole, errors, _stub_daemon(), as_list=False, seed=0)
    first = DriftMonitor(config)
    _feed_in_blocks(first, errors[:5555], _stub_daemon(), as_list=False, seed=0)
    data = pickle.dumps(first)
    assert b"river" not in data and len(data) < 5000
    second = pickle.loads(data)
    _feed_one_by_one(second, errors[5555:], _stub_daemon(), start=5555)  # record by record
    assert second.summary() == whole.summary()


@pytest.mark.parametrize("warmup", [2, 7, 50])
def test_a_warm_up_fed_value_by_value_is_the_one_fed_in_arrays(warmup: int) -> None:
    # Rounds that rise (a detection, another round), fall (another round) and settle, then
    # the reference block and ADWIN, one value at a time (``update``: a keyed run's
    # monitors) and in arrays split anywhere (``update_many``).
    rng = np.random.default_rng(warmup)
    half = warmup // 2
    halves = [(half, 1.0), (warmup - half, 3.0), (half, 3.0), (warmup - half, 1.0)]
    halves += [(warmup, 1.0), (300, 1.0), (300, 4.0)]
    values = np.concatenate([level * rng.uniform(0.9, 1.1, size) for size, level in halves])
    one = detectors.SignalWatch("error", "adwin", rising=True, centre=False, warmup=warmup,
                                converge=True)  # fmt: skip
    bulk = detectors.SignalWatch("error", "adwin", rising=True, centre=False, warmup=warmup,
                                 converge=True)  # fmt: skip
    hits_one = [i for i, value in enumerate(values.tolist()) if one.update(value)]
    hits_bulk, done = [], 0
    while done < len(values):
        size = int(rng.integers(1, 2 * warmup + 2))
        hit = bulk.update_many(values[done : done + size])
        if hit >= 0:
            hits_bulk.append(done + hit)
            done += hit + 1
        else:
            done += len(values[done : done + size])
    assert hits_one == hits_bulk and hits_one  # a rise in the warm-up was flagged
    assert one.state() == bulk.state() and one.warmup_rounds > 1
    assert (one._first_half, one._second_half, one.reference) == (
        bulk._first_half,
        bulk._second_half,
        bulk.reference,
    )


def test_warmup_halves_are_the_same_bits_in_blocks_of_any_size() -> None:
    # A keyed River run's monitors hear of 32 errors at a time (``keys.held``), most of
    # them in the warm-up: its rounds' half sums, added a block at a time, must be the
    # sums of the loop record by record, to the last bit, wherever a block splits them.
    rng = np.random.default_rng(5)
    for trial in range(60):
        errors = rng.random(int(rng.integers(1, 2500))) * rng.choice([1e-3, 1.0, 1e3])
        config = DriftConfig(warmup=int(rng.choice([5, 50, 500])))
        one, bulk = DriftMonitor(config), DriftMonitor(config)
        _feed_one_by_one(one, errors, _stub_daemon())
        done = 0
        while done < len(errors):
            block = errors[done : done + int(rng.integers(1, 40))].tolist()
            assert bulk.observe_errors(range(done, done + len(block)), block, None) == len(block)
            done += len(block)
        watches = one.error_watch, bulk.error_watch
        assert len({(w._first_half, w._second_half, w.warmup_rounds) for w in watches}) == 1
        assert one.summary() == bulk.summary(), trial
