"""Online logistic regression with the textbook per-record update, exactly (model ``logistic``).

``p = sigmoid(theta . x + theta_0)``, then ``theta_j <- theta_j - alpha * (p - y) * x_j`` and
``theta_0 <- theta_0 - alpha * (p - y)`` with ``y`` in {0, 1}, on raw features: the seed's
update (docs/design.md, "Terms: the seed") with a sigmoid on the prediction. River's
``LogisticRegression(optimizer=SGD(alpha), intercept_lr=alpha)`` takes the same steps except
where it approximates the log-loss gradient (``|margin| > 18``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

from river import base
from river.base.typing import ClfTarget

from streamlearn.models.linear import LinearBase

__all__ = ["LogisticRegression", "sigmoid"]


def sigmoid(margin: float) -> float:
    """``1 / (1 + exp(-margin))``, with no overflow for any margin.

    ``exp`` is only ever taken of a number <= 0: for a negative margin the same value is
    written ``e / (1 + e)`` with ``e = exp(margin)``. ``+-inf`` give 1 and 0, NaN gives NaN.
    The compiled kernel computes the same two branches, so the two agree to the last bit.

    >>> sigmoid(0.0), sigmoid(800.0), sigmoid(-800.0)
    (0.5, 1.0, 0.0)
    >>> sigmoid(-40.0)   # still a relative precision of one rounding
    4.248354255291589e-18
    """
    if margin >= 0.0:
        return 1.0 / (1.0 + math.exp(-margin))
    e = math.exp(margin)  # NaN lands here too, and stays NaN
    return e / (1.0 + e)


class LogisticRegression(LinearBase, base.Classifier):
    """Binary logistic regression learned one record at a time with the seed's update above.

    Labels are River's binary ones: ``learn_one(x, y)`` takes ``y`` as a bool (``True`` is
    the positive class, ``y = 1``), and ``predict_proba_one`` answers ``{False: 1 - p, True: p}``.
    Its parameters and its learned ``weights`` and ``intercept`` are those of ``LinearBase``.

    Examples
    --------
    >>> model = LogisticRegression(lr=0.5)
    >>> model.predict_proba_one({"x": 2.0})
    {False: 0.5, True: 0.5}
    >>> model.learn_one({"x": 2.0}, True)   # p - y = -0.5: w += 0.5 * 0.5 * 2, b += 0.25
    >>> model.weights, model.intercept
    ({'x': 0.5}, 0.25)
    >>> model.predict_one({"x": 2.0})
    True
    >>> round(model.predict_proba_one({"x": 2.0})[True], 6)   # sigmoid(1.25)
    0.777300

    ``predict_learn_one`` predicts (the probability of ``True``) and learns in one pass:

    >>> round(model.predict_learn_one({"x": -1.0}, False), 6)   # sigmoid(-0.25)
    0.437823
    >>> round(model.weights["x"], 6), round(model.intercept, 6)
    (0.718912, 0.031088)
    """

    def predict_proba_one(self, x: dict[Hashable, Any], **kwargs: Any) -> dict[ClfTarget, float]:
        """``{False: 1 - p, True: p}``; NaN for both when the margin is not finite."""
        margin = self._margin(x)
        p = sigmoid(margin) if margin - margin == 0.0 else math.nan
        return {False: 1.0 - p, True: p}

    def predict_learn_one(self, x: dict[Hashable, Any], y: ClfTarget) -> float:
        """``predict_proba_one(x)[True]`` then ``learn_one(x, y)`` in one pass; returns ``p``.

        The same arithmetic in the same order as the two calls (the same weights to the last
        bit), with one dictionary walk fewer. A margin that is not finite (weights gone to
        infinity, or a feature so large that the sum overflows) gives ``p = NaN`` and no
        step, as ``sgd`` returns a non-finite prediction without learning from it: the
        divergence guard sees it.
        """
        margin = self._margin(x)
        if margin - margin != 0.0:
            return math.nan
        p = sigmoid(margin)
        self._step(x, self.lr * (p - (1.0 if y else 0.0)))
        return p

    def learn_one(self, x: dict[Hashable, Any], y: ClfTarget, w: float = 1.0) -> None:
        """One step of the update; a sample weight ``w`` scales it (``alpha * w * (p - y)``)."""
        margin = self._margin(x)
        if margin - margin != 0.0:
            return
        self._step(x, self.lr * w * (sigmoid(margin) - (1.0 if y else 0.0)))
