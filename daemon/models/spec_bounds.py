"""Size bounds of model specs: a parameter budget computed from a spec before anything is built.

A spec names sizes (``mlp(hidden=(50, 50))``, ``RBFSampler(n_components=100)``), and a few zeros
too many would allocate gigabytes at the first record. :func:`check_sizes` follows the number of
features through the pipeline and refuses a spec whose steps would hold more than
``MAX_PARAMETERS`` numbers, or give a count beyond its cap in ``COUNT_CAPS``. A classifier's
size grows with its classes: it is counted for the most classes the stream may bring.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "COUNT_CAPS",
    "DEFAULT_CLASSES",
    "MAX_PARAMETERS",
    "check_sizes",
    "mlp_parameter_count",
]

#: The most numbers (weights, statistics, buffered values) a model spec may hold: 80 MB of
#: float64, a checkpoint of about that size.
MAX_PARAMETERS = 10_000_000

#: The classes a classifier is sized for when the caller does not say (``--max-classes``'s
#: default).
DEFAULT_CLASSES = 100

#: (step, argument) -> the largest value allowed: counts that each build a model or a buffer.
COUNT_CAPS: dict[tuple[str, str], int] = {
    ("ARFRegressor", "n_models"): 1_000,
    ("ARFClassifier", "n_models"): 1_000,
    ("AMFRegressor", "n_estimators"): 1_000,
    ("KNNRegressor", "n_neighbors"): 10_000,
    ("KNNClassifier", "n_neighbors"): 10_000,
    ("StandardScaler", "window_size"): 1_000_000,
    ("MinMaxScaler", "window_size"): 1_000_000,
    ("MaxAbsScaler", "window_size"): 1_000_000,
    ("PolynomialExtender", "degree"): 10,
    ("RBFSampler", "n_components"): 1_000_000,
}

#: What a step makes of ``n`` input features, for at most ``k`` classes: (features out, numbers
#: held).
Size = Callable[[Mapping[str, Any], int, int], tuple[int, int]]


def _count(value: Any) -> int | None:
    """An integer size argument, or None when it is not one (its type is checked elsewhere)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def mlp_parameter_count(n_in: int, hidden: Sequence[int], head: str = "sgd", n_out: int = 1) -> int:
    """Weights and biases of an ``n_in -> hidden -> n_out`` network (and the RLS head's matrix).

    >>> mlp_parameter_count(3, (50, 50))
    2801
    >>> mlp_parameter_count(3, (4,), head="rls")
    46
    >>> mlp_parameter_count(3, (4,), n_out=10)
    66
    """
    sizes = [n_in, *hidden, n_out]
    count = sum(fan_in * fan_out + fan_out for fan_in, fan_out in itertools.pairwise(sizes))
    if head == "rls":
        count += (sizes[-2] + 1) ** 2  # P: (last hidden + bias) squared
    return count


def _network(kwargs: Mapping[str, Any], n: int) -> tuple[int, list[int]] | None:
    """An mlp step's inputs and hidden layer sizes; None when they are not sizes (the class
    says so when built)."""
    hidden = kwargs.get("hidden", (50, 50))
    sizes = [_count(h) for h in hidden] if isinstance(hidden, tuple | list) else [None]
    features = kwargs.get("features")
    n_in = len(features) if isinstance(features, tuple | list) and features else n
    if any(size is None or size < 1 for size in sizes):
        return None
    return n_in, [size for size in sizes if size is not None]


def _mlp(kwargs: Mapping[str, Any], n: int, k: int) -> tuple[int, int]:
    network = _network(kwargs, n)
    if network is None:
        return 1, 0
    return 1, mlp_parameter_count(*network, str(kwargs.get("head", "sgd")))


def _mlp_classifier(kwargs: Mapping[str, Any], n: int, k: int) -> tuple[int, int]:
    network = _network(kwargs, n)
    if network is None:
        return 1, 0
    classes = kwargs.get("classes")
    known = len(classes) if isinstance(classes, tuple | list) else 0
    n_out = 1 if kwargs.get("output") == "sigmoid" else max(k, known)
    return 1, mlp_parameter_count(*network, n_out=n_out)


def _linear(kwargs: Mapping[str, Any], n: int, k: int) -> tuple[int, int]:
    return 1, n + 1


def _per_class(kwargs: Mapping[str, Any], n: int, k: int) -> tuple[int, int]:
    return 1, (n + 1) * k  # a weight per (feature, class) and an intercept per class


def _gaussian_nb(kwargs: Mapping[str, Any], n: int, k: int) -> tuple[int, int]:
    return 1, 3 * n * k + k  # a Gaussian (count, mean, variance) per (feature, class)


def _covariance(kwargs: Mapping[str, Any], n: int, k: int) -> tuple[int, int]:
    return 1, 3 * n * n  # precision and covariance matrices, and their cached mean


def _scaler(kwargs: Mapping[str, Any], n: int, k: int) -> tuple[int, int]:
    window = _count(kwargs.get("window_size")) or 1
    return n, 3 * n * window


def _polynomial(kwargs: Mapping[str, Any], n: int, k: int) -> tuple[int, int]:
    degree = _count(kwargs.get("degree", 2))
    if degree is None or degree < 1:
        return n, 0
    if kwargs.get("interaction_only"):
        out = sum(math.comb(n, k) for k in range(1, min(degree, n) + 1))
    else:
        out = math.comb(n + degree, degree) - 1
    return out, 0


def _rbf(kwargs: Mapping[str, Any], n: int, k: int) -> tuple[int, int]:
    components = _count(kwargs.get("n_components", 100)) or 100
    return components, components * (n + 1)  # a weight per (feature, component), the offsets


#: Steps whose size depends on their arguments or their inputs; any other step keeps the
#: number of features and holds a few numbers per feature (or bounds itself: the trees'
#: ``max_size``).
SIZES: dict[str, Size] = {
    "mlp": _mlp,
    "mlp_classifier": _mlp_classifier,
    "sgd": _linear,
    "logistic": _linear,
    "softmax": _per_class,
    "LinearRegression": _linear,
    "PARegressor": _linear,
    "LogisticRegression": _linear,
    "Perceptron": _linear,
    "PAClassifier": _linear,
    "SoftmaxRegression": _per_class,
    "GaussianNB": _gaussian_nb,
    "BayesianLinearRegression": _covariance,
    "StandardScaler": _scaler,
    "MinMaxScaler": _scaler,
    "MaxAbsScaler": _scaler,
    "PolynomialExtender": _polynomial,
    "RBFSampler": _rbf,
}


#: Steps whose size grows with the number of classes (the error message names it).
PER_CLASS = frozenset({"mlp_classifier", "softmax", "SoftmaxRegression", "GaussianNB"})


def _check_counts(name: str, kwargs: Mapping[str, Any]) -> None:
    for argument, value in kwargs.items():
        cap = COUNT_CAPS.get((name, argument))
        count = _count(value)
        if cap is not None and count is not None and count > cap:
            raise ValueError(f"{name}'s {argument} is at most {cap:,}, got {count:,}")


def check_sizes(
    steps: Iterable[tuple[str, Mapping[str, Any]]],
    n_features: int,
    n_classes: int = DEFAULT_CLASSES,
) -> None:
    """Refuse steps that hold more than ``MAX_PARAMETERS`` numbers for ``n_features`` inputs.

    ``steps`` are a spec's (name, keyword arguments), in pipeline order; ``n_features`` the
    number of features of a record (at most), ``n_classes`` the number of classes (at most)
    of a classifier. Raises ``ValueError`` saying which step is too large.

    >>> check_sizes([("mlp", {"hidden": (50, 50)})], 10)
    >>> try:
    ...     check_sizes([("mlp", {"hidden": (1_000_000_000,)})], 1)
    ... except ValueError as exc:
    ...     print(exc)
    mlp would hold 3,000,000,001 numbers for 1 input feature, more than the budget of 10,000,000

    A classifier with an output per class is counted for ``n_classes`` of them:

    >>> check_sizes([("softmax", {})], 10_000, n_classes=100)
    >>> try:
    ...     check_sizes([("softmax", {})], 10_000, n_classes=1_000)
    ... except ValueError as exc:
    ...     print(exc)
    softmax would hold 10,001,000 numbers for 10,000 input features and 1,000 classes, more
    than the budget of 10,000,000
    """
    total, width = 0, n_features
    for name, kwargs in steps:
        _check_counts(name, kwargs)
        size = SIZES.get(name)
        if size is None:
            held = 2 * width
        else:
            out, held = size(kwargs, width, n_classes)
            if out > MAX_PARAMETERS:
                raise ValueError(
                    f"{name} would make {out:,} features of {width:,}, more than the budget "
                    f"of {MAX_PARAMETERS:,}"
                )
        total += held
        if total > MAX_PARAMETERS:
            what = f"{name} would hold {held:,}"
            if held != total:
                what = f"the pipeline would hold {total:,} ({name}: {held:,})"
            inputs = f"{n_features:,} input feature{'s' if n_features != 1 else ''}"
            if name in PER_CLASS:
                inputs += f" and {n_classes:,} classes"
            raise ValueError(
                f"{what} numbers for {inputs}, more than the budget of {MAX_PARAMETERS:,}"
            )
        if size is not None:
            width = out
