"""``score_remember``: one scored record's metrics and rolling window, in C and as its Python
specification (``streamlearn.fast.remember``), bit for bit; and the learner that calls it,
against River's metrics and a learner running the specification."""

from __future__ import annotations

import math
import os
import random
import struct
from array import array

import pytest
from river import linear_model, metrics, preprocessing

from streamlearn import learner as learner_module
from streamlearn.fast import remember
from streamlearn.learner import Learner

try:
    from streamlearn.fast import _kernels
except ImportError:  # a source tree never installed; pip builds it, so never under CI
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("streamlearn.fast._kernels is not built", allow_module_level=True)


def _bits(values: list[float] | array[float] | tuple[float, ...]) -> list[bytes]:
    return [struct.pack("<d", float(v)) for v in values]


def _pairs(rng: random.Random, count: int) -> list[tuple[float, float]]:
    """Targets and predictions of every scale the learner lets through (both below 1e150)."""
    pairs = []
    for _ in range(count):
        scale = 10.0 ** rng.choice([-300, -5, 0, 0, 0, 3, 60, 149])
        y = rng.gauss(0.0, 1.0) * scale
        yhat = y + rng.gauss(0.0, 1.0) * 10.0 ** rng.choice([-16, -3, 0, 2])
        pairs.append((rng.choice([y, -0.0, 0.0, y]), yhat if abs(yhat) < 1e150 else 0.0))
    return pairs


@pytest.mark.parametrize("size", [1, 2, 7, 1000])
def test_the_compiled_step_equals_its_specification_bit_for_bit(size: int) -> None:
    states = []
    for step in (_kernels.score_remember, remember.score_remember):
        hot = array("d", [0.0] * 8)
        ys, yhats = array("d", [0.0] * size), array("d", [0.0] * size)
        state: tuple[int, int, float] = (0, 0, 0.0)
        trail = []
        for y, yhat in _pairs(random.Random(size), 3 * size + 50):
            state = step(hot, ys, yhats, y, yhat, *state)
            trail.append((state[0], state[1], struct.pack("<d", state[2])))
        states.append((trail, _bits(hot), _bits(ys), _bits(yhats)))
    assert states[0] == states[1]
    trail, _, _, _ = states[0]
    assert trail[-1][1] == size  # the ring filled, then wrapped


def test_the_metrics_it_keeps_are_rivers() -> None:
    """The fields in ``hot`` are River's MAE, RMSE and R2 after the same pairs, to the bit."""
    mae, rmse, r2 = metrics.MAE(), metrics.RMSE(), metrics.R2()
    hot, ys, yhats = array("d", [0.0] * 8), array("d", [0.0] * 5), array("d", [0.0] * 5)
    state: tuple[int, int, float] = (0, 0, 0.0)
    for y, yhat in _pairs(random.Random(3), 500):
        state = _kernels.score_remember(hot, ys, yhats, y, yhat, *state)
        for metric in (mae, rmse, r2):
            metric.update(y, yhat)
    assert _bits(hot) == _bits(
        [
            mae._mean.n,
            mae._mean._mean,
            rmse._mean.n,
            rmse._mean._mean,
            r2._y_var.mean.n,
            r2._y_var.mean._mean,
            r2._y_var._S,
            r2._residual_sum_of_squares,
        ]
    )
    assert state[2] == pytest.approx(sum(abs(a - b) for a, b in zip(ys, yhats, strict=True)))


def test_a_wrong_call_raises_and_writes_nothing() -> None:
    hot, ys, yhats = array("d", [0.0] * 8), array("d", [0.0] * 4), array("d", [0.0] * 4)
    bad = [
        ((hot, ys, yhats, 1.0, 0.0, 4, 0, 0.0), ValueError),  # slot past the ring
        ((hot, ys, yhats, 1.0, 0.0, -1, 0, 0.0), ValueError),
        ((hot, ys, yhats, 1.0, 0.0, 0, 5, 0.0), ValueError),  # longer than the ring
        ((hot, ys, yhats, 1.0, 0.0, 0, -1, 0.0), ValueError),
        ((array("d", [0.0] * 7), ys, yhats, 1.0, 0.0, 0, 0, 0.0), ValueError),  # short state
        ((hot, ys, array("d", [0.0] * 3), 1.0, 0.0, 0, 0, 0.0), ValueError),  # rings differ
        ((hot, array("d"), array("d"), 1.0, 0.0, 0, 0, 0.0), ValueError),  # no ring
        ((hot, ys, yhats, "1", 0.0, 0, 0, 0.0), TypeError),
        ((hot, ys, yhats, 1.0, 0.0, 0.5, 0, 0.0), TypeError),
        ((array("q", [0] * 8), ys, yhats, 1.0, 0.0, 0, 0, 0.0), TypeError),  # not doubles
        ((bytes(64), ys, yhats, 1.0, 0.0, 0, 0, 0.0), BufferError),  # read-only
        ((hot, ys, yhats, 1.0, 0.0, 0, 0), TypeError),  # 7 arguments
    ]
    for args, error in bad:
        with pytest.raises(error):
            _kernels.score_remember(*args)
    assert list(hot) == [0.0] * 8 and list(ys) == [0.0] * 4 and list(yhats) == [0.0] * 4


def _replay(monkeypatch: pytest.MonkeyPatch, step: object) -> Learner:
    monkeypatch.setattr(learner_module, "remember_step", lambda: step)
    rng = random.Random(11)
    model = preprocessing.StandardScaler() | linear_model.LinearRegression()
    learner = Learner(model, rolling_window=50)
    for _ in range(1234):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 3)}
        learner.step(x, 2.0 * x["a"] - x["b"] + rng.gauss(0, 0.1))
    assert learner_module._remember is step  # the step given did the scoring
    return learner


def test_a_learner_on_the_compiled_step_equals_one_on_the_specification(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Metrics, window and learning curve of 1,234 records (the ring wraps 24 times, the curve
    thins), the compiled step against the Python one."""
    compiled = _replay(monkeypatch, _kernels.score_remember)
    python = _replay(monkeypatch, remember.score_remember)
    for ours in (compiled, python):
        assert ours.records_learned == 1234
    assert compiled.summary() == python.summary()
    assert _bits(compiled.recent_y) == _bits(python.recent_y)
    assert _bits(compiled.recent_yhat) == _bits(python.recent_yhat)
    assert len(compiled.recent_y) == 50
    assert compiled.curve.points == python.curve.points
    assert compiled.curve.points[-1][0] == 1234 // compiled.curve.stride * compiled.curve.stride
    rolling = sum(abs(a - b) for a, b in zip(python.recent_y, python.recent_yhat, strict=True))
    assert math.isclose(compiled.rolling_summary()["mae"] or 0.0, rolling / 50, rel_tol=1e-12)
