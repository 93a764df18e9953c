"""Transfer learning for classifiers: the online classifier B from a batch-trained classifier A.

B predicts exactly A's probabilities before it learns: a linear A with a sigmoid output
becomes ``logistic`` (the seed's update, :mod:`streamlearn.models.logistic`), a softmax one
``softmax``, a one-vs-rest one (scikit-learn's multiclass ``SGDClassifier``) River's
``OneVsRestClassifier`` of ``logistic`` models (its probabilities are normalised the same way),
a layered A ``mlp_classifier`` holding A's layers in the three modes of
:mod:`streamlearn.models.transfer` (``extract``, ``finetune``, ``partial``), and a River A a
copy of itself. B learns the stream's labels: a binary B ``False``/``True`` (``flip`` when the
stream's positive class is A's first), a multiclass B the stream's label text (``labels``: A's
classes as the stream writes them, in A's output order).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Hashable, Sequence

from river import base
from river.base.typing import ClfTarget

from streamlearn.models.batch import BatchModel, FloatArray, TransferError
from streamlearn.models.transfer import (
    MODES,
    fold_scaling,
    layer_args,
    stream_order,
    suited_lr,
    trainable_of,
)
from streamlearn.models.wrappers import FrozenClassifier, RenamedClassifier

__all__ = ["frozen_classifier", "warm_classifier"]


def warm_classifier(
    a: BatchModel,
    mode: str = "finetune",
    trainable_layers: int = 1,
    feature_map: dict[str, str] | None = None,
    stream_features: list[str] | None = None,
    lr: float | None = None,
    labels: Sequence[str] | None = None,
    flip: bool = False,
) -> base.Classifier:
    """Build the online classifier B from a classifier A; before learning, B answers A's
    probabilities.

    Parameters
    ----------
    a
        Model A, a classifier (``BatchModel.is_classifier``).
    mode, trainable_layers, feature_map, stream_features, lr
        As for :func:`streamlearn.models.transfer.warm_start` (a layered A only has the
        three modes; a linear or River A is fine-tuned).
    labels
        A's classes as the stream's labels, in A's output order (default: ``a.classes``). A
        multiclass B learns and answers these.
    flip
        A binary A whose first class is the stream's positive one: B's ``True`` is A's
        first class.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from sklearn.linear_model import LogisticRegression as SkLogistic
    >>> from streamlearn.models.transfer import as_batch_model
    >>> frame = pd.DataFrame({"x": [-2.0, -1.0, 1.0, 2.0]})
    >>> sk = SkLogistic().fit(frame, ["no", "no", "yes", "yes"])
    >>> a = as_batch_model(sk)
    >>> a.output, a.classes
    ('sigmoid', ('no', 'yes'))
    >>> b = warm_classifier(a, stream_features=["x"])
    >>> type(b).__name__, b.lr   # A kept no learning rate: B takes the fallback
    ('LogisticRegression', 0.001)
    >>> p = b.predict_proba_one({"x": 0.5})[True]
    >>> bool(abs(p - sk.predict_proba(pd.DataFrame({"x": [0.5]}))[0, 1]) < 1e-12)
    True
    """
    if not a.is_classifier:
        raise TransferError(f"{a.origin} is a regressor: it cannot start a classifier")
    lr = suited_lr(a) if lr is None else lr
    if mode not in MODES:
        raise TransferError(f"unknown transfer mode {mode!r}; use one of {', '.join(MODES)}")
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise TransferError(f"lr must be a positive finite number, got {lr!r}")
    names = tuple(labels) if labels is not None else a.classes
    if a.kind == "river":
        return _river_b(a, mode, feature_map, names, flip)
    width = a.coefs[-1].shape[1]
    if a.output != "sigmoid" and (names is None or len(names) != width):
        raise TransferError(f"{a.origin} has {width} outputs: name its {width} classes")
    order = stream_order(a, feature_map, stream_features)
    if a.kind == "linear":
        if mode != "finetune":
            raise TransferError(
                f"mode {mode} makes no sense for a linear A ({a.origin}): it has no hidden "
                "layer, so there is no feature extractor to keep and no layer to freeze; use "
                "finetune"
            )
        return _linear_b(a, order, lr, names, flip)
    return _mlp_b(a, trainable_of(a, mode, trainable_layers), order, lr, names, flip)


def frozen_classifier(
    a: BatchModel,
    feature_map: dict[str, str] | None = None,
    stream_features: list[str] | None = None,
    labels: Sequence[str] | None = None,
    flip: bool = False,
) -> FrozenClassifier:
    """A classifier that answers exactly A's probabilities and never learns: the baseline.

    Examples
    --------
    >>> import numpy as np
    >>> a = BatchModel("linear", "example", ("x",), 1, (np.array([[2.0]]),), (np.array([0.0]),),
    ...                ("identity",), output="sigmoid", classes=("0", "1"))
    >>> baseline = frozen_classifier(a)
    >>> baseline.learn_one({"x": 1.0}, False)
    >>> round(baseline.predict_proba_one({"x": 1.0})[True], 6)   # sigmoid(2)
    0.880797
    """
    return FrozenClassifier(
        warm_classifier(a, "finetune", 1, feature_map, stream_features, labels=labels, flip=flip)
    )


def _river_b(
    a: BatchModel,
    mode: str,
    feature_map: dict[str, str] | None,
    names: tuple[str, ...] | None,
    flip: bool,
) -> base.Classifier:
    """B from a River A: a copy of A that keeps learning, fed the stream's names."""
    if mode != "finetune":
        raise TransferError(
            f"mode {mode} needs A's layers, but {a.origin} is used as a whole; use finetune "
            "(A keeps learning)"
        )
    model: base.Classifier = copy.deepcopy(a.river_model)
    relabel: dict[ClfTarget, ClfTarget] = {}
    if flip:  # the stream's positive class is the one A learned as False
        relabel = {True: False, False: True}
    elif a.model_labels is not None and names is not None and model._multiclass:
        relabel = {
            stream: own for stream, own in zip(names, a.model_labels, strict=True) if stream != own
        }
    if feature_map or relabel:
        return RenamedClassifier(model, feature_map, relabel)
    return model


def _named(order: Sequence[str], weights: FloatArray) -> dict[Hashable, float]:
    return dict(zip(order, weights.tolist(), strict=True))


def _linear_b(
    a: BatchModel, order: list[str], lr: float, names: tuple[str, ...] | None, flip: bool
) -> base.Classifier:
    """B from a linear A: its weights on raw features, its standardisation folded in."""
    from streamlearn.models.logistic import LogisticRegression

    if a.output == "sigmoid":
        weights, intercept = fold_scaling(a)
        if flip:  # sigmoid(-z) = 1 - sigmoid(z): the other class's probability
            weights, intercept = -weights, -intercept
        return LogisticRegression(
            lr=lr, initial_weights=_named(order, weights), initial_intercept=intercept
        )
    assert names is not None  # checked by warm_classifier
    columns = [fold_scaling(a, column) for column in range(len(names))]
    if a.output == "ovr":
        from river import multiclass

        ovr = multiclass.OneVsRestClassifier(LogisticRegression(lr=lr))
        ovr.classifiers = {
            label: LogisticRegression(
                lr=lr, initial_weights=_named(order, weights), initial_intercept=intercept
            )
            for label, (weights, intercept) in zip(names, columns, strict=True)
        }
        return ovr
    from streamlearn.models.softmax import SoftmaxRegression

    softmax = SoftmaxRegression(lr=lr)
    # The softmax model takes no starting weights: they go where it keeps them (its
    # documented layout), so that its clone() is the cold model a reset asks for.
    softmax.classes = list(names)
    softmax.weights = {
        label: _named(order, w) for label, (w, _) in zip(names, columns, strict=True)
    }
    softmax.intercepts = {label: b for label, (_, b) in zip(names, columns, strict=True)}
    return softmax


def _mlp_b(
    a: BatchModel,
    trainable: int | None,
    order: list[str],
    lr: float,
    names: tuple[str, ...] | None,
    flip: bool,
) -> base.Classifier:
    """B from a layered A: ``mlp_classifier`` with A's layers, the last ``trainable`` learning."""
    from streamlearn.models.mlp_classifier import MLPClassifier

    coefs = [c.copy() for c in a.coefs]
    intercepts = [b.copy() for b in a.intercepts]
    sigmoid = a.output == "sigmoid"
    if sigmoid and flip:
        coefs[-1], intercepts[-1] = -coefs[-1], -intercepts[-1]
    return MLPClassifier(
        **layer_args(a, trainable, order, lr),
        initial_coefs=coefs,
        initial_intercepts=intercepts,
        output="sigmoid" if sigmoid else "softmax",
        classes=None if sigmoid else list(names or ()),
    )
