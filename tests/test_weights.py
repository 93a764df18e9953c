"""Per-record weights reach the model through a pipeline, or are applied as the run said at start."""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Any

import numpy as np
import pytest
from river import base, compose, linear_model, preprocessing

from streamlearn.labels.build import build_pseudo
from streamlearn.labels.settings import PseudoSettings
from streamlearn.learner import Learner
from streamlearn.models.registry import build_model
from streamlearn.models.weights import takes_weight


def records(n: int, seed: int = 0) -> list[tuple[dict[Hashable, Any], float]]:
    rng = np.random.default_rng(seed)
    X = rng.normal(loc=[3.0, -1.0], scale=[2.0, 0.5], size=(n, 2))
    y = 2 * X[:, 0] - 3 * X[:, 1] + 1 + 0.1 * rng.normal(size=n)
    return [({"a": float(a), "b": float(b)}, float(t)) for (a, b), t in zip(X, y, strict=True)]


def test_a_weighted_learn_through_a_pipeline_is_the_estimator_learned_with_that_weight():
    learner = Learner(build_model("StandardScaler | LinearRegression"))
    scaler, estimator = preprocessing.StandardScaler(), linear_model.LinearRegression()
    for i, (x, y) in enumerate(records(300)):
        w = 0.2 if i % 3 else 1.0
        learner.learn_weighted(x, y, w)
        scaler.learn_one(x)  # the transformer learns unweighted...
        estimator.learn_one(scaler.transform_one(x), y, w=w)  # ...the estimator weighted
    learned = learner.model["LinearRegression"]
    assert learned.weights.keys() == estimator.weights.keys()
    for name, value in estimator.weights.items():
        assert learned.weights[name] == pytest.approx(value, abs=1e-12)
    assert learned.intercept == pytest.approx(estimator.intercept, abs=1e-12)
    assert learner.pseudo_learned == 300
    # Not what full weight would have learned.
    full = build_model("StandardScaler | LinearRegression")
    for x, y in records(300):
        full.learn_one(x, y)
    assert full["LinearRegression"].weights["a"] != pytest.approx(learned.weights["a"], abs=1e-6)


class CountingRegressor(base.Regressor):
    """A regressor without sample weights that counts what it learns."""

    def __init__(self) -> None:
        self.learned = 0

    def learn_one(self, x: dict[Hashable, Any], y: float) -> None:
        self.learned += 1

    def predict_one(self, x: dict[Hashable, Any]) -> float:
        return 0.0


@pytest.mark.parametrize("wrap", [False, True], ids=["alone", "in-a-pipeline"])
def test_a_model_without_weights_is_never_learned_at_full_weight_silently(wrap: bool):
    counter = CountingRegressor()
    model = compose.Pipeline(preprocessing.StandardScaler(), counter) if wrap else counter
    learner = Learner(model)
    for x, y in records(2000):
        learner.learn_weighted(x, y, 0.2)
    # Each record is learned at full weight with probability 0.2 (a seeded draw).
    assert 300 < counter.learned < 500
    assert learner.pseudo_learned == counter.learned
    again = Learner(compose.Pipeline(preprocessing.StandardScaler(), CountingRegressor()))
    for x, y in records(2000):
        again.learn_weighted(x, y, 0.2)
    assert again.pseudo_learned == counter.learned  # reproducible


@pytest.mark.parametrize(
    ("spec", "weighted"),
    [
        ("sgd", True),
        ("mlp", True),
        ("StandardScaler | LinearRegression", True),
        ("HoeffdingTreeRegressor", True),
        ("StandardScaler | KNNRegressor", False),
        ("ARFRegressor", False),  # takes **kwargs, but ignores a w in them
        ("PARegressor", False),
    ],
)
def test_which_models_take_a_weight(spec: str, weighted: bool):
    assert takes_weight(build_model(spec)) is weighted


def test_the_run_says_at_start_how_pseudo_label_weights_are_applied(caplog: Any):
    settings = PseudoSettings(pseudo_label=True, pseudo_weight=0.2)
    spec = "StandardScaler | KNNRegressor"
    with caplog.at_level(logging.INFO, logger="streamlearn.labels.build"):
        build_pseudo(settings, model_spec=spec, lr=0.01, restored=None, model=build_model(spec))
    (note,) = [r for r in caplog.records if "weight" in r.getMessage()]
    assert note.levelno == logging.WARNING
    assert "KNNRegressor cannot weight a record" in note.getMessage()
    assert "probability 0.2" in note.getMessage()
    caplog.clear()
    spec = "StandardScaler | LinearRegression"
    with caplog.at_level(logging.INFO, logger="streamlearn.labels.build"):
        build_pseudo(settings, model_spec=spec, lr=0.01, restored=None, model=build_model(spec))
    (note,) = [r for r in caplog.records if "weight" in r.getMessage()]
    assert note.levelno == logging.INFO
    assert "sample weight 0.2" in note.getMessage()
