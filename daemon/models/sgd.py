"""Online linear regression with the textbook per-record SGD update, exactly (model ``sgd``).

``yhat = theta . x + theta_0``, then ``theta_j <- theta_j - alpha * (yhat - y) * x_j``
and ``theta_0 <- theta_0 - alpha * (yhat - y)``, on raw features: the update of the study
note this project grew from (docs/design.md, "Terms: the seed"). River's
``LinearRegression(optimizer=SGD(alpha))`` differentiates the squared loss to
``2 (yhat - y)`` and so takes steps twice as long; this estimator does not.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from river import base

from streamlearn.models.linear import LinearBase


class SGDRegressor(LinearBase, base.Regressor):
    """Linear regression learned one record at a time with the textbook SGD update above.

    The parameters (``lr``, ``initial_weights``, ``initial_intercept``) and the learned
    ``weights`` and ``intercept`` are ``LinearBase``'s, shared with ``logistic``.

    Examples
    --------
    >>> model = SGDRegressor(lr=0.1)
    >>> model.predict_one({"x": 2.0})
    0.0
    >>> model.learn_one({"x": 2.0}, 1.0)   # error -1: w += 0.1 * 1 * 2, b += 0.1
    >>> model.weights, model.intercept
    ({'x': 0.2}, 0.1)
    >>> model.predict_one({"x": 2.0})
    0.5

    A sample weight scales the step (pseudo-labels learn at half weight by default):

    >>> model.learn_one({"x": 2.0}, 1.5, w=0.5)
    >>> round(model.weights["x"], 12), round(model.intercept, 12)
    (0.3, 0.15)
    """

    # The margin itself, not a call of it: one call per prediction fewer.
    predict_one = LinearBase._margin

    def predict_learn_one(self, x: dict[Hashable, Any], y: float) -> float:
        """``predict_one`` then ``learn_one`` in one pass; returns the prediction.

        The same arithmetic in the same order as the two calls (so the same weights
        to the last bit), with one dictionary walk fewer. A non-finite prediction is
        returned without learning from it.
        """
        # predict_one's loop and learn_one's update written out, not called: this method
        # exists to save calls per record (``Learner.step`` makes one call of it).
        weights = self.weights
        yhat = self.intercept
        for name, value in x.items():
            weight = weights.get(name)
            if weight is not None:
                yhat += weight * value
        if yhat - yhat != 0.0:
            return yhat
        step = self.lr * (yhat - y)
        for name, value in x.items():
            weights[name] = weights.get(name, 0.0) - step * value
        self.intercept -= step
        return yhat

    def learn_one(self, x: dict[Hashable, Any], y: float, w: float = 1.0) -> None:
        self._step(x, self.lr * w * (self._margin(x) - y))
