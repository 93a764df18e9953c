"""The default model is the seed's update, exactly: checked against a numpy loop and River's suite."""

from __future__ import annotations

import numpy as np
import pytest
from river import checks, linear_model, optim

from streamhelpers import make_regression, sgd_oracle
from streamlearn.models.sgd import SGDRegressor


def test_passes_rivers_estimator_checks():
    checks.check_estimator(SGDRegressor())
    checks.check_estimator(SGDRegressor(lr=0.5, initial_weights={"a": 1.0}, initial_intercept=2.0))


def test_weights_equal_the_numpy_oracle_to_1e_12():
    X, y, _ = make_regression(5000, d=10, seed=3)
    model = SGDRegressor(lr=0.01)
    predictions = []
    for i in range(len(y)):
        x = {f"x{j}": X[i, j] for j in range(X.shape[1])}
        predictions.append(model.predict_one(x))
        model.learn_one(x, y[i])
    theta, theta0, oracle_predictions = sgd_oracle(X, y, lr=0.01)
    learned = np.array([model.weights[f"x{j}"] for j in range(X.shape[1])])
    np.testing.assert_allclose(learned, theta, rtol=0, atol=1e-12)
    assert abs(model.intercept - theta0) < 1e-12
    np.testing.assert_allclose(predictions, oracle_predictions, rtol=0, atol=1e-12)


def test_river_linear_regression_with_the_same_alpha_takes_twice_the_step():
    # Why 'sgd' exists: River's squared loss has gradient 2 (yhat - y).
    ours = SGDRegressor(lr=0.01)
    rivers = linear_model.LinearRegression(optimizer=optim.SGD(0.01), intercept_lr=0.01, l2=0.0)
    ours.learn_one({"a": 1.0}, 1.0)
    rivers.learn_one({"a": 1.0}, 1.0)
    assert ours.weights["a"] == pytest.approx(0.01)
    assert rivers.weights["a"] == pytest.approx(0.02)


def test_rejects_bad_parameters_in_plain_english():
    with pytest.raises(ValueError, match="lr must be a positive"):
        SGDRegressor(lr=0)
    with pytest.raises(ValueError, match="finite"):
        SGDRegressor(initial_weights={"a": float("nan")})


def test_clone_restarts_from_the_warm_start_not_the_learned_weights():
    model = SGDRegressor(lr=0.1, initial_weights={"a": 1.0}, initial_intercept=0.5)
    model.learn_one({"a": 1.0}, 10.0)
    clone = model.clone()
    assert clone.weights == {"a": 1.0} and clone.intercept == 0.5
    assert model.weights["a"] != 1.0
