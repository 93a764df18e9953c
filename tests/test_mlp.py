"""The numpy MLP: River's contract, exact SGD against a hand-written oracle, freezing, guards."""

from __future__ import annotations

import copy
import itertools
import pickle

import numpy as np
import pytest
from river import checks

from streamlearn.models.mlp import MLPRegressor
from streamlearn.models.sgd import SGDRegressor


@pytest.mark.parametrize(
    "params",
    list(MLPRegressor._unit_test_params()),
    ids=["default", "tanh-head-only", "mixed-activations", "warm-start-scaled"],
)
def test_river_check_estimator(params: dict) -> None:
    checks.check_estimator(MLPRegressor(**params))


# -- the oracle: the same network written the textbook way, from pre-activations -------------


def _act(name: str, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "tanh":
        return np.tanh(z)
    if name == "logistic":
        return 1.0 / (1.0 + np.exp(-z))
    return z


def _act_prime(name: str, z: np.ndarray) -> np.ndarray:
    if name == "relu":
        return (z > 0).astype(float)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if name == "logistic":
        s = 1.0 / (1.0 + np.exp(-z))
        return s * (1.0 - s)
    return np.ones_like(z)


def oracle_step(
    coefs: list[np.ndarray],
    intercepts: list[np.ndarray],
    activations: list[str],
    x: np.ndarray,
    y: float,
    lr: float,
    w: float = 1.0,
    first_trainable: int = 0,
) -> None:
    """One SGD step on (yhat - y)^2 / 2, in place, layers below first_trainable frozen."""
    inputs, pre = [x], []
    for coef, bias, name in zip(coefs, intercepts, activations, strict=True):
        z = inputs[-1] @ coef + bias
        pre.append(z)
        inputs.append(_act(name, z))
    yhat = inputs[-1][0]
    delta = (yhat - y) * _act_prime(activations[-1], pre[-1])
    grads = {}
    for layer in range(len(coefs) - 1, first_trainable - 1, -1):
        grads[layer] = (np.outer(inputs[layer], delta), delta.copy())
        if layer > 0:
            delta = (coefs[layer] @ delta) * _act_prime(activations[layer - 1], pre[layer - 1])
    for layer, (grad_coef, grad_bias) in grads.items():
        coefs[layer] -= lr * w * grad_coef
        intercepts[layer] -= lr * w * grad_bias


@pytest.mark.parametrize(
    ("hidden", "activation", "trainable", "scaled"),
    [
        ((5, 4), "relu", None, False),
        ((6,), "tanh", None, True),
        ((3, 3, 2), "logistic", 2, False),
        ((4, 3), ("tanh", "relu"), 1, True),
    ],
)
def test_sgd_matches_numpy_oracle(
    hidden: tuple[int, ...], activation: str | tuple[str, ...], trainable: int | None, scaled: bool
) -> None:
    rng = np.random.default_rng(7)
    sizes = [3, *hidden, 1]
    coefs = [rng.normal(0, 0.7, size=(a, b)) for a, b in itertools.pairwise(sizes)]
    intercepts = [rng.normal(0, 0.3, size=b) for b in sizes[1:]]
    mean = rng.normal(size=3) if scaled else None
    scale = rng.uniform(0.5, 2.0, size=3) if scaled else None
    names = ["a", "b", "c"]
    model = MLPRegressor(
        hidden=hidden,
        activation=activation,
        lr=0.05,
        trainable_layers=trainable,
        features=names,
        initial_coefs=coefs,
        initial_intercepts=intercepts,
        input_mean=mean,
        input_scale=scale,
    )
    hidden_acts = [activation] * len(hidden) if isinstance(activation, str) else list(activation)
    acts = [*hidden_acts, "identity"]
    first = 0 if trainable is None else len(coefs) - trainable
    expected_coefs = [c.copy() for c in coefs]
    expected_intercepts = [b.copy() for b in intercepts]
    for step in range(6):
        raw = rng.normal(size=3)
        y = float(rng.normal())
        w = 0.5 if step % 2 else 1.0
        seen = raw if mean is None or scale is None else (raw - mean) / scale
        oracle_step(expected_coefs, expected_intercepts, acts, seen, y, 0.05, w, first)
        model.learn_one(dict(zip(names, raw.tolist(), strict=True)), y, w=w)
        for got, want in zip(model.coefs_, expected_coefs, strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
        for got, want in zip(model.intercepts_, expected_intercepts, strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    # The oracle's forward pass agrees with predict_one too.
    x = rng.normal(size=3)
    seen = x if mean is None or scale is None else (x - mean) / scale
    out = seen
    for coef, bias, name in zip(expected_coefs, expected_intercepts, acts, strict=True):
        out = _act(name, out @ coef + bias)
    assert model.predict_one(dict(zip(names, x.tolist(), strict=True))) == pytest.approx(
        out[0], abs=1e-12
    )
    assert model.n_skipped_steps_ == 0


def test_no_hidden_layer_is_the_seed_update() -> None:
    """With no hidden layer the network is the seed's linear SGD, step for step."""
    mlp = MLPRegressor(hidden=(), lr=0.03, features=["a", "b"], initial_coefs=[np.zeros((2, 1))])
    sgd = SGDRegressor(lr=0.03)
    rng = np.random.default_rng(1)
    for _ in range(50):
        x = {"a": float(rng.normal()), "b": float(rng.normal())}
        y = 3.0 * x["a"] - x["b"] + 0.5
        mlp.learn_one(x, y)
        sgd.learn_one(x, y)
    assert mlp.coefs_[0][:, 0].tolist() == pytest.approx([sgd.weights["a"], sgd.weights["b"]])
    assert mlp.intercepts_[0][0] == pytest.approx(sgd.intercept, abs=1e-12)


def test_sample_weight_scales_the_step() -> None:
    """A step with weight w is the step of a model whose learning rate is w times larger."""
    make = {"hidden": (4,), "features": ["x"], "seed": 3}
    weighted = MLPRegressor(lr=0.01, **make)
    faster = MLPRegressor(lr=0.02, **make)
    weighted.learn_one({"x": 1.5}, 2.0, w=2.0)
    faster.learn_one({"x": 1.5}, 2.0)
    for a, b in zip(weighted.coefs_, faster.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-15, atol=1e-15)
    unchanged = [c.copy() for c in weighted.coefs_]
    weighted.learn_one({"x": 1.5}, 2.0, w=0.0)
    assert all(np.array_equal(a, b) for a, b in zip(weighted.coefs_, unchanged, strict=True))


@pytest.mark.parametrize("trainable", [0, 1, 2, 3, None])
def test_only_the_last_k_layers_learn(trainable: int | None) -> None:
    model = MLPRegressor(hidden=(6, 5), activation="tanh", trainable_layers=trainable, seed=2)
    model.learn_one({"x": 0.1, "z": -0.3}, 0.0)  # fixes the feature order, builds the layers
    before = copy.deepcopy((model.coefs_, model.intercepts_))
    rng = np.random.default_rng(0)
    for _ in range(20):
        model.learn_one({"x": float(rng.normal()), "z": float(rng.normal())}, 1.0)
    k = 3 if trainable is None else trainable
    for layer in range(3):
        same = np.array_equal(model.coefs_[layer], before[0][layer]) and np.array_equal(
            model.intercepts_[layer], before[1][layer]
        )
        assert same == (layer < 3 - k), f"layer {layer} with {k} trainable"


def test_features_from_first_record_sorted_and_fixed() -> None:
    model = MLPRegressor(hidden=(3,))
    assert model.predict_one({"b": 1.0, "a": 2.0}) == 0.0  # nothing to predict with yet
    assert model.coefs_ == []
    model.learn_one({"b": 1.0, "a": 2.0}, 1.0)
    assert model.features_ == ["a", "b"]
    assert model.coefs_[0].shape == (2, 3)
    # A new feature is ignored; a missing one counts as 0.
    assert model.predict_one({"a": 2.0, "b": 0.0, "new": 9.0}) == model.predict_one({"a": 2.0})
    model.learn_one({"a": 1.0, "new": 5.0}, 1.0)
    assert model.features_ == ["a", "b"]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_non_finite_steps_are_skipped_and_counted() -> None:
    model = MLPRegressor(hidden=(4,), features=["x"], seed=0)
    before = copy.deepcopy((model.coefs_, model.intercepts_))
    model.learn_one({"x": float("nan")}, 1.0)
    model.learn_one({"x": 1.0}, float("inf"))
    # A finite record whose step overflows: huge weights and a huge error.
    huge = MLPRegressor(
        hidden=(2,),
        features=["x"],
        lr=1.0,
        initial_coefs=[np.full((1, 2), 1e300), np.full((2, 1), 1e300)],
        clip_gradient=1e308,
    )
    huge_before = copy.deepcopy(huge.coefs_)
    huge.learn_one({"x": 1.0}, -1e308)
    assert model.n_skipped_steps_ == 2
    assert huge.n_skipped_steps_ == 1
    assert all(np.array_equal(a, b) for a, b in zip(model.coefs_, before[0], strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(huge.coefs_, huge_before, strict=True))
    model.learn_one({"x": 1.0}, 1.0)
    assert model.n_skipped_steps_ == 2
    assert all(np.isfinite(c).all() for c in model.coefs_)


def test_badly_scaled_stream_keeps_weights_finite() -> None:
    """Raw features around 1e6 (a date as a number) must not blow the network up to NaN."""
    model = MLPRegressor(hidden=(8, 8), lr=0.01, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(500):
        x = {"date": 7.4e5 + float(rng.integers(0, 1000)), "v": float(rng.normal(40, 5))}
        model.learn_one(x, float(rng.normal(40, 5)))
        assert np.isfinite(model.predict_one(x))
    assert all(np.isfinite(c).all() for c in model.coefs_)
    assert all(np.isfinite(b).all() for b in model.intercepts_)


def test_pickle_round_trip_keeps_learning_identically() -> None:
    model = MLPRegressor(hidden=(5, 5), seed=4)
    rng = np.random.default_rng(0)
    data = [({"x": float(v)}, float(np.sin(v))) for v in rng.uniform(-3, 3, 60)]
    for x, y in data[:30]:
        model.learn_one(x, y)
    restored = pickle.loads(pickle.dumps(model))
    for x, y in data[30:]:
        model.learn_one(x, y)
        restored.learn_one(x, y)
    for a, b in zip(model.coefs_, restored.coefs_, strict=True):
        assert np.array_equal(a, b)
    assert restored.predict_one({"x": 0.3}) == model.predict_one({"x": 0.3})


def test_clone_returns_the_warm_starting_point() -> None:
    start = [np.array([[0.5, -0.5]]), np.array([[1.0], [2.0]])]
    model = MLPRegressor(hidden=(2,), features=["x"], initial_coefs=start)
    before = model.predict_one({"x": 2.0})
    for _ in range(10):
        model.learn_one({"x": 2.0}, 10.0)
    assert model.predict_one({"x": 2.0}) != before
    assert model.clone().predict_one({"x": 2.0}) == before
    start[0][0, 0] = 99.0  # the caller's arrays are copied, not shared
    assert model.clone().predict_one({"x": 2.0}) == before


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hidden": (0,)}, "hidden must be positive"),
        ({"activation": "softmax"}, "unknown activation 'softmax'"),
        ({"hidden": (3, 3), "activation": ("relu",)}, "one name per hidden layer"),
        ({"lr": 0.0}, "lr must be a positive"),
        ({"lr": float("nan")}, "lr must be a positive"),
        ({"trainable_layers": 4}, "between 0 and 3"),
        ({"features": ["x", "x"]}, "distinct"),
        (
            {"initial_coefs": [np.zeros((1, 50)), np.zeros((50, 50)), np.zeros((50, 1))]},
            "needs features",
        ),
        (
            {
                "features": ["x"],
                "initial_coefs": [np.zeros((2, 50)), np.zeros((50, 50)), np.zeros((50, 1))],
            },
            r"initial_coefs\[0\] has shape \(2, 50\), expected \(1, 50\)",
        ),
        ({"features": ["x"], "initial_coefs": [np.zeros((1, 1))]}, "one per weight layer"),
        ({"features": ["x"], "input_scale": [0.0]}, "must not hold zeros"),
        ({"input_mean": [1.0]}, "need features"),
        ({"hidden": (), "features": ["x"], "initial_coefs": [np.array([[np.nan]])]}, "NaN"),
    ],
)
def test_bad_parameters_are_explained(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MLPRegressor(**params)
