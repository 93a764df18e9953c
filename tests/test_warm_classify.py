"""Warm start of a classifier: every kind of classifier A loads and B starts with A's own
probabilities; replays from it learn and report A's metrics beside B's; A's classes and the
stream's must match or be mapped (--class-map), else a usage error before any record is
learned; the transfer modes freeze what they say."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io
from river import compose, linear_model, naive_bayes, preprocessing, tree
from river import metrics as river_metrics
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, SGDClassifier
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from streamhelpers import cli, inspect_json
from streamlearn.classify.warm import ClassMapError, WarmClassifier, warm_classifier_for
from streamlearn.config import AppUsageError, Settings
from streamlearn.drift.config import DriftSettings
from streamlearn.loop.summary import inspect_state
from streamlearn.models.logistic import sigmoid
from streamlearn.models.transfer import TransferError, load_batch_model
from streamlearn.state import CheckpointStore

FEATURES = ["a", "b", "c"]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, 3)) * [1.0, 5.0, 0.2] + [0.0, 3.0, 1.0]
    return pd.DataFrame(np.round(values, 6), columns=FEATURES)


def _score(frame: pd.DataFrame) -> pd.Series:
    return frame["a"] - 0.2 * frame["b"] + 4.0 * frame["c"] - 3.4


def _yes_no(frame: pd.DataFrame, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 0.5, len(frame))
    return np.where(_score(frame) + noise > 0, "yes", "no")


def _colours(frame: pd.DataFrame, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 0.3, len(frame))
    return np.array(["red", "green", "blue"])[np.digitize(_score(frame) + noise, [-0.7, 0.7])]


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return _frame(300, 0)


@pytest.fixture(scope="module")
def probe() -> pd.DataFrame:
    return _frame(40, 1)


def _fit(model: Any, frame: pd.DataFrame, y: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(frame[FEATURES], y)


def _save(model: Any, path: Path, file_format: str) -> Path:
    path = path.with_suffix({"joblib": ".joblib", "pickle": ".pkl", "skops": ".skops"}[file_format])
    if file_format == "joblib":
        joblib.dump(model, path)
    elif file_format == "pickle":
        path.write_bytes(pickle.dumps(model))
    else:
        skops.io.dump(model, path)
    return path


def _settings(**flags: Any) -> Settings:
    return Settings(source="s.csv", follow=False, **flags)


def _b(path: Path, features: list[str] | None = FEATURES, **flags: Any) -> WarmClassifier:
    a = load_batch_model(path, trust_pickle=True)
    return warm_classifier_for(a, _settings(**flags), None, features)


def _answers(model: Any, rows: pd.DataFrame, labels: list[Any]) -> np.ndarray:
    """The model's probabilities of ``labels`` (a binary one's False, True) for each row."""
    out = []
    for x in rows.to_dict("records"):
        proba = model.predict_proba_one(x)
        out.append([proba.get(label, 0.0) for label in labels])
    return np.array(out)


def _assert_starts_as(warm: WarmClassifier, reference: np.ndarray, probe: pd.DataFrame,
                      labels: list[Any], atol: float) -> None:  # fmt: skip
    for name, model in (("B", warm.model), ("baseline A", warm.baseline)):
        np.testing.assert_allclose(
            _answers(model, probe, labels), reference, rtol=0, atol=atol, err_msg=name
        )


# -- scikit-learn --------------------------------------------------------------------------

SKLEARN: dict[str, Callable[[], Any]] = {
    "logistic": LogisticRegression,
    "sgd-log-loss": lambda: SGDClassifier(loss="log_loss", random_state=0),
    "mlp": lambda: SkMLPClassifier((6, 4), max_iter=60, random_state=0),
}
#: The model B a scikit-learn A becomes, by (A, binary).
B_KIND = {
    ("logistic", True): "LogisticRegression",
    ("logistic", False): "SoftmaxRegression",
    ("sgd-log-loss", True): "LogisticRegression",
    ("sgd-log-loss", False): "OneVsRestClassifier",  # scikit-learn's multiclass SGD is OvR
    ("mlp", True): "MLPClassifier",
    ("mlp", False): "MLPClassifier",
}


@pytest.mark.parametrize("file_format", ["joblib", "pickle", "skops"])
@pytest.mark.parametrize("scaled", [False, True], ids=["raw", "scaled"])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "multiclass"])
@pytest.mark.parametrize("name", list(SKLEARN))
def test_sklearn_classifier_a_gives_b_equal_to_a(
    name: str, binary: bool, scaled: bool, file_format: str, tmp_path: Path,
    train: pd.DataFrame, probe: pd.DataFrame,
) -> None:  # fmt: skip
    model = SKLEARN[name]()
    if scaled:
        model = make_pipeline(StandardScaler(), model)
    sk = _fit(model, train, _yes_no(train) if binary else _colours(train))
    warm = _b(_save(sk, tmp_path / "A", file_format))
    assert type(warm.model).__name__ == B_KIND[name, binary]
    reference = sk.predict_proba(probe[FEATURES])
    # A binary B learns False/True: True is the stream's positive class, yes (sklearn's 1).
    labels: list[Any] = [False, True] if binary else [str(c) for c in sk.classes_]
    _assert_starts_as(warm, reference, probe, labels, atol=1e-12)
    assert warm.classes.binary is binary
    if not binary:
        assert warm.classes.labels == ["blue", "green", "red"]  # sklearn's order: codes


def test_sklearn_binary_integer_classes_and_a_flipped_positive(
    tmp_path: Path, train: pd.DataFrame, probe: pd.DataFrame
) -> None:
    """A [0, 1] on a 1/0 stream: B's True is A's 1; --positive-class 0 turns B round."""
    sk = _fit(LogisticRegression(), train, (_yes_no(train) == "yes").astype(int))
    path = _save(sk, tmp_path / "A", "joblib")
    reference = sk.predict_proba(probe[FEATURES])
    _assert_starts_as(_b(path), reference, probe, [False, True], atol=1e-12)
    flipped = _b(path, positive_class="0")
    _assert_starts_as(flipped, reference[:, ::-1], probe, [False, True], atol=1e-12)
    assert flipped.classes.encode("0") == 1.0 and flipped.classes.encode("1") == 0.0


def test_sklearn_a_that_gives_no_probabilities_is_refused(
    tmp_path: Path, train: pd.DataFrame
) -> None:
    hinge = _fit(SGDClassifier(loss="hinge", random_state=0), train, _yes_no(train))
    with pytest.raises(TransferError, match="loss='log_loss'"):
        _b(_save(hinge, tmp_path / "A", "joblib"))
    regressor = _fit(LinearRegression(), train, _score(train))
    with pytest.raises(TransferError, match="is a regressor"):
        _b(_save(regressor, tmp_path / "R", "joblib"), task="classification")
    river_regressor = tmp_path / "river.pkl"
    river_regressor.write_bytes(pickle.dumps(linear_model.LinearRegression()))
    with pytest.raises(TransferError, match="is a regressor"):
        _b(river_regressor, task="classification")
    classifier = _fit(LogisticRegression(), train, _yes_no(train))
    with pytest.raises(AppUsageError, match="--task regression needs a regressor"):
        _b(_save(classifier, tmp_path / "C", "joblib"), task="regression")


def test_lr_of_b_is_a_tenth_of_as(tmp_path: Path, train: pd.DataFrame) -> None:
    constant = SGDClassifier(loss="log_loss", learning_rate="constant", eta0=0.05, random_state=0)
    assert _b(_save(_fit(constant, train, _yes_no(train)), tmp_path / "S", "joblib")).model.lr == (
        pytest.approx(0.005, rel=1e-15)
    )
    adam = SkMLPClassifier((4,), learning_rate_init=0.002, max_iter=20, random_state=0)
    mlp = _b(_save(_fit(adam, train, _colours(train)), tmp_path / "M", "joblib"))
    assert mlp.model.lr == pytest.approx(0.0002, rel=1e-15)
    closed_form = _save(_fit(LogisticRegression(), train, _yes_no(train)), tmp_path / "L", "joblib")
    assert _b(closed_form).model.lr == 0.001  # lbfgs keeps no rate: the fallback
    assert _b(closed_form, lr=0.3, lr_from_flag=True).model.lr == 0.3


# -- River ---------------------------------------------------------------------------------


def test_river_classifier_pickles(tmp_path: Path, train: pd.DataFrame, probe: pd.DataFrame) -> None:
    """A binary River pipeline and a multiclass tree that learned integer labels."""
    rows = train.to_dict("records")
    binary = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    for x, label in zip(rows, _yes_no(train), strict=True):
        binary.learn_one(x, label == "yes")
    path = tmp_path / "binary.pkl"
    path.write_bytes(pickle.dumps(binary))
    with pytest.raises(TransferError, match="--trust-pickle"):
        load_batch_model(path)
    warm = _b(path)
    reference = _answers(binary, probe, [False, True])
    _assert_starts_as(warm, reference, probe, [False, True], atol=0.0)  # a copy of A itself
    assert warm.classes.binary

    codes = {"blue": 0, "green": 1, "red": 2}
    hoeffding = tree.HoeffdingTreeClassifier(grace_period=50)
    for x, label in zip(rows, _colours(train), strict=True):
        hoeffding.learn_one(x, codes[label])
    path = tmp_path / "tree.pkl"
    path.write_bytes(pickle.dumps(hoeffding))
    warm = _b(path, class_map="0=blue,1=green,2=red")
    assert warm.classes.labels == ["blue", "green", "red"]
    reference = _answers(hoeffding, probe, [0, 1, 2])
    _assert_starts_as(warm, reference, probe, ["blue", "green", "red"], atol=0.0)
    warm.model.learn_one(rows[0], "red")  # B learns the stream's label as A's own: 2
    assert warm.model.classifier.classes == {0, 1, 2}


def test_river_classifier_with_text_labels_and_no_class_yet(tmp_path: Path) -> None:
    nb = naive_bayes.GaussianNB()
    path = tmp_path / "nb.pkl"
    path.write_bytes(pickle.dumps(nb))
    with pytest.raises(TransferError, match="has learned no class yet"):
        _b(path)
    for v, label in [(0.0, "low"), (1.0, "high"), (0.1, "low"), (0.9, "high")]:
        nb.learn_one({"a": v}, label)
    path.write_bytes(pickle.dumps(nb))
    warm = _b(path, features=None)
    assert warm.classes.labels == ["high", "low"]
    assert warm.model.predict_proba_one({"a": 0.2}) == nb.predict_proba_one({"a": 0.2})


# -- a state dir of a classification run ----------------------------------------------------


def _stream(path: Path, frame: pd.DataFrame, labels: Any) -> Path:
    out = frame[FEATURES].copy()
    out["label"] = list(labels)
    out.to_csv(path, index=False)
    return path


def _replay(stream: Path, state: Path, *extra: str, check: bool = True) -> Any:
    return cli(
        "replay", str(stream), "--target", "label", "--state-dir", str(state),
        "--drift-detector", "none", *extra, check=check, timeout=300,
    )  # fmt: skip


def _run(stream: Path, state: Path, **flags: Any) -> dict[str, Any]:
    """A replay in this process (as ``streamlearn replay``), then ``inspect --json``'s object."""
    from streamlearn.app import build

    settings = Settings(
        source=str(stream), follow=False, target="label", state_dir=state, trust_pickle=True,
        drift=DriftSettings(drift_detector="none"), **flags,
    )  # fmt: skip
    app = build(settings)
    try:
        app.daemon.run()
    finally:
        app.close()
    loaded = CheckpointStore(state, lock=False).load()
    assert loaded is not None
    return inspect_state(loaded.state)


def _state_model(state: Path) -> Any:
    loaded = CheckpointStore(state, lock=False).load()
    assert loaded is not None
    return loaded.state["learner"].model


@pytest.mark.parametrize(
    ("spec", "binary"),
    [
        ("logistic", True),
        ("softmax", False),
        ("mlp_classifier(hidden=(5,))", False),
        ("HoeffdingTreeClassifier(grace_period=50)", False),
    ],
)
def test_state_dir_of_a_classification_run(
    spec: str, binary: bool, tmp_path: Path, train: pd.DataFrame, probe: pd.DataFrame
) -> None:
    labels = _yes_no(train) if binary else _colours(train)
    _run(_stream(tmp_path / "s.csv", train, labels), tmp_path / "A", model=spec)
    a_model = _state_model(tmp_path / "A")
    names: list[Any] = [False, True] if binary else ["red", "green", "blue"]
    reference = _answers(a_model, probe, names)
    warm = _b(tmp_path / "A")
    _assert_starts_as(warm, reference, probe, names, atol=1e-15)
    if binary:
        assert warm.classes.positive is None  # known at the first label: yes, as in A's run
        assert warm.classes.encode("yes") == 1.0
    assert sorted(warm.classes.labels) == sorted(set(labels))


# -- replays from a warm start ---------------------------------------------------------------


def _river_scores(probas: list[dict[Any, float]], truths: list[Any], binary: bool) -> list[float]:
    """Accuracy and log loss (cross-entropy) of these probabilities, by River's metrics."""
    accuracy = river_metrics.Accuracy()
    loss = river_metrics.LogLoss() if binary else river_metrics.CrossEntropy()
    for proba, truth in zip(probas, truths, strict=True):
        accuracy.update(truth, max(proba, key=proba.__getitem__))
        loss.update(truth, proba)
    return [accuracy.get(), loss.get()]


def _sklearn_probas(model: Any, frame: pd.DataFrame, binary: bool) -> list[dict[Any, float]]:
    table = model.predict_proba(frame[FEATURES])
    names: list[Any] = [False, True] if binary else [str(c) for c in model.classes_]
    return [dict(zip(names, row.tolist(), strict=True)) for row in table]


def _source(kind: str, tmp_path: Path, train: pd.DataFrame) -> tuple[Path, Any, bool]:
    """Model A of ``kind`` saved in ``tmp_path``, its in-memory self, and whether binary."""
    if kind == "sklearn-logistic-joblib":
        model = _fit(LogisticRegression(), train, _yes_no(train))
        return _save(model, tmp_path / "A", "joblib"), model, True
    if kind == "sklearn-sgd-skops":
        model = _fit(SGDClassifier(loss="log_loss", random_state=0), train, _colours(train))
        return _save(model, tmp_path / "A", "skops"), model, False
    if kind == "sklearn-scaled-mlp-pickle":
        mlp = make_pipeline(StandardScaler(), SkMLPClassifier((5,), max_iter=80, random_state=0))
        model = _fit(mlp, train, _yes_no(train))
        return _save(model, tmp_path / "A", "pickle"), model, True
    if kind == "river-pickle":
        model = naive_bayes.GaussianNB()
        for x, label in zip(train.to_dict("records"), _colours(train), strict=True):
            model.learn_one(x, str(label))
        path = tmp_path / "A.pkl"
        path.write_bytes(pickle.dumps(model))
        return path, model, False
    assert kind == "state-dir"
    _run(_stream(tmp_path / "a.csv", train, _colours(train)), tmp_path / "A", model="softmax")
    return tmp_path / "A", _state_model(tmp_path / "A"), False


SOURCES = [
    "sklearn-logistic-joblib",
    "sklearn-sgd-skops",
    "sklearn-scaled-mlp-pickle",
    "river-pickle",
    "state-dir",
]


@pytest.mark.parametrize("kind", SOURCES)
def test_a_replay_from_a_warm_start_learns_and_reports_a_beside_b(
    kind: str, tmp_path: Path, train: pd.DataFrame
) -> None:
    path, a_model, binary = _source(kind, tmp_path, train)
    frame = _frame(400, 2)
    labels = _yes_no(frame, seed=2) if binary else _colours(frame, seed=2)
    stream = _stream(tmp_path / "stream.csv", frame, labels)
    summary = _run(stream, tmp_path / "B", warm_start=str(path))
    assert summary["task"] == "classification" and summary["records_learned"] == 400
    loss = "log_loss" if binary else "cross_entropy"
    truths: list[Any] = list(labels == "yes") if binary else [str(label) for label in labels]
    if kind.startswith("sklearn"):
        probas = _sklearn_probas(a_model, frame, binary)
    else:
        probas = [a_model.predict_proba_one(x) for x in frame.to_dict("records")]
    accuracy, log_loss = _river_scores(probas, truths, binary)
    baseline = summary["baseline_metrics"]
    assert baseline["accuracy"] == accuracy  # A never learns: its own predictions, counted
    assert baseline[loss] == pytest.approx(log_loss, rel=0, abs=1e-12)
    assert set(summary["metrics"]) == set(baseline)  # B's metrics, beside A's
    assert 0.0 < summary["metrics"]["accuracy"] <= 1.0


def test_b_from_a_logistic_a_is_the_seeds_update_from_as_weights(
    tmp_path: Path, train: pd.DataFrame
) -> None:
    """B's weights, accuracy and log loss equal a numpy loop of the seed's update that starts
    from scikit-learn's coef_ at a tenth of... A kept no rate (lbfgs): at 0.001."""
    sk = _fit(LogisticRegression(), train, _yes_no(train))
    frame = _frame(400, 2)
    labels = _yes_no(frame, seed=2)
    stream = _stream(tmp_path / "stream.csv", frame, labels)
    _run(stream, tmp_path / "B", warm_start=str(_save(sk, tmp_path / "A", "skops")))
    weights, intercept, lr = sk.coef_[0].astype(float).tolist(), float(sk.intercept_[0]), 0.001
    probas = []
    for x, label in zip(frame[FEATURES].to_numpy().tolist(), labels, strict=True):
        margin = intercept
        for w, v in zip(weights, x, strict=True):
            margin += w * v
        p = sigmoid(margin)
        probas.append({False: 1.0 - p, True: p})
        step = lr * (p - (1.0 if label == "yes" else 0.0))
        weights = [w - step * v for w, v in zip(weights, x, strict=True)]
        intercept -= step
    summary = inspect_json(tmp_path / "B")  # what a user reads, from the command line
    got = [summary["weights"][name] for name in FEATURES]
    np.testing.assert_allclose(got, weights, rtol=0, atol=1e-12)
    assert summary["intercept"] == pytest.approx(intercept, rel=0, abs=1e-12)
    accuracy, log_loss = _river_scores(probas, list(labels == "yes"), True)
    assert summary["metrics"]["accuracy"] == accuracy
    assert summary["metrics"]["log_loss"] == pytest.approx(log_loss, rel=0, abs=1e-12)


# -- classes that do not match, and --class-map --------------------------------------------


@pytest.fixture(scope="module")
def a_01(tmp_path_factory: pytest.TempPathFactory, train: pd.DataFrame) -> tuple[Path, Any]:
    """A binary scikit-learn A that learned the classes 0 and 1."""
    sk = _fit(LogisticRegression(), train, (_yes_no(train) == "yes").astype(int))
    return _save(sk, tmp_path_factory.mktemp("a01") / "A", "skops"), sk


@pytest.mark.slow  # a daemon process: the exit code and message a user sees
def test_a_yes_no_stream_on_a_0_1_model_stops_before_learning_and_the_map_fixes_it(
    tmp_path: Path, a_01: tuple[Path, Any]
) -> None:
    path, sk = a_01
    frame = _frame(50, 3)
    stream = _stream(tmp_path / "yes_no.csv", frame, _yes_no(frame))
    result = _replay(stream, tmp_path / "B", "--warm-start", str(path), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert "the stream's first label 'yes' is not a class of model A" in errors[0]
    assert "--class-map 1=yes,0=no" in errors[0]
    store = CheckpointStore(tmp_path / "B", lock=False)
    assert store.load() is None  # nothing learned, nothing checkpointed
    start = store.load(start=True)
    assert start is None or start.state["learner"].records_learned == 0

    predictions = tmp_path / "p.jsonl"
    summary = _run(stream, tmp_path / "B2", warm_start=str(path), class_map="0=no,1=yes",
                   predictions=str(predictions), predictions_all=True)  # fmt: skip
    assert summary["records_learned"] == 50
    first = json.loads(predictions.read_text().splitlines()[0])
    p0, p1 = sk.predict_proba(frame[FEATURES].iloc[:1])[0]
    assert first["probabilities"] == pytest.approx({"no": p0, "yes": p1}, rel=0, abs=1e-12)
    # A's class 0 may as well be the stream's yes: B turns round.
    flipped = _b(path, class_map="0=yes,1=no")
    proba = flipped.model.predict_proba_one(frame.iloc[0].to_dict())
    assert proba[True] == pytest.approx(p0, rel=0, abs=1e-12)  # True: yes, A's class 0
    assert flipped.classes.encode("yes") == 1.0


def test_flags_that_disagree_with_as_classes_are_usage_errors(
    tmp_path: Path, a_01: tuple[Path, Any], train: pd.DataFrame
) -> None:
    path, _ = a_01
    with pytest.raises(ClassMapError, match=r"--classes cat,dog are not model A's classes"):
        _b(path, classes=("cat", "dog"), positive_class="dog")
    with pytest.raises(ClassMapError, match=r"names 7, which model A .* does not have"):
        _b(path, class_map="7=yes")
    with pytest.raises(ClassMapError, match="sends two of A's classes to one label"):
        _b(path, class_map="0=x,1=x")
    with pytest.raises(ClassMapError, match="'maybe' is not a class of model A"):
        _b(path, positive_class="maybe")
    assert _b(path, classes=("cat", "dog"), class_map="0=cat,1=dog").classes.labels == [
        "cat",
        "dog",
    ]
    colours = _save(_fit(LogisticRegression(), train, _colours(train)), tmp_path / "C", "joblib")
    with pytest.raises(ClassMapError, match="--classes red,green are not"):
        _b(colours, classes=("red", "green"))
    with pytest.raises(AppUsageError, match="model A has 3 classes, more than --max-classes 2"):
        _b(colours, max_classes=2)
    river_binary = tmp_path / "river.pkl"
    river_binary.write_bytes(pickle.dumps(linear_model.LogisticRegression()))
    with pytest.raises(ClassMapError, match="does not name its classes"):
        _b(river_binary, class_map="0=no")
    result = cli("replay", "s.csv", "--class-map", "0=no", check=False)
    assert result.returncode == 2 and "--class-map needs --warm-start" in result.stderr


def test_a_multiclass_stream_first_label_decides_later_strays_are_dead_letters(
    tmp_path: Path, train: pd.DataFrame
) -> None:
    path = _save(_fit(LogisticRegression(), train, _colours(train)), tmp_path / "A", "joblib")
    frame = _frame(60, 4)
    labels = _colours(frame).astype(object)
    labels[0] = "purple"
    with pytest.raises(ClassMapError, match="first label 'purple' is not a class of model A"):
        _run(_stream(tmp_path / "first.csv", frame, labels), tmp_path / "B1", warm_start=str(path))
    labels[0], labels[30] = "red", "purple"
    dead = tmp_path / "dead.jsonl"
    summary = _run(_stream(tmp_path / "later.csv", frame, labels), tmp_path / "B2",
                   warm_start=str(path), dead_letter=str(dead))  # fmt: skip
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(entry["reason"], entry["detail"]) for entry in letters] == [
        ("unknown_class", "'purple' is not a class of model A (blue, green, red)")
    ]
    assert summary["records_learned"] == 59 and summary["classes"] == ["blue", "green", "red"]
    assert "purple" not in summary["metrics"]["confusion"]


def test_no_number_skips_the_first_label_check(a_01: tuple[Path, Any]) -> None:
    """The block parser reads numbers through ``numeric_codes``: none before the first label."""
    space = _b(a_01[0]).classes
    assert space.numeric_codes() == {}
    assert space.encode("1") == 1.0
    assert space.numeric_codes() == {1.0: 1, 0.0: 0}


# -- the transfer modes ------------------------------------------------------------------------


def _layers_after_replay(
    path: Path, tmp_path: Path, mode: str, k: int, binary: bool = True, **flags: Any
) -> Any:
    frame = _frame(300, 5)
    labels = _yes_no(frame, seed=5) if binary else _colours(frame, seed=5)
    state = tmp_path / f"{mode}-{k}"
    _run(_stream(tmp_path / "stream.csv", frame, labels), state, warm_start=str(path),
         transfer_mode=mode, trainable_layers=k, lr=0.05, lr_from_flag=True, **flags)  # fmt: skip
    return _state_model(state)


def _assert_frozen(
    b: Any, coefs: list[np.ndarray], intercepts: list[np.ndarray], frozen: int
) -> None:
    """The first ``frozen`` layers hold A's weights to the bit; the others learned."""
    for layer, (coef, bias) in enumerate(zip(coefs, intercepts, strict=True)):
        same = np.array_equal(b.coefs_[layer], coef) and np.array_equal(b.intercepts_[layer], bias)
        assert same is (layer < frozen), (layer, frozen)


@pytest.mark.parametrize(
    ("mode", "k", "frozen"),
    [("extract", 1, 2), ("partial", 1, 2), ("partial", 2, 1), ("finetune", 1, 0)],
)
def test_transfer_modes_freeze_what_they_say(
    mode: str, k: int, frozen: int, tmp_path: Path, train: pd.DataFrame
) -> None:
    pipeline = make_pipeline(StandardScaler(), SkMLPClassifier((6, 4), max_iter=80, random_state=0))
    sk = _fit(pipeline, train, _yes_no(train))
    b = _layers_after_replay(_save(sk, tmp_path / "A", "joblib"), tmp_path, mode, k)
    mlp, scaler = sk[-1], sk[0]
    assert type(b).__name__ == "MLPClassifier" and b.output_ == "sigmoid"
    _assert_frozen(b, mlp.coefs_, mlp.intercepts_, frozen)
    assert np.array_equal(b.input_mean, scaler.mean_) and np.array_equal(
        b.input_scale, scaler.scale_
    )


def test_modes_that_need_layers_are_refused_for_a_linear_or_river_a(
    tmp_path: Path, a_01: tuple[Path, Any]
) -> None:
    with pytest.raises(TransferError, match="mode extract makes no sense for a linear A"):
        _b(a_01[0], transfer_mode="extract")
    river = tmp_path / "tree.pkl"
    model = tree.HoeffdingTreeClassifier()
    model.learn_one({"a": 1.0}, "x")
    river.write_bytes(pickle.dumps(model))
    with pytest.raises(TransferError, match="mode partial needs A's layers"):
        _b(river, transfer_mode="partial")
    mlp = _fit(SkMLPClassifier((3,), max_iter=10, random_state=0), _frame(50, 9), ["a", "b"] * 25)
    with pytest.raises(TransferError, match="K must be between 1 and 1, got 2"):
        _b(_save(mlp, tmp_path / "M", "joblib"), transfer_mode="partial", trainable_layers=2)


# -- Keras ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras() -> types.ModuleType:
    if importlib.util.find_spec("keras") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("keras is not installed, but CI must run the Keras transfer tests")
        pytest.skip("keras is not installed (make keras)")
    if importlib.util.find_spec("torch") is not None:
        os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras as keras_module

    return keras_module


#: Keras 3.15 on torch with numpy 2 warns about __array__ on every conversion: its noise.
KERAS_NOISE = "ignore:__array__ implementation:DeprecationWarning"


@pytest.fixture(scope="module")
def keras_files(
    keras: types.ModuleType, tmp_path_factory: pytest.TempPathFactory, train: pd.DataFrame
) -> dict[str, tuple[Path, Any]]:
    """Three classifiers, saved: a sigmoid unit, a softmax, and logits (from_logits loss)."""
    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("keras")
    x = train[FEATURES].to_numpy(dtype="float32")
    binary = (_yes_no(train) == "yes").astype("float32")
    codes = np.array([{"red": 0, "green": 1, "blue": 2}[c] for c in _colours(train)])
    layers = keras.layers
    shapes = {
        "sigmoid": (layers.Dense(1, activation="sigmoid"), "binary_crossentropy", binary),
        "softmax": (
            layers.Dense(3, activation="softmax"),
            "sparse_categorical_crossentropy",
            codes,
        ),
        "logits": (
            layers.Dense(3),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            codes,
        ),
    }
    files = {}
    for name, (head, loss, y) in shapes.items():
        model = keras.Sequential(
            [keras.Input(shape=(3,)), layers.Dense(5, activation="tanh"), layers.Dropout(0.1),
             layers.Dense(4, activation="relu"), head]
        )  # fmt: skip
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss)
        model.fit(x, y, epochs=2, verbose=0)
        model.save(folder / f"{name}.keras")
        files[name] = (folder / f"{name}.keras", model)
    return files


def _keras_proba(model: Any, frame: pd.DataFrame, logits: bool = False) -> np.ndarray:
    out = model.predict(frame[FEATURES].to_numpy(dtype="float32"), verbose=0).astype(np.float64)
    if logits:
        out = np.exp(out - out.max(axis=1, keepdims=True))
        out /= out.sum(axis=1, keepdims=True)
    return out if out.shape[1] > 1 else np.hstack([1.0 - out, out])


@pytest.mark.slow  # trains three Keras models (torch) once
@pytest.mark.filterwarnings(KERAS_NOISE)
def test_keras_classifiers_give_b_equal_to_a(
    keras_files: dict[str, tuple[Path, Any]], probe: pd.DataFrame
) -> None:
    path, model = keras_files["sigmoid"]
    reference = _keras_proba(model, probe)
    warm = _b(path)  # the unit is the stream's positive class, whatever it is called
    _assert_starts_as(warm, reference, probe, [False, True], atol=1e-6)
    assert warm.model.lr == pytest.approx(0.001, rel=1e-6)  # Adam's 0.01 / 10
    named = _b(path, classes=("yes", "no"))  # a known pair: the unit is yes
    _assert_starts_as(named, reference, probe, [False, True], atol=1e-6)
    with pytest.raises(TransferError, match="say which of --classes cat,dog"):
        _b(path, classes=("cat", "dog"))

    colours = ["red", "green", "blue"]
    for name in ("softmax", "logits"):
        path, model = keras_files[name]
        reference = _keras_proba(model, probe, logits=name == "logits")
        warm = _b(path, classes=tuple(colours))
        assert warm.classes.labels == colours
        _assert_starts_as(warm, reference, probe, colours, atol=1e-6)
        _assert_starts_as(_b(path), reference, probe, ["0", "1", "2"], atol=1e-6)
        with pytest.raises(TransferError, match="3 output units, one per class, but --classes"):
            _b(path, classes=("red", "green"))


@pytest.mark.slow  # trains three Keras models (torch) once
@pytest.mark.filterwarnings(KERAS_NOISE)
def test_keras_a_replays_and_freezes_its_layers(
    keras_files: dict[str, tuple[Path, Any]], tmp_path: Path
) -> None:
    path, model = keras_files["softmax"]
    frame = _frame(300, 6)
    labels = _colours(frame, seed=6)
    summary = _run(_stream(tmp_path / "s.csv", frame, labels), tmp_path / "B",
                   warm_start=str(path), classes=("red", "green", "blue"))  # fmt: skip
    probas = [
        dict(zip(["red", "green", "blue"], row.tolist(), strict=True))
        for row in _keras_proba(model, frame)
    ]
    accuracy, loss = _river_scores(probas, [str(label) for label in labels], False)
    assert summary["records_learned"] == 300
    # Keras answers in float32, B in float64 (1e-6 apart): a near tie may go either way.
    assert summary["baseline_metrics"]["accuracy"] == pytest.approx(accuracy, abs=1 / 300)
    assert summary["baseline_metrics"]["cross_entropy"] == pytest.approx(loss, rel=0, abs=1e-6)
    weights = model.get_weights()
    coefs = [w.astype(np.float64) for w in weights[0::2]]
    intercepts = [w.astype(np.float64) for w in weights[1::2]]
    b = _layers_after_replay(path, tmp_path, "partial", 2, binary=False,
                             classes=("red", "green", "blue"))  # fmt: skip
    _assert_frozen(b, coefs, intercepts, frozen=1)


@pytest.mark.slow  # trains three Keras models (torch) once
@pytest.mark.filterwarnings(KERAS_NOISE)
def test_a_sigmoid_network_may_still_start_a_regression(
    keras_files: dict[str, tuple[Path, Any]], probe: pd.DataFrame, a_01: tuple[Path, Any]
) -> None:
    """--task regression: a network's one sigmoid unit is a number in [0, 1], as before."""
    from streamlearn.models.transfer import warm_start

    path, model = keras_files["sigmoid"]
    b = warm_start(load_batch_model(path), "finetune", stream_features=FEATURES)
    got = [b.predict_one(x) for x in probe.to_dict("records")]
    np.testing.assert_allclose(got, _keras_proba(model, probe)[:, 1], rtol=0, atol=1e-6)
    with pytest.raises(TransferError, match="is a classifier: it warm-starts a classification"):
        warm_start(load_batch_model(a_01[0]), "finetune", stream_features=FEATURES)


def test_a_resumed_warm_start_keeps_its_classes(tmp_path: Path, a_01: tuple[Path, Any]) -> None:
    """Resumed, a warm start carries on from its position with its class space (the map's)."""
    frame = _frame(150, 8)
    labels = _yes_no(frame, seed=8).astype(object)
    labels[120] = "maybe"
    stream = _stream(tmp_path / "s.csv", frame.iloc[:100], labels[:100])
    flags = {"warm_start": str(a_01[0]), "class_map": "0=no,1=yes"}
    assert _run(stream, tmp_path / "B", **flags)["records_learned"] == 100
    more = _stream(tmp_path / "more.csv", frame.iloc[100:], labels[100:])
    with stream.open("a") as handle:  # the same file, grown
        handle.write("".join(more.read_text().splitlines(keepends=True)[1:]))
    dead = tmp_path / "dead.jsonl"
    summary = _run(stream, tmp_path / "B", dead_letter=str(dead), **flags)
    assert summary["records_learned"] == 149 and summary["classes"] == ["no", "yes"]
    assert [json.loads(line)["reason"] for line in dead.read_text().splitlines()] == ["third_class"]


def test_a_classifier_a_as_a_pseudo_label_teacher(
    tmp_path: Path, train: pd.DataFrame, probe: pd.DataFrame
) -> None:
    """``warm_teacher``: A for a run's class space, as the run's own warm start builds it."""
    from streamlearn.classify.space import ClassSpace
    from streamlearn.classify.warm import warm_teacher

    sk = _fit(LogisticRegression(), train, _yes_no(train))
    a = load_batch_model(_save(sk, tmp_path / "A", "joblib"), trust_pickle=True)
    teacher = warm_teacher(a, ClassSpace(binary=True, positive="no"), lr=0.5)
    reference = sk.predict_proba(probe[FEATURES])[:, ::-1]  # True: no, A's first class
    np.testing.assert_allclose(_answers(teacher, probe, [False, True]), reference, atol=1e-12)
    assert teacher.lr == 0.5
    with pytest.raises(TransferError, match="is a binary classifier, and the run's model multi"):
        warm_teacher(a, ClassSpace(binary=False))
