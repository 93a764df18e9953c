"""The classifiers: logistic and softmax are the seed's update (numpy loops, River's own
LogisticRegression), mlp_classifier's step is back-propagated cross-entropy, and every
classifier spec builds, learns and is bounded through the registry."""

from __future__ import annotations

import itertools
import math
import pickle
import warnings

import numpy as np
import pytest
from river import base, checks, datasets, linear_model, optim

from streamlearn.models.logistic import LogisticRegression
from streamlearn.models.mlp_classifier import MLPClassifier
from streamlearn.models.registry import (
    CLASSIFIERS,
    LR_MODELS,
    MODELS,
    REGRESSORS,
    TRANSFORMERS,
    SpecError,
    build_model,
    check_size,
    known_names,
)
from streamlearn.models.softmax import SoftmaxRegression

# -- data and the oracles: the seed's formula as plain numpy loops ------------------------------


def binary_data(n: int, d: int, seed: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Features ~ N(0, scale^2), labels drawn from a logistic model: y in {0, 1}."""
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=scale, size=(n, d))
    w = rng.normal(size=d)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(X @ w + 0.3)))).astype(float)
    return X, y


def multiclass_data(n: int, d: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Four classes whose first appearances are spread over the stream (not at row 0)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    centres = rng.normal(scale=2.0, size=(4, d))
    codes = np.argmin(((X[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
    names = ["cat", "dog", "owl", "eel"]
    return X, [names[c] for c in codes]


def rows(X: np.ndarray) -> list[dict[str, float]]:
    return [{f"x{j}": float(X[i, j]) for j in range(X.shape[1])} for i in range(X.shape[0])]


def logistic_oracle(
    X: np.ndarray, y: np.ndarray, lr: float, river_gradient: bool = False
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """The seed's update with yhat = sigmoid(theta . x + theta_0), y in {0, 1}.

    With ``river_gradient``, ``p - y`` is replaced by River's ``Log.gradient`` as River
    computes it: ``-y' / (exp(y' m) + 1)`` with ``y'`` in {-1, 1}, but ``exp(-z) * -y'`` for
    ``z = y' m > 18`` and ``-y'`` for ``z < -18``.
    """
    theta, theta0 = np.zeros(X.shape[1]), 0.0
    predictions, margins = [], []
    for i in range(X.shape[0]):
        margin = float(X[i] @ theta + theta0)
        p = 1.0 / (1.0 + np.exp(-margin))
        predictions.append(p)
        margins.append(margin)
        gradient = p - y[i]
        if river_gradient:
            sign = 1.0 if y[i] else -1.0
            z = sign * margin
            if z > 18.0:
                gradient = math.exp(-z) * -sign
            elif z < -18.0:
                gradient = -sign
            else:
                gradient = -sign / (math.exp(z) + 1.0)
        theta = theta - lr * gradient * X[i]
        theta0 = theta0 - lr * gradient
    return theta, theta0, np.array(predictions), np.array(margins)


def softmax_oracle(
    X: np.ndarray, y: list[str], lr: float, classes: list[str] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray, list[dict[str, float]]]:
    """The update per class, W_c -= lr (p_c - [y == c]) x, b_c likewise; classes added with
    zero weights as they first arrive (or all there from the start with ``classes``)."""
    known = list(classes or [])
    W, b = np.zeros((len(known), X.shape[1])), np.zeros(len(known))
    predictions = []

    def probabilities() -> np.ndarray:
        z = W @ X[i] + b
        e = np.exp(z - z.max())
        return e / e.sum()

    for i in range(X.shape[0]):
        predictions.append(dict(zip(known, probabilities(), strict=True)) if known else {})
        if y[i] not in known:
            known.append(y[i])
            W, b = np.vstack([W, np.zeros(X.shape[1])]), np.append(b, 0.0)
        g = probabilities()
        g[known.index(y[i])] -= 1.0
        W -= lr * np.outer(g, X[i])
        b -= lr * g
    return known, W, b, predictions


# -- River's conventions -------------------------------------------------------------------------


ESTIMATORS = {
    "logistic": LogisticRegression(),
    "logistic-warm": LogisticRegression(lr=0.3, initial_weights={"a": 1.0}, initial_intercept=0.5),
    "softmax": SoftmaxRegression(),
    "softmax-fast": SoftmaxRegression(lr=0.5),
    **{
        f"mlp_classifier-{i}": MLPClassifier(**params)
        for i, params in enumerate(MLPClassifier._unit_test_params())
    },
}


@pytest.mark.parametrize("model", list(ESTIMATORS.values()), ids=list(ESTIMATORS))
@pytest.mark.slow
def test_rivers_estimator_checks(model: base.Classifier) -> None:
    checks.check_estimator(model)


# -- logistic ------------------------------------------------------------------------------------


def test_logistic_equals_the_seeds_formula_to_1e_12() -> None:
    X, y = binary_data(4000, d=8, seed=1)
    lr = 0.05
    model = LogisticRegression(lr=lr)
    predictions = []
    for x, label in zip(rows(X), y, strict=True):
        predictions.append(model.predict_proba_one(x)[True])
        model.learn_one(x, bool(label))
    theta, theta0, oracle, _ = logistic_oracle(X, y, lr)
    learned = np.array([model.weights[f"x{j}"] for j in range(X.shape[1])])
    np.testing.assert_allclose(learned, theta, rtol=0, atol=1e-12)
    assert abs(model.intercept - theta0) < 1e-12
    np.testing.assert_allclose(predictions, oracle, rtol=0, atol=1e-12)
    assert np.mean((np.array(predictions[2000:]) > 0.5) == y[2000:]) > 0.6  # it learns


def test_logistic_predict_learn_one_is_predict_then_learn_to_the_bit() -> None:
    X, y = binary_data(1000, d=5, seed=2, scale=3.0)
    fused, plain = LogisticRegression(lr=0.2), LogisticRegression(lr=0.2)
    for x, label in zip(rows(X), y, strict=True):
        p = fused.predict_learn_one(x, bool(label))
        assert p == plain.predict_proba_one(x)[True]
        plain.learn_one(x, bool(label))
    assert fused.weights == plain.weights and fused.intercept == plain.intercept


def test_logistic_equals_rivers_logistic_regression_to_1e_9_within_margin_18() -> None:
    # River's Log.gradient is -y'/(exp(y' m) + 1) with y' in {-1, 1}: p - 1 for y = 1 and p for
    # y = 0, i.e. p - y, as long as |m| <= 18 (beyond, it approximates: next test).
    X, y = binary_data(3000, d=6, seed=3)
    lr = 0.02
    ours = LogisticRegression(lr=lr)
    rivers = linear_model.LogisticRegression(optimizer=optim.SGD(lr), intercept_lr=lr)
    biggest = 0.0
    for i, (x, label) in enumerate(zip(rows(X), y, strict=True)):
        p, q = ours.predict_proba_one(x)[True], rivers.predict_proba_one(x)[True]
        assert abs(p - q) < 1e-9
        biggest = max(biggest, abs(rivers._raw_dot_one(x)))
        ours.learn_one(x, bool(label))
        rivers.learn_one(x, bool(label))
        if i % 100 == 0 or i == len(y) - 1:
            assert ours.weights.keys() == rivers.weights.keys()
            for name, weight in ours.weights.items():
                assert abs(weight - rivers.weights[name]) < 1e-9, (i, name)
            assert abs(ours.intercept - rivers.intercept) < 1e-9
    assert 2.0 < biggest <= 18.0  # the premise: margins of some size, all within River's range


def test_beyond_margin_18_river_approximates_and_logistic_does_not() -> None:
    # One misclassified record at margin -18.5: the exact gradient is p - 1 with
    # p = sigmoid(-18.5) ~ 9.2e-9; River's Log.gradient takes -1 there (|z| > 18).
    ours = LogisticRegression(lr=1.0, initial_weights={"x": 1.0})
    rivers = linear_model.LogisticRegression(
        optimizer=optim.SGD(1.0), intercept_lr=1.0, initializer=optim.initializers.Constant(1.0)
    )
    ours.learn_one({"x": -18.5}, True)
    rivers.learn_one({"x": -18.5}, True)
    p = 1.0 / (1.0 + math.exp(18.5))
    assert ours.weights["x"] == pytest.approx(1.0 + (p - 1.0) * 18.5, abs=1e-15)
    assert rivers.weights["x"] == 1.0 - 18.5
    assert ours.weights["x"] - rivers.weights["x"] == pytest.approx(18.5 * p, abs=1e-15)
    assert ours.intercept - rivers.intercept == pytest.approx(-p, abs=1e-15)

    # On a stream with such records, each model equals the loop of its own formula to 1e-9;
    # the two formulas part by more than that.
    X, y = binary_data(2000, d=4, seed=11, scale=50.0)
    lr = 0.002
    ours = LogisticRegression(lr=lr)
    rivers = linear_model.LogisticRegression(optimizer=optim.SGD(lr), intercept_lr=lr)
    for x, label in zip(rows(X), y, strict=True):
        ours.learn_one(x, bool(label))
        rivers.learn_one(x, bool(label))
    exact, exact0, _, _ = logistic_oracle(X, y, lr)
    approximated, approximated0, _, margins = logistic_oracle(X, y, lr, river_gradient=True)
    assert (np.where(y == 1, 1.0, -1.0) * margins < -18).sum() >= 1  # the premise
    names = [f"x{j}" for j in range(X.shape[1])]
    ours_w = np.array([ours.weights[n] for n in names])
    rivers_w = np.array([rivers.weights[n] for n in names])
    np.testing.assert_allclose(ours_w, exact, rtol=0, atol=1e-9)
    np.testing.assert_allclose(rivers_w, approximated, rtol=0, atol=1e-9)
    assert abs(ours.intercept - exact0) < 1e-9 and abs(rivers.intercept - approximated0) < 1e-9
    assert np.abs(ours_w - rivers_w).max() > 1e-8


def test_logistic_has_no_overflow_at_huge_margins() -> None:
    model = LogisticRegression(lr=0.1, initial_weights={"x": 1.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model.predict_learn_one({"x": -1000.0}, True) == 0.0  # exp(1000) never taken
        assert model.predict_proba_one({"x": -5000.0}) == {False: 0.0, True: 1.0}
    assert model.weights["x"] == 1.0 - 0.1 * -1.0 * -1000.0  # p - y = -1: a full step
    assert model.intercept == 0.1


def test_logistic_does_not_learn_from_a_non_finite_margin() -> None:
    model = LogisticRegression(lr=0.1, initial_weights={"x": 1e300})
    p = model.predict_learn_one({"x": 1e300}, False)  # 1e300 * 1e300 = inf
    assert math.isnan(p)
    assert model.weights == {"x": 1e300} and model.intercept == 0.0
    model.learn_one({"x": 1e300}, False)
    assert model.weights == {"x": 1e300}
    assert all(math.isnan(v) for v in model.predict_proba_one({"x": 1e300}).values())


def test_logistic_rejects_bad_parameters_in_plain_english() -> None:
    with pytest.raises(ValueError, match="lr must be a positive"):
        LogisticRegression(lr=-1.0)
    with pytest.raises(ValueError, match="finite"):
        LogisticRegression(initial_intercept=math.inf)


# -- softmax -------------------------------------------------------------------------------------


def test_softmax_equals_a_numpy_loop_to_1e_12() -> None:
    X, y = multiclass_data(3000, d=6, seed=5)
    lr = 0.05
    model = SoftmaxRegression(lr=lr)
    predictions = []
    for x, label in zip(rows(X), y, strict=True):
        predictions.append(model.predict_proba_one(x))
        model.learn_one(x, label)
    classes, W, b, oracle = softmax_oracle(X, y, lr)
    assert model.classes == classes and len(classes) == 4 and classes[0] == y[0]
    for c, cls in enumerate(classes):
        learned = [model.weights[cls][f"x{j}"] for j in range(X.shape[1])]
        np.testing.assert_allclose(learned, W[c], rtol=0, atol=1e-12)
        assert abs(model.intercepts[cls] - b[c]) < 1e-12
    for ours, theirs in zip(predictions, oracle, strict=True):
        assert ours.keys() == theirs.keys()
        for cls, p in ours.items():
            assert abs(p - theirs[cls]) < 1e-12
    accuracy = np.mean(
        [max(p, key=p.get) == t for p, t in zip(predictions[1500:], y[1500:], strict=True)]
    )
    assert accuracy > 0.8


def test_softmax_predict_learn_one_is_predict_then_learn_to_the_bit() -> None:
    X, y = multiclass_data(800, d=4, seed=6)
    fused, plain = SoftmaxRegression(lr=0.3), SoftmaxRegression(lr=0.3)
    for x, label in zip(rows(X), y, strict=True):
        assert fused.predict_learn_one(x, label) == plain.predict_proba_one(x)
        plain.learn_one(x, label)
    assert fused.weights == plain.weights and fused.intercepts == plain.intercepts


def test_softmax_has_no_overflow_and_skips_a_non_finite_margin() -> None:
    model = SoftmaxRegression(lr=0.1)
    model.learn_one({"x": 1.0}, "a")
    model.learn_one({"x": -1.0}, "b")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proba = model.predict_proba_one({"x": 1e5})
    assert proba == {"a": 1.0, "b": 0.0}
    before = pickle.dumps(model)
    assert all(math.isnan(p) for p in model.predict_learn_one({"x": 1e308 * 10}, "a").values())
    assert pickle.dumps(model) == before


# -- mlp_classifier ------------------------------------------------------------------------------


def test_mlp_classifier_without_hidden_layer_is_logistic_to_1e_12() -> None:
    X, y = binary_data(2000, d=5, seed=7)
    names = [f"x{j}" for j in range(X.shape[1])]
    mlp = MLPClassifier(
        hidden=(),
        lr=0.05,
        features=names,
        initial_coefs=[np.zeros((5, 1))],
        output="sigmoid",
    )
    logistic = LogisticRegression(lr=0.05)
    for x, label in zip(rows(X), y, strict=True):
        assert abs(mlp.predict_proba_one(x)[True] - logistic.predict_proba_one(x)[True]) < 1e-12
        mlp.learn_one(x, bool(label))
        logistic.learn_one(x, bool(label))
    np.testing.assert_allclose(
        mlp.coefs_[0][:, 0], [logistic.weights[n] for n in names], rtol=0, atol=1e-12
    )
    assert abs(mlp.intercepts_[0][0] - logistic.intercept) < 1e-12


def test_mlp_classifier_without_hidden_layer_is_the_softmax_loop_to_1e_12() -> None:
    X, y = multiclass_data(1500, d=4, seed=8)
    names, classes = [f"x{j}" for j in range(4)], ["owl", "cat", "eel", "dog"]
    mlp = MLPClassifier(
        hidden=(), lr=0.05, features=names, classes=classes, initial_coefs=[np.zeros((4, 4))]
    )
    predictions = []
    for x, label in zip(rows(X), y, strict=True):
        predictions.append(mlp.predict_proba_one(x))
        mlp.learn_one(x, label)
    _, W, b, oracle = softmax_oracle(X, y, 0.05, classes=classes)
    np.testing.assert_allclose(mlp.coefs_[0], W.T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mlp.intercepts_[0], b, rtol=0, atol=1e-12)
    for ours, theirs in zip(predictions, oracle, strict=True):
        assert list(ours) == classes
        np.testing.assert_allclose(list(ours.values()), list(theirs.values()), atol=1e-12)


def backprop_oracle(
    coefs: list[np.ndarray],
    intercepts: list[np.ndarray],
    x: np.ndarray,
    target: np.ndarray,
    lr: float,
) -> None:
    """One textbook step of softmax cross-entropy through tanh hidden layers, in place."""
    inputs, pre = [x], []
    for coef, bias in zip(coefs, intercepts, strict=True):
        pre.append(inputs[-1] @ coef + bias)
        inputs.append(np.tanh(pre[-1]))
    e = np.exp(pre[-1] - pre[-1].max())
    delta = e / e.sum() - target  # d(cross-entropy)/d(logits)
    grads = []
    for layer in range(len(coefs) - 1, -1, -1):
        grads.append((layer, np.outer(inputs[layer], delta), delta.copy()))
        if layer > 0:
            delta = (coefs[layer] @ delta) * (1.0 - np.tanh(pre[layer - 1]) ** 2)
    for layer, g_coef, g_bias in grads:
        coefs[layer] -= lr * g_coef
        intercepts[layer] -= lr * g_bias


def test_mlp_classifier_step_is_backpropagated_cross_entropy() -> None:
    X, y = multiclass_data(300, d=3, seed=9)
    model = MLPClassifier(hidden=(5, 4), activation="tanh", lr=0.1, seed=2)
    # The oracle starts where the network does: Glorot-uniform weights drawn in layer order
    # from the seed, zero biases, one output (the first class).
    rng = np.random.default_rng(2)
    sizes = [3, 5, 4, 1]
    coefs = [
        rng.uniform(-np.sqrt(6 / (a + b)), np.sqrt(6 / (a + b)), size=(a, b))
        for a, b in itertools.pairwise(sizes)
    ]
    intercepts = [np.zeros(b) for b in sizes[1:]]
    for i, (x, label) in enumerate(zip(rows(X), y, strict=True)):
        if label not in model.classes_ and model.classes_:  # a zero output column for a class
            coefs[-1] = np.hstack([coefs[-1], np.zeros((4, 1))])
            intercepts[-1] = np.append(intercepts[-1], 0.0)
        model.learn_one(x, label)
        target = np.zeros(len(model.classes_))
        target[model.classes_.index(label)] = 1.0
        backprop_oracle(coefs, intercepts, X[i], target, 0.1)
    assert len(model.classes_) == 4
    for ours, theirs in itertools.chain(
        zip(model.coefs_, coefs, strict=True), zip(model.intercepts_, intercepts, strict=True)
    ):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


def test_mlp_classifier_outputs_and_labels() -> None:
    model = MLPClassifier(hidden=(3,), output="sigmoid", seed=1)
    assert model.predict_proba_one({"x": 1.0}) == {False: 0.5, True: 0.5}
    with pytest.raises(ValueError, match="sigmoid output: it learns bool labels"):
        model.learn_one({"x": 1.0}, "yes")
    auto = MLPClassifier(hidden=(3,), seed=1)
    auto.learn_one({"x": 1.0}, "b")
    assert auto.output_ == "softmax" and auto.predict_proba_one({"x": 1.0}) == {"b": 1.0}
    auto.learn_one({"x": 2.0}, "a")
    assert list(auto.predict_proba_one({"x": 1.0})) == ["b", "a"]
    assert auto.coefs_[-1].shape == (3, 2)
    clone = pickle.loads(pickle.dumps(auto))
    assert clone.predict_proba_one({"x": 0.5}) == auto.predict_proba_one({"x": 0.5})
    with pytest.raises(ValueError, match="needs classes"):
        MLPClassifier(hidden=(), features=["x"], initial_coefs=[np.zeros((1, 3))])
    with pytest.raises(ValueError, match="output must be one of"):
        MLPClassifier(output="tanh")


def test_mlp_classifier_learns_phishing() -> None:
    model = MLPClassifier(hidden=(10,), lr=0.05, seed=0)
    hits = 0
    for i, (x, label) in enumerate(datasets.Phishing()):
        if i >= 600:
            hits += model.predict_one(x) == label
        model.learn_one(x, label)
    assert model.output_ == "sigmoid"
    assert hits / 650 > 0.8


# -- the registry --------------------------------------------------------------------------------

SPECS = [
    "logistic",
    "softmax",
    "mlp_classifier(hidden=(8,))",
    "mlp_classifier(hidden=(8,), output='sigmoid')",
    "LogisticRegression(optimizer=SGD(lr=0.1), intercept_lr=0.1)",
    "SoftmaxRegression",
    "Perceptron",
    "PAClassifier(C=0.5)",
    "HoeffdingTreeClassifier(grace_period=20, max_depth=5)",
    "HoeffdingAdaptiveTreeClassifier(grace_period=20, seed=1)",
    "ExtremelyFastDecisionTreeClassifier(grace_period=20)",
    "ARFClassifier(n_models=3, seed=1)",
    "GaussianNB",
    "KNNClassifier(n_neighbors=3)",
    "StandardScaler | LogisticRegression",
    "StandardScaler | logistic",
    "MinMaxScaler | HoeffdingTreeClassifier",
]


@pytest.mark.parametrize("spec", SPECS)
def test_every_classifier_spec_builds_and_learns(spec: str) -> None:
    model = build_model(spec, lr=0.05)
    assert isinstance(model, base.Classifier)
    phishing = list(itertools.islice(datasets.Phishing(), 200))
    for x, label in phishing:
        model.learn_one(x, label)
    proba = model.predict_proba_one(phishing[0][0])
    assert set(proba) <= {False, True} and proba
    assert math.isclose(sum(proba.values()), 1.0)
    assert model.predict_one(phishing[0][0]) in (False, True)


def test_lr_fills_in_the_projects_classifiers_unless_the_spec_sets_it() -> None:
    assert {"logistic", "softmax", "mlp_classifier"} <= LR_MODELS
    for name in ("logistic", "softmax", "mlp_classifier"):
        assert build_model(name, lr=0.25).lr == 0.25
        assert build_model(f"{name}(lr=0.5)", lr=0.25).lr == 0.5


def test_every_name_is_a_regressor_a_classifier_or_a_transformer() -> None:
    assert set(REGRESSORS) | set(CLASSIFIERS) | set(TRANSFORMERS) == set(MODELS)
    assert not set(REGRESSORS) & set(CLASSIFIERS)
    for name in CLASSIFIERS:
        assert isinstance(build_model(name), base.Classifier), name
        assert name in known_names()
    for name in REGRESSORS:
        assert isinstance(build_model(name), base.Regressor), name


@pytest.mark.parametrize(
    ("spec", "features", "message"),
    [
        ("ARFClassifier(n_models=5000)", 10, "ARFClassifier's n_models is at most 1,000"),
        ("KNNClassifier(n_neighbors=100000)", 10, "n_neighbors is at most 10,000"),
        ("softmax", 200_000, "softmax would hold 20,000,100 numbers for 200,000 input features"),
        ("mlp_classifier(hidden=(1000,))", 10_000, "mlp_classifier would hold 10,101,100"),
        ("GaussianNB", 50_000, "GaussianNB would hold 15,000,100"),
    ],
)
def test_classifier_sizes_are_bounded_before_anything_is_built(
    spec: str, features: int, message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        check_size(spec, features)


def test_a_classifier_is_sized_for_the_classes_the_stream_may_bring() -> None:
    check_size("mlp_classifier(hidden=(1000,), output='sigmoid')", 9_000)  # one output
    check_size("softmax", 10_000, n_classes=10)
    with pytest.raises(SpecError, match="and 1,000 classes"):
        check_size("softmax", 10_000, n_classes=1_000)


def test_a_transformer_alone_is_refused_naming_both_tasks() -> None:
    with pytest.raises(SpecError, match="must be a regressor or a classifier"):
        build_model("StandardScaler")
