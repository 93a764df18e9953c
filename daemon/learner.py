"""The prequential step (predict, score, then learn) and the metrics it keeps.

The order is River's ``evaluate.progressive_val_score``: a record's prediction is
made before the model sees its label, so the metrics are honest estimates of
how the model does on data it has not learned from. Metrics live in River's own
objects, so the daemon's MAE equals ``progressive_val_score``'s to the last digit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from river import metrics, utils

METRICS = ("mae", "rmse", "r2")


def _new_metrics() -> dict[str, Any]:
    return {"mae": metrics.MAE(), "rmse": metrics.RMSE(), "r2": metrics.R2()}


def _new_rolling(window: int) -> dict[str, Any]:
    return {
        "mae": utils.Rolling(metrics.MAE, window_size=window),
        "rmse": utils.Rolling(metrics.RMSE, window_size=window),
        "r2": utils.Rolling(metrics.R2, window_size=window),
    }


def _values(named: dict[str, Any], updated: bool) -> dict[str, float | None]:
    # Before the first update a metric's value means nothing (River says 0 for R2
    # and MAE alike): report None rather than claim a perfect score.
    out: dict[str, float | None] = {}
    for name, metric in named.items():
        value = float(metric.get()) if updated else math.nan
        out[name] = value if math.isfinite(value) else None
    return out


@dataclass
class Curve:
    """A bounded learning curve: (records learned, rolling MAE, cumulative MAE).

    Every ``stride`` records a point is kept; past ``max_points`` every other
    point is dropped and the stride doubles, so a months-long run keeps a curve
    of constant size with even spacing.

    >>> curve = Curve(max_points=4)
    >>> for n in range(1, 11):
    ...     curve.add(n, 1.0 / n, 1.0)
    >>> curve.stride, [p[0] for p in curve.points]
    (4, [4, 8])
    """

    max_points: int = 4096
    stride: int = 1
    points: list[tuple[int, float, float]] = field(default_factory=list)

    def add(self, n: int, rolling: float, cumulative: float) -> None:
        if n % self.stride:
            return
        self.points.append((n, rolling, cumulative))
        if len(self.points) > self.max_points:
            self.stride *= 2
            self.points = [p for p in self.points if p[0] % self.stride == 0]


class Learner:
    """Holds the model and its prequential metrics.

    Parameters
    ----------
    model
        A River regressor or pipeline.
    rolling_window
        Size of the rolling window of the rolling metrics.
    baseline
        An optional frozen model scored on the same records (champion/challenger).

    Examples
    --------
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> learner = Learner(SGDRegressor(lr=0.1))
    >>> learner.step({"x": 1.0}, 2.0)   # predicts 0 first, then learns
    0.0
    >>> learner.records_learned, learner.summary()["mae"]
    (1, 2.0)
    """

    def __init__(self, model: Any, *, rolling_window: int = 1000, baseline: Any = None) -> None:
        if rolling_window < 1:
            raise ValueError("rolling_window must be at least 1")
        self.model = model
        self.rolling_window = rolling_window
        self.baseline = baseline
        self.metrics = _new_metrics()
        self.rolling = _new_rolling(rolling_window)
        self.baseline_metrics = _new_metrics() if baseline is not None else None
        self.records_learned = 0
        self.pseudo_learned = 0
        self.baseline_scored = 0
        self.curve = Curve()

    def predict(self, x: dict[str, float]) -> float:
        """The model's prediction, without learning."""
        return float(self.model.predict_one(x))

    def step(self, x: dict[str, float], y: float) -> float:
        """Test then train on one labeled record; returns the prediction made before learning.

        A non-finite prediction is returned without scoring or learning: the caller's
        divergence guard decides what to do with a model that produced it.
        """
        model = self.model
        yhat = model.predict_one(x)
        if yhat - yhat != 0.0:  # NaN or inf: do not let it into the metrics
            return float(yhat)
        for metric in self.metrics.values():
            metric.update(y, yhat)
        for metric in self.rolling.values():
            metric.update(y, yhat)
        if self.baseline is not None and self.baseline_metrics is not None:
            base_yhat = self.baseline.predict_one(x)
            if base_yhat - base_yhat == 0.0:
                for metric in self.baseline_metrics.values():
                    metric.update(y, base_yhat)
                self.baseline_scored += 1
        model.learn_one(x, y)
        self.records_learned += 1
        n = self.records_learned
        if n % self.curve.stride == 0:
            self.curve.add(n, self.rolling["mae"].get(), self.metrics["mae"].get())
        return float(yhat)

    def learn_weighted(self, x: dict[str, float], y: float, w: float) -> None:
        """Learn a pseudo-label with weight ``w`` (never scored: metrics are for true labels)."""
        try:
            self.model.learn_one(x, y, w=w)
        except TypeError:
            # Models without sample weights learn the pseudo-label once at full weight
            # only when w rounds to 1; smaller weights are dropped rather than overstated.
            if w < 0.5:
                return
            self.model.learn_one(x, y)
        self.pseudo_learned += 1

    def summary(self) -> dict[str, float | None]:
        """Cumulative prequential metrics."""
        return _values(self.metrics, self.records_learned > 0)

    def rolling_summary(self) -> dict[str, float | None]:
        """Rolling-window prequential metrics."""
        return _values(self.rolling, self.records_learned > 0)

    def baseline_summary(self) -> dict[str, float | None] | None:
        """Cumulative metrics of the frozen baseline, when there is one."""
        if self.baseline_metrics is None:
            return None
        return _values(self.baseline_metrics, self.baseline_scored > 0)

    def reset_model(self, model: Any) -> None:
        """Swap the model (drift actions, divergence restore); metrics carry on."""
        self.model = model
