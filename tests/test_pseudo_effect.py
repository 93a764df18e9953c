"""The daemon measures what pseudo-labels do: a twin without them, and a guard that acts on it.

One case where pseudo-labels help (River's Friedman, a data-starved sgd, a kNN teacher) and
one where they hurt (River's TrumpApproval, a linear student, an unscaled kNN teacher): the
guard leaves the first on and pauses the second, and the model served at the end has a
labeled prequential error within the guard's margin of the better of the two runs.
"""

from __future__ import annotations

import itertools
import logging
import random
from typing import Any

import numpy as np
import orjson
import pytest

from streamlearn.json_decoder import JsonDecoder
from streamlearn.labels.build import build_pseudo
from streamlearn.labels.settings import PseudoSettings
from streamlearn.learner import Learner
from streamlearn.loop.daemon import Daemon, RunOptions
from streamlearn.models.registry import build_model
from streamlearn.testing import ListSource

MARGIN = 0.05


def river_lines(dataset: str, labeled: float, seed: int = 0) -> list[bytes]:
    """JSON lines of a River data set with about ``1 - labeled`` of the targets blanked."""
    from river import datasets
    from river.datasets import synth

    rows: Any = (
        datasets.TrumpApproval()
        if dataset == "trump"
        else itertools.islice(synth.Friedman(seed=seed), 3000)
    )
    rng = random.Random(seed)
    lines = []
    for x, y in rows:
        target = y if rng.random() < labeled else None
        lines.append(orjson.dumps({"x": {str(k): float(v) for k, v in x.items()}, "y": target}))
    return lines


def replay(
    lines: list[bytes], spec: str, pseudo: dict[str, Any] | None, batch_size: int = 1000
) -> tuple[Daemon, dict[str, Any]]:
    settings = PseudoSettings(**pseudo) if pseudo is not None else PseudoSettings()
    labeler, join = build_pseudo(settings, model_spec=spec, lr=0.01, restored=None)
    daemon = Daemon(
        ListSource(lines),
        JsonDecoder(),
        Learner(build_model(spec, lr=0.01)),
        model_spec=spec,
        pseudo=labeler,
        join=join,
        options=RunOptions(batch_size=batch_size),
    )
    return daemon, daemon.run()


def three_runs(
    lines: list[bytes], spec: str, pseudo: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Without pseudo-labels, with them and no guard, with them and the guard."""
    pseudo = {"pseudo_label": True, "pseudo_guard_margin": MARGIN, **pseudo}
    _, plain = replay(lines, spec, None)
    _, unguarded = replay(lines, spec, {**pseudo, "pseudo_guard": False})
    _, guarded = replay(lines, spec, pseudo)
    return plain, unguarded, guarded


def check_twin_is_the_run_without(plain: dict[str, Any], unguarded: dict[str, Any]) -> None:
    """The twin learned exactly what a run without pseudo-labels learns, on the same labels."""
    effect = unguarded["pseudo_labels"]["effect"]
    assert effect["measured"] == plain["records_learned"] == unguarded["records_learned"]
    assert effect["mae_with"] == pytest.approx(unguarded["metrics"]["mae"], rel=1e-12)
    assert effect["mae_without"] == pytest.approx(plain["metrics"]["mae"], rel=1e-12)
    assert effect["mae_difference"] == pytest.approx(
        effect["mae_with"] - effect["mae_without"], rel=1e-12
    )


def served_within_margin(plain: dict[str, Any], unguarded: dict[str, Any], served: float) -> None:
    better = min(plain["metrics"]["mae"], unguarded["metrics"]["mae"])
    assert served <= (1 + MARGIN) * better


def test_pseudo_labels_that_help_stay_on():
    lines = river_lines("friedman", labeled=0.1)
    spec = "sgd"
    plain, unguarded, guarded = three_runs(
        lines,
        spec,
        {
            "teacher": "StandardScaler | KNNRegressor",
            "pseudo_threshold": 0.5,
            "pseudo_guard_records": 100,
        },
    )
    check_twin_is_the_run_without(plain, unguarded)
    effect = unguarded["pseudo_labels"]["effect"]
    assert effect["mae_difference"] < 0  # they help
    assert unguarded["metrics"]["mae"] < plain["metrics"]["mae"]
    guard = guarded["pseudo_labels"]["effect"]["guard"]
    assert guard["state"] == "on" and guard["pauses"] == 0
    assert guarded["metrics"] == unguarded["metrics"]  # the guard changed nothing
    served_within_margin(plain, unguarded, guarded["metrics"]["mae"])


def test_pseudo_labels_that_hurt_are_paused_and_the_twin_serves(caplog: Any):
    lines = river_lines("trump", labeled=0.3)
    spec = "StandardScaler | LinearRegression"
    knobs = {"teacher": "KNNRegressor", "pseudo_guard_records": 100}
    with caplog.at_level(logging.WARNING, logger="streamlearn.labels.effect"):
        plain, unguarded, guarded = three_runs(lines, spec, knobs)
    check_twin_is_the_run_without(plain, unguarded)
    effect = unguarded["pseudo_labels"]["effect"]
    assert effect["mae_with"] > (1 + MARGIN) * effect["mae_without"]  # they hurt
    guarded_labels = guarded["pseudo_labels"]
    guard = guarded_labels["effect"]["guard"]
    assert guard["pauses"] >= 1
    assert guard["events"][0]["action"] == "pause"
    assert guarded_labels["rejected_by_reason"]["guard_paused"] > 0
    assert guarded_labels["accepted"] < unguarded["pseudo_labels"]["accepted"]
    assert any("pseudo-labels hurt" in r.getMessage() for r in caplog.records)
    served_within_margin(plain, unguarded, guarded["metrics"]["mae"])
    # The guard judges label by label: the loop's batches change nothing.
    _, one_by_one = replay(lines, spec, {"pseudo_label": True, **knobs}, batch_size=1)
    assert one_by_one["pseudo_labels"] == guarded["pseudo_labels"]
    assert one_by_one["metrics"] == guarded["metrics"]


def test_late_labels_score_the_twin_with_its_prediction_at_feature_time():
    """Every label comes 40 records after its features: both models are scored with the
    predictions they made then, so the twin's error is a run without pseudo-labels'."""
    rng = np.random.default_rng(3)
    X = rng.uniform(-2, 2, size=(1200, 2))
    y = 2 * X[:, 0] - X[:, 1] + 1 + 0.1 * rng.normal(size=1200)
    lines = []
    for start in range(0, 1240, 40):
        for i in range(start, min(start + 40, 1200)):
            x = {"a": float(X[i, 0]), "b": float(X[i, 1])}
            labeled = i % 10 == 0
            lines.append(
                orjson.dumps({"id": f"r{i}", "x": x, "y": float(y[i]) if labeled else None})
            )
        for i in range(start - 40, start):
            if i >= 0 and i % 10 != 0 and i % 3 == 0:  # a third of the rest: a late label
                lines.append(orjson.dumps({"id": f"r{i}", "y": float(y[i])}))
    spec = "sgd"
    _, plain = replay(lines, spec, {"label_ttl": "1000r"})
    pseudo = {
        "pseudo_label": True,
        "teacher": "StandardScaler | KNNRegressor",
        "label_ttl": "1000r",
    }
    pseudo["pseudo_guard"] = False
    _, run = replay(lines, spec, pseudo)
    assert run["pending_labels"]["joined"] == plain["pending_labels"]["joined"] > 300
    assert run["pseudo_labels"]["accepted"] > 0
    check_twin_is_the_run_without(plain, run)


def test_inspect_and_prometheus_report_both_errors():
    from streamlearn.observe.face import make_telemetry

    lines = river_lines("trump", labeled=0.3)
    knobs = {"pseudo_label": True, "teacher": "KNNRegressor", "pseudo_guard_records": 100}
    daemon, summary = replay(lines, "StandardScaler | LinearRegression", knobs)
    effect = summary["pseudo_labels"]["effect"]
    telemetry = make_telemetry(daemon, daemon.source, None)

    def value(name: str, **labels: str) -> float | None:
        return telemetry.value(name, **labels)

    for model, key in (
        ("with_pseudo_labels", "mae_with"),
        ("without_pseudo_labels", "mae_without"),
    ):
        assert (
            value("streamlearn_pseudo_effect_mae", model=model, window="cumulative") == effect[key]
        )
        rolling = value("streamlearn_pseudo_effect_mae", model=model, window="rolling")
        assert rolling == effect["rolling_" + key]
    difference = value("streamlearn_pseudo_effect_mae_difference", window="cumulative")
    assert difference == effect["mae_difference"]
    paused = effect["guard"]["state"] == "paused"
    assert value("streamlearn_pseudo_guard_paused") == float(paused)
    assert value("streamlearn_pseudo_guard_pauses_total") == effect["guard"]["pauses"] >= 1
