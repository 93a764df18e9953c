"""Transfer learning: start the online model B from a batch-trained model A.

Model A is read by :mod:`streamlearn.models.loaders` (scikit-learn, River, a streamlearn
checkpoint, Keras) into a :class:`~streamlearn.models.batch.BatchModel`; :func:`warm_start`
builds B from it in one of three modes, the ways of reusing A of the study note this project
grew from (docs/design.md, "Terms: the seed"):

``extract``
    A minus its output layer is a frozen feature extractor and B learns on its features: an
    ``MLPRegressor`` holding all of A's layers with only the output layer trainable, fitted by
    recursive least squares by default. This is the case of a similar task with little new
    data, and A's hidden units are so correlated that a plain gradient step on them needs
    thousands of records where least squares needs about a hundred.
``finetune``
    Every layer of A keeps learning. A linear A becomes the project's ``SGDRegressor`` (the
    textbook update ``theta_j <- theta_j - lr (yhat - y) x_j``) or River's
    ``LinearRegression`` holding A's weights; a River A is a copy of itself that keeps
    learning (River's ``clone()`` of it is an untrained model: checkpoint it, do not clone it).
``partial``
    Only the last ``trainable_layers`` weight layers learn, by gradient steps; the ones before
    stay as in A. With one trainable layer this is the extract network with an SGD head.

B's learning rate, unless one is given, is :func:`suited_lr`: a tenth of the rate A's own
training ended with, or ``FALLBACK_LR`` when A kept none. The cold default (0.01) suits a
model that starts from random weights; a B that starts from a good A and takes steps that
large walks away from it. The baseline guard (:mod:`streamlearn.models.champion`) covers the
rest: A serves while B is worse.

A frozen copy of A (:func:`frozen_baseline`) is the baseline B has to beat. Everything a user
can get wrong (an unknown file, a model kind with no layers, feature names that do not match
the stream) is a ``TransferError`` raised before the first record is read.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TypedDict

import numpy as np
import numpy.typing as npt
from river import base

from streamlearn.models.batch import BatchModel, TransferError
from streamlearn.models.loaders import as_batch_model, load_batch_model
from streamlearn.models.mlp import MLPRegressor
from streamlearn.models.mlp_params import HEADS
from streamlearn.models.wrappers import FrozenRegressor, RenamedRegressor

# The loaders, the batch model and the wrappers are part of the transfer API: callers import
# them from here.
__all__ = [
    "MODES",
    "BatchModel",
    "FrozenRegressor",
    "LayerArgs",
    "RenamedRegressor",
    "TransferError",
    "as_batch_model",
    "fold_scaling",
    "frozen_baseline",
    "layer_args",
    "load_batch_model",
    "map_entries",
    "parse_feature_map",
    "stream_order",
    "suited_lr",
    "trainable_of",
    "warm_start",
]

FloatArray = npt.NDArray[np.float64]

#: The ways of building B from A (see the module docstring).
MODES = ("extract", "finetune", "partial")
#: B's learning rate is A's own final one divided by this (:func:`suited_lr`).
LR_DIVISOR = 10.0
#: B's learning rate when A kept none (a closed-form fit): a tenth of the cold default.
FALLBACK_LR = 0.001


def suited_lr(a: BatchModel) -> float:
    """The learning rate B starts with when none is given: A's own over ``LR_DIVISOR``.

    A's own is the step size its training ended with (``BatchModel.learning_rate``: Adam's
    ``learning_rate_init``, an SGD solver's current rate, a Keras optimizer's rate, a
    streamlearn model's ``lr``). B takes plain gradient steps from weights that already fit
    their task, so it steps a tenth as far as A's last steps did. A closed-form A
    (``LinearRegression``, L-BFGS) kept no rate: ``FALLBACK_LR``.

    >>> import numpy as np
    >>> a = BatchModel("linear", "example", ("x",), 1, (np.array([[2.0]]),), (np.array([1.0]),),
    ...                ("identity",), learning_rate=0.001)
    >>> suited_lr(a)
    0.0001
    >>> suited_lr(BatchModel("linear", "closed form", ("x",), 1))
    0.001
    """
    if a.learning_rate is None or not (math.isfinite(a.learning_rate) and a.learning_rate > 0):
        return FALLBACK_LR
    return a.learning_rate / LR_DIVISOR


def stream_order(
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


def map_entries(text: str) -> Iterator[tuple[str, str, str]]:
    """Each entry of a ``LEFT=RIGHT, ...`` map as ``(entry, left, right)``, stripped.

    Empty entries are skipped; a side missing (no ``=``, or nothing on one side of it) comes
    back ``""``, for the caller to name the error.

    >>> list(map_entries(" a=x, ,b = y,c"))
    [('a=x', 'a', 'x'), ('b = y', 'b', 'y'), ('c', 'c', '')]
    """
    for entry in (part.strip() for part in text.split(",")):
        if entry:
            left, _, right = (side.strip() for side in entry.partition("="))
            yield entry, left, right


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
    for entry, stream_name, a_name in map_entries(text):
        if not stream_name or not a_name:
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
    lr: float | None = None,
    linear_model: str = "sgd",
    head: str | None = None,
) -> base.Regressor:
    """Build the online model B from A; before learning, B predicts exactly what A predicts.

    Parameters
    ----------
    a
        Model A, from ``load_batch_model``.
    mode
        ``"extract"``, ``"finetune"`` or ``"partial"`` (see the module docstring).
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
        Learning rate of B; None for :func:`suited_lr` (a tenth of A's own).
    linear_model
        For a linear A: ``"sgd"`` (streamlearn ``SGDRegressor``, survives ``clone()``) or
        ``"river"`` (River ``LinearRegression``: its squared loss has gradient ``2 (yhat - y)``,
        and its ``clone()`` keeps the intercept but drops the carried-over weights).
    head
        How an MLP B's lone learning output layer learns: ``"rls"`` (recursive least squares,
        see ``MLPRegressor``; ``lr`` unused) or ``"sgd"``. ``None``: ``"rls"`` for extract
        (``"sgd"`` if A's output is not linear: least squares would not apply), else ``"sgd"``.

    A's input standardisation (a ``StandardScaler`` in its pipeline) stays frozen in an MLP B and
    is folded into a linear B's weights. Raises ``TransferError`` (mode or features do not fit).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from sklearn.neural_network import MLPRegressor as SkMLP
    >>> frame = pd.DataFrame({"x": np.linspace(-1, 1, 20)})
    >>> sk = SkMLP(hidden_layer_sizes=(5,), solver="lbfgs", random_state=0)
    >>> a = as_batch_model(sk.fit(frame, 2 * frame["x"]))
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
    lr = suited_lr(a) if lr is None else lr
    a = _check_options(a, mode, lr, linear_model, head)
    if a.kind == "river":
        return _river_b(a, mode, feature_map)
    order = stream_order(a, feature_map, stream_features)
    if a.kind == "linear":
        return _linear_b(a, mode, order, lr, linear_model)
    return _mlp_b(a, mode, trainable_layers, order, lr, head)


def _as_regressor(a: BatchModel) -> BatchModel:
    """A as a regressor: a network with one sigmoid output unit predicts a number in [0, 1]
    (``--task regression``); another classifier warm-starts a classification run."""
    if a.output == "sigmoid" and a.kind == "mlp":
        activations = (*a.activations[:-1], "sigmoid")
        return replace(a, activations=activations, output=None, classes=None)
    if a.is_classifier:
        raise TransferError(
            f"{a.origin} is a classifier: it warm-starts a classification run "
            "(streamlearn.models.class_transfer.warm_classifier)"
        )
    return a


def _check_options(
    a: BatchModel, mode: str, lr: float, linear_model: str, head: str | None
) -> BatchModel:
    """The options of ``warm_start`` that make sense whatever A's layers are; A as a
    regressor (:func:`_as_regressor`)."""
    a = _as_regressor(a)
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
    return a


def _river_b(a: BatchModel, mode: str, feature_map: dict[str, str] | None) -> base.Regressor:
    """B from a River A: a copy of A that keeps learning (finetune is the only mode)."""
    if mode != "finetune":
        raise TransferError(
            f"mode {mode} needs A's layers, but {a.origin} is used as a whole; use finetune "
            "(A keeps learning)"
        )
    model: base.Regressor = copy.deepcopy(a.river_model)
    return RenamedRegressor(model, dict(feature_map)) if feature_map else model


def _linear_b(
    a: BatchModel, mode: str, order: list[str], lr: float, linear_model: str
) -> base.Regressor:
    """B from a linear A: a linear model holding A's weights on raw features."""
    if mode != "finetune":
        raise TransferError(
            f"mode {mode} makes no sense for a linear A ({a.origin}): it has no hidden layer, "
            "so there is no feature extractor to keep and no layer to freeze; use finetune"
        )
    weights, intercept = fold_scaling(a)
    named: dict[Hashable, float] = dict(zip(order, weights.tolist(), strict=True))
    if linear_model == "sgd":
        from streamlearn.models.sgd import SGDRegressor

        return SGDRegressor(lr=lr, initial_weights=named, initial_intercept=intercept)
    from river import linear_model as river_linear
    from river import optim, utils

    river_model = river_linear.LinearRegression(
        optimizer=optim.SGD(lr), intercept_init=intercept, intercept_lr=lr
    )
    # River's LinearRegression takes no starting weights: they are set where it keeps them.
    river_model._weights = utils.VectorDict(named)
    return river_model


def trainable_of(a: BatchModel, mode: str, trainable_layers: int) -> int | None:
    """How many of a layered A's last weight layers B trains in ``mode`` (None: all of them).

    >>> from types import SimpleNamespace
    >>> a = SimpleNamespace(n_layers=3, origin="A")
    >>> trainable_of(a, "finetune", 0), trainable_of(a, "extract", 0), trainable_of(a, "partial", 2)
    (None, 1, 2)
    >>> trainable_of(a, "partial", 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streamlearn.models.batch.TransferError: partial mode ... K must be between 1 and 2, got 3 ...
    """
    n_layers = a.n_layers
    if mode == "finetune":
        return None
    if n_layers < 2:
        raise TransferError(f"mode {mode} needs a hidden layer to freeze; {a.origin} has none")
    if mode == "extract":
        return 1
    if not (isinstance(trainable_layers, int) and 1 <= trainable_layers < n_layers):
        raise TransferError(
            f"partial mode trains the last K of A's {n_layers} weight layers: K must be "
            f"between 1 and {n_layers - 1}, got {trainable_layers!r} (all layers: finetune)"
        )
    return trainable_layers


def _mlp_b(
    a: BatchModel,
    mode: str,
    trainable_layers: int,
    order: list[str],
    lr: float,
    head: str | None,
) -> MLPRegressor:
    """B from an MLP A: A's layers, the last ``trainable`` of them learning."""
    trainable = trainable_of(a, mode, trainable_layers)
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
    return MLPRegressor(
        **layer_args(a, trainable, order, lr),
        output_activation=a.activations[-1],
        initial_coefs=list(a.coefs),
        initial_intercepts=list(a.intercepts),
        head=head,
    )


class LayerArgs(TypedDict):
    """What both numpy MLPs take from a layered A: its hidden layers, how many of its layers
    learn, the stream's feature order, the learning rate and A's input scaling."""

    hidden: tuple[int, ...]
    activation: str | tuple[str, ...]
    lr: float
    trainable_layers: int | None
    features: list[str]
    input_mean: list[float] | None
    input_scale: list[float] | None


def layer_args(a: BatchModel, trainable: int | None, order: list[str], lr: float) -> LayerArgs:
    """B's arguments from a layered A (``LayerArgs``): one activation name when A's hidden
    layers share it."""
    hidden_acts = a.activations[:-1]
    return LayerArgs(
        hidden=tuple(c.shape[1] for c in a.coefs[:-1]),
        activation=hidden_acts[0] if len(set(hidden_acts)) == 1 else hidden_acts,
        lr=lr,
        trainable_layers=trainable,
        features=order,
        input_mean=None if a.input_mean is None else a.input_mean.tolist(),
        input_scale=None if a.input_scale is None else a.input_scale.tolist(),
    )


def fold_scaling(a: BatchModel, column: int = 0) -> tuple[FloatArray, float]:
    """A linear A's weights and intercept (of output ``column``) on raw features: its
    standardisation folded in."""
    weights = a.coefs[0][:, column].copy()
    intercept = float(a.intercepts[0][column])
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
