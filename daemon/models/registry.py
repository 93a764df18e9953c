"""Model specs: a safe little language for naming River models on the command line.

A spec names a regressor or a classifier (the project's own ``sgd``, ``mlp``, ``logistic``,
``softmax``, ``mlp_classifier``, or River's), after any number of transformers.

``"StandardScaler | LinearRegression(l2=0.1)"`` is parsed with ``ast`` against an
allow-list of classes; keyword arguments must be literals (or allowed optimizer
calls such as ``optimizer=SGD(lr=0.05)``). Nothing is ever ``eval``ed, and only the
modules a spec names are imported, so start-up stays fast. A spec is bounded before
anything is built: its length, its steps, the sizes it names (``spec_bounds``), and its
values' types (``spec_types``).
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamlearn.models.spec_bounds import DEFAULT_CLASSES, check_sizes
from streamlearn.models.spec_types import check_arguments, non_finite

#: Spec name -> (module, attribute). Estimators and transformers usable in a pipeline.
MODELS: dict[str, tuple[str, str]] = {
    "sgd": ("streamlearn.models.sgd", "SGDRegressor"),
    "mlp": ("streamlearn.models.mlp", "MLPRegressor"),
    "logistic": ("streamlearn.models.logistic", "LogisticRegression"),
    "softmax": ("streamlearn.models.softmax", "SoftmaxRegression"),
    "mlp_classifier": ("streamlearn.models.mlp_classifier", "MLPClassifier"),
    "LinearRegression": ("river.linear_model", "LinearRegression"),
    "PARegressor": ("river.linear_model", "PARegressor"),
    "BayesianLinearRegression": ("river.linear_model", "BayesianLinearRegression"),
    "HoeffdingTreeRegressor": ("river.tree", "HoeffdingTreeRegressor"),
    "HoeffdingAdaptiveTreeRegressor": ("river.tree", "HoeffdingAdaptiveTreeRegressor"),
    "ARFRegressor": ("river.forest", "ARFRegressor"),
    "AMFRegressor": ("river.forest", "AMFRegressor"),
    "KNNRegressor": ("river.neighbors", "KNNRegressor"),
    "LogisticRegression": ("river.linear_model", "LogisticRegression"),
    "SoftmaxRegression": ("river.linear_model", "SoftmaxRegression"),
    "Perceptron": ("river.linear_model", "Perceptron"),
    "PAClassifier": ("river.linear_model", "PAClassifier"),
    "HoeffdingTreeClassifier": ("river.tree", "HoeffdingTreeClassifier"),
    "HoeffdingAdaptiveTreeClassifier": ("river.tree", "HoeffdingAdaptiveTreeClassifier"),
    "ExtremelyFastDecisionTreeClassifier": ("river.tree", "ExtremelyFastDecisionTreeClassifier"),
    "ARFClassifier": ("river.forest", "ARFClassifier"),
    "GaussianNB": ("river.naive_bayes", "GaussianNB"),
    "KNNClassifier": ("river.neighbors", "KNNClassifier"),
    "StandardScaler": ("river.preprocessing", "StandardScaler"),
    "AdaptiveStandardScaler": ("river.preprocessing", "AdaptiveStandardScaler"),
    "MinMaxScaler": ("river.preprocessing", "MinMaxScaler"),
    "MaxAbsScaler": ("river.preprocessing", "MaxAbsScaler"),
    "Normalizer": ("river.preprocessing", "Normalizer"),
    "PolynomialExtender": ("river.feature_extraction", "PolynomialExtender"),
    "RBFSampler": ("river.feature_extraction", "RBFSampler"),
}

#: The names of MODELS that learn, by task, in the order ``--help`` lists them; every other
#: name is a transformer (a step before the model).
REGRESSORS = (
    "sgd",
    "mlp",
    "LinearRegression",
    "PARegressor",
    "BayesianLinearRegression",
    "HoeffdingTreeRegressor",
    "HoeffdingAdaptiveTreeRegressor",
    "ARFRegressor",
    "AMFRegressor",
    "KNNRegressor",
)
CLASSIFIERS = (
    "logistic",
    "softmax",
    "mlp_classifier",
    "LogisticRegression",
    "SoftmaxRegression",
    "Perceptron",
    "PAClassifier",
    "HoeffdingTreeClassifier",
    "HoeffdingAdaptiveTreeClassifier",
    "ExtremelyFastDecisionTreeClassifier",
    "ARFClassifier",
    "GaussianNB",
    "KNNClassifier",
)
TRANSFORMERS = tuple(name for name in MODELS if name not in {*REGRESSORS, *CLASSIFIERS})

#: Allowed only as keyword values (``LinearRegression(optimizer=Adam(lr=0.01))``).
HELPERS: dict[str, tuple[str, str]] = {
    "SGD": ("river.optim", "SGD"),
    "Adam": ("river.optim", "Adam"),
    "AdaGrad": ("river.optim", "AdaGrad"),
    "RMSProp": ("river.optim", "RMSProp"),
    "Momentum": ("river.optim", "Momentum"),
}

#: Models whose learning rate comes from ``--lr`` unless the spec sets ``lr``.
LR_MODELS = frozenset({"sgd", "mlp", "logistic", "softmax", "mlp_classifier"})

#: The longest spec and the most pipeline steps read: a spec is typed by a person.
MAX_SPEC_CHARS = 10_000
MAX_STEPS = 64


class SpecError(ValueError):
    """A model spec that cannot be built; the message says what to write instead."""


@dataclass(frozen=True, slots=True)
class Step:
    """One ``Name(key=literal, ...)`` of a spec."""

    name: str
    kwargs: Mapping[str, Any]


def known_names() -> str:
    """The names a spec may use, for error messages."""
    return ", ".join(sorted(MODELS, key=str.lower))


def _literal(node: ast.expr, spec: str) -> Any:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in HELPERS:
        return _instantiate(_call(node, spec, HELPERS, "optimizer"), spec, HELPERS)
    try:
        value = ast.literal_eval(node)
    except ValueError:
        raise SpecError(
            f"in {spec!r}: argument values must be literals (numbers, strings, tuples), "
            f"not {ast.unparse(node)!r}"
        ) from None
    if non_finite(value):
        raise SpecError(f"in {spec!r}: {ast.unparse(node)!r} is not a finite number")
    return value


def _call(node: ast.expr, spec: str, allowed: Mapping[str, Any], what: str) -> Step:
    if isinstance(node, ast.Name):
        name, keywords, args = node.id, [], []
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name, keywords, args = node.func.id, node.keywords, node.args
    else:
        raise SpecError(
            f"in {spec!r}: {ast.unparse(node)!r} is not a {what} name or call; "
            "write e.g. 'StandardScaler | LinearRegression(l2=0.1)'"
        )
    if name not in allowed:
        known = known_names() if allowed is MODELS else ", ".join(sorted(allowed))
        raise SpecError(f"unknown {what} {name!r} in {spec!r}; known: {known}")
    if args:
        raise SpecError(f"in {spec!r}: give {name}'s arguments by keyword, e.g. {name}(x=1)")
    kwargs: dict[str, Any] = {}
    for keyword in keywords:
        if keyword.arg is None:
            raise SpecError(f"in {spec!r}: ** arguments are not allowed")
        kwargs[keyword.arg] = _literal(keyword.value, spec)
    return Step(name, kwargs)


def parse_spec(spec: str) -> list[Step]:
    """Parse a spec into its pipeline steps without importing anything.

    >>> parse_spec("StandardScaler | LinearRegression(l2=0.1)")
    [Step(name='StandardScaler', kwargs={}), Step(name='LinearRegression', kwargs={'l2': 0.1})]
    >>> try:
    ...     parse_spec("__import__('os')")
    ... except SpecError as exc:
    ...     print(exc)
    unknown model '__import__' in "__import__('os')"; known: AdaptiveStandardScaler, ...

    The sizes a spec names are bounded with one input feature (``build_model`` knows more):

    >>> try:
    ...     parse_spec("mlp(hidden=(100000, 100000))")
    ... except SpecError as exc:
    ...     print(exc)
    in 'mlp(hidden=(100000, 100000))': mlp would hold 10,000,400,001 numbers for 1 input
    feature, more than the budget of 10,000,000
    """
    if len(spec) > MAX_SPEC_CHARS:
        raise SpecError(f"a model spec is at most {MAX_SPEC_CHARS:,} characters, got {len(spec):,}")
    if spec.count("|") >= MAX_STEPS:
        raise SpecError(f"a model spec has at most {MAX_STEPS} steps, got {spec.count('|') + 1}")
    try:
        tree = ast.parse(spec.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError):
        raise SpecError(
            f"cannot parse model spec {spec!r}: "
            "write e.g. 'StandardScaler | LinearRegression(l2=0.1)'"
        ) from None
    parts: list[ast.expr] = []

    def flatten(node: ast.expr) -> None:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            flatten(node.left)
            flatten(node.right)
        else:
            parts.append(node)

    flatten(tree.body)
    steps = [_call(part, spec, MODELS, "model") for part in parts]
    _check_sizes(steps, 1, spec)
    return steps


def _check_sizes(
    steps: list[Step], n_features: int, spec: str, n_classes: int = DEFAULT_CLASSES
) -> None:
    try:
        check_sizes([(step.name, step.kwargs) for step in steps], n_features, n_classes)
    except ValueError as exc:
        raise SpecError(f"in {spec!r}: {exc}") from None


def _instantiate(step: Step, spec: str, allowed: Mapping[str, tuple[str, str]] = MODELS) -> Any:
    module, attr = allowed[step.name]
    cls = getattr(importlib.import_module(module), attr)
    try:
        check_arguments(cls, step.name, step.kwargs)
    except ValueError as exc:
        raise SpecError(f"in {spec!r}: {exc}") from None
    try:
        return cls(**step.kwargs)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"cannot build {step.name} from {spec!r}: {exc}") from None


def check_size(spec: str, n_features: int, n_classes: int = DEFAULT_CLASSES) -> None:
    """Refuse a spec whose model would hold more than ``spec_bounds.MAX_PARAMETERS`` numbers
    when records bring (at most) ``n_features`` features (and ``n_classes`` classes, for a
    classifier whose size grows with them).

    >>> check_size("mlp(hidden=(50, 50))", 100)
    >>> try:
    ...     check_size("mlp(hidden=(2000,))", 10_000)
    ... except SpecError as exc:
    ...     print(exc)
    in 'mlp(hidden=(2000,))': mlp would hold 20,004,001 numbers for 10,000 input features,
    more than the budget of 10,000,000
    """
    _check_sizes(parse_spec(spec), n_features, spec, n_classes)


def build_model(spec: str, lr: float | None = None) -> Any:
    """Build the River estimator (or pipeline) a spec names: a regressor or a classifier.

    ``lr`` (the ``--lr`` flag) fills in the learning rate of the ``LR_MODELS`` (``sgd``,
    ``mlp``, ``logistic``, ``softmax``, ``mlp_classifier``) when the spec does not set one.

    Examples
    --------
    >>> build_model("sgd", lr=0.05)
    SGDRegressor (
      lr=0.05
      initial_weights={}
      initial_intercept=0.
    )
    >>> model = build_model("StandardScaler | LinearRegression(l2=0.1)")
    >>> [type(step).__name__ for step in model.steps.values()]
    ['StandardScaler', 'LinearRegression']
    >>> build_model("logistic", lr=0.1).lr
    0.1
    >>> type(build_model("StandardScaler | HoeffdingTreeClassifier")["HoeffdingTreeClassifier"])
    <class 'river.tree.hoeffding_tree_classifier.HoeffdingTreeClassifier'>
    >>> try:
    ...     build_model("StandardScaler")
    ... except SpecError as exc:
    ...     print(exc)
    the last step of 'StandardScaler' must be a regressor or a classifier,
    e.g. 'StandardScaler | LinearRegression'
    """
    from river import base

    steps = parse_spec(spec)
    built = []
    for step in steps:
        if step.name in LR_MODELS and lr is not None and "lr" not in step.kwargs:
            step = Step(step.name, {**step.kwargs, "lr": lr})
        built.append(_instantiate(step, spec))
    last = built[-1]
    if not isinstance(last, base.Regressor | base.Classifier):
        raise SpecError(
            f"the last step of {spec!r} must be a regressor or a classifier, "
            f"e.g. '{spec} | LinearRegression'"
        )
    for step, obj in zip(steps[:-1], built[:-1], strict=True):
        if not isinstance(obj, base.Transformer):
            raise SpecError(
                f"{step.name} in {spec!r} is not a transformer; only the last step learns"
            )
    if len(built) == 1:
        return last
    from river import compose

    return compose.Pipeline(*built)


def final_estimator(model: Any) -> Any:
    """The last step of a pipeline (the model itself otherwise)."""
    # A model can only be a Pipeline once river.compose is imported; importing it here would
    # pull scipy into every replay of a model that is none.
    compose = sys.modules.get("river.compose")
    if compose is not None and isinstance(model, compose.Pipeline) and model.steps:
        return list(model.steps.values())[-1]
    return model
