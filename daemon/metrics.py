"""The prequential metrics: River's MAE, RMSE and R2, restated without importing River.

This module is the one definition of the metrics the learner keeps: the set
(:data:`METRICS`), the per-record update of each, the layout of their state as one
vector of floats (:data:`FIELDS`, which the compiled kernel reads and writes), and the
same metrics over the rolling window (:func:`rolling_scores`). Adding a metric is a
class here, its entry in ``METRICS`` and ``rolling_scores``, plus its update in the
kernel (``streamlearn.fast.spec.learn_rows`` and its C rendering).

The classes are River's own formulas, operation for operation, and keep River's state
under River's attribute names (``MAE._mean.n``, ``R2._y_var._S`` ...), so their values
equal River's to the last bit (``tests/test_metrics.py`` feeds both the same pairs), and
a checkpoint that holds River's objects still loads (:func:`adopt`). Why not River's own:
importing ``river.metrics`` imports every River metric and ``scipy.stats``, a cost each
run would pay at its first scored record (docs/design.md).

>>> mae, rmse, r2 = MAE(), RMSE(), R2()
>>> for y, yhat in [(3.0, 2.5), (-0.5, 0.0), (2.0, 2.0), (7.0, 8.0)]:
...     for metric in (mae, rmse, r2):
...         metric.update(y, yhat)
>>> mae.get(), rmse.get(), round(r2.get(), 6)
(0.5, 0.6123724356957945, 0.948608)
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, ClassVar

__all__ = [
    "DIVERGED",
    "FIELDS",
    "MAE",
    "METRICS",
    "MSE",
    "R2",
    "RMSE",
    "Mean",
    "Metric",
    "Var",
    "abs_error_sum",
    "adopt",
    "export_fields",
    "import_fields",
    "new_metrics",
    "rolling_scores",
    "update_all",
]

#: A prediction beyond this is a diverged model: its squared error would overflow a float
#: (``streamlearn.learner`` leaves it unscored; ``records.TARGET_LIMIT`` bounds a target so).
DIVERGED = 1e150


class Mean:
    """A running (weighted) mean, updated as ``river.stats.Mean`` updates it."""

    __slots__ = ("_mean", "n")

    def __init__(self) -> None:
        self.n = 0.0
        self._mean = 0.0

    def update(self, x: float, w: float = 1.0) -> None:
        self.n += w
        self._mean += (w / self.n) * (x - self._mean)

    def get(self) -> float:
        return self._mean


class Var:
    """A running variance (Welford), updated as ``river.stats.Var`` updates it."""

    __slots__ = ("_S", "ddof", "mean")

    def __init__(self, ddof: int = 1) -> None:
        self.ddof = ddof
        self.mean = Mean()
        self._S = 0.0

    @property
    def n(self) -> float:
        return self.mean.n

    def update(self, x: float, w: float = 1.0) -> None:
        mean_old = self.mean._mean
        self.mean.update(x, w)
        mean_new = self.mean._mean
        self._S += w * (x - mean_old) * (x - mean_new)

    def get(self) -> float:
        if self.mean.n > self.ddof:
            return self._S / (self.mean.n - self.ddof)
        return 0.0


class Metric:
    """A metric of (target, prediction) pairs whose state is a few floats.

    ``FIELDS`` names them; ``fields`` and ``load_fields`` read and write them in that
    order (the compiled kernel holds them in a vector, see :data:`FIELDS`).
    """

    FIELDS: ClassVar[tuple[str, ...]] = ()

    def update(self, y_true: float, y_pred: float, w: float = 1.0) -> None:
        raise NotImplementedError

    def get(self) -> float:
        raise NotImplementedError

    def fields(self) -> tuple[float, ...]:
        raise NotImplementedError

    def load_fields(self, values: Sequence[float]) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {self.get():,.6f}"


class _MeanMetric(Metric):
    """The mean of a per-record score, as ``river.metrics.base.MeanMetric``."""

    FIELDS = ("n", "mean")

    def __init__(self) -> None:
        self._mean = Mean()

    def _eval(self, y_true: float, y_pred: float) -> float:
        raise NotImplementedError

    def update(self, y_true: float, y_pred: float, w: float = 1.0) -> None:
        self._mean.update(self._eval(y_true, y_pred), w)

    def get(self) -> float:
        return self._mean.get()

    def fields(self) -> tuple[float, ...]:
        return self._mean.n, self._mean._mean

    def load_fields(self, values: Sequence[float]) -> None:
        self._mean.n, self._mean._mean = values


class MAE(_MeanMetric):
    """Mean absolute error (``river.metrics.MAE``)."""

    def _eval(self, y_true: float, y_pred: float) -> float:
        return abs(y_true - y_pred)


class MSE(_MeanMetric):
    """Mean squared error (``river.metrics.MSE``): ``** 2`` as River writes it."""

    def _eval(self, y_true: float, y_pred: float) -> float:
        return (y_true - y_pred) ** 2


class RMSE(MSE):
    """Root mean squared error (``river.metrics.RMSE``)."""

    def get(self) -> float:
        return float(super().get() ** 0.5)


class R2(Metric):
    """The coefficient of determination (``river.metrics.R2``); 0.0 until it is defined."""

    FIELDS = ("var_n", "var_mean", "var_s", "rss")

    def __init__(self) -> None:
        self._y_var = Var()
        self._total_sum_of_squares = 0.0
        self._residual_sum_of_squares = 0.0

    def update(self, y_true: float, y_pred: float, w: float = 1.0) -> None:
        self._y_var.update(y_true, w=w)
        self._residual_sum_of_squares += (y_true - y_pred) * (y_true - y_pred) * w

    def get(self) -> float:
        if self._y_var.mean.n > 1:
            try:
                total_sum_of_squares = (self._y_var.mean.n - 1) * self._y_var.get()
                return 1 - (self._residual_sum_of_squares / total_sum_of_squares)
            except ZeroDivisionError:
                return 0.0
        return 0.0

    def fields(self) -> tuple[float, ...]:
        var = self._y_var
        return var.mean.n, var.mean._mean, var._S, self._residual_sum_of_squares

    def load_fields(self, values: Sequence[float]) -> None:
        var = self._y_var
        var.mean.n, var.mean._mean, var._S, self._residual_sum_of_squares = values


#: The prequential metrics the learner keeps, by the name they are reported under.
METRICS: dict[str, type[Metric]] = {"mae": MAE, "rmse": RMSE, "r2": R2}

#: The state of ``METRICS`` as one vector: each metric's ``FIELDS``, in ``METRICS`` order.
#: The compiled kernel holds it so (``streamlearn.fast.spec`` takes its slots from here).
FIELDS: tuple[str, ...] = tuple(
    f"{name}.{field}" for name, kind in METRICS.items() for field in kind.FIELDS
)


def update_all(named: Mapping[str, Metric], y: float, yhat: float) -> None:
    """``metric.update(y, yhat)`` for each of a set of metrics, in order; the set of
    ``new_metrics`` in one call (a learner scores every record: the calls were a third of
    its bookkeeping), operation for operation as their ``update`` (the same bits).

    >>> one, each = new_metrics(), new_metrics()
    >>> for y, yhat in [(3.0, 2.5), (-0.5, 0.0), (2.0, 2.0)]:
    ...     update_all(one, y, yhat)
    ...     for metric in each.values():
    ...         metric.update(y, yhat)
    >>> export_fields(one) == export_fields(each)
    True
    """
    if len(named) == 3:
        mae, rmse, r2 = named.values()
        if type(mae) is MAE and type(rmse) is RMSE and type(r2) is R2:
            # Mean.update, Var.update and R2.update with w = 1.0, as written there.
            mean = mae._mean
            mean.n += 1.0
            mean._mean += (1.0 / mean.n) * (abs(y - yhat) - mean._mean)
            mean = rmse._mean
            mean.n += 1.0
            mean._mean += (1.0 / mean.n) * ((y - yhat) ** 2 - mean._mean)
            var = r2._y_var
            mean = var.mean
            mean_old = mean._mean
            mean.n += 1.0
            mean._mean += (1.0 / mean.n) * (y - mean_old)
            var._S += 1.0 * (y - mean_old) * (y - mean._mean)
            r2._residual_sum_of_squares += (y - yhat) * (y - yhat) * 1.0
            return
    for metric in named.values():
        metric.update(y, yhat)


def new_metrics() -> dict[str, Metric]:
    """A fresh set of ``METRICS``."""
    return {name: kind() for name, kind in METRICS.items()}


def export_fields(named: Mapping[str, Metric]) -> list[float]:
    """The state of a set of ``METRICS`` in the ``FIELDS`` layout.

    >>> named = new_metrics()
    >>> named["mae"].update(3.0, 1.0)
    >>> dict(zip(FIELDS, export_fields(named)))["mae.mean"]
    2.0
    """
    return [value for name in METRICS for value in named[name].fields()]


def import_fields(named: Mapping[str, Metric], values: Sequence[float]) -> None:
    """Set a set of ``METRICS`` to ``values``, a state in the ``FIELDS`` layout."""
    if len(values) != len(FIELDS):
        raise ValueError(f"{len(values)} values for {len(FIELDS)} metric fields")
    at = 0
    for name in METRICS:
        metric = named[name]
        size = len(metric.FIELDS)
        metric.load_fields(values[at : at + size])
        at += size


def rolling_scores(ys: Collection[float], yhats: Collection[float]) -> dict[str, float | None]:
    """``METRICS`` of a window of (y, yhat) pairs, as River defines them.

    Computed when read (scrapes, checkpoints, ``inspect``), not per record: the
    loop only writes into the window. Summing afresh also avoids the drift that
    add-then-revert running sums accumulate over months.

    >>> rolling_scores([1.0, 2.0, 3.0], [1.5, 2.0, 2.0])
    {'mae': 0.5, 'rmse': 0.6454972243679028, 'r2': 0.375}
    """
    n = len(ys)
    if n == 0:
        return dict.fromkeys(METRICS)
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
    """``sum(|y - yhat|)`` added left to right, as the compiled kernel adds it.

    Spelled out rather than ``sum()``: Python 3.12 made ``sum`` of floats compensated,
    and both paths must give the same bits on every Python.

    >>> abs_error_sum([1.0, 2.0], [1.5, 4.0])
    2.5
    """
    total = 0.0
    for y, yhat in zip(ys, yhats, strict=True):
        total += abs(y - yhat)
    return total


_CLASSES: dict[str, type[Metric]] = {"MAE": MAE, "MSE": MSE, "RMSE": RMSE, "R2": R2}


def adopt(metric: Any) -> Metric:
    """One of these classes holding ``metric``'s state, when ``metric`` is River's own.

    Checkpoints written before this module held River's objects; adopting them keeps
    their values exactly and lets later checkpoints load without ``river.metrics``.

    >>> adopt(MAE()).get()
    0.0
    """
    if isinstance(metric, Metric):
        return metric
    ours = _CLASSES[type(metric).__name__]()
    if isinstance(ours, R2):
        var = metric._y_var
        rss = metric._residual_sum_of_squares
        ours.load_fields((var.mean.n, var.mean._mean, var._S, rss))
    else:
        ours.load_fields((metric._mean.n, metric._mean._mean))
    return ours
