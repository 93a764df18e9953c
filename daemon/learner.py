"""The prequential step (predict, score, then learn) and the metrics it keeps.

The order is River's ``evaluate.progressive_val_score``: a record's prediction is
made before the model sees its label, so the metrics are honest estimates of
how the model does on data it has not learned from. The metrics are River's MAE,
RMSE and R2 restated in ``streamlearn.metrics`` (same formulas, same state; importing
``river.metrics`` costs over a second), so the daemon's MAE equals
``progressive_val_score``'s to the last digit.

The rolling window is a ring of two ``array('d')`` buffers: plain floats for the
per-record Python path, and a zero-copy numpy view for the compiled fast path
(``streamlearn.fast.block``), which updates the same buffers in place.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Collection, Iterable
from typing import Any

from streamlearn import metrics

METRICS = ("mae", "rmse", "r2")

#: A prediction beyond this is a diverged model (its squared error would overflow a float).
DIVERGED = 1e150


def _new_metrics() -> dict[str, Any]:
    return {"mae": metrics.MAE(), "rmse": metrics.RMSE(), "r2": metrics.R2()}


def rolling_scores(ys: Collection[float], yhats: Collection[float]) -> dict[str, float | None]:
    """MAE, RMSE and R2 of a window of (y, yhat) pairs, as River defines them.

    Computed when read (scrapes, checkpoints, ``inspect``), not per record: the
    loop only writes into the ring. Summing afresh also avoids the drift that
    add-then-revert running sums accumulate over months.

    >>> rolling_scores([1.0, 2.0, 3.0], [1.5, 2.0, 2.0])
    {'mae': 0.5, 'rmse': 0.6454972243679028, 'r2': 0.375}
    """
    n = len(ys)
    if n == 0:
        return {"mae": None, "rmse": None, "r2": None}
    import numpy as np  # here: an empty replay never needs numpy

    y = np.asarray(ys, dtype=float)
    error = y - np.asarray(yhats, dtype=float)
    squared = float(np.dot(error, error))
    r2: float | None = None
    if n > 1:
        total = float(np.sum((y - y.mean()) ** 2))
        r2 = 1.0 - squared / total if total > 0 else 0.0
    return {"mae": float(np.abs(error).mean()), "rmse": math.sqrt(squared / n), "r2": r2}


def abs_error_sum(ys: Iterable[float], yhats: Iterable[float]) -> float:
    """``sum(|y - yhat|)`` added left to right, as the compiled fast path adds it.

    Spelled out rather than ``sum()``: Python 3.12 made ``sum`` of floats compensated,
    and both paths must give the same bits on every Python.

    >>> abs_error_sum([1.0, 2.0], [1.5, 4.0])
    2.5
    """
    total = 0.0
    for y, yhat in zip(ys, yhats, strict=True):
        total += abs(y - yhat)
    return total


def _values(named: dict[str, Any], updated: bool) -> dict[str, float | None]:
    # Before the first update a metric's value means nothing (River says 0 for R2
    # and MAE alike): report None rather than claim a perfect score.
    out: dict[str, float | None] = {}
    for name, metric in named.items():
        value = float(metric.get()) if updated else math.nan
        out[name] = value if math.isfinite(value) else None
    return out


def _zeros(size: int) -> array[float]:
    return array("d", bytes(8 * size))


class Curve:
    """A bounded learning curve: (records learned, rolling MAE, cumulative MAE).

    Every ``stride`` records a point is kept; past ``max_points`` every other
    point is dropped and the stride doubles, so a months-long run keeps a curve
    of constant size with even spacing. The points are kept in three flat
    arrays: a checkpoint pickles them as three byte strings, not 4096 tuples.

    >>> curve = Curve(max_points=4)
    >>> for n in range(1, 11):
    ...     curve.add(n, 1.0 / n, 1.0)
    >>> curve.stride, [p[0] for p in curve.points]
    (4, [4, 8])
    """

    def __init__(self, max_points: int = 4096) -> None:
        self.max_points = max_points
        self.stride = 1
        self._records: array[int] = array("q")
        self._rolling: array[float] = array("d")
        self._cumulative: array[float] = array("d")

    @property
    def points(self) -> list[tuple[int, float, float]]:
        """The kept points, oldest first."""
        return list(zip(self._records, self._rolling, self._cumulative, strict=True))

    def __len__(self) -> int:
        return len(self._records)

    def add(self, n: int, rolling: float, cumulative: float) -> None:
        if n % self.stride:
            return
        self._records.append(n)
        self._rolling.append(rolling)
        self._cumulative.append(cumulative)
        if len(self._records) > self.max_points:
            self.stride *= 2
            keep = [i for i, m in enumerate(self._records) if m % self.stride == 0]
            self._records = array("q", [self._records[i] for i in keep])
            self._rolling = array("d", [self._rolling[i] for i in keep])
            self._cumulative = array("d", [self._cumulative[i] for i in keep])

    def add_many(self, points: list[list[float]]) -> None:
        """``add`` each ``[n, rolling, cumulative]`` in order; ``n`` are multiples of ``stride``.

        The compiled fast path makes such points (up to one past the room left, which
        thins the curve); those that fit are appended at once.
        """
        fit = points[: self.max_points - len(self._records)]
        self._records.extend(int(point[0]) for point in fit)
        self._rolling.extend(point[1] for point in fit)
        self._cumulative.extend(point[2] for point in fit)
        for n, rolling, cumulative in points[len(fit) :]:
            self.add(int(n), rolling, cumulative)

    def __setstate__(self, state: dict[str, Any]) -> None:
        points = state.pop("points", None)  # a curve pickled by an older streamlearn
        self.__dict__.update(state)
        if points is not None:
            self._records = array("q", [p[0] for p in points])
            self._rolling = array("d", [p[1] for p in points])
            self._cumulative = array("d", [p[2] for p in points])


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
        self._metrics: dict[str, Any] | None = None  # built at the first score (``metrics``)
        self.baseline_metrics = _new_metrics() if baseline is not None else None
        # The rolling window: a ring of (y, yhat) pairs. ``_window_next`` is the slot the
        # next pair goes to (the oldest pair's slot once the ring is full).
        self._window_y = _zeros(rolling_window)
        self._window_yhat = _zeros(rolling_window)
        self._window_next = 0
        self._window_len = 0
        self._recent_abs_sum = 0.0  # running sum of |y - yhat| over the window, for the curve
        self.records_learned = 0
        self.pseudo_learned = 0
        self.baseline_scored = 0
        self.curve = Curve()

    def predict(self, x: dict[str, float]) -> float:
        """The model's prediction, without learning; NaN for a diverged model's absurd answer."""
        yhat = float(self.model.predict_one(x))
        return yhat if -DIVERGED < yhat < DIVERGED else math.nan

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
        if not -DIVERGED < yhat < DIVERGED:
            # NaN, inf, or so large that squaring its error overflows: keep it out of
            # the metrics; the caller's divergence guard restores a good model.
            return math.nan
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
        # The compiled fast path (fastpath.learn_rows) does exactly these steps, in this order.
        slot = self._window_next
        ys, yhats = self._window_y, self._window_yhat
        if self._window_len == self.rolling_window:
            self._recent_abs_sum -= abs(ys[slot] - yhats[slot])
        else:
            self._window_len += 1
        ys[slot] = y
        yhats[slot] = yhat
        slot += 1
        self._window_next = 0 if slot == self.rolling_window else slot
        self._recent_abs_sum += abs(y - yhat)
        self.records_learned += 1
        n = self.records_learned
        if n % self.curve.stride == 0:
            self._add_curve_point(n)

    def _add_curve_point(self, n: int) -> None:
        if n % self.rolling_window == 0:  # re-sum now and then: no drift over months
            self._recent_abs_sum = abs_error_sum(self.recent_y, self.recent_yhat)
        self.curve.add(n, self._recent_abs_sum / self._window_len, self.metrics["mae"].get())

    @property
    def recent_y(self) -> list[float]:
        """The targets in the rolling window, oldest first."""
        return self._in_order(self._window_y)

    @property
    def recent_yhat(self) -> list[float]:
        """The predictions in the rolling window, oldest first (paired with ``recent_y``)."""
        return self._in_order(self._window_yhat)

    def _in_order(self, ring: array[float]) -> list[float]:
        if self._window_len < self.rolling_window:
            return ring[: self._window_len].tolist()
        split = self._window_next
        return ring[split:].tolist() + ring[:split].tolist()

    @property
    def window_len(self) -> int:
        """How many records the rolling window holds (up to ``rolling_window``)."""
        return self._window_len

    @property
    def metrics(self) -> dict[str, Any]:
        """The cumulative prequential metrics: River's MAE, RMSE and R2 objects."""
        if self._metrics is None:
            self._metrics = _new_metrics()
        return self._metrics

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
        if self._metrics is None:  # nothing scored yet
            return dict.fromkeys(METRICS)
        return _values(self._metrics, self.records_learned > 0)

    def rolling_summary(self) -> dict[str, float | None]:
        """Rolling-window prequential metrics."""
        return rolling_scores(*self._window_arrays())

    def rolling_mae(self) -> float | None:
        """``rolling_summary()["mae"]``, the same bits, without RMSE and R2.

        The divergence guard reads it after every batch.
        """
        ys, yhats = self._window_arrays()
        if not len(ys):
            return None
        import numpy as np

        return float(np.abs(ys - yhats).mean())

    def _window_arrays(self) -> tuple[Any, Any]:
        """The window as two numpy arrays, oldest first (no Python floats on the way)."""
        if not self._window_len:
            return [], []
        import numpy as np

        ys = np.frombuffer(self._window_y, dtype=np.float64)[: self._window_len]
        yhats = np.frombuffer(self._window_yhat, dtype=np.float64)[: self._window_len]
        split = self._window_next
        if self._window_len == self.rolling_window and split:
            ys = np.concatenate((ys[split:], ys[:split]))
            yhats = np.concatenate((yhats[split:], yhats[:split]))
        return ys, yhats

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
        if "metrics" in state:  # pickled by an older streamlearn: eager metrics, deques
            state["_metrics"] = state.pop("metrics")
        if "recent_y" in state:
            size = state["rolling_window"]
            ys, yhats = list(state.pop("recent_y")), list(state.pop("recent_yhat"))
            state["_window_y"] = array("d", ys + [0.0] * (size - len(ys)))
            state["_window_yhat"] = array("d", yhats + [0.0] * (size - len(yhats)))
            state["_window_len"] = len(ys)
            state["_window_next"] = len(ys) % size
        for key in ("_metrics", "baseline_metrics"):
            if state.get(key):  # River's own objects, in a checkpoint of an older streamlearn
                state[key] = {name: metrics.adopt(m) for name, m in state[key].items()}
        self.__dict__.update(state)
        self._fused = getattr(self._model, "predict_learn_one", None)

    def reset_model(self, model: Any) -> None:
        """Swap the model (drift actions, divergence restore); metrics carry on."""
        self.model = model
