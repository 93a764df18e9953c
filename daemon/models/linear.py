"""The weights-by-name linear state that ``sgd`` and ``logistic`` share, and its two loops.

Both models keep ``theta`` as a dict by feature name plus an intercept, take one learning rate
for both, sum the margin intercept first then in ``x``'s order (the compiled kernels sum in
this order), and step ``theta_j <- theta_j - step * x_j``, ``theta_0 <- theta_0 - step``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Mapping
from typing import Any

__all__ = ["LinearBase"]


class LinearBase:
    """A learning rate, weights by feature name and an intercept, checked, with their loops.

    Parameters
    ----------
    lr
        The learning rate ``alpha``; the intercept uses the same rate.
    initial_weights
        Starting weights by feature name (a warm start); features seen later start at 0.
    initial_intercept
        Starting intercept ``theta_0``.

    Attributes
    ----------
    weights
        The learned weights by feature name.
    intercept
        The learned intercept.

    Examples
    --------
    >>> linear = LinearBase(lr=0.5, initial_weights={"x": 1.0}, initial_intercept=0.5)
    >>> linear._margin({"x": 2.0, "new": 3.0})   # 0.5 + 1 * 2; "new" has no weight yet
    2.5
    >>> linear._step({"x": 2.0, "new": 3.0}, 0.5)
    >>> linear.weights, linear.intercept
    ({'x': 0.0, 'new': -1.5}, 0.0)
    >>> LinearBase(lr=0.0)
    Traceback (most recent call last):
    ...
    ValueError: lr must be a positive finite number, got 0.0
    """

    def __init__(
        self,
        lr: float = 0.01,
        initial_weights: Mapping[Hashable, float] | None = None,
        initial_intercept: float = 0.0,
    ) -> None:
        if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        initial_weights = dict(initial_weights or {})
        bad = [k for k, v in initial_weights.items() if not math.isfinite(v)]
        if bad or not math.isfinite(initial_intercept):
            raise ValueError(f"initial weights must be finite (bad: {bad or ['intercept']})")
        self.lr = float(lr)
        # The constructor arguments stay as given so that River's clone() rebuilds the same
        # starting point; the learned state lives apart from them.
        self.initial_weights = initial_weights
        self.initial_intercept = float(initial_intercept)
        self.weights: dict[Hashable, float] = dict(initial_weights)
        self.intercept = self.initial_intercept

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        yield {"lr": 0.01}

    def _margin(self, x: dict[Hashable, Any]) -> float:
        """``theta_0 + theta . x``; a feature with no weight yet counts 0."""
        # The intercept first, then the features in x's order: the kernels sum in this order.
        weights = self.weights
        margin = self.intercept
        for name, value in x.items():
            weight = weights.get(name)
            if weight is not None:
                margin += weight * value
        return margin

    def _step(self, x: dict[Hashable, Any], step: float) -> None:
        """``theta_j -= step * x_j`` (a new feature starts at 0) and ``theta_0 -= step``."""
        weights = self.weights
        for name, value in x.items():
            weights[name] = weights.get(name, 0.0) - step * value
        self.intercept -= step
