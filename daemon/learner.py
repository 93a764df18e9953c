"""The prequential step (predict, score, then learn) and the metrics it keeps.

The order is River's ``evaluate.progressive_val_score``: a record's prediction is
made before the model sees its label, so the metrics are honest estimates of
how the model does on data it has not learned from. Metrics live in River's own
objects, so the daemon's MAE equals ``progressive_val_score``'s to the last digit.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from river import metrics

METRICS = ("mae", "rmse", "r2")


def _new_metrics() -> dict[str, Any]:
    return {"mae": metrics.MAE(), "rmse": metrics.RMSE(), "r2": metrics.R2()}


def rolling_scores(ys: Sequence[float], yhats: Sequence[float]) -> dict[str, float | None]:
    """MAE, RMSE and R2 of a window of (y, yhat) pairs, as River defines them.

    Computed when read (scrapes, checkpoints, ``inspect``), not per record: the
    loop only appends to two bounded deques. Summing afresh also avoids the
    drift that add-then-revert running sums accumulate over months.

    >>> rolling_scores([1.0, 2.0, 3.0], [1.5, 2.0, 2.0])
    {'mae': 0.5, 'rmse': 0.6454972243679028, 'r2': 0.375}
    """
    n = len(ys)
    if n == 0:
        return {"mae": None, "rmse": None, "r2": None}
    y = np.fromiter(ys, dtype=float, count=n)
    error = y - np.fromiter(yhats, dtype=float, count=n)
    squared = float(np.dot(error, error))
    r2: float | None = None
    if n > 1:
        total = float(np.sum((y - y.mean()) ** 2))
        r2 = 1.0 - squared / total if total > 0 else 0.0
    return {"mae": float(np.abs(error).mean()), "rmse": math.sqrt(squared / n), "r2": r2}


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
        self.baseline_metrics = _new_metrics() if baseline is not None else None
        self.recent_y: deque[float] = deque(maxlen=rolling_window)
        self.recent_yhat: deque[float] = deque(maxlen=rolling_window)
        self._recent_abs_sum = 0.0  # running sum of |y - yhat| over the window, for the curve
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
        fused = self._fused
        # The project's own estimators predict and learn in one pass (same arithmetic
        # as predict_one then learn_one); River's learn_one would predict again.
        yhat = fused(x, y) if fused is not None else model.predict_one(x)
        if yhat - yhat != 0.0:  # NaN or inf: keep it out of the metrics and the model
            return float(yhat)
        for metric in self.metrics.values():
            metric.update(y, yhat)
        if self.baseline is not None:
            self._score_baseline(x, y)
        if fused is None:
            model.learn_one(x, y)
        self._remember(y, yhat)
        return float(yhat)

    def step_with_prediction(self, x: dict[str, float], y: float, yhat: float) -> None:
        """Score a prediction made earlier (a late label), then learn the record now."""
        for metric in self.metrics.values():
            metric.update(y, yhat)
        if self.baseline is not None:
            self._score_baseline(x, y)
        self.model.learn_one(x, y)
        self._remember(y, yhat)

    def _remember(self, y: float, yhat: float) -> None:
        recent_y = self.recent_y
        if len(recent_y) == self.rolling_window:
            self._recent_abs_sum -= abs(recent_y[0] - self.recent_yhat[0])
        recent_y.append(y)
        self.recent_yhat.append(yhat)
        self._recent_abs_sum += abs(y - yhat)
        self.records_learned += 1
        n = self.records_learned
        if n % self.curve.stride == 0:
            self._add_curve_point(n)

    def _add_curve_point(self, n: int) -> None:
        window = len(self.recent_y)
        if n % self.rolling_window == 0:  # re-sum now and then: no drift over months
            self._recent_abs_sum = sum(
                abs(a - b) for a, b in zip(self.recent_y, self.recent_yhat, strict=True)
            )
        self.curve.add(n, self._recent_abs_sum / window, self.metrics["mae"].get())

    def _score_baseline(self, x: dict[str, float], y: float) -> None:
        assert self.baseline_metrics is not None
        base_yhat = self.baseline.predict_one(x)
        if base_yhat - base_yhat == 0.0:
            for metric in self.baseline_metrics.values():
                metric.update(y, base_yhat)
            self.baseline_scored += 1

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
        return rolling_scores(self.recent_y, self.recent_yhat)

    def baseline_summary(self) -> dict[str, float | None] | None:
        """Cumulative metrics of the frozen baseline, when there is one."""
        if self.baseline_metrics is None:
            return None
        return _values(self.baseline_metrics, self.baseline_scored > 0)

    @property
    def model(self) -> Any:
        return self._model

    @model.setter
    def model(self, model: Any) -> None:
        self._model = model
        self._fused = getattr(model, "predict_learn_one", None)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_fused"]  # a bound method: rebuilt from the model on load
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._fused = getattr(self._model, "predict_learn_one", None)

    def reset_model(self, model: Any) -> None:
        """Swap the model (drift actions, divergence restore); metrics carry on."""
        self.model = model
