"""Transfer learning: read a batch-trained model A and start the online model B from it.

The seed's three ways of reusing A (extract, finetune, partial) become three ways of building a
warm-started River regressor; a frozen copy of A is the baseline B has to beat. Everything a user
can get wrong (an unknown file, a model kind with no layers, feature names that do not match the
stream) is a ``TransferError`` raised before the first record is read.

Loading A unpickles it (joblib, pickle, checkpoints): only load files you trust.
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import pickle
import zipfile
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from river import base

from streamlearn.models.mlp import ACTIVATIONS, HEADS, MLPRegressor

__all__ = [
    "MODES",
    "BatchModel",
    "FrozenRegressor",
    "RenamedRegressor",
    "TransferError",
    "as_batch_model",
    "frozen_baseline",
    "load_batch_model",
    "parse_feature_map",
    "warm_start",
]

FloatArray = npt.NDArray[np.float64]
Kind = Literal["mlp", "linear", "river"]

MODES = ("extract", "finetune", "partial")

# scikit-learn regressors whose predict() is exactly ``X @ coef_ + intercept_``. The GLMs
# (Poisson, Gamma, Tweedie) are left out on purpose: their predict applies a link function.
_SKLEARN_LINEAR = frozenset(
    {
        "LinearRegression",
        "Ridge",
        "RidgeCV",
        "SGDRegressor",
        "Lasso",
        "LassoCV",
        "ElasticNet",
        "ElasticNetCV",
        "HuberRegressor",
        "BayesianRidge",
        "ARDRegression",
        "Lars",
        "LassoLars",
        "QuantileRegressor",
        "TheilSenRegressor",
    }
)

# Keras layers that are the identity at inference time: they hold no weights to carry over.
_KERAS_PASSTHROUGH = frozenset({"Dropout", "GaussianNoise", "GaussianDropout", "AlphaDropout"})


class TransferError(ValueError):
    """Model A cannot be loaded or cannot be used the way it was asked; the message says why."""


@dataclass(frozen=True, eq=False)
class BatchModel:
    """A batch-trained model A, reduced to what transfer learning needs.

    Attributes
    ----------
    kind
        ``"mlp"`` (dense layers: scikit-learn ``MLPRegressor``, Keras ``Sequential``, a
        streamlearn ``MLPRegressor``), ``"linear"`` (one linear layer: scikit-learn linear
        models, the streamlearn ``SGDRegressor``) or ``"river"`` (any other River regressor or
        pipeline, used as a whole).
    origin
        What A was, for logs: e.g. ``"sklearn MLPRegressor"``.
    feature_names
        A's input names in the order of its first layer, or ``None`` when A was trained without
        names (Keras, scikit-learn on a bare array): see ``input_names``.
    n_features
        Number of inputs (``None`` for a River model, which takes any dict).
    coefs, intercepts
        One ``(fan_in, fan_out)`` matrix and one bias vector per layer (``mlp`` and ``linear``).
    activations
        One activation name per layer; the last is the output's.
    input_mean, input_scale
        A's fixed input standardisation (a scikit-learn ``StandardScaler`` in a pipeline).
    river_model
        The River model itself, for kind ``"river"``.
    """

    kind: Kind
    origin: str
    feature_names: tuple[str, ...] | None
    n_features: int | None
    coefs: tuple[FloatArray, ...] = ()
    intercepts: tuple[FloatArray, ...] = ()
    activations: tuple[str, ...] = ()
    input_mean: FloatArray | None = None
    input_scale: FloatArray | None = None
    river_model: Any = field(default=None, repr=False)

    @property
    def input_names(self) -> tuple[str, ...]:
        """A's input names; nameless inputs are called ``x0, x1, ...`` as scikit-learn does."""
        if self.feature_names is not None:
            return self.feature_names
        if self.n_features is None:
            raise TransferError(f"{self.origin} takes any features: it has no fixed input names")
        return tuple(f"x{i}" for i in range(self.n_features))

    @property
    def n_layers(self) -> int:
        """Number of weight layers (0 for a River model)."""
        return len(self.coefs)

    def describe(self) -> str:
        """One line for logs, e.g. ``sklearn MLPRegressor: 1 -> 50 relu -> 1 identity``."""
        if self.kind == "river":
            return f"{self.origin}: {self.river_model!s}".replace("\n", " ")
        shape = " -> ".join(
            [str(self.n_features)]
            + [
                f"{coef.shape[1]} {act}"
                for coef, act in zip(self.coefs, self.activations, strict=True)
            ]
        )
        names = ", ".join(self.feature_names) if self.feature_names else "unnamed (positional)"
        scaled = "; standardised inputs" if self.input_scale is not None else ""
        return f"{self.origin}: {shape}; features {names}{scaled}"

    def predict_one(self, x: Mapping[Hashable, Any]) -> float:
        """A's prediction for one record keyed by ``input_names`` (missing features count as 0)."""
        if self.kind == "river":
            return float(self.river_model.predict_one(dict(x)))
        a = np.array([float(x.get(name, 0.0)) for name in self.input_names], dtype=np.float64)
        if self.input_mean is not None:
            a = a - self.input_mean
        if self.input_scale is not None:
            a = a / self.input_scale
        for coef, bias, act in zip(self.coefs, self.intercepts, self.activations, strict=True):
            z = a @ coef + bias
            ACTIVATIONS[act][0](z, z)
            a = z
        return float(a[0])


# -- loading -------------------------------------------------------------------------------


def load_batch_model(path: str | os.PathLike[str]) -> BatchModel:
    """Read model A from a file or a state directory.

    Accepted: a scikit-learn ``MLPRegressor`` or linear regressor (``LinearRegression``,
    ``Ridge``, ``SGDRegressor``, ...), alone or in a ``Pipeline`` after one ``StandardScaler``,
    saved with joblib or pickle; a River regressor or pipeline (pickle); a streamlearn checkpoint
    (a state directory, a ``.ckpt`` generation file, or a pickled dict with a ``"model"``); a Keras
    ``Sequential`` model of ``Dense`` layers saved as ``.keras`` (read with zip, json and h5py:
    Keras itself is not needed).

    Raises
    ------
    TransferError
        The file is missing, unreadable, or holds a model this module cannot use.

    Examples
    --------
    >>> import tempfile, joblib, pandas as pd
    >>> from sklearn.linear_model import LinearRegression
    >>> frame = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [1.0, 3.0, 5.0]})
    >>> path = Path(tempfile.mkdtemp()) / "A.joblib"
    >>> _ = joblib.dump(LinearRegression().fit(frame[["x"]], frame["y"]), path)
    >>> a = load_batch_model(path)
    >>> a.kind, a.feature_names
    ('linear', ('x',))
    >>> round(a.predict_one({"x": 3.0}), 9)
    7.0
    """
    path = Path(path)
    if not path.exists():
        raise TransferError(f"model A not found: {path}")
    if path.is_dir() or path.suffix == ".ckpt":
        return as_batch_model(_load_checkpoint(path), f"checkpoint {path}")
    if path.suffix == ".keras":
        return _load_keras(path)
    if path.suffix == ".h5":
        raise TransferError(
            f"{path} looks like a legacy Keras HDF5 file; load it in Keras and re-save it "
            "with model.save('A.keras')"
        )
    import joblib  # joblib also reads plain pickle files

    try:
        obj = joblib.load(path)
    except Exception as exc:  # unpickling can raise almost anything
        raise TransferError(f"cannot read model A from {path}: {exc}") from exc
    if isinstance(obj, dict) and "model" in obj:
        return as_batch_model(obj["model"], f"checkpoint {path}")
    return as_batch_model(obj, str(path))


def _load_checkpoint(path: Path) -> Any:
    """The model held by a streamlearn checkpoint (a state directory or one generation file)."""
    from streamlearn import state as checkpoint

    try:
        if path.is_dir():
            loaded = checkpoint.CheckpointStore(path, lock=False).load()
            if loaded is None:
                raise TransferError(f"no checkpoint in state directory {path}")
            state = loaded.state
        else:
            state = checkpoint.decode(path.read_bytes())
    except (checkpoint.CheckpointError, OSError, pickle.UnpicklingError) as exc:
        raise TransferError(f"cannot read checkpoint {path}: {exc}") from exc
    if "learner" in state:
        return state["learner"].model
    if "model" in state:
        return state["model"]
    raise TransferError(f"checkpoint {path} holds no model")


def as_batch_model(obj: Any, where: str = "model A") -> BatchModel:
    """Model A from an object in memory (what ``load_batch_model`` does after unpickling).

    Examples
    --------
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> a = as_batch_model(SGDRegressor(initial_weights={"x": 2.0}, initial_intercept=1.0))
    >>> a.kind, a.feature_names, a.predict_one({"x": 3.0})
    ('linear', ('x',), 7.0)
    """
    module = type(obj).__module__
    if module.startswith("sklearn"):
        return _from_sklearn(obj, where)
    if isinstance(obj, base.Estimator):
        return _from_river(obj, where)
    raise TransferError(
        f"{where} holds a {type(obj).__module__}.{type(obj).__name__}, which is not a model A "
        "can be: use a scikit-learn regressor or pipeline, a River regressor, a streamlearn "
        "checkpoint or a Keras .keras file"
    )


def _from_sklearn(obj: Any, where: str) -> BatchModel:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    # A pipeline reports the names its first step saw, which are the stream's names.
    names = getattr(obj, "feature_names_in_", None)
    mean: FloatArray | None = None
    scale: FloatArray | None = None
    model: Any = obj
    if isinstance(obj, Pipeline):
        steps = [step for _, step in obj.steps if step not in (None, "passthrough")]
        *transforms, model = steps
        if len(transforms) > 1 or (transforms and not isinstance(transforms[0], StandardScaler)):
            kinds = ", ".join(type(step).__name__ for step in transforms)
            raise TransferError(
                f"{where}: a pipeline may hold at most one StandardScaler before the model; "
                f"found {kinds}"
            )
        if transforms:
            scaler = transforms[0]
            if not hasattr(scaler, "n_features_in_"):
                raise TransferError(f"{where}: the StandardScaler is not fitted")
            n = scaler.n_features_in_
            mean = np.array(scaler.mean_, dtype=np.float64) if scaler.with_mean else np.zeros(n)
            scale = np.array(scaler.scale_, dtype=np.float64) if scaler.with_std else np.ones(n)
    name = type(model).__name__
    origin = f"sklearn {name}" + (" (with StandardScaler)" if scale is not None else "")
    feature_names = None if names is None else tuple(str(n) for n in names)

    if name == "MLPRegressor":
        if not hasattr(model, "coefs_"):
            raise TransferError(f"{where}: the MLPRegressor is not fitted")
        if model.coefs_[-1].shape[1] != 1:
            raise TransferError(f"{where}: A predicts {model.coefs_[-1].shape[1]} targets, not 1")
        coefs = tuple(np.array(c, dtype=np.float64) for c in model.coefs_)
        intercepts = tuple(np.array(b, dtype=np.float64) for b in model.intercepts_)
        activations = (model.activation,) * (len(coefs) - 1) + (model.out_activation_,)
        return BatchModel(
            kind="mlp",
            origin=origin,
            feature_names=feature_names,
            n_features=coefs[0].shape[0],
            coefs=coefs,
            intercepts=intercepts,
            activations=activations,
            input_mean=mean,
            input_scale=scale,
        )
    if name in _SKLEARN_LINEAR:
        if not hasattr(model, "coef_"):
            raise TransferError(f"{where}: the {name} is not fitted")
        coef = np.array(model.coef_, dtype=np.float64)
        if coef.ndim == 2 and coef.shape[0] != 1:
            raise TransferError(f"{where}: A predicts {coef.shape[0]} targets, not 1")
        coef = coef.reshape(-1, 1)
        intercept = np.array(model.intercept_, dtype=np.float64).reshape(1)
        return BatchModel(
            kind="linear",
            origin=origin,
            feature_names=feature_names,
            n_features=coef.shape[0],
            coefs=(coef,),
            intercepts=(intercept,),
            activations=("identity",),
            input_mean=mean,
            input_scale=scale,
        )
    raise TransferError(
        f"{where} holds a scikit-learn {name}; supported are MLPRegressor and the linear "
        f"regressors ({', '.join(sorted(_SKLEARN_LINEAR))})"
    )


def _from_river(obj: base.Estimator, where: str) -> BatchModel:
    from streamlearn.models.sgd import SGDRegressor

    # The project's own estimators expose their layers, so every transfer mode applies to them.
    if isinstance(obj, MLPRegressor):
        if obj.features_ is None:
            raise TransferError(f"{where}: the MLPRegressor has learned nothing yet")
        n_hidden = len(obj.hidden)
        hidden_acts = (
            (obj.activation,) * n_hidden if isinstance(obj.activation, str) else obj.activation
        )
        return BatchModel(
            "mlp",
            "streamlearn MLPRegressor",
            tuple(str(f) for f in obj.features_),
            len(obj.features_),
            tuple(c.copy() for c in obj.coefs_),
            tuple(b.copy() for b in obj.intercepts_),
            (*hidden_acts, obj.output_activation),
            None if obj.input_mean is None else obj.input_mean.copy(),
            None if obj.input_scale is None else obj.input_scale.copy(),
        )
    if isinstance(obj, SGDRegressor):
        names = tuple(str(name) for name in obj.weights)
        coef = np.array([obj.weights[n] for n in obj.weights], dtype=np.float64).reshape(-1, 1)
        return BatchModel(
            kind="linear",
            origin="streamlearn SGDRegressor",
            feature_names=names,
            n_features=len(names),
            coefs=(coef,),
            intercepts=(np.array([obj.intercept]),),
            activations=("identity",),
        )
    from river import compose

    last = list(obj.steps.values())[-1] if isinstance(obj, compose.Pipeline) else obj
    if not isinstance(last, base.Regressor):
        raise TransferError(f"{where} holds a River {type(last).__name__}, not a regressor")
    return BatchModel("river", f"River {type(obj).__name__}", None, None, river_model=obj)


def _load_keras(path: Path) -> BatchModel:
    """Read a Keras 3 ``.keras`` file (a zip of config.json and model.weights.h5) without Keras."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights_blob = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, OSError, json.JSONDecodeError) as exc:
        raise TransferError(f"{path} is not a readable .keras file: {exc}") from exc
    if config.get("class_name") != "Sequential":
        raise TransferError(
            f"{path}: only Keras Sequential models are supported, this is a "
            f"{config.get('class_name')}"
        )
    try:
        import h5py
    except ImportError as exc:
        raise TransferError(f"reading {path} needs h5py: pip install h5py") from exc
    layers = [layer for layer in config["config"]["layers"] if layer["class_name"] != "InputLayer"]
    coefs: list[FloatArray] = []
    intercepts: list[FloatArray] = []
    activations: list[str] = []
    used: dict[str, int] = {}
    with h5py.File(io.BytesIO(weights_blob), "r") as weights:
        for layer in layers:
            kind = layer["class_name"]
            # Keras names a layer's weight group after its class, in snake case, numbered in order
            # of appearance (dense, dense_1, ...): not after the layer's own name.
            snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in kind).lstrip("_")
            count = used.get(snake, 0)
            used[snake] = count + 1
            group = f"layers/{snake}" + (f"_{count}" if count else "")
            if kind in _KERAS_PASSTHROUGH:
                continue
            if kind != "Dense":
                raise TransferError(
                    f"{path}: layer {layer['config'].get('name')!r} is a {kind}; only Dense "
                    f"layers (and {', '.join(sorted(_KERAS_PASSTHROUGH))}) can be carried over"
                )
            cfg = layer["config"]
            activation = cfg.get("activation") or "linear"
            if not isinstance(activation, str) or activation not in ACTIVATIONS:
                raise TransferError(
                    f"{path}: layer {cfg.get('name')!r} uses activation {activation!r}; "
                    f"supported: {', '.join(sorted(ACTIVATIONS))}"
                )
            try:
                kernel = np.array(weights[f"{group}/vars/0"], dtype=np.float64)
                bias = (
                    np.array(weights[f"{group}/vars/1"], dtype=np.float64)
                    if cfg.get("use_bias", True)
                    else np.zeros(kernel.shape[1])
                )
            except KeyError as exc:
                raise TransferError(f"{path}: no weights for layer {cfg.get('name')!r}") from exc
            if coefs and kernel.shape[0] != coefs[-1].shape[1]:
                raise TransferError(f"{path}: layer {cfg.get('name')!r} has an unexpected shape")
            coefs.append(kernel)
            intercepts.append(bias)
            activations.append(activation)
    if not coefs:
        raise TransferError(f"{path}: the model has no Dense layer")
    if coefs[-1].shape[1] != 1:
        raise TransferError(f"{path}: A predicts {coefs[-1].shape[1]} targets, not 1")
    return BatchModel(
        kind="mlp",
        origin="Keras Sequential",
        feature_names=None,  # Keras keeps no input names: the stream maps onto x0, x1, ...
        n_features=coefs[0].shape[0],
        coefs=tuple(coefs),
        intercepts=tuple(intercepts),
        activations=tuple(activations),
    )


# -- building B ----------------------------------------------------------------------------


def _stream_order(
    a: BatchModel, feature_map: Mapping[str, str] | None, stream_features: Sequence[str] | None
) -> list[str]:
    """The stream's feature names in the order of A's inputs, or a TransferError saying why not.

    ``feature_map`` maps stream names to A's names; unmapped stream names are taken as A's own.
    A without names (Keras) takes the stream's features by position when no map is given.
    """
    if a.feature_names is None and feature_map is None:
        if stream_features is None:
            raise TransferError(
                f"{a.origin} has no feature names: give the stream's feature order "
                f"(positional: its {a.n_features} input(s) in order) or a feature map "
                f"onto {', '.join(a.input_names)}"
            )
        if len(stream_features) != a.n_features:
            raise TransferError(
                f"{a.origin} takes {a.n_features} input(s) by position but the stream has "
                f"{len(stream_features)} feature(s): {', '.join(stream_features)}"
            )
        return list(stream_features)
    a_names = a.input_names
    feature_map = dict(feature_map or {})
    unknown = sorted(set(feature_map.values()) - set(a_names))
    if unknown:
        raise TransferError(
            f"the feature map points at {', '.join(unknown)}, which A does not have "
            f"(A's features: {', '.join(a_names)})"
        )
    to_stream: dict[str, str] = {}
    for stream_name, a_name in feature_map.items():
        if a_name in to_stream:
            raise TransferError(
                f"the feature map sends both {to_stream[a_name]} and {stream_name} to {a_name}"
            )
        to_stream[a_name] = stream_name
    order = [to_stream.get(name, name) for name in a_names]
    if stream_features is not None:
        missing = [name for name in order if name not in set(stream_features)]
        extra = [name for name in stream_features if name not in set(order)]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"A needs {', '.join(missing)}, which the stream lacks")
            if extra:
                parts.append(f"the stream has {', '.join(extra)}, which A does not know")
            raise TransferError(
                "feature names of A and the stream differ: "
                + "; ".join(parts)
                + ". Map stream names onto A's with a feature map (stream=A)."
            )
    return order


def parse_feature_map(text: str) -> dict[str, str]:
    """Read a ``--feature-map`` value: ``stream=A`` pairs separated by commas.

    Examples
    --------
    >>> parse_feature_map("temperature=x, pressure=x1")
    {'temperature': 'x', 'pressure': 'x1'}
    >>> try:
    ...     parse_feature_map("temperature")
    ... except TransferError as exc:
    ...     print(exc)
    feature map entry 'temperature' is not stream=A (e.g. temperature=x)
    """
    mapping: dict[str, str] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        stream_name, sep, a_name = (side.strip() for side in entry.partition("="))
        if not sep or not stream_name or not a_name:
            raise TransferError(f"feature map entry {entry!r} is not stream=A (e.g. temperature=x)")
        if stream_name in mapping:
            raise TransferError(f"feature map names stream feature {stream_name!r} twice")
        mapping[stream_name] = a_name
    return mapping


def warm_start(
    a: BatchModel,
    mode: str,
    trainable_layers: int = 1,
    feature_map: dict[str, str] | None = None,
    stream_features: list[str] | None = None,
    lr: float = 0.01,
    linear_model: str = "sgd",
    head: str | None = None,
) -> base.Regressor:
    """Build the online model B from A; before learning, B predicts exactly what A predicts.

    Modes (the seed's three ways of reusing A):

    ``extract``
        A minus its output layer is a frozen feature extractor and B learns on its features.
        B is an ``MLPRegressor`` holding all of A's layers with only the output layer trainable
        (``trainable_layers=1``), initialised from A's output layer: B starts as A and then learns
        a linear head on A's last hidden activations. The head is fitted by recursive least
        squares (``head="rls"``): this is the seed's case of a similar task with little new
        data, and A's hidden units are so correlated that a plain gradient step on them needs
        thousands of records where least squares needs about a hundred.
    ``finetune``
        Every layer of A keeps learning. For a linear A this is the project's ``SGDRegressor``
        (``linear_model="sgd"``, the seed's update) or River's ``LinearRegression``
        (``"river"``) holding A's weights; a River A is a copy of itself that keeps learning
        (River's ``clone()`` of it is an untrained model: checkpoint it, do not clone it).
    ``partial``
        Only the last ``trainable_layers`` weight layers learn, by gradient steps, as the seed
        retrains them; the ones before stay as in A. With ``trainable_layers=1`` this is the
        extract network with an SGD head (``head="rls"`` makes it the same as extract).

    Parameters
    ----------
    a
        Model A, from ``load_batch_model``.
    mode
        ``"extract"``, ``"finetune"`` or ``"partial"``.
    trainable_layers
        How many of the last layers learn in ``partial`` mode (at least 1, fewer than A has).
    feature_map
        Stream feature name -> A's feature name, for names that differ (others are taken as
        A's own). For an A without names, A's inputs are ``x0, x1, ...``.
    stream_features
        The stream's feature names when known before the first record (a CSV header). A must
        have exactly these (after mapping), else ``TransferError`` lists what is missing and
        what is extra. An A without names takes them by position. Not checked for a River A,
        which takes any dict.
    lr
        Learning rate of B.
    linear_model
        For a linear A: ``"sgd"`` (streamlearn ``SGDRegressor``, survives ``clone()``) or
        ``"river"`` (River ``LinearRegression``: its squared loss has gradient ``2 (yhat - y)``,
        and its ``clone()`` keeps the intercept but drops the carried-over weights).
    head
        How an MLP B's output layer learns when it is the only layer that learns: ``"rls"``
        (recursive least squares, see ``MLPRegressor``; ``lr`` is then unused) or ``"sgd"``.
        ``None`` picks ``"rls"`` for extract and ``"sgd"`` for partial, and ``"sgd"`` for
        extract when A's output activation is not linear (least squares would not apply).

    A's input standardisation (a ``StandardScaler`` in its pipeline) is carried over frozen by an
    MLP B; for a linear B it is folded into the weights, so that B learns on raw features as the
    seed does.

    Raises
    ------
    TransferError
        The mode makes no sense for A, or the features do not match.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from sklearn.neural_network import MLPRegressor as SkMLP
    >>> frame = pd.DataFrame({"x": np.linspace(-1, 1, 20)})
    >>> sk = SkMLP(hidden_layer_sizes=(5,), solver="lbfgs", random_state=0)
    >>> sk = sk.fit(frame, 2 * frame["x"])
    >>> a = as_batch_model(sk)
    >>> a.describe()
    'sklearn MLPRegressor: 1 -> 5 relu -> 1 identity; features x'
    >>> b = warm_start(a, "extract", stream_features=["x"])
    >>> bool(abs(b.predict_one({"x": 0.5}) - sk.predict(pd.DataFrame({"x": [0.5]}))[0]) < 1e-12)
    True
    >>> b.head
    'rls'
    >>> first_layer = b.coefs_[0].copy()
    >>> b.learn_one({"x": 0.5}, 3.0)
    >>> bool((b.coefs_[0] == first_layer).all())   # the feature extractor is frozen
    True
    >>> warm_start(a, "partial", 1, stream_features=["x"]).head
    'sgd'
    >>> try:
    ...     warm_start(a, "finetune", stream_features=["temperature"])
    ... except TransferError as exc:
    ...     print(exc)
    feature names of A and the stream differ: A needs x, which the stream lacks; the stream
    has temperature, which A does not know. Map stream names onto A's with a feature map
    (stream=A).
    >>> warm_start(a, "finetune", feature_map={"temperature": "x"}).features
    ['temperature']
    """
    if mode not in MODES:
        raise TransferError(f"unknown transfer mode {mode!r}; use one of {', '.join(MODES)}")
    if linear_model not in ("sgd", "river"):
        raise TransferError(f"linear_model must be 'sgd' or 'river', got {linear_model!r}")
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise TransferError(f"lr must be a positive finite number, got {lr!r}")
    if head is not None and head not in HEADS:
        raise TransferError(f"head must be one of {', '.join(map(repr, HEADS))}, got {head!r}")
    if head == "rls" and (a.kind != "mlp" or mode == "finetune"):
        raise TransferError(
            f"head='rls' fits an MLP A's output layer on its frozen hidden layers; it needs mode "
            f"extract, or partial with 1 trainable layer (got mode {mode} for {a.origin})"
        )

    if a.kind == "river":
        if mode != "finetune":
            raise TransferError(
                f"mode {mode} needs A's layers, but {a.origin} is used as a whole; use finetune "
                "(A keeps learning)"
            )
        model = copy.deepcopy(a.river_model)
        return RenamedRegressor(model, dict(feature_map)) if feature_map else model

    order = _stream_order(a, feature_map, stream_features)

    if a.kind == "linear":
        if mode != "finetune":
            raise TransferError(
                f"mode {mode} makes no sense for a linear A ({a.origin}): it has no hidden layer, "
                "so there is no feature extractor to keep and no layer to freeze; use finetune"
            )
        weights, intercept = _fold_scaling(a)
        named = dict(zip(order, weights.tolist(), strict=True))
        if linear_model == "sgd":
            from streamlearn.models.sgd import SGDRegressor

            return SGDRegressor(lr=lr, initial_weights=named, initial_intercept=intercept)
        from river import linear_model as river_linear
        from river import optim, utils

        river_model = river_linear.LinearRegression(
            optimizer=optim.SGD(lr), intercept_init=intercept, intercept_lr=lr
        )
        river_model._weights = utils.VectorDict(named)
        return river_model

    n_layers = a.n_layers
    if mode == "finetune":
        trainable: int | None = None
    elif n_layers < 2:
        raise TransferError(f"mode {mode} needs a hidden layer to freeze; {a.origin} has none")
    elif mode == "extract":
        trainable = 1
    else:
        if not (isinstance(trainable_layers, int) and 1 <= trainable_layers < n_layers):
            raise TransferError(
                f"partial mode trains the last K of A's {n_layers} weight layers: K must be "
                f"between 1 and {n_layers - 1}, got {trainable_layers!r} (all layers: finetune)"
            )
        trainable = trainable_layers
    linear_output = a.activations[-1] in ("identity", "linear")
    if head is None:
        head = "rls" if mode == "extract" and linear_output else "sgd"
    elif head == "rls" and trainable != 1:
        raise TransferError(
            f"head='rls' fits only the output layer, but partial mode with K={trainable} trains "
            f"{trainable} layers; use K=1 or head='sgd'"
        )
    elif head == "rls" and not linear_output:
        raise TransferError(
            f"head='rls' needs a linear output layer; {a.origin} ends in "
            f"{a.activations[-1]}: use head='sgd'"
        )
    hidden_acts = a.activations[:-1]
    return MLPRegressor(
        hidden=tuple(c.shape[1] for c in a.coefs[:-1]),
        activation=hidden_acts[0] if len(set(hidden_acts)) == 1 else hidden_acts,
        output_activation=a.activations[-1],
        lr=lr,
        trainable_layers=trainable,
        features=order,
        initial_coefs=list(a.coefs),
        initial_intercepts=list(a.intercepts),
        input_mean=None if a.input_mean is None else a.input_mean.tolist(),
        input_scale=None if a.input_scale is None else a.input_scale.tolist(),
        head=head,
    )


def _fold_scaling(a: BatchModel) -> tuple[FloatArray, float]:
    """A linear A's weights and intercept on raw features: its standardisation folded in."""
    weights = a.coefs[0][:, 0].copy()
    intercept = float(a.intercepts[0][0])
    if a.input_scale is not None:
        weights = weights / a.input_scale
    if a.input_mean is not None:
        intercept -= float(weights @ a.input_mean)
    return weights, intercept


def frozen_baseline(
    a: BatchModel,
    feature_map: dict[str, str] | None = None,
    stream_features: list[str] | None = None,
) -> base.Regressor:
    """A regressor that predicts exactly as A and never learns: the champion/challenger baseline.

    Run it beside B to see what learning online adds over the batch model as it was.

    Examples
    --------
    >>> import numpy as np
    >>> a = BatchModel("linear", "example", ("x",), 1, (np.array([[2.0]]),), (np.array([1.0]),),
    ...                ("identity",))
    >>> baseline = frozen_baseline(a)
    >>> baseline.predict_one({"x": 3.0})
    7.0
    >>> baseline.learn_one({"x": 3.0}, 100.0)
    >>> baseline.predict_one({"x": 3.0})
    7.0
    """
    return FrozenRegressor(warm_start(a, "finetune", 1, feature_map, stream_features))


class FrozenRegressor(base.Regressor):
    """Predicts with a regressor as it is; ``learn_one`` does nothing.

    ``clone()`` returns a copy of the frozen model itself: its state *is* its parameters.

    Parameters
    ----------
    regressor
        The model to freeze.

    Examples
    --------
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> frozen = FrozenRegressor(SGDRegressor(initial_weights={"x": 2.0}))
    >>> frozen.learn_one({"x": 1.0}, 10.0)
    >>> frozen.predict_one({"x": 1.0})
    2.0
    """

    def __init__(self, regressor: base.Regressor) -> None:
        self.regressor = regressor

    @classmethod
    def _unit_test_params(cls) -> Any:
        from streamlearn.models.sgd import SGDRegressor

        yield {"regressor": SGDRegressor(initial_weights={"gallup": 1.0})}

    def clone(
        self, new_params: dict[str, Any] | None = None, include_attributes: bool = False
    ) -> FrozenRegressor:
        if new_params:
            return super().clone(new_params, include_attributes)
        return copy.deepcopy(self)

    def learn_one(self, x: dict[Hashable, Any], y: float, w: float = 1.0) -> None:
        return None

    def predict_one(self, x: dict[Hashable, Any]) -> float:
        return float(self.regressor.predict_one(x))


class RenamedRegressor(base.Regressor):
    """A regressor fed with features renamed by ``mapping`` (stream name -> the model's name).

    Unlike River's ``compose.Renamer``, it never changes the caller's dict.

    Parameters
    ----------
    regressor
        The model that expects the renamed features.
    mapping
        Stream feature name -> the name ``regressor`` knows; other names pass unchanged.

    Examples
    --------
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> model = RenamedRegressor(SGDRegressor(initial_weights={"x": 2.0}), {"temp": "x"})
    >>> model.predict_one({"temp": 1.5})
    3.0
    """

    def __init__(self, regressor: base.Regressor, mapping: dict[str, str]) -> None:
        self.regressor = regressor
        self.mapping = mapping

    @classmethod
    def _unit_test_params(cls) -> Any:
        from streamlearn.models.sgd import SGDRegressor

        yield {"regressor": SGDRegressor(), "mapping": {"gallup": "g"}}

    def _rename(self, x: dict[Hashable, Any]) -> dict[Hashable, Any]:
        mapping = self.mapping
        return {mapping.get(k, k) if isinstance(k, str) else k: v for k, v in x.items()}

    def learn_one(self, x: dict[Hashable, Any], y: float, w: float = 1.0) -> None:
        if w == 1.0:
            self.regressor.learn_one(self._rename(x), y)
        else:
            self.regressor.learn_one(self._rename(x), y, w=w)  # type: ignore[call-arg]

    def predict_one(self, x: dict[Hashable, Any]) -> float:
        return float(self.regressor.predict_one(self._rename(x)))
