"""The arguments of the numpy MLPs, checked and normalised: what a valid network is.

``MLPRegressor.__init__`` and ``MLPClassifier.__init__`` call these (the arguments they share
through ``checked_network``), so a wrong argument is a plain-English ``ValueError`` before any
weight is built (River checks parameters in ``__init__``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streamlearn.models.activations import ACTIVATIONS
from streamlearn.models.spec_bounds import MAX_PARAMETERS, mlp_parameter_count

__all__ = [
    "HEADS",
    "Network",
    "check_head",
    "check_learning",
    "check_shapes",
    "check_size",
    "checked_features",
    "checked_layers",
    "checked_network",
    "input_scaling",
    "warm_layers",
]

FloatArray = npt.NDArray[np.float64]

#: How the output layer learns: by the same SGD step as the other layers, or by recursive least
#: squares on the (frozen) last hidden activations.
HEADS = ("sgd", "rls")

# Output activations under which the network's output is linear in the output layer's weights,
# which is what least squares needs.
_LINEAR_OUTPUTS = frozenset({"identity", "linear"})


def _as_float_arrays(
    arrays: Iterable[Any], name: str, ndim: int, n: int | None = None
) -> list[FloatArray]:
    out = [np.array(a, dtype=np.float64, copy=True) for a in arrays]
    if n is not None and len(out) != n:
        raise ValueError(f"{name} must hold {n} arrays (one per weight layer), got {len(out)}")
    for i, arr in enumerate(out):
        if arr.ndim != ndim:
            raise ValueError(f"{name}[{i}] must be a {ndim}-d array, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}[{i}] holds NaN or infinite values")
    return out


def _as_vector(values: Any, name: str, n: int) -> FloatArray:
    arr = np.array(values, dtype=np.float64, copy=True).reshape(-1)
    if arr.shape != (n,):
        raise ValueError(f"{name} must hold one value per feature ({n}), got {arr.size}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return arr


def checked_layers(
    hidden: Sequence[int], activation: str | Sequence[str], output_activation: str
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The hidden layer sizes and one activation name per hidden layer, checked."""
    hidden = tuple(hidden)
    if not all(isinstance(h, int | np.integer) and h > 0 for h in hidden):
        raise ValueError(f"hidden must be positive layer sizes, e.g. (50, 50); got {hidden!r}")
    sizes = tuple(int(h) for h in hidden)
    names = (activation,) * len(sizes) if isinstance(activation, str) else tuple(activation)
    if len(names) != len(sizes):
        raise ValueError(
            f"activation needs one name per hidden layer ({len(sizes)}), got {len(names)}"
        )
    for name in (*names, output_activation):
        if name not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {name!r}; use one of {', '.join(sorted(ACTIVATIONS))}"
            )
    return sizes, names


def check_size(n_in: int, hidden: tuple[int, ...], head: str, n_out: int = 1) -> None:
    """A network built from scratch holds at most ``MAX_PARAMETERS`` numbers, checked before
    its weights are allocated (a warm start's size is that of the model it starts from)."""
    count = mlp_parameter_count(n_in, hidden, head, n_out)
    if count > MAX_PARAMETERS:
        outputs = f" and {n_out:,} outputs" if n_out != 1 else ""
        raise ValueError(
            f"hidden={hidden} would hold {count:,} numbers for {n_in:,} input features"
            f"{outputs}, more than the budget of {MAX_PARAMETERS:,}: use smaller layers"
        )


def check_learning(
    lr: float, trainable_layers: int | None, n_layers: int, clip_gradient: float
) -> None:
    """Learning rate, trainable layers and gradient clip."""
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if trainable_layers is not None and not (
        isinstance(trainable_layers, int) and 0 <= trainable_layers <= n_layers
    ):
        raise ValueError(
            f"trainable_layers must be None (all) or between 0 and {n_layers} "
            f"(this network has {n_layers} weight layers), got {trainable_layers!r}"
        )
    if not (isinstance(clip_gradient, int | float) and clip_gradient > 0):
        raise ValueError(f"clip_gradient must be positive, got {clip_gradient!r}")


def checked_features(features: Sequence[str] | None) -> list[str] | None:
    """The input feature names as a list; None (any features, named at the first record) stays.

    >>> checked_features(("a", "b")), checked_features(None)
    (['a', 'b'], None)
    >>> checked_features(["a", "a"])
    Traceback (most recent call last):
    ...
    ValueError: features must be a non-empty list of distinct names
    """
    if features is None:
        return None
    features = list(features)
    if len(set(features)) != len(features) or not features:
        raise ValueError("features must be a non-empty list of distinct names")
    return features


def check_head(
    head: str,
    rls_forgetting: float,
    rls_delta: float,
    trainable_layers: int | None,
    n_layers: int,
    output_activation: str,
) -> None:
    """How the output layer learns, and whether this network allows it."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(map(repr, HEADS))}, got {head!r}")
    if not (isinstance(rls_forgetting, int | float) and 0 < rls_forgetting <= 1):
        raise ValueError(
            f"rls_forgetting must be in (0, 1] (1 = remember every record), got {rls_forgetting!r}"
        )
    if not (isinstance(rls_delta, int | float) and math.isfinite(rls_delta) and rls_delta > 0):
        raise ValueError(f"rls_delta must be a positive finite number, got {rls_delta!r}")
    if head != "rls":
        return
    n_trainable = n_layers if trainable_layers is None else trainable_layers
    if n_trainable != 1:
        raise ValueError(
            "head='rls' fits the output layer on frozen hidden features, so it needs "
            f"exactly one trainable layer (trainable_layers=1); this network would train "
            f"{n_trainable} of its {n_layers}"
        )
    if output_activation not in _LINEAR_OUTPUTS:
        raise ValueError(
            "head='rls' needs a linear output (output_activation='identity'), got "
            f"{output_activation!r}; use head='sgd'"
        )


def warm_layers(
    initial_coefs: Sequence[Any] | None,
    initial_intercepts: Sequence[Any] | None,
    features: Sequence[str] | None,
    n_layers: int,
) -> tuple[list[FloatArray] | None, list[FloatArray] | None]:
    """The warm start's weight matrices and bias vectors as float arrays, checked."""
    coefs = (
        None
        if initial_coefs is None
        else _as_float_arrays(initial_coefs, "initial_coefs", 2, n_layers)
    )
    intercepts = (
        None
        if initial_intercepts is None
        else _as_float_arrays(initial_intercepts, "initial_intercepts", 1, n_layers)
    )
    if intercepts is not None and coefs is None:
        raise ValueError("initial_intercepts needs initial_coefs")
    if coefs is not None and features is None:
        raise ValueError(
            "initial_coefs needs features: the names of the first layer's inputs, in order"
        )
    return coefs, intercepts


def input_scaling(
    input_mean: Sequence[float] | None,
    input_scale: Sequence[float] | None,
    features: Sequence[str] | None,
) -> tuple[FloatArray | None, FloatArray | None]:
    """The frozen input centring and scaling as vectors, one value per feature."""
    n_in = None if features is None else len(features)
    if n_in is None and (input_mean is not None or input_scale is not None):
        raise ValueError("input_mean and input_scale need features (their order)")
    mean = scale = None
    if input_mean is not None and n_in is not None:
        mean = _as_vector(input_mean, "input_mean", n_in)
    if input_scale is not None and n_in is not None:
        scale = _as_vector(input_scale, "input_scale", n_in)
    if scale is not None and (scale == 0).any():
        raise ValueError("input_scale must not hold zeros")
    return mean, scale


def check_shapes(
    coefs: list[FloatArray],
    intercepts: list[FloatArray] | None,
    n_in: int,
    hidden: tuple[int, ...],
    n_out: int = 1,
) -> None:
    """Each warm-start layer has the shape ``n_in`` features, ``hidden`` and ``n_out`` ask for."""
    fan_in, fan_out = [n_in, *hidden], [*hidden, n_out]
    for i, coef in enumerate(coefs):
        if coef.shape != (fan_in[i], fan_out[i]):
            raise ValueError(
                f"initial_coefs[{i}] has shape {coef.shape}, expected "
                f"{(fan_in[i], fan_out[i])} for {n_in} features and hidden={hidden}"
            )
    for i, bias in enumerate(intercepts or []):
        if bias.shape != (fan_out[i],):
            raise ValueError(
                f"initial_intercepts[{i}] has shape {bias.shape}, expected ({fan_out[i]},)"
            )


@dataclass(frozen=True)
class Network:
    """The arguments both MLPs share, checked: layers, features, warm start, input scaling."""

    hidden: tuple[int, ...]
    #: One activation name per hidden layer.
    names: tuple[str, ...]
    features: list[str] | None
    coefs: list[FloatArray] | None
    intercepts: list[FloatArray] | None
    input_mean: FloatArray | None
    input_scale: FloatArray | None

    @property
    def n_layers(self) -> int:
        """Weight layers: the hidden ones and the output."""
        return len(self.hidden) + 1

    def check_size(self, head: str, n_out: int = 1) -> None:
        """The warm start's shapes fit, else a network from scratch fits the budget."""
        if self.coefs is not None:
            assert self.features is not None  # checked by warm_layers
            check_shapes(self.coefs, self.intercepts, len(self.features), self.hidden, n_out)
        else:
            n_in = len(self.features) if self.features is not None else 1
            check_size(n_in, self.hidden, head, max(n_out, 1))


def checked_network(
    hidden: Sequence[int],
    activation: str | Sequence[str],
    output_activation: str,
    lr: float,
    trainable_layers: int | None,
    clip_gradient: float,
    features: Sequence[str] | None,
    initial_coefs: Sequence[Any] | None,
    initial_intercepts: Sequence[Any] | None,
    input_mean: Sequence[float] | None,
    input_scale: Sequence[float] | None,
) -> Network:
    """The shared arguments checked in order: layers, learning, features, warm start, scaling.

    >>> net = checked_network((3,), "relu", "identity", 0.1, None, 1e12, ["a"], None, None,
    ...                       None, None)
    >>> net.hidden, net.names, net.n_layers, net.features
    ((3,), ('relu',), 2, ['a'])
    """
    sizes, names = checked_layers(hidden, activation, output_activation)
    n_layers = len(sizes) + 1
    check_learning(lr, trainable_layers, n_layers, clip_gradient)
    named = checked_features(features)
    coefs, intercepts = warm_layers(initial_coefs, initial_intercepts, named, n_layers)
    mean, scale = input_scaling(input_mean, input_scale, named)
    return Network(sizes, names, named, coefs, intercepts, mean, scale)
