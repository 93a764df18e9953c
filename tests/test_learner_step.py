"""``Learner.step``'s one-pass bookkeeping keeps the state ``update_all`` then ``_remember`` keep."""

from __future__ import annotations

import pickle
import random

import pytest
from river import linear_model, preprocessing

from streamlearn.learner import Learner
from streamlearn.metrics import FIELDS
from streamlearn.models.sgd import SGDRegressor


def _state(learner: Learner) -> tuple[object, ...]:
    state = learner.export_prequential(copy=True)
    curve = state.curve
    return (
        state.records_learned,
        state.metrics,
        state.window_y.tobytes(),
        state.window_yhat.tobytes(),
        state.window_next,
        state.window_len,
        state.abs_sum,
        curve.stride,
        curve._records.tobytes(),
        curve._rolling.tobytes(),
        curve._cumulative.tobytes(),
    )


def _pickled(learner: Learner) -> bytes:
    """The learner's pickled state but its model (two River models learned alike can pickle
    apart: one also predicted)."""
    state = learner.__getstate__()
    del state["_model"]
    return pickle.dumps(state)


@pytest.mark.parametrize(
    "make",
    [
        lambda: SGDRegressor(lr=0.01),  # fused: predicts and learns in one call
        lambda: preprocessing.StandardScaler() | linear_model.LinearRegression(),
    ],
)
def test_step_keeps_the_bits_of_step_with_prediction(make):
    # 4,500 records: a window of 7 wraps, is re-summed every 7th record, and the curve
    # (4,096 points at most) thins once; the oracle scores each prediction step made.
    # The metrics are read now and then (a summary, a pickle round trip: a key spilled and
    # read back) between steps, as a run reads them.
    rng = random.Random(7)
    learner, oracle = Learner(make(), rolling_window=7), Learner(make(), rolling_window=7)
    for at in range(4500):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 3)}
        y = 2.0 * x["a"] - x["b"] + rng.gauss(0, 0.5)
        yhat = learner.step(x, y)
        assert yhat is not None
        oracle.step_with_prediction(x, y, yhat)
        if at % 1000 == 999:
            assert learner.summary() == oracle.summary()
        if at % 1500 == 1499:
            assert _pickled(learner) == _pickled(oracle)
            learner = pickle.loads(pickle.dumps(learner))
    assert learner.curve.stride == 2
    assert _state(learner) == _state(oracle)
    assert learner.summary() == oracle.summary()
    assert learner.rolling_summary() == oracle.rolling_summary()


def test_the_metrics_fields_are_in_the_order_step_scores_them():
    # Learner._score_and_remember scores the fields by their place in this layout.
    assert FIELDS == (
        "mae.n", "mae.mean", "rmse.n", "rmse.mean", "r2.var_n", "r2.var_mean", "r2.var_s", "r2.rss"
    )  # fmt: skip
