"""Transfer learning: every kind of model A loads, B starts exactly as A, modes freeze the
right layers, mismatches are refused early, and a warm start learns the target task faster
(extract, with its least-squares head, from a few records)."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import pickle
import subprocess
import sys
import types
import warnings
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io
from river import base, checks, linear_model, optim, preprocessing
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, Ridge, SGDRegressor
from sklearn.neural_network import MLPRegressor as SkMLP
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from streamlearn.models.mlp import MLPRegressor
from streamlearn.models.pretrain import pretrain
from streamlearn.models.transfer import (
    BatchModel,
    FrozenRegressor,
    RenamedRegressor,
    TransferError,
    as_batch_model,
    frozen_baseline,
    load_batch_model,
    parse_feature_map,
    warm_start,
)
from streamlearn.producers.transfer_data import make_transfer_pair, write_transfer_pair
from streamlearn.state import CheckpointStore

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FEATURES = ["x1", "x2"]


@pytest.fixture(scope="module")
def train_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x1": rng.uniform(-2, 2, 300), "x2": rng.uniform(0, 10, 300)})
    frame["y"] = np.sin(frame["x1"]) * 3 + 0.4 * frame["x2"] + rng.normal(0, 0.1, 300)
    return frame


@pytest.fixture(scope="module")
def probe_rows() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"x1": rng.uniform(-3, 3, 25), "x2": rng.uniform(-1, 12, 25)})


def _fit(model: Any, frame: pd.DataFrame) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(frame[FEATURES], frame["y"])


SKLEARN_MODELS: dict[str, Callable[[], Any]] = {
    "mlp": lambda: SkMLP(hidden_layer_sizes=(8, 6), max_iter=60, random_state=0),
    "mlp-tanh-3-hidden": lambda: SkMLP(
        hidden_layer_sizes=(5, 4, 3), activation="tanh", max_iter=40, random_state=1
    ),
    "linear": LinearRegression,
    "ridge": lambda: Ridge(alpha=2.0),
    "sgd": lambda: SGDRegressor(max_iter=50, random_state=0),
    "scaled-mlp": lambda: make_pipeline(
        StandardScaler(), SkMLP(hidden_layer_sizes=(7,), max_iter=60, random_state=0)
    ),
    "scaled-ridge": lambda: make_pipeline(StandardScaler(), Ridge()),
    "centred-only-linear": lambda: make_pipeline(
        StandardScaler(with_std=False), LinearRegression()
    ),
}


def _modes(a: BatchModel) -> list[tuple[str, int]]:
    if a.kind != "mlp":
        return [("finetune", 1)]
    return [("finetune", 1), ("extract", 1)] + [("partial", k) for k in range(1, a.n_layers)]


def _assert_b_starts_as_a(
    a: BatchModel, reference: np.ndarray, rows: pd.DataFrame, **kwargs: Any
) -> int:
    """Every applicable mode's B (and the frozen baseline) predicts A's own outputs to 1e-9."""
    records = rows.to_dict("records")
    checked = 0
    built: list[tuple[str, base.Regressor]] = [
        (f"{mode}:{k}", warm_start(a, mode, k, **kwargs)) for mode, k in _modes(a)
    ]
    built.append(("baseline", frozen_baseline(a, **kwargs)))
    if a.kind == "linear":
        built.append(("river-linear", warm_start(a, "finetune", linear_model="river", **kwargs)))
    for name, b in built:
        got = np.array([b.predict_one(dict(x)) for x in records])
        np.testing.assert_allclose(got, reference, rtol=0, atol=1e-9, err_msg=name)
        checked += 1
    return checked


@pytest.mark.parametrize("name", list(SKLEARN_MODELS))
@pytest.mark.parametrize("file_format", ["skops", "joblib", "pickle"])
def test_sklearn_a_gives_b_equal_to_a(
    name: str, file_format: str, tmp_path: Path, train_frame: pd.DataFrame, probe_rows: pd.DataFrame
) -> None:
    model = _fit(SKLEARN_MODELS[name](), train_frame)
    path = tmp_path / f"A.{file_format}"
    if file_format == "skops":
        skops.io.dump(model, path)
    elif file_format == "joblib":
        joblib.dump(model, path)
    else:
        path.write_bytes(pickle.dumps(model))
    # A pickle is unpickled only when its reader trusts it (--trust-pickle).
    a = load_batch_model(path, trust_pickle=file_format != "skops")
    assert a.feature_names == ("x1", "x2")
    assert a.kind == ("mlp" if "mlp" in name else "linear")
    assert ("StandardScaler" in a.origin) == isinstance(model, Pipeline)
    reference = model.predict(probe_rows)
    np.testing.assert_allclose(
        [a.predict_one(x) for x in probe_rows.to_dict("records")], reference, atol=1e-9
    )
    # Stream columns in another order are fine: B reorders them to A's input order.
    checked = _assert_b_starts_as_a(a, reference, probe_rows, stream_features=["x2", "x1"])
    assert checked == len(_modes(a)) + 1 + (a.kind == "linear")


def test_nameless_sklearn_a_is_positional(
    train_frame: pd.DataFrame, probe_rows: pd.DataFrame
) -> None:
    # Fitted on a bare array, scikit-learn keeps no names: the stream's order decides.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = SkMLP(hidden_layer_sizes=(4,), max_iter=30, random_state=0).fit(
            train_frame[FEATURES].to_numpy(), train_frame["y"].to_numpy()
        )
    a = as_batch_model(model)
    assert a.feature_names is None and a.input_names == ("x0", "x1")
    reference = model.predict(probe_rows[["x1", "x2"]].to_numpy())
    b = warm_start(a, "finetune", stream_features=["x1", "x2"])
    got = [b.predict_one(x) for x in probe_rows.to_dict("records")]
    np.testing.assert_allclose(got, reference, atol=1e-9)
    mapped = warm_start(a, "finetune", feature_map={"x2": "x1", "x1": "x0"})
    np.testing.assert_allclose(
        [mapped.predict_one(x) for x in probe_rows.to_dict("records")], reference, atol=1e-9
    )
    with pytest.raises(TransferError, match="has no feature names"):
        warm_start(a, "finetune")
    with pytest.raises(TransferError, match="takes 2 input"):
        warm_start(a, "finetune", stream_features=["x1"])


def test_river_pipeline_pickle(
    tmp_path: Path, train_frame: pd.DataFrame, probe_rows: pd.DataFrame
) -> None:
    model = preprocessing.StandardScaler() | linear_model.LinearRegression(
        optimizer=optim.SGD(0.01)
    )
    for row in train_frame.to_dict("records"):
        y = row.pop("y")
        model.learn_one(row, y)
    path = tmp_path / "river.pkl"
    path.write_bytes(pickle.dumps(model))
    with pytest.raises(TransferError, match="--trust-pickle"):
        load_batch_model(path)
    a = load_batch_model(path, trust_pickle=True)
    assert a.kind == "river"
    records = probe_rows.to_dict("records")
    reference = np.array([model.predict_one(dict(x)) for x in records])
    b = warm_start(a, "finetune")
    np.testing.assert_allclose([b.predict_one(x) for x in records], reference, rtol=0, atol=1e-9)
    baseline = frozen_baseline(a)
    np.testing.assert_allclose([baseline.predict_one(x) for x in records], reference, atol=1e-9)
    # B is a copy that learns; A is untouched.
    b.learn_one(records[0], 100.0)
    assert b.predict_one(records[0]) != reference[0]
    assert a.predict_one(records[0]) == pytest.approx(reference[0], abs=1e-12)
    # Renamed stream features reach the River model under A's names, without touching the input.
    renamed = warm_start(a, "finetune", feature_map={"temp": "x1"})
    x = {"temp": records[1]["x1"], "x2": records[1]["x2"]}
    assert renamed.predict_one(x) == pytest.approx(reference[1], abs=1e-9)
    assert set(x) == {"temp", "x2"}
    for mode in ("extract", "partial"):
        with pytest.raises(TransferError, match="use finetune"):
            warm_start(a, mode)


def test_streamlearn_checkpoints(tmp_path: Path, probe_rows: pd.DataFrame) -> None:
    mlp = MLPRegressor(hidden=(4, 3), seed=0)
    rng = np.random.default_rng(0)
    for _ in range(30):
        mlp.learn_one({"x1": float(rng.normal()), "x2": float(rng.normal())}, 1.0)
    records = probe_rows.to_dict("records")
    reference = np.array([mlp.predict_one(x) for x in records])

    # The placeholder format: a pickled dict holding the model.
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"model": mlp, "position": 3}))
    a = load_batch_model(tmp_path / "model.pkl", trust_pickle=True)
    assert (a.kind, a.feature_names, a.n_layers) == ("mlp", ("x1", "x2"), 3)
    _assert_b_starts_as_a(a, reference, probe_rows)

    # The daemon's own state directory (generations written by CheckpointStore).
    from streamlearn.state import CheckpointStore

    store = CheckpointStore(tmp_path / "state")
    try:
        store.save({"learner": types.SimpleNamespace(model=mlp), "source": None})
    finally:
        store.close()
    from_dir = load_batch_model(tmp_path / "state")
    from_file = load_batch_model(next((tmp_path / "state").glob("gen-*.ckpt")))
    for loaded in (from_dir, from_file):
        _assert_b_starts_as_a(loaded, reference, probe_rows)

    (tmp_path / "empty").mkdir()
    with pytest.raises(TransferError, match="no checkpoint"):
        load_batch_model(tmp_path / "empty")


def test_streamlearn_sgd_is_a_linear_a() -> None:
    from streamlearn.models.sgd import SGDRegressor as OurSGD

    a = as_batch_model(OurSGD(initial_weights={"x": 2.0, "z": -1.0}, initial_intercept=0.5))
    assert a.kind == "linear" and a.feature_names == ("x", "z")
    b = warm_start(a, "finetune", feature_map={"speed": "x"}, stream_features=["speed", "z"])
    assert b.predict_one({"speed": 1.0, "z": 2.0}) == pytest.approx(0.5)


# -- Keras --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras() -> types.ModuleType:
    if importlib.util.find_spec("keras") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("keras is not installed, but CI must run the Keras transfer test")
        pytest.skip("keras is not installed (pip install torch==2.13.0 keras)")
    # Keras 3 needs a backend; torch is the one this project installs (jax would do too).
    if importlib.util.find_spec("torch") is not None:
        os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras as keras_module

    return keras_module


def _train_keras(keras: types.ModuleType, model: Any, frame: pd.DataFrame, dtype: str) -> Any:
    model.compile(optimizer="adam", loss="mean_squared_error")
    model.fit(
        frame[FEATURES].to_numpy(dtype=dtype), frame["y"].to_numpy(dtype=dtype), epochs=3, verbose=0
    )
    return model


# Keras 3.15 on torch with numpy 2 warns about __array__ on every conversion: its noise, not ours.
KERAS_NOISE = "ignore:__array__ implementation:DeprecationWarning"


@pytest.mark.slow
@pytest.mark.filterwarnings(KERAS_NOISE)
def test_keras_a_float64_with_dropout_and_no_bias(
    keras: types.ModuleType, tmp_path: Path, train_frame: pd.DataFrame, probe_rows: pd.DataFrame
) -> None:
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(2,), dtype="float64"),
            layers.Dense(8, activation="relu", dtype="float64", name="first"),
            layers.Dropout(0.2, dtype="float64"),
            layers.Dense(6, activation="tanh", dtype="float64"),
            layers.Dense(5, activation="sigmoid", use_bias=False, dtype="float64"),
            layers.Dense(1, activation="linear", dtype="float64", name="head"),
        ]
    )
    _train_keras(keras, model, train_frame, "float64")
    path = tmp_path / "A.keras"
    model.save(path)
    a = load_batch_model(path)
    assert (a.kind, a.feature_names, a.n_features) == ("mlp", None, 2)
    assert a.activations == ("relu", "tanh", "sigmoid", "linear")
    assert not a.intercepts[2].any()  # use_bias=False
    # A holds exactly Keras' weights (the Dropout layer has none; use_bias=False is a zero bias).
    weights = iter(model.get_weights())
    for layer, (coef, bias) in enumerate(zip(a.coefs, a.intercepts, strict=True)):
        assert np.array_equal(coef, next(weights))
        assert np.array_equal(bias, np.zeros(5) if layer == 2 else next(weights))
    # Keras 3.15 on torch multiplies float64 layers in float32 (its dtype promotion turns
    # float64 x float64 into float32), so its own outputs are float32-accurate only. The 1e-9
    # check is against Keras' weights evaluated in float64; Keras' predict agrees to 1e-5.
    inputs = probe_rows.to_numpy(dtype="float64")
    out = inputs
    for coef, bias, act in zip(a.coefs, a.intercepts, ("relu", "tanh", "sigmoid"), strict=False):
        z = out @ coef + bias
        out = {"relu": np.maximum(z, 0), "tanh": np.tanh(z), "sigmoid": 1 / (1 + np.exp(-z))}[act]
    exact = (out @ a.coefs[-1] + a.intercepts[-1])[:, 0]
    keras_own = model.predict(inputs, verbose=0)[:, 0]
    np.testing.assert_allclose(keras_own, exact, rtol=1e-5, atol=1e-5)
    # Keras has no feature names: the stream's order is A's input order.
    _assert_b_starts_as_a(a, exact, probe_rows, stream_features=FEATURES)
    b = warm_start(a, "finetune", stream_features=FEATURES)
    got = [b.predict_one(x) for x in probe_rows.to_dict("records")]
    np.testing.assert_allclose(got, keras_own, rtol=1e-5, atol=1e-5)
    with pytest.raises(TransferError, match="has no feature names"):
        warm_start(a, "finetune")


@pytest.mark.slow
@pytest.mark.filterwarnings(KERAS_NOISE)
def test_keras_a_like_the_seed(
    keras: types.ModuleType, tmp_path: Path, probe_rows: pd.DataFrame
) -> None:
    """The seed's own model: 1 -> Dense50 relu -> Dense50 relu -> Dense1, float32."""
    (x_source, y_source), _ = make_transfer_pair(n_source=400, n_target=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Keras 3 prefers Input() to input_dim
        model = keras.Sequential()
        model.add(keras.layers.Dense(units=50, input_dim=1, activation="relu"))
        model.add(keras.layers.Dense(units=50, activation="relu"))
        model.add(keras.layers.Dense(units=1, activation="linear"))
    model.compile(optimizer="adam", loss="mean_squared_error")
    model.fit(x_source.reshape(-1, 1), y_source, epochs=3, verbose=0)
    path = tmp_path / "model1.keras"
    model.save(path)
    a = load_batch_model(path)
    assert [c.shape for c in a.coefs] == [(1, 50), (50, 50), (50, 1)]
    b = warm_start(a, "finetune", stream_features=["x"])
    xs = probe_rows["x1"].to_numpy()
    reference = model.predict(xs.reshape(-1, 1), verbose=0)[:, 0].astype(np.float64)
    got = np.array([b.predict_one({"x": float(v)}) for v in xs])
    # Keras computes in float32; B computes A's float32 weights in float64.
    np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-5)


def test_keras_file_errors(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "functional.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Functional", "config": {}}))
        archive.writestr("model.weights.h5", b"")
    with pytest.raises(TransferError, match="only Keras Sequential"):
        load_batch_model(path)
    (tmp_path / "broken.keras").write_text("not a zip")
    with pytest.raises(TransferError, match=r"not a readable \.keras file"):
        load_batch_model(tmp_path / "broken.keras")
    (tmp_path / "old.h5").write_bytes(b"\x89HDF")
    with pytest.raises(TransferError, match="re-save it"):
        load_batch_model(tmp_path / "old.h5")


# -- modes and freezing ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def deep_a(train_frame: pd.DataFrame) -> BatchModel:
    model = _fit(
        make_pipeline(
            StandardScaler(), SkMLP(hidden_layer_sizes=(6, 5, 4), max_iter=50, random_state=0)
        ),
        train_frame,
    )
    return as_batch_model(model)


def _learn_some(b: base.Regressor, frame: pd.DataFrame) -> None:
    for row in frame.head(60).to_dict("records"):
        y = row.pop("y")
        b.learn_one(row, y + 1.0)  # a shifted target, so every trainable layer has a gradient


def _changed_layers(a: BatchModel, b: MLPRegressor) -> list[bool]:
    return [
        not (np.array_equal(bc, ac) and np.array_equal(bb, ab))
        for bc, ac, bb, ab in zip(b.coefs_, a.coefs, b.intercepts_, a.intercepts, strict=True)
    ]


def test_extract_trains_only_the_output_layer(
    deep_a: BatchModel, train_frame: pd.DataFrame
) -> None:
    b = warm_start(deep_a, "extract")
    assert isinstance(b, MLPRegressor) and b.trainable_layers == 1
    _learn_some(b, train_frame)
    assert _changed_layers(deep_a, b) == [False, False, False, True]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_partial_freezes_exactly_the_first_layers(
    deep_a: BatchModel, train_frame: pd.DataFrame, k: int
) -> None:
    b = warm_start(deep_a, "partial", trainable_layers=k)
    _learn_some(b, train_frame)
    assert _changed_layers(deep_a, b) == [layer >= 4 - k for layer in range(4)]


def test_finetune_changes_every_layer(deep_a: BatchModel, train_frame: pd.DataFrame) -> None:
    b = warm_start(deep_a, "finetune")
    _learn_some(b, train_frame)
    assert _changed_layers(deep_a, b) == [True, True, True, True]
    # A's arrays are B's starting point, never B's storage.
    assert all(not np.shares_memory(bc, ac) for bc, ac in zip(b.coefs_, deep_a.coefs, strict=True))


def test_warm_start_survives_clone_and_pickle(
    deep_a: BatchModel, train_frame: pd.DataFrame
) -> None:
    b = warm_start(deep_a, "partial", trainable_layers=2)
    x = {"x1": 0.3, "x2": 4.0}
    start = b.predict_one(x)
    _learn_some(b, train_frame)
    assert b.clone().predict_one(x) == start
    assert pickle.loads(pickle.dumps(b)).predict_one(x) == b.predict_one(x)


def test_frozen_baseline_never_learns(deep_a: BatchModel, train_frame: pd.DataFrame) -> None:
    baseline = frozen_baseline(deep_a)
    x = {"x1": 0.3, "x2": 4.0}
    before = baseline.predict_one(x)
    assert before == pytest.approx(deep_a.predict_one(x), abs=1e-12)
    _learn_some(baseline, train_frame)
    assert baseline.predict_one(x) == before
    assert baseline.clone().predict_one(x) == before
    assert pickle.loads(pickle.dumps(baseline)).predict_one(x) == before


@pytest.mark.parametrize(
    "wrapper",
    [
        FrozenRegressor(MLPRegressor(hidden=(3,), features=["gallup", "ipsos"])),
        RenamedRegressor(linear_model.LinearRegression(), {"gallup": "g"}),
    ],
)
def test_wrappers_follow_rivers_contract(wrapper: base.Regressor) -> None:
    checks.check_estimator(wrapper)


# -- refusals -------------------------------------------------------------------------------


def test_feature_mismatch_lists_missing_and_extra(deep_a: BatchModel) -> None:
    with pytest.raises(TransferError) as info:
        warm_start(deep_a, "finetune", stream_features=["x1", "pressure", "id"])
    message = str(info.value)
    assert "A needs x2, which the stream lacks" in message
    assert "the stream has pressure, id, which A does not know" in message
    with pytest.raises(TransferError, match="A needs x2"):
        frozen_baseline(deep_a, stream_features=["x1"])
    # A map from the stream's names onto A's fixes it.
    b = warm_start(
        deep_a, "finetune", feature_map={"pressure": "x2"}, stream_features=["pressure", "x1"]
    )
    assert b.features == ["x1", "pressure"]
    x = {"x1": 0.5, "x2": 3.0}
    assert b.predict_one({"x1": 0.5, "pressure": 3.0}) == pytest.approx(
        deep_a.predict_one(x), abs=1e-12
    )
    with pytest.raises(TransferError, match="points at nope, which A does not have"):
        warm_start(deep_a, "finetune", feature_map={"p": "nope"})
    with pytest.raises(TransferError, match="sends both a and b to x1"):
        warm_start(deep_a, "finetune", feature_map={"a": "x1", "b": "x1"})


def test_feature_map_flag_parsing(deep_a: BatchModel) -> None:
    mapping = parse_feature_map(" t = x1 ,p=x2,")
    assert mapping == {"t": "x1", "p": "x2"}
    b = warm_start(deep_a, "finetune", feature_map=mapping, stream_features=["p", "t"])
    assert b.features == ["t", "p"]
    for bad, message in [
        ("t=", "is not stream=A"),
        ("=x1", "is not stream=A"),
        ("t=x1,t=x2", "twice"),
    ]:
        with pytest.raises(TransferError, match=message):
            parse_feature_map(bad)


@pytest.mark.parametrize("mode", ["extract", "partial"])
def test_linear_a_refuses_layer_modes(train_frame: pd.DataFrame, mode: str) -> None:
    a = as_batch_model(_fit(LinearRegression(), train_frame))
    with pytest.raises(TransferError, match=f"mode {mode} makes no sense for a linear A") as info:
        warm_start(a, mode)
    assert "no hidden layer" in str(info.value)


def test_bad_modes_and_options(deep_a: BatchModel) -> None:
    with pytest.raises(TransferError, match="unknown transfer mode 'transplant'"):
        warm_start(deep_a, "transplant")
    for k in (0, 4):
        with pytest.raises(TransferError, match="K must be between 1 and 3"):
            warm_start(deep_a, "partial", trainable_layers=k)
    with pytest.raises(TransferError, match="linear_model"):
        warm_start(deep_a, "finetune", linear_model="torch")
    with pytest.raises(TransferError, match="lr must be"):
        warm_start(deep_a, "finetune", lr=-1.0)


def test_unusable_files(tmp_path: Path, train_frame: pd.DataFrame) -> None:
    with pytest.raises(TransferError, match="not found"):
        load_batch_model(tmp_path / "missing.joblib")
    (tmp_path / "garbage.joblib").write_bytes(b"definitely not a pickle")
    with pytest.raises(TransferError, match="cannot read model A"):
        load_batch_model(tmp_path / "garbage.joblib", trust_pickle=True)
    (tmp_path / "garbage.skops").write_bytes(b"definitely not a zip")
    with pytest.raises(TransferError, match="not a readable skops file"):
        load_batch_model(tmp_path / "garbage.skops")
    joblib.dump({"weights": [1, 2]}, tmp_path / "dict.joblib")
    with pytest.raises(TransferError, match="not a model A can be"):
        load_batch_model(tmp_path / "dict.joblib", trust_pickle=True)
    from sklearn.ensemble import RandomForestRegressor

    forest = _fit(RandomForestRegressor(n_estimators=2), train_frame)
    joblib.dump(forest, tmp_path / "forest.joblib")
    with pytest.raises(TransferError, match="RandomForestRegressor; supported are MLPRegressor"):
        load_batch_model(tmp_path / "forest.joblib", trust_pickle=True)
    skops.io.dump(forest, tmp_path / "forest.skops")  # its trees are no type A may hold
    with pytest.raises(TransferError, match=r"does not load.*sklearn\.tree\._tree\.Tree"):
        load_batch_model(tmp_path / "forest.skops")
    minmax = _fit(make_pipeline(MinMaxScaler(), Ridge()), train_frame)
    for path, trust in ((tmp_path / "minmax.joblib", True), (tmp_path / "minmax.skops", False)):
        (joblib.dump if trust else skops.io.dump)(minmax, path)
        with pytest.raises(TransferError, match=r"at most one StandardScaler.*found MinMaxScaler"):
            load_batch_model(path, trust_pickle=trust)
    joblib.dump(SkMLP(), tmp_path / "unfitted.joblib")
    skops.io.dump(SkMLP(), tmp_path / "unfitted.skops")
    for path, trust in ((tmp_path / "unfitted.joblib", True), (tmp_path / "unfitted.skops", False)):
        with pytest.raises(TransferError, match="not fitted"):
            load_batch_model(path, trust_pickle=trust)
    with pytest.raises(TransferError, match="learned nothing yet"):
        as_batch_model(MLPRegressor())


# -- the seed's point -----------------------------------------------------------------------


def test_examples_are_the_generated_pair(tmp_path: Path) -> None:
    source, target = write_transfer_pair(tmp_path)
    assert source.read_bytes() == (EXAMPLES / "transfer_source.csv").read_bytes()
    assert target.read_bytes() == (EXAMPLES / "transfer_target.csv").read_bytes()


def _prequential_mae(model: base.Regressor, rows: list[tuple[dict[Hashable, Any], float]]) -> float:
    errors = []
    for x, y in rows:
        errors.append(abs(model.predict_one(x) - y))  # test, then train
        model.learn_one(x, y)
    return float(np.mean(errors))


@pytest.fixture(scope="module")
def seed_a(tmp_path_factory: pytest.TempPathFactory) -> BatchModel:
    """The seed's A (1 -> 50 relu -> 50 relu -> 1), trained briefly on the source task."""
    out = tmp_path_factory.mktemp("seed-a") / "A.skops"
    return load_batch_model(
        pretrain(EXAMPLES / "transfer_source.csv", out=out, epochs=30).model_path
    )


@pytest.fixture(scope="module")
def target_rows() -> list[tuple[dict[Hashable, Any], float]]:
    """The first 300 records of the target task, in file order."""
    target = pd.read_csv(EXAMPLES / "transfer_target.csv").head(300)
    return [({"x": float(x)}, float(y)) for x, y in zip(target["x"], target["y"], strict=True)]


def test_finetuned_b_learns_the_target_faster_than_a_cold_mlp(
    seed_a: BatchModel, target_rows: list[tuple[dict[Hashable, Any], float]]
) -> None:
    rows = copy.deepcopy(target_rows)
    warm = _prequential_mae(warm_start(seed_a, "finetune", stream_features=["x"], lr=0.01), rows)
    cold = _prequential_mae(MLPRegressor(hidden=(50, 50), lr=0.01, seed=0), rows)
    frozen = _prequential_mae(frozen_baseline(seed_a), rows)
    # Measured: finetune about 0.34, cold about 1.3, A as it is about 1.6.
    assert warm < 0.6 * cold
    assert warm < 0.5 * frozen


def test_extract_learns_the_target_from_a_few_records(
    seed_a: BatchModel, target_rows: list[tuple[dict[Hashable, Any], float]]
) -> None:
    """The seed's feature extraction case: a similar task, little new data."""
    rows = copy.deepcopy(target_rows)
    extract = warm_start(seed_a, "extract", stream_features=["x"])
    assert isinstance(extract, MLPRegressor) and extract.head == "rls"
    mae = _prequential_mae(extract, rows)
    cold = _prequential_mae(MLPRegressor(hidden=(50, 50), lr=0.01, seed=0), rows)
    sgd_head = _prequential_mae(warm_start(seed_a, "partial", 1, stream_features=["x"]), rows)
    # Measured over the first 300 records: extract about 0.23 (the noise alone gives about
    # 0.16), the same network with an SGD head about 0.77, the cold MLP about 1.3.
    assert mae < 0.3 * cold
    assert mae < 0.5 * sgd_head
    assert mae < 0.35
    assert extract.n_skipped_steps_ == 0
    # Still feature extraction: A's hidden layers are exactly as they were.
    for layer in range(seed_a.n_layers - 1):
        assert np.array_equal(extract.coefs_[layer], seed_a.coefs[layer])
        assert np.array_equal(extract.intercepts_[layer], seed_a.intercepts[layer])


def test_head_choice_per_mode(deep_a: BatchModel, probe_rows: pd.DataFrame) -> None:
    """extract fits its head by least squares; partial retrains layers by SGD unless asked."""
    modes: dict[str, tuple[str, int, str | None]] = {
        "extract": ("extract", 1, None),
        "extract-sgd": ("extract", 1, "sgd"),
        "partial-1": ("partial", 1, None),
        "partial-1-rls": ("partial", 1, "rls"),
        "partial-2": ("partial", 2, None),
        "finetune": ("finetune", 1, None),
    }
    built = {
        name: warm_start(deep_a, mode, k, head=head) for name, (mode, k, head) in modes.items()
    }
    heads = {name: b.head for name, b in built.items()}
    assert heads == {
        "extract": "rls",
        "extract-sgd": "sgd",
        "partial-1": "sgd",
        "partial-1-rls": "rls",
        "partial-2": "sgd",
        "finetune": "sgd",
    }
    # Every head starts as A, and partial K=1 with an RLS head is exactly extract.
    records = probe_rows.to_dict("records")
    reference = [deep_a.predict_one(x) for x in records]
    for name, b in built.items():
        got = [b.predict_one(x) for x in records]
        np.testing.assert_allclose(got, reference, rtol=0, atol=1e-9, err_msg=name)
    rng = np.random.default_rng(3)
    for _ in range(50):
        x, y = {"x1": float(rng.normal()), "x2": float(rng.uniform(0, 10))}, float(rng.normal())
        built["extract"].learn_one(x, y)
        built["partial-1-rls"].learn_one(x, y)
    assert np.array_equal(built["extract"].coefs_[-1], built["partial-1-rls"].coefs_[-1])


def test_rls_head_refusals(deep_a: BatchModel, train_frame: pd.DataFrame) -> None:
    with pytest.raises(TransferError, match="head must be one of 'sgd', 'rls', got 'adam'"):
        warm_start(deep_a, "extract", head="adam")
    with pytest.raises(TransferError, match="needs mode extract, or partial with 1 trainable"):
        warm_start(deep_a, "finetune", head="rls")
    with pytest.raises(TransferError, match="partial mode with K=2 trains 2 layers"):
        warm_start(deep_a, "partial", 2, head="rls")
    linear = as_batch_model(_fit(LinearRegression(), train_frame))
    with pytest.raises(TransferError, match="fits an MLP A's output layer"):
        warm_start(linear, "finetune", head="rls")
    # A whose output is squashed (Keras may end in a sigmoid): least squares does not apply, so
    # extract falls back to the SGD head, and asking for RLS says why not.
    sigmoid_a = BatchModel(
        "mlp",
        "example",
        ("x",),
        1,
        (np.ones((1, 2)), np.ones((2, 1))),
        (np.zeros(2), np.zeros(1)),
        ("relu", "sigmoid"),
    )
    assert warm_start(sigmoid_a, "extract").head == "sgd"
    with pytest.raises(TransferError, match="ends in sigmoid: use head='sgd'"):
        warm_start(sigmoid_a, "extract", head="rls")


def test_extract_b_follows_rivers_contract_and_pickles(
    deep_a: BatchModel, train_frame: pd.DataFrame
) -> None:
    b = warm_start(deep_a, "extract")
    checks.check_estimator(b)
    x = {"x1": 0.3, "x2": 4.0}
    start = b.predict_one(x)
    _learn_some(b, train_frame)
    assert b.predict_one(x) != start
    assert b.clone().predict_one(x) == start
    restored = pickle.loads(pickle.dumps(b))
    assert restored.predict_one(x) == b.predict_one(x)
    assert np.array_equal(restored.rls_p_, b.rls_p_)


def _streamlearn(*args: str) -> str:
    """Run ``streamlearn ARGS`` in a real process; its stdout (stderr shown on failure)."""
    result = subprocess.run(
        [sys.executable, "-m", "streamlearn.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"streamlearn {' '.join(args)}:\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_extract_from_the_command_line_checkpoints_an_rls_head(tmp_path: Path) -> None:
    """pretrain A, replay the target with --transfer-mode extract, read B back from the state."""
    a_path, state = tmp_path / "A.skops", tmp_path / "state"
    _streamlearn(
        "pretrain", str(EXAMPLES / "transfer_source.csv"), "--out", str(a_path), "--epochs", "100"
    )
    stdout = _streamlearn(
        "replay",
        str(EXAMPLES / "transfer_target.csv"),
        "--warm-start",
        str(a_path),
        "--transfer-mode",
        "extract",
        "--inspect-json",
        "--state-dir",
        str(state),
    )
    summary = json.loads(stdout)
    assert summary["records_learned"] == 2000
    assert summary["model"] == "warm-start(extract, A.skops)"
    # Measured: MAE about 0.18 over the whole replay, against about 1.58 for A as it is.
    assert summary["metrics"]["mae"] < 0.25
    assert summary["metrics"]["mae"] < 0.2 * summary["baseline_metrics"]["mae"]

    loaded = CheckpointStore(state, lock=False).load()
    assert loaded is not None
    b = loaded.state["learner"].model
    assert isinstance(b, MLPRegressor) and b.head == "rls" and b.n_skipped_steps_ == 0
    a = load_batch_model(a_path)
    assert _changed_layers(a, b) == [False, False, True]
    assert b.rls_p_ is not None and np.isfinite(b.rls_p_).all()
    x = {"x": 0.7}
    assert pickle.loads(pickle.dumps(b)).predict_one(x) == b.predict_one(x)
