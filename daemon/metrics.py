"""The prequential metrics: River's MAE, RMSE and R2, restated without importing River.

``river.metrics`` imports every metric River has, and with them ``scipy.stats``: about
1.7 s at the first scored record of every run, more than a whole replay of a million
rows takes on the compiled path. These three classes are River's own formulas,
operation for operation, and keep River's state under River's attribute names
(``MAE._mean.n``, ``R2._y_var._S`` ...), so:

- their values equal River's to the last bit (``tests/test_metrics.py`` feeds both the
  same pairs, and the prequential tests compare with ``progressive_val_score``);
- the compiled fast path reads and writes the same attributes on them as on River's
  objects, and a checkpoint written when the learner held River's objects still loads
  and goes on (those objects have the same attributes and methods).

>>> mae, rmse, r2 = MAE(), RMSE(), R2()
>>> for y, yhat in [(3.0, 2.5), (-0.5, 0.0), (2.0, 2.0), (7.0, 8.0)]:
...     for metric in (mae, rmse, r2):
...         metric.update(y, yhat)
>>> mae.get(), rmse.get(), round(r2.get(), 6)
(0.5, 0.6123724356957945, 0.948608)
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAE", "MSE", "R2", "RMSE", "Mean", "Var", "adopt"]


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


class _Metric:
    def get(self) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {self.get():,.6f}"


class _MeanMetric(_Metric):
    """The mean of a per-record score, as ``river.metrics.base.MeanMetric``."""

    def __init__(self) -> None:
        self._mean = Mean()

    def _eval(self, y_true: float, y_pred: float) -> float:
        raise NotImplementedError

    def update(self, y_true: float, y_pred: float, w: float = 1.0) -> None:
        self._mean.update(self._eval(y_true, y_pred), w)

    def get(self) -> float:
        return self._mean.get()


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


class R2(_Metric):
    """The coefficient of determination (``river.metrics.R2``); 0.0 until it is defined."""

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


_CLASSES: dict[str, type[_Metric]] = {"MAE": MAE, "MSE": MSE, "RMSE": RMSE, "R2": R2}


def adopt(metric: Any) -> Any:
    """One of these classes holding ``metric``'s state, when ``metric`` is River's own.

    Checkpoints written before this module held River's objects; adopting them keeps
    their values exactly and lets later checkpoints load without ``river.metrics``.

    >>> adopt(MAE()).get()
    0.0
    """
    if isinstance(metric, _Metric):
        return metric
    ours = _CLASSES[type(metric).__name__]()
    if isinstance(ours, R2):
        ours._y_var.mean.n = metric._y_var.mean.n
        ours._y_var.mean._mean = metric._y_var.mean._mean
        ours._y_var._S = metric._y_var._S
        ours._residual_sum_of_squares = metric._residual_sum_of_squares
    else:
        assert isinstance(ours, _MeanMetric)
        ours._mean.n, ours._mean._mean = metric._mean.n, metric._mean._mean
    return ours
