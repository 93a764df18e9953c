"""The numpy MLP: River's contract, exact SGD and RLS against hand-written oracles, freezing,
guards."""

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
    ids=[
        "default",
        "tanh-head-only",
        "mixed-activations",
        "warm-start-scaled",
        "rls-head",
        "rls-no-forgetting",
    ],
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


@pytest.mark.parametrize("head", ["sgd", "rls"])
def test_predicting_never_changes_the_pickled_model(head: str) -> None:
    model = MLPRegressor(hidden=(6, 4), seed=2, trainable_layers=1, head=head)
    rng = np.random.default_rng(5)
    for a, b in rng.normal(size=(50, 2)):
        model.learn_one({"a": float(a), "b": float(b)}, float(a - 2 * b))
    before = pickle.dumps(model)
    for a, b in rng.normal(scale=100.0, size=(1000, 2)):
        model.predict_one({"a": float(a), "b": float(b), "new": 1.0})
    assert pickle.dumps(model) == before
    # The learn step's work buffers are scratch, not state: a checkpoint leaves them out.
    assert not set(MLPRegressor.SCRATCH) & set(pickle.loads(before).__getstate__())


def test_a_state_pickled_with_its_work_buffers_loads_and_learns_identically() -> None:
    """Checkpoints written before the buffers were left out hold them."""
    model = MLPRegressor(hidden=(5,), seed=4, trainable_layers=1, head="rls")
    data = [({"x": float(v)}, float(np.sin(v))) for v in np.linspace(-3, 3, 60)]
    for x, y in data[:30]:
        model.learn_one(x, y)
    old = MLPRegressor.__new__(MLPRegressor)
    old.__setstate__(copy.deepcopy(dict(vars(model))))
    assert set(MLPRegressor.SCRATCH) <= set(vars(old))  # rebuilt, ready for the next step
    for x, y in data[30:]:
        model.learn_one(x, y)
        old.learn_one(x, y)
    assert pickle.dumps(old) == pickle.dumps(model)


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
        ({"head": "adam"}, "head must be one of 'sgd', 'rls'"),
        ({"head": "rls"}, "exactly one trainable layer"),
        ({"head": "rls", "hidden": (3,), "trainable_layers": 2}, "would train 2 of its 2"),
        (
            {"head": "rls", "trainable_layers": 1, "output_activation": "logistic"},
            "needs a linear output",
        ),
        ({"rls_forgetting": 0.0}, r"rls_forgetting must be in \(0, 1\]"),
        ({"rls_forgetting": 1.5}, r"rls_forgetting must be in \(0, 1\]"),
        ({"rls_delta": 0.0}, "rls_delta must be a positive"),
        ({"rls_delta": float("inf")}, "rls_delta must be a positive"),
        ({"hidden": (), "features": ["x"], "initial_coefs": [np.array([[np.nan]])]}, "NaN"),
    ],
)
def test_bad_parameters_are_explained(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MLPRegressor(**params)


# -- the recursive-least-squares head ------------------------------------------------------


def _rls_network(forgetting: float, delta: float, seed: int = 11) -> tuple[MLPRegressor, dict]:
    rng = np.random.default_rng(seed)
    names = ["a", "b", "c"]
    start = {
        "coefs": [rng.normal(0, 0.8, size=(3, 6)), rng.normal(0, 0.5, size=(6, 1))],
        "intercepts": [rng.normal(0, 0.3, size=6), np.array([0.4])],
        "mean": rng.normal(size=3),
        "scale": rng.uniform(0.5, 2.0, size=3),
        "names": names,
    }
    model = MLPRegressor(
        hidden=(6,),
        activation="tanh",
        features=names,
        trainable_layers=1,
        head="rls",
        rls_forgetting=forgetting,
        rls_delta=delta,
        initial_coefs=start["coefs"],
        initial_intercepts=start["intercepts"],
        input_mean=start["mean"],
        input_scale=start["scale"],
    )
    return model, start


def _head_features(start: dict, raw: np.ndarray) -> np.ndarray:
    """phi = [tanh(first layer of the scaled input), 1]: what the RLS head sees."""
    seen = (raw - start["mean"]) / start["scale"]
    return np.append(np.tanh(seen @ start["coefs"][0] + start["intercepts"][0]), 1.0)


def _rls_stream(n: int, seed: int = 5) -> list[tuple[np.ndarray, float, float]]:
    """(raw x, y, sample weight) records with a target the hidden layer cannot fit exactly."""
    rng = np.random.default_rng(seed)
    records = []
    for step in range(n):
        raw = rng.normal(size=3)
        y = float(np.sin(raw[0]) + raw[1] * raw[2] + rng.normal(0, 0.1))
        records.append((raw, y, (0.5, 1.0, 2.0)[step % 3]))
    return records


def test_rls_head_matches_closed_form_least_squares() -> None:
    """After every record the head is the weighted ridge solution, computed from scratch.

    With phi = [tanh(first layer), 1] and theta0 the starting head, after t records theta
    minimises sum_i w_i (y_i - theta' phi_i)^2 + delta |theta - theta0|^2.
    """
    delta = 0.5
    model, start = _rls_network(1.0, delta)
    theta0 = np.append(start["coefs"][1][:, 0], start["intercepts"][1])
    gram = delta * np.eye(theta0.size)
    moment = delta * theta0
    for step, (raw, y, w) in enumerate(_rls_stream(300)):
        phi = _head_features(start, raw)
        gram += w * np.outer(phi, phi)
        moment += w * y * phi
        model.learn_one(dict(zip(start["names"], raw.tolist(), strict=True)), y, w=w)
        expected = np.linalg.solve(gram, moment)
        got = np.append(model.coefs_[1][:, 0], model.intercepts_[1])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9, err_msg=f"record {step}")
    # P is the inverse of the regularised Gram matrix.
    assert model.rls_p_ is not None
    np.testing.assert_allclose(model.rls_p_, np.linalg.inv(gram), rtol=0, atol=1e-9)
    # The first layer is a frozen feature extractor; predictions use the fitted head.
    assert np.array_equal(model.coefs_[0], start["coefs"][0])
    assert np.array_equal(model.intercepts_[0], start["intercepts"][0])
    x = np.array([0.2, -0.7, 1.1])
    assert model.predict_one(dict(zip(start["names"], x.tolist(), strict=True))) == pytest.approx(
        float(_head_features(start, x) @ expected), abs=1e-9
    )
    assert model.n_skipped_steps_ == 0


@pytest.mark.parametrize("forgetting", [0.98, 0.9])
def test_rls_head_with_forgetting_matches_information_form_oracle(forgetting: float) -> None:
    """Forgetting, written the other way round: information matrix R and a Newton step.

    R <- lambda R + w phi phi';  theta <- theta + R^-1 w phi (y - theta' phi); then the windup
    bound: P = R^-1 becomes S P S with S_ii = min(1, (1/delta / P_ii)^1/2).
    """
    delta = 0.5
    model, start = _rls_network(forgetting, delta)
    theta = np.append(start["coefs"][1][:, 0], start["intercepts"][1])
    information = delta * np.eye(theta.size)
    bound_bit = 0
    for step, (raw, y, w) in enumerate(_rls_stream(300, seed=6)):
        phi = _head_features(start, raw)
        information = forgetting * information + w * np.outer(phi, phi)
        theta = theta + np.linalg.solve(information, w * phi * (y - theta @ phi))
        p = np.linalg.inv(information)
        scale = np.minimum(1.0, np.sqrt((1.0 / delta) / p.diagonal()))
        bound_bit += bool((scale < 1).any())
        information = information / np.outer(scale, scale)
        model.learn_one(dict(zip(start["names"], raw.tolist(), strict=True)), y, w=w)
        got = np.append(model.coefs_[1][:, 0], model.intercepts_[1])
        np.testing.assert_allclose(got, theta, rtol=0, atol=1e-9, err_msg=f"record {step}")
    assert model.rls_p_ is not None
    np.testing.assert_allclose(model.rls_p_, np.linalg.inv(information), rtol=0, atol=1e-9)
    assert bound_bit > 0  # the bound is part of what was checked, not a dormant branch
    assert model.n_skipped_steps_ == 0


def test_rls_head_starts_as_given_and_sample_weight_counts_records() -> None:
    model, start = _rls_network(1.0, 0.1)
    twice, _ = _rls_network(1.0, 0.1)
    x = {"a": 0.3, "b": -1.2, "c": 0.8}
    seen = (np.array([0.3, -1.2, 0.8]) - start["mean"]) / start["scale"]
    hidden = np.tanh(seen @ start["coefs"][0] + start["intercepts"][0])
    before = float(hidden @ start["coefs"][1][:, 0] + start["intercepts"][1][0])
    assert model.predict_one(x) == pytest.approx(before, abs=1e-12)
    # With no forgetting, a record of weight 2 is that record learned twice.
    model.learn_one(x, 3.0, w=2.0)
    twice.learn_one(x, 3.0)
    twice.learn_one(x, 3.0)
    np.testing.assert_allclose(model.coefs_[1], twice.coefs_[1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.rls_p_, twice.rls_p_, rtol=0, atol=1e-12)


def test_rls_forgetting_never_winds_up_on_a_dead_unit() -> None:
    """A hidden unit that is never active must not make P grow like lambda^-t (overflow)."""
    # Unit 0 is relu(x - 100): dead on this stream. Unit 1 is relu(x + 2), always active.
    model = MLPRegressor(
        hidden=(2,),
        features=["x"],
        trainable_layers=1,
        head="rls",
        rls_forgetting=0.9,
        rls_delta=0.5,
        initial_coefs=[np.array([[1.0, 1.0]]), np.zeros((2, 1))],
        initial_intercepts=[np.array([-100.0, 2.0]), np.zeros(1)],
    )
    rng = np.random.default_rng(0)
    for _ in range(8000):  # 0.9 ** -8000 overflows a float many times over
        v = float(rng.uniform(-1, 1))
        model.learn_one({"x": v}, 2.0 * (v + 2.0) - 1.5)
    p = model.rls_p_
    assert p is not None and np.isfinite(p).all()
    assert p[0, 0] == pytest.approx(1.0 / 0.5)  # the dead unit: as uncertain as at the start
    assert p.diagonal().max() <= 1.0 / 0.5 * (1 + 1e-12)
    assert np.array_equal(p, p.T)
    assert np.linalg.eigvalsh(p).min() > 0
    assert model.predict_one({"x": 0.5}) == pytest.approx(2.0 * 2.5 - 1.5, abs=1e-9)
    # Waking the dead unit up gives a bounded step, not a burst.
    x = {"x": 101.0}
    model.learn_one(x, model.predict_one(x) + 1.0)
    assert abs(model.coefs_[1][0, 0]) < 0.01
    assert model.n_skipped_steps_ == 0


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_rls_head_guards_skip_and_count() -> None:
    model, _ = _rls_network(0.999, 0.1)
    snapshot = copy.deepcopy((model.coefs_, model.intercepts_, model.rls_p_))
    model.learn_one({"a": float("nan"), "b": 0.0, "c": 0.0}, 1.0)
    model.learn_one({"a": 0.1, "b": 0.0, "c": 0.0}, float("inf"))
    model.learn_one({"a": 0.1, "b": 0.0, "c": 0.0}, 1.0, w=-1.0)
    assert model.n_skipped_steps_ == 3
    assert all(np.array_equal(a, b) for a, b in zip(model.coefs_, snapshot[0], strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(model.intercepts_, snapshot[1], strict=True))
    assert np.array_equal(model.rls_p_, snapshot[2])
    model.learn_one({"a": 0.1, "b": 0.0, "c": 0.0}, 1.0)
    assert model.n_skipped_steps_ == 3
    assert np.isfinite(model.predict_one({"a": 0.1}))
    # A finite record so large that phi' P phi overflows: refused, not turned into NaN.
    linear = MLPRegressor(
        hidden=(1,),
        activation="identity",
        features=["a"],
        trainable_layers=1,
        head="rls",
        initial_coefs=[np.ones((1, 1)), np.ones((1, 1))],
    )
    linear.learn_one({"a": 1e200}, 1.0)
    assert linear.n_skipped_steps_ == 1
    assert linear.predict_one({"a": 2.0}) == 2.0


def test_rls_head_pickles_and_clones_back_to_the_start() -> None:
    model, _ = _rls_network(0.99, 0.1)
    rng = np.random.default_rng(2)
    data = [
        ({"a": float(a), "b": float(b), "c": 0.0}, float(a - b))
        for a, b in rng.normal(size=(80, 2))
    ]
    start = model.predict_one(data[0][0])
    for x, y in data[:40]:
        model.learn_one(x, y)
    restored = pickle.loads(pickle.dumps(model))
    for x, y in data[40:]:
        model.learn_one(x, y)
        restored.learn_one(x, y)
    assert np.array_equal(restored.coefs_[1], model.coefs_[1])
    assert np.array_equal(restored.rls_p_, model.rls_p_)
    fresh = model.clone()
    assert fresh.predict_one(data[0][0]) == start
    assert fresh.rls_p_ is not None and np.array_equal(fresh.rls_p_, np.eye(7) / 0.1)


def test_rls_head_learns_correlated_features_much_faster_than_sgd() -> None:
    """Many overlapping ReLU features: SGD on them crawls, RLS fits them at once."""
    rng = np.random.default_rng(0)
    knots = np.linspace(-3, 3, 40)
    first = [np.ones((1, 40)), np.zeros((40, 1))]
    common = {
        "hidden": (40,),
        "features": ["x"],
        "trainable_layers": 1,
        "initial_coefs": first,
        "initial_intercepts": [-knots, np.zeros(1)],
    }
    errors: dict[str, list[float]] = {"sgd": [], "rls": []}
    models = {"sgd": MLPRegressor(lr=0.01, **common), "rls": MLPRegressor(head="rls", **common)}
    for v in rng.uniform(-3, 3, 400):
        x, y = {"x": float(v)}, float(np.sin(2 * v))
        for head, model in models.items():
            errors[head].append(abs(model.predict_one(x) - y))
            model.learn_one(x, y)
    sgd, rls = np.mean(errors["sgd"][-100:]), np.mean(errors["rls"][-100:])
    assert rls < 0.1 * sgd
