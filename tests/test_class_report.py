"""A classifier's learning curves and ``streamlearn report`` of a classification run.

The accuracy and log-loss curves a ``ClassLearner`` keeps equal a plain loop over the stream's
0/1 errors and losses at every point (record by record, and a block at a time as the compiled
path adds them); the report draws both, with drift marks and a warm start's baseline on each,
and writes a real PNG/SVG of a replay whose last points are ``inspect --json``'s numbers.
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from river import linear_model, optim

from streamhelpers import cli, inspect_json
from streamlearn.classify.learner import ClassLearner
from streamlearn.classify.metrics import score
from streamlearn.classify.space import ClassSpace
from streamlearn.curve import Curve
from streamlearn.observe.report import (
    BASELINE_GID,
    DRIFT_GID,
    CurveRun,
    curves_from_state,
    draw_curves,
    load_curves,
)

WINDOW = 50


def _stream(n: int, seed: int = 2) -> tuple[list[dict[str, float]], list[str]]:
    """A yes/no stream whose rule flips half way (the model must relearn it)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i, (a, b) in enumerate(rng.normal(size=(n, 2)).tolist()):
        sign = 1.0 if i < n // 2 else -1.0
        xs.append({"a": a, "b": b})
        ys.append("yes" if sign * (a - b) + 0.3 * rng.normal() > 0 else "no")
    return xs, ys


def _learner(max_points: int = 4096) -> ClassLearner:
    space = ClassSpace(binary=True)
    learner = ClassLearner(
        linear_model.LogisticRegression(optimizer=optim.SGD(0.1)), space, rolling_window=WINDOW
    )
    learner.curve, learner.loss_curve = Curve(max_points), Curve(max_points)
    return learner


def _expected(losses: list[float], right: list[bool], n: int) -> tuple[float, ...]:
    """(rolling accuracy, cumulative accuracy, rolling loss, cumulative loss) after n records."""
    last = slice(max(0, n - WINDOW), n)
    return (
        float(np.mean(right[last])),
        float(np.mean(right[:n])),
        float(np.mean(losses[last])),
        float(np.mean(losses[:n])),
    )


def test_the_curves_are_a_plain_loop_over_the_stream_record_by_record() -> None:
    xs, ys = _stream(700)
    learner = _learner(max_points=64)  # thinned five times over 700 records
    losses, right = [], []
    for x, label in zip(xs, ys, strict=True):
        code = learner.classes.encode(label)
        assert isinstance(code, float)
        proba = learner.step(x, code)
        assert proba is not None  # River's LogisticRegression answers 50/50 when fresh
        p_true = min(max(proba[int(code)], 1e-15), 1 - 1e-15)
        losses.append(-math.log(p_true))
        right.append(score(int(code), proba, binary=True)[1] == int(code))
    accuracy, loss = learner.curve.points, learner.loss_curve.points
    assert [p[0] for p in accuracy] == [p[0] for p in loss]  # the same points, thinned alike
    assert learner.curve.stride == learner.loss_curve.stride == 16
    assert len(accuracy) == 700 // 16
    for (n, rolling_acc, cumulative_acc), (_, rolling_loss, cumulative_loss) in zip(
        accuracy, loss, strict=True
    ):
        want = _expected(losses, right, n)
        assert (rolling_acc, cumulative_acc) == pytest.approx(want[:2], rel=1e-12)
        assert (rolling_loss, cumulative_loss) == pytest.approx(want[2:], rel=1e-12)


def test_a_block_adds_the_loss_points_record_by_record_would() -> None:
    """As the compiled block path does: the metrics and the window take the block at once,
    ``add_loss_points`` its points from the mark taken before."""
    xs, ys = _stream(400, seed=8)
    one, block = _learner(max_points=16), _learner(max_points=16)
    given = []
    for x, label in zip(xs, ys, strict=True):
        code = one.classes.encode(label)
        assert isinstance(code, float)
        given.append((int(code), one.step(x, code)))
    for (code, _), x in zip(given[:130], xs[:130], strict=True):
        block.step(x, float(code))  # the first records, record by record (same model: same p)
    start = block.loss_mark()
    losses = []
    for code, proba in given[130:]:
        assert proba is not None
        scored = score(code, proba, binary=True)
        block.metrics.update(*scored)
        block.window.add(*scored)
        losses.append(scored[2])
    block.records_learned = 400
    block.add_loss_points(start, np.array(losses))
    assert block.loss_curve.stride == one.loss_curve.stride
    assert [p[0] for p in block.loss_curve.points] == [p[0] for p in one.loss_curve.points]
    np.testing.assert_allclose(block.loss_curve.points, one.loss_curve.points, rtol=1e-12)


def test_the_loss_curve_is_checkpointed_and_restored() -> None:
    learner = _learner()
    xs, ys = _stream(30)
    for x, label in zip(xs, ys, strict=True):
        code = learner.classes.encode(label)
        assert isinstance(code, float)
        learner.step(x, code)
    snapshot = learner.export_prequential(copy=True)
    assert snapshot.loss_curve.points == learner.loss_curve.points
    learner.loss_curve = Curve()
    learner.import_prequential(snapshot)
    assert learner.loss_curve.points == snapshot.loss_curve.points
    assert learner.loss_curve is not snapshot.loss_curve
    restored = pickle.loads(pickle.dumps(learner))
    assert restored.loss_curve.points == learner.loss_curve.points
    older = learner.__dict__.copy()
    del older["loss_curve"]  # a learner pickled before the loss curve existed
    fresh = ClassLearner.__new__(ClassLearner)
    fresh.__setstate__(older)
    assert len(fresh.loss_curve) == 0


class Drifts:
    """What the report reads of a drift monitor (``curves.DriftSummary``)."""

    def __init__(self, *events: dict[str, Any]) -> None:
        self.events = list(events)

    def summary(self) -> Mapping[str, Any]:
        return {"drift_events": self.events}


def test_the_report_draws_accuracy_and_log_loss_with_drift_marks() -> None:
    xs, ys = _stream(600)
    learner = _learner()
    for x, label in zip(xs, ys, strict=True):
        code = learner.classes.encode(label)
        assert isinstance(code, float)
        learner.step(x, code)
    state = {
        "model_spec": "LogisticRegression",
        "learner": learner,
        "extensions": {"drift": Drifts({"records_learned": 320, "action": "reset"})},
    }
    accuracy, loss = curves_from_state(state, "clicks")
    assert (accuracy.metric, loss.metric) == ("accuracy", "log_loss")
    assert accuracy.rolling_mae[-1] == learner.rolling_summary()["accuracy"]
    assert loss.rolling_mae[-1] == pytest.approx(learner.rolling_summary()["log_loss"], rel=1e-12)
    # The flip half way shows: accuracy falls, the loss rises, then both recover.
    assert min(accuracy.rolling_mae[300:400]) < 0.6 < accuracy.rolling_mae[299]
    assert max(loss.rolling_mae[300:400]) > loss.rolling_mae[299]
    assert accuracy.rolling_mae[-1] > 0.8
    warm = CurveRun(
        "warm", [1, 600], [0.5, 0.7], window=WINDOW, metric="accuracy", baseline_mae=0.75
    )
    figure = draw_curves([accuracy, loss, warm])
    top, bottom = figure.axes[:2]
    assert len(figure.axes) == 2
    assert top.get_ylabel() == f"accuracy over the last {WINDOW} records"
    assert bottom.get_ylabel() == f"log loss over the last {WINDOW} records"
    assert (
        top.get_title() == f"Prequential accuracy and log loss (rolling window of {WINDOW} records)"
    )
    assert bottom.get_xlabel() == "records learned" and top.get_xlabel() == ""
    for axes, run in ((top, accuracy), (bottom, loss)):
        line = next(line for line in axes.lines if line.get_label() == "clicks")
        np.testing.assert_array_equal(line.get_ydata(), run.rolling_mae)
        marks = [line for line in axes.lines if line.get_gid() == DRIFT_GID]
        assert [(mark.get_xdata()[0], mark.get_marker()) for mark in marks] == [(320.0, "v")]
        assert marks[0].get_color() == line.get_color()  # the run's colour on both plots
    assert [line.get_ydata()[0] for line in top.lines if line.get_gid() == BASELINE_GID] == [0.75]
    assert top.get_ylim() == (0.0, 1.02)
    assert draw_curves([accuracy, loss], log_y=True).axes[1].get_yscale() == "log"
    assert draw_curves([accuracy, loss], log_y=True).axes[0].get_yscale() == "linear"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "suffix"),
    [
        ("LogisticRegression", "jsonl"),  # JSON Lines: record by record
        ("LogisticRegression", "csv"),  # River's rows blocks (ClassBlockLearner.score)
        ("logistic", "csv"),  # the compiled kernels
        ("softmax", "csv"),
    ],
)
def test_report_of_a_replay_writes_both_curves(tmp_path: Path, model: str, suffix: str) -> None:
    xs, ys = _stream(2000, seed=5)
    data = tmp_path / f"clicks.{suffix}"
    if suffix == "csv":
        rows = (f"{x['a']!r},{x['b']!r},{y}\n" for x, y in zip(xs, ys, strict=True))
        data.write_text("a,b,y\n" + "".join(rows))
    else:
        data.write_text(
            "".join(json.dumps({**x, "y": y}) + "\n" for x, y in zip(xs, ys, strict=True))
        )
    state = tmp_path / "state"
    cli(
        "replay", str(data), "--model", model, "--state-dir", str(state),
        "--rolling-window", "200", "--drift-detector", "none",
    )  # fmt: skip
    summary = inspect_json(state)
    runs = load_curves(state)
    loss_name = "cross_entropy" if model == "softmax" else "log_loss"
    assert [run.metric for run in runs] == ["accuracy", loss_name]
    accuracy, loss = runs
    learned = summary["records_learned"]
    assert accuracy.records[-1] == learned  # no thinning at 2000 points
    np.testing.assert_array_equal(loss.records, accuracy.records)  # a loss at every point
    assert accuracy.rolling_mae[-1] == summary["rolling_metrics"]["accuracy"]
    assert loss.rolling_mae[-1] == pytest.approx(summary["rolling_metrics"][loss_name], rel=1e-9)
    out = tmp_path / "report.svg"
    result = cli("report", str(state), "--out", str(out))
    assert result.stdout.strip() == str(out)
    svg = out.read_text()
    assert svg.startswith("<?xml") and "<svg" in svg
    assert "Prequential accuracy and" in svg or "Prequential" in svg
    png = tmp_path / "report.png"
    cli("report", str(state), "--out", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_replays_drift_is_marked_on_both_curves(tmp_path: Path) -> None:
    xs, ys = _stream(4000, seed=5)  # the rule flips after record 2000
    data = tmp_path / "flip.csv"
    rows = (f"{x['a']!r},{x['b']!r},{y}\n" for x, y in zip(xs, ys, strict=True))
    data.write_text("a,b,y\n" + "".join(rows))
    state = tmp_path / "state"
    cli(
        "replay", str(data), "--model", "logistic", "--state-dir", str(state), "--on-drift", "reset"
    )
    events = inspect_json(state)["drift_events"]
    assert events and all(event["action"] == "reset" for event in events)
    accuracy, loss = load_curves(state)
    assert list(accuracy.drift_at) == list(loss.drift_at) and len(accuracy.drift_at) == len(events)
    assert 2000 < accuracy.drift_at[0] < 2300  # found soon after the flip
    assert list(accuracy.drift_actions) == list(loss.drift_actions) == ["reset"] * len(events)
    figure = draw_curves([accuracy, loss])
    for axes in figure.axes[:2]:
        marks = [line for line in axes.lines if line.get_gid() == DRIFT_GID]
        assert [mark.get_xdata()[0] for mark in marks] == list(accuracy.drift_at)
        assert {mark.get_marker() for mark in marks} == {"v"}
