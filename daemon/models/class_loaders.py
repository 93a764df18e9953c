"""Classifier A as a :class:`~streamlearn.models.batch.BatchModel`: its layers, its output and
its classes, from scikit-learn, River, a streamlearn classifier or a Keras file.

:mod:`streamlearn.models.loaders` reads the file and calls these for a classifier. The
classes are kept as the text a stream would write them in (``0``, ``yes``, ``setosa``), in
A's output order, so they can be compared with the stream's labels before anything is learned.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from river import base
from river.base.typing import ClfTarget

from streamlearn.classify.space import MAX_CLASSES_CAP, MAX_LABEL_CHARS, ClassSpace, pair_member
from streamlearn.models.batch import BatchModel, FloatArray, Output, TransferError
from streamlearn.models.registry import final_estimator

__all__ = [
    "SKLEARN_CLASSIFIERS",
    "as_classifier",
    "class_texts",
    "from_own_classifier",
    "from_river_classifier",
    "from_sklearn_classifier",
    "river_classes",
]

#: The scikit-learn classifiers A may be: their probabilities are a sigmoid, softmax or
#: normalised one-vs-rest sigmoids of linear layers (``SGDClassifier`` with ``log_loss`` only).
SKLEARN_CLASSIFIERS = frozenset({"LogisticRegression", "SGDClassifier", "MLPClassifier"})


def class_texts(labels: Iterable[Any], where: str) -> tuple[str, ...]:
    """A's class labels as the text a stream writes them in, checked (distinct, not empty).

    numpy scalars count as the Python values they hold; a float with no fraction reads as an
    integer (a label column read as floats: ``1.0`` is the class ``1``).

    >>> class_texts([np.int64(0), 1.0, "yes ", True], "A")
    ('0', '1', 'yes', 'True')
    >>> try:
    ...     class_texts([1, 1.0], "A")
    ... except TransferError as exc:
    ...     print(exc)
    A: its classes must be distinct as text, and 1, 1.0 both read '1'
    """
    texts: list[str] = []
    for label in labels:
        value = label.item() if isinstance(label, np.generic) else label
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            text = str(int(value))
        else:
            text = str(value).strip()
        if not text or len(text) > MAX_LABEL_CHARS:
            raise TransferError(
                f"{where}: a class label must be 1 to {MAX_LABEL_CHARS} characters, "
                f"got {str(value)[:40]!r}"
            )
        if text in texts:
            raise TransferError(
                f"{where}: its classes must be distinct as text, and "
                f"{', '.join(str(v) for v in labels)} both read {text!r}"
            )
        texts.append(text)
    if len(texts) > MAX_CLASSES_CAP:
        raise TransferError(f"{where}: {len(texts)} classes, more than {MAX_CLASSES_CAP}")
    return tuple(texts)


def from_sklearn_classifier(
    model: Any,
    origin: str,
    feature_names: tuple[str, ...] | None,
    scaling: tuple[FloatArray | None, FloatArray | None],
    learning_rate: float | None,
    where: str,
) -> BatchModel:
    """A fitted scikit-learn classifier (``SKLEARN_CLASSIFIERS``), its scaler already read
    (``scaling``: its mean and scale, None without one).

    scikit-learn's probabilities: ``LogisticRegression`` a sigmoid (two classes) or a softmax
    of ``X @ coef_.T + intercept_``; ``SGDClassifier(loss="log_loss")`` a sigmoid, or for
    more classes one sigmoid per class normalised to sum 1 (one-vs-rest); ``MLPClassifier``
    a logistic (two classes) or softmax output unit.
    """
    name = type(model).__name__
    classes = class_texts(model.classes_, where)
    output: Output
    if name == "MLPClassifier":
        output = _mlp_output(model, origin)
        return sklearn_mlp(
            model, origin, feature_names, learning_rate, "identity", output, classes, scaling
        )
    if name == "SGDClassifier" and model.loss != "log_loss":
        raise TransferError(
            f"{where}: an SGDClassifier with loss={model.loss!r} gives no log-loss "
            "probabilities to start from; train it with loss='log_loss'"
        )
    coef = np.array(model.coef_, dtype=np.float64)
    intercept = np.array(model.intercept_, dtype=np.float64).reshape(-1)
    if coef.shape[0] == 1:
        output = "sigmoid"
    else:
        output = "softmax" if name == "LogisticRegression" else "ovr"
    weights = coef.T.copy()
    return BatchModel.linear(
        origin, feature_names, weights, intercept, learning_rate, output, classes, scaling
    )


def _mlp_output(model: Any, origin: str) -> Output:
    """A scikit-learn MLPClassifier's output: a softmax, else one logistic unit."""
    width = model.coefs_[-1].shape[1]
    output: Output = "softmax" if model.out_activation_ == "softmax" else "sigmoid"
    if output == "sigmoid" and width != 1:
        raise TransferError(
            f"{origin} is a multi-label model ({width} independent outputs): a stream "
            "record has one class; train A on one label column"
        )
    return output


def sklearn_mlp(
    model: Any,
    origin: str,
    names: tuple[str, ...] | None,
    rate: float | None,
    out_activation: str,
    output: Output | None = None,
    classes: tuple[str, ...] | None = None,
    scaling: tuple[FloatArray | None, FloatArray | None] = (None, None),
) -> BatchModel:
    """A fitted scikit-learn MLP's layers as A: a regressor's (``output`` None) or a
    classifier's, whose output layer gives logits (``out_activation`` identity)."""
    coefs = tuple(np.array(c, dtype=np.float64) for c in model.coefs_)
    return BatchModel(
        kind="mlp",
        origin=origin,
        feature_names=names,
        n_features=coefs[0].shape[0],
        coefs=coefs,
        intercepts=tuple(np.array(b, dtype=np.float64) for b in model.intercepts_),
        activations=(model.activation,) * (len(coefs) - 1) + (out_activation,),
        input_mean=scaling[0],
        input_scale=scaling[1],
        learning_rate=rate,
        output=output,
        classes=classes,
    )


def from_own_classifier(
    obj: base.Classifier, space: ClassSpace | None, where: str
) -> BatchModel | None:
    """The project's ``logistic``, ``softmax`` or ``mlp_classifier`` as A (None: another).

    ``space`` is the class space of the run that learned it (a state dir): it names a binary
    model's ``False``/``True``. Without it a binary A's classes are the stream's negative and
    positive, whatever they are called.
    """
    from streamlearn.models.logistic import LogisticRegression
    from streamlearn.models.mlp_classifier import MLPClassifier
    from streamlearn.models.softmax import SoftmaxRegression

    if isinstance(obj, LogisticRegression):
        names = tuple(str(name) for name in obj.weights)
        coef = np.array([obj.weights[n] for n in obj.weights], dtype=np.float64)
        binary = _binary_names(space)
        intercept = np.array([obj.intercept])
        origin = "streamlearn logistic"
        return BatchModel.linear(
            origin, names, coef.reshape(-1, 1), intercept, obj.lr, "sigmoid", binary
        )
    if isinstance(obj, SoftmaxRegression):
        if not obj.classes:
            raise TransferError(f"{where}: the softmax model has learned no class yet")
        classes = obj.classes
        names = _union(obj.weights[c] for c in classes)
        coef = np.array(
            [[obj.weights[c].get(n, 0.0) for c in classes] for n in names], dtype=np.float64
        ).reshape(len(names), len(classes))
        intercepts = np.array([obj.intercepts[c] for c in classes], dtype=np.float64)
        texts = class_texts(classes, where)
        origin = "streamlearn softmax"
        return BatchModel.linear(origin, names, coef, intercepts, obj.lr, "softmax", texts)
    if isinstance(obj, MLPClassifier):
        return _own_mlp(obj, space, where)
    return None


def _binary_names(space: ClassSpace | None) -> tuple[str, ...] | None:
    """A binary model's classes as the run that learned it named them: (negative, positive)."""
    if space is None or not space.binary or space.positive is None:
        return None
    return (space.label(0), space.label(1))


def _union(dicts: Iterable[dict[Hashable, float]]) -> tuple[str, ...]:
    """The keys of several dicts, each once, in order of first appearance, as text."""
    seen: dict[str, None] = {}
    for weights in dicts:
        for name in weights:
            seen.setdefault(str(name), None)
    return tuple(seen)


def _own_mlp(obj: Any, space: ClassSpace | None, where: str) -> BatchModel:
    """The project's ``MLPClassifier`` (learned) as A."""
    if obj.features_ is None or obj.output_ is None:
        raise TransferError(f"{where}: the mlp_classifier has learned nothing yet")
    n_hidden = len(obj.hidden)
    hidden = (obj.activation,) * n_hidden if isinstance(obj.activation, str) else obj.activation
    sigmoid = obj.output_ == "sigmoid"
    return BatchModel(
        kind="mlp",
        origin="streamlearn mlp_classifier",
        feature_names=tuple(str(f) for f in obj.features_),
        n_features=len(obj.features_),
        coefs=tuple(c.copy() for c in obj.coefs_),
        intercepts=tuple(b.copy() for b in obj.intercepts_),
        activations=(*hidden, "identity"),
        input_mean=None if obj.input_mean is None else obj.input_mean.copy(),
        input_scale=None if obj.input_scale is None else obj.input_scale.copy(),
        learning_rate=obj.lr,
        output="sigmoid" if sigmoid else "softmax",
        classes=_binary_names(space) if sigmoid else class_texts(obj.classes_, where),
    )


def from_river_classifier(obj: base.Estimator, space: ClassSpace | None, where: str) -> BatchModel:
    """A River classifier (or pipeline ending in one) as A, used as a whole.

    A binary one (River's ``_multiclass`` is False) learns ``False``/``True``: its classes
    are the stream's negative and positive (named by ``space`` when it comes from a state
    dir). Another's classes are those it has learned (:func:`river_classes`).
    """
    last = final_estimator(obj)
    origin = f"River {type(obj).__name__}"
    classes: tuple[str, ...] | None
    model_labels: tuple[ClfTarget, ...] | None
    if not last._multiclass:
        classes = _binary_names(space)
        model_labels = None if classes is None else (False, True)
    else:
        labels = river_classes(last)
        if not labels and space is not None and not space.binary:
            labels = list(space.labels)
        if not labels:
            raise TransferError(
                f"{where}: the River {type(last).__name__} has learned no class yet (or keeps "
                "them where streamlearn does not look): train it before using it as model A"
            )
        classes, model_labels = class_texts(labels, where), tuple(labels)
    return BatchModel(
        "river", origin, None, None, river_model=obj, classes=classes, model_labels=model_labels
    )


def river_classes(model: Any) -> list[ClfTarget]:
    """The classes a River classifier has learned, in a fixed order ([] when it does not say).

    River keeps them in different places: ``classes`` (trees, ``KNNClassifier``; the
    project's ``softmax``), ``class_counts`` (``GaussianNB``), ``classifiers``
    (``OneVsRestClassifier``), ``weights`` (``SoftmaxRegression``), or in the members of an
    ensemble (``ARFClassifier``, bagging). Reading them probes a third-party object's
    learned attributes, as scikit-learn's ``check_is_fitted`` does: not a seam of ours. A set
    is sorted (by text) so the order is the same on every run.
    """
    from river import linear_model, multiclass, naive_bayes

    from streamlearn.models.mlp_classifier import MLPClassifier

    found: Iterable[ClfTarget]
    if isinstance(model, MLPClassifier):
        found = model.classes_
    elif isinstance(model, naive_bayes.GaussianNB):
        found = model.class_counts
    elif isinstance(model, multiclass.OneVsRestClassifier):
        found = model.classifiers
    elif isinstance(model, linear_model.SoftmaxRegression):
        found = model.weights
    elif isinstance(model, base.Ensemble):
        found = {label for member in model for label in river_classes(member)}
    else:
        found = getattr(model, "classes", None) or ()
    if isinstance(found, list | tuple):
        return list(found)
    return sorted(found, key=str)


def as_classifier(a: BatchModel, classes: Sequence[str] | None, positive: str | None) -> BatchModel:
    """A read as a classifier: a Keras file's output unit(s) named by ``--classes``.

    A Keras A has no class names: a sigmoid output is the stream's positive class (``classes``,
    if given, are its two classes; ``positive`` or the first of a known pair says which one
    the unit is), a softmax output's units are ``classes`` in order (default ``0``, ``1``
    ...). A regression-shaped A with one sigmoid output unit (a Keras file compiled with
    another loss) is taken as a binary classifier too. Other A come back unchanged.
    """
    if a.kind == "river" and not a.is_classifier:
        raise TransferError(f"{a.origin} is a regressor: model A of a classifier must classify")
    if a.kind == "river" or a.classes is not None:
        return a
    if a.output is None:
        last = a.activations[-1] if a.activations else None
        if last not in ("sigmoid", "logistic") or a.coefs[-1].shape[1] != 1:
            raise TransferError(
                f"{a.origin} is a regressor (its output is {last}): model A of a classifier "
                "must end in a sigmoid or softmax"
            )
        a = replace(a, activations=(*a.activations[:-1], "identity"), output="sigmoid")
    width = a.coefs[-1].shape[1]
    if a.output == "sigmoid":
        if classes is None:
            return a
        return replace(a, classes=_sigmoid_classes(a, classes, positive))
    names = tuple(classes) if classes is not None else tuple(str(i) for i in range(width))
    if len(names) != width:
        raise TransferError(
            f"{a.origin} has {width} output units, one per class, but --classes names "
            f"{len(names)}: {', '.join(names)}"
        )
    return replace(a, classes=class_texts(names, a.origin))


def _sigmoid_classes(
    a: BatchModel, classes: Sequence[str], positive: str | None
) -> tuple[str, ...]:
    """(negative, positive) of a sigmoid output unit from ``--classes`` and its positive."""
    if len(classes) != 2:
        raise TransferError(
            f"{a.origin} has one sigmoid output unit (two classes), but --classes names "
            f"{len(classes)}: {', '.join(classes)}"
        )
    first, second = (c.strip() for c in classes)
    if positive is None:
        one, other = pair_member(first), pair_member(second)
        if one is None or other is None or one[0] != other[0] or one[1] == other[1]:
            raise TransferError(
                f"{a.origin} has one sigmoid output unit: say which of --classes {first},"
                f"{second} it stands for with --positive-class"
            )
        positive = first if one[1] == 1 else second
    positive = positive.strip()
    if positive not in (first, second):
        raise TransferError(f"--positive-class {positive!r} is not one of --classes")
    return (second, first) if positive == first else (first, second)
