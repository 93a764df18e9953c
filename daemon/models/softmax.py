"""Online softmax regression: the seed's update for each class (model ``softmax``).

``p = softmax(W x + b)``, then for every class ``c``: ``W_c <- W_c - alpha * (p_c - [y == c]) * x``
and ``b_c <- b_c - alpha * (p_c - [y == c])``, on raw features. With two classes this is the
gradient step of the multinomial log loss, as ``logistic`` is that of the binary one.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator
from typing import Any

from river import base
from river.base.typing import ClfTarget

__all__ = ["SoftmaxRegression", "softmax"]


def softmax(margins: list[float]) -> list[float]:
    """``exp(m_c) / sum exp(m)``, each exponent taken of ``m_c - max(m)`` (<= 0: no overflow).

    The sum runs in class order; the compiled kernel sums in the same order, to the same bits.
    Any margin not finite gives NaN for every class.

    >>> softmax([0.0, 0.0])
    [0.5, 0.5]
    >>> softmax([1000.0, 0.0])
    [1.0, 0.0]
    >>> softmax([float("inf"), 0.0])
    [nan, nan]
    """
    for m in margins:
        if m - m != 0.0:
            return [math.nan] * len(margins)
    top = max(margins)
    exps = [math.exp(m - top) for m in margins]
    total = 0.0
    for e in exps:
        total += e
    return [e / total for e in exps]


class SoftmaxRegression(base.Classifier):
    """Multiclass logistic regression learned one record at a time, the seed's update per class.

    A class is added when it is first learned, with zero weights and intercept; the model
    predicts over the classes learned so far (``{}`` before the first). Labels are River's
    (a str, int or bool; the daemon gives the label text).

    Parameters
    ----------
    lr
        The learning rate ``alpha`` of every weight and intercept.

    Attributes
    ----------
    classes
        The classes in the order they were first learned (the order of every sum).
    weights
        ``{class: {feature: weight}}``.
    intercepts
        ``{class: intercept}``.

    Examples
    --------
    >>> model = SoftmaxRegression(lr=0.5)
    >>> model.predict_proba_one({"x": 1.0})
    {}
    >>> model.learn_one({"x": 1.0}, "a")   # one class: p_a = 1, no step
    >>> model.learn_one({"x": -1.0}, "b")  # b starts at 0: p = (0.5, 0.5)
    >>> model.classes, model.weights, model.intercepts
    (['a', 'b'], {'a': {'x': 0.25}, 'b': {'x': -0.25}}, {'a': -0.25, 'b': 0.25})
    >>> model.predict_one({"x": 2.0})
    'a'

    ``predict_learn_one`` answers the probabilities before the step, then learns:

    >>> proba = model.predict_learn_one({"x": 0.0}, "c")
    >>> {c: round(p, 6) for c, p in proba.items()}
    {'a': 0.377541, 'b': 0.622459}
    >>> model.classes
    ['a', 'b', 'c']
    """

    def __init__(self, lr: float = 0.01) -> None:
        if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        self.lr = float(lr)
        self.classes: list[ClfTarget] = []
        self.weights: dict[ClfTarget, dict[Hashable, float]] = {}
        self.intercepts: dict[ClfTarget, float] = {}

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {"lr": 0.01}

    @property
    def _multiclass(self) -> bool:
        return True

    def _margins(self, x: dict[Hashable, Any]) -> list[float]:
        # Per class: the intercept first, then the features in x's order (as logistic, sgd).
        margins = []
        for c in self.classes:
            weights = self.weights[c]
            margin = self.intercepts[c]
            for name, value in x.items():
                weight = weights.get(name)
                if weight is not None:
                    margin += weight * value
            margins.append(margin)
        return margins

    def _step(
        self,
        x: dict[Hashable, Any],
        y: ClfTarget,
        margins: list[float],
        proba: list[float],
        w: float,
    ) -> None:
        """The update for label ``y``, given the margins and probabilities of the classes
        before ``y`` was added (if it is new)."""
        if y not in self.weights:
            self.classes.append(y)
            self.weights[y] = {}
            self.intercepts[y] = 0.0
            proba = softmax([*margins, 0.0])  # a new class has zero weights: its margin is 0
        if proba[0] - proba[0] != 0.0:
            return  # a margin is not finite: no step (the prediction said NaN)
        rate = self.lr * w
        for c, p in zip(self.classes, proba, strict=True):
            step = rate * (p - 1.0) if c == y else rate * p
            weights = self.weights[c]
            for name, value in x.items():
                weights[name] = weights.get(name, 0.0) - step * value
            self.intercepts[c] -= step

    def predict_proba_one(self, x: dict[Hashable, Any], **kwargs: Any) -> dict[ClfTarget, float]:
        if not self.classes:
            return {}
        return dict(zip(self.classes, softmax(self._margins(x)), strict=True))

    def predict_learn_one(self, x: dict[Hashable, Any], y: ClfTarget) -> dict[ClfTarget, float]:
        """``predict_proba_one(x)`` then ``learn_one(x, y)``, the margins computed once.

        Returns the probabilities before the step (over the classes known before ``y``); NaN
        for every class, and no step, when a margin is not finite.
        """
        margins = self._margins(x)
        proba = softmax(margins) if margins else []
        answer = dict(zip(self.classes, proba, strict=True))
        self._step(x, y, margins, proba, 1.0)
        return answer

    def learn_one(self, x: dict[Hashable, Any], y: ClfTarget, w: float = 1.0) -> None:
        """One step of the update; a sample weight ``w`` scales it."""
        margins = self._margins(x)
        # For a new class the step needs the probabilities with it: _step computes those.
        self._step(x, y, margins, softmax(margins) if y in self.weights else [], w)
