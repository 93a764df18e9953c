"""``streamlearn.keys.pickling``: a key's model pickled so that it comes back with its plain
objects' attributes set one by one. The same model as a plain pickle's, to the last bit and
reference. (What it is for, speed, is measured in bench/bench_keys.py, not asserted: Python
shows no sign of whether an object's attributes share its class's key table.)"""

from __future__ import annotations

import pickle
import random

import pytest
from river import linear_model, preprocessing, tree

from streamlearn.keys.pickling import dumps
from streamlearn.learner import Learner


def _stream(count: int, seed: int = 7) -> list[tuple[dict[str, float], float]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(3, 2), "c": rng.uniform(-1, 1)}
        rows.append((x, 1.5 * x["a"] - 0.5 * x["b"] + rng.gauss(0, 0.1)))
    return rows


def _planned_pipeline() -> object:
    model = preprocessing.StandardScaler() | linear_model.LinearRegression()
    model._build_plan()  # as keys.build plans it before copying
    return model


@pytest.mark.parametrize(
    "make",
    [_planned_pipeline, lambda: tree.HoeffdingTreeRegressor(grace_period=50)],
    ids=["scaled-linear", "tree"],
)
def test_a_model_from_dumps_learns_as_one_from_pickle(make) -> None:
    """Predictions of every record bit for bit, and the learned models' plain pickles equal."""
    model = make()
    for x, y in _stream(50):
        model.learn_one(x, y)
    ours, theirs = pickle.loads(dumps(model)), pickle.loads(pickle.dumps(model, 5))
    for x, y in _stream(2000, seed=8):
        assert ours.predict_one(x).hex() == theirs.predict_one(x).hex()
        ours.learn_one(x, y)
        theirs.learn_one(x, y)
    assert pickle.dumps(ours, 5) == pickle.dumps(theirs, 5)


def test_references_within_the_model_stay_shared() -> None:
    """The pipeline's plan names its own steps, not copies; a cycle comes back a cycle."""
    model = _planned_pipeline()
    model.loop = model  # type: ignore[attr-defined]
    back = pickle.loads(dumps(model))
    assert back._plan[0][1] is back.steps["StandardScaler"]
    assert back._plan[1][1] is back.steps["LinearRegression"]
    assert back.loop is back


def test_objects_with_their_own_pickling_are_pickled_as_they_ask() -> None:
    """A learner (``__getstate__``/``__setstate__``) holding a River model: the same learner
    back, its model predicting as the original's."""
    learner = Learner(_planned_pipeline(), rolling_window=5)
    for x, y in _stream(30):
        learner.step(x, y)
    back = pickle.loads(dumps(learner))
    assert back.summary() == learner.summary()
    assert back.recent_yhat == learner.recent_yhat
    x = {"a": 0.3, "b": 1.0, "c": -0.2}
    assert back.model.predict_one(x) == learner.model.predict_one(x)
