"""The prequential step (predict, score, then learn) and the state it keeps.

The order is River's ``evaluate.progressive_val_score``: a record's prediction is
made before the model sees its label, so the metrics are honest estimates of
how the model does on data it has not learned from. The metrics are
``streamlearn.metrics`` (River's MAE, RMSE and R2, same formulas, same state), so the
daemon's MAE equals ``progressive_val_score``'s to the last digit.

Besides the model, a :class:`Learner` keeps its *prequential state*: the records learned,
the cumulative metrics, the rolling window (the last ``rolling_window`` (y, yhat) pairs,
in a ring of two ``array('d')`` buffers) and the learning curve. The compiled paths
(``streamlearn.fast``) take it as one :class:`PrequentialState` record and give it back
(:meth:`Learner.export_prequential`, :meth:`Learner.import_prequential`); nothing else
reads the learner's private fields. The learning curve is :class:`streamlearn.curve.Curve`.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from streamlearn import metrics
from streamlearn.curve import Curve
from streamlearn.fast.remember import Remember, remember_step, score_remember
from streamlearn.interfaces import FusedModel
from streamlearn.learner_base import LearnerBase
from streamlearn.metrics import (
    DIVERGED,
    MAE,
    METRICS,
    R2,
    RMSE,
    Metric,
    abs_error_sum,
    rolling_scores,
    update_all,
)
from streamlearn.models.champion import GuardOptions
from streamlearn.rings import packed, unpacked

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


def _values(named: Mapping[str, Metric], updated: bool) -> dict[str, float | None]:
    # Before the first update a metric's value means nothing (River says 0 for R2
    # and MAE alike): report None rather than claim a perfect score.
    out: dict[str, float | None] = {}
    for name, metric in named.items():
        value = float(metric.get()) if updated else math.nan
        out[name] = value if math.isfinite(value) else None
    return out


def _fused_step(model: object) -> Callable[..., float] | None:
    """The model's one-pass predict-and-learn (``FusedModel``: the project's own estimators),
    or None (River's: ``predict_one`` then ``learn_one``). Asked once per model, not per record.
    """
    fused = _FUSED_TYPES.get(type(model))
    if fused is None:  # a runtime Protocol check costs ~20 µs: once per type, not per key
        fused = _FUSED_TYPES[type(model)] = isinstance(model, FusedModel)
    return cast(FusedModel, model).predict_learn_one if fused else None


_FUSED_TYPES: dict[type, bool] = {}

#: ``_score_and_remember``'s arithmetic: set by ``_heat``, before any learner scores with it.
_remember: Remember = score_remember


def _zeros(size: int) -> array[float]:
    return array("d", bytes(8 * size))


@dataclass
class PrequentialState:
    """A learner's prequential state as one record: what ``Learner.step`` updates besides
    the model, in the form the compiled kernel reads and writes.

    ``Learner.export_prequential`` makes one and ``Learner.import_prequential`` takes
    one back. In an export the window's buffers and the curve are the learner's own
    (the kernel updates them in place, no copy); in a snapshot (``copy=True``) they are
    copies.
    """

    records_learned: int
    #: The cumulative metrics' state, in the ``streamlearn.metrics.FIELDS`` layout.
    metrics: list[float]
    #: The rolling window: a ring of targets and one of predictions, slot for slot.
    window_y: array[float]
    window_yhat: array[float]
    #: The slot the next pair goes to (the oldest pair's slot once the ring is full).
    window_next: int
    #: How many pairs the ring holds (up to its size, ``rolling_window``).
    window_len: int
    #: ``sum(|y - yhat|)`` over the window, kept up to date record by record: the
    #: rolling MAE of the learning curve's points.
    abs_sum: float
    curve: Curve


class Learner(LearnerBase):
    """Holds the model and its prequential state.

    Parameters
    ----------
    model
        A River regressor or pipeline.
    rolling_window
        Size of the rolling window of the rolling metrics.
    baseline
        An optional frozen model scored on the same records (champion/challenger).
    guard
        With a baseline: the options of the baseline guard (``streamlearn.models.champion``),
        which decides the prediction served (:meth:`serve`).

    Examples
    --------
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> learner = Learner(SGDRegressor(lr=0.1))
    >>> learner.step({"x": 1.0}, 2.0)   # predicts 0 first, then learns
    0.0
    >>> learner.records_learned, learner.summary()["mae"]
    (1, 2.0)
    """

    #: The metrics' fields while ``_score_and_remember`` scores them (None: in the ``Metric``s).
    _hot: array[float] | None = None

    def __init__(
        self,
        model: Any,
        *,
        rolling_window: int = 1000,
        baseline: Any = None,
        guard: GuardOptions | None = None,
    ) -> None:
        super().__init__(model, rolling_window=rolling_window, baseline=baseline, guard=guard)
        self._metrics: dict[str, Metric] | None = None  # built at the first score (``metrics``)
        self.baseline_metrics = metrics.new_metrics() if baseline is not None else None
        # The rolling window and the running |error| sum: see ``PrequentialState``.
        self._window_y = _zeros(rolling_window)
        self._window_yhat = _zeros(rolling_window)
        self._window_next = 0
        self._window_len = 0
        self._recent_abs_sum = 0.0

    #: The task of the learner (``streamlearn.interfaces.LearnerLike``).
    task = "regression"

    def predict(self, x: dict[str, float]) -> float:
        """The model's prediction, without learning; NaN for a diverged model's absurd answer
        and for None (River's "no prediction": ``AMFRegressor`` before its first record)."""
        yhat = self.model.predict_one(x)
        return float(yhat) if yhat is not None and -DIVERGED < yhat < DIVERGED else math.nan

    def sound(self, x: dict[str, float]) -> bool:
        """Whether the model predicts ``x`` as a finite number (the divergence guard asks)."""
        return math.isfinite(self.predict(x))

    def serve(self, x: dict[str, float]) -> float:
        """The prediction served: the model's, or the baseline's while the baseline guard says."""
        guard = self.guard
        if guard is not None and guard.serving_baseline:
            yhat = self.baseline.predict_one(x)
            if yhat is not None and -DIVERGED < yhat < DIVERGED:
                return float(yhat)
        return self.predict(x)

    def step(self, x: dict[str, float], y: float) -> float | None:
        """Test then train on one labeled record; returns the prediction made before learning.

        A non-finite prediction is NaN, unscored and unlearned (the caller's guard restores
        the model), or None if the model only could not predict it yet: learned, unscored.
        """
        model = self._model
        fused = self._fused
        # The project's own estimators predict and learn in one pass (same arithmetic
        # as predict_one then learn_one); River's learn_one would predict again.
        yhat = fused(x, y) if fused is not None else model.predict_one(x)
        if yhat is None or not -DIVERGED < yhat < DIVERGED:
            # None, NaN, inf, or so large that squaring its error overflows: never scored.
            return self._unpredicted(x, y, yhat)
        if self.baseline is not None:
            return self._step_guarded(x, y, yhat)
        if fused is None:
            model.learn_one(x, y)
        names = self.feature_names
        if names is not None:
            names.update(x)
        self._score_and_remember(y, yhat)
        return float(yhat)

    def _step_guarded(self, x: dict[str, float], y: float, yhat: float) -> float:
        """``step`` of a scored record with a baseline, which the guard compares first."""
        update_all(self.metrics, y, yhat)
        restart = self._score_baseline(x, y, yhat)
        if self._fused is None:
            self._model.learn_one(x, y)
        self._noted(x)
        self._remember(y, yhat)
        if restart:
            self._restart_from_warm_start()
        return float(yhat)

    def _score_and_remember(self, y: float, yhat: float) -> None:
        """``update_all`` then ``_remember`` in one pass, operation for operation (the same bits).

        A keyed run does it for every record of every key, each key's objects apart from the
        others': the metrics are scored in ``_hot``, their ``FIELDS`` in one cache line, not in
        a dozen objects and their floats; the ``Metric`` objects take them back when read. The
        arithmetic is ``streamlearn.fast.remember``'s, compiled when the extension is built."""
        hot = self._hot
        if hot is None:
            hot = self._heat()
            if hot is None:  # not the three metrics of ``METRICS``: as ``update_all`` does
                update_all(self.metrics, y, yhat)
                self._remember(y, yhat)
                return
        self._window_next, length, total = _remember(
            hot,
            self._window_y,
            self._window_yhat,
            y,
            yhat,
            self._window_next,
            self._window_len,
            self._recent_abs_sum,
        )
        self._window_len = length
        self._recent_abs_sum = total
        learned = self.records_learned = self.records_learned + 1
        curve = self.curve
        if learned % curve.stride == 0:
            if learned % self.rolling_window == 0:  # re-sum now and then, as ``_add_curve_point``
                total = self._recent_abs_sum = abs_error_sum(self.recent_y, self.recent_yhat)
            curve.add(learned, total / length, hot[1])

    def _unpredicted(self, x: dict[str, float], y: float, yhat: float | None) -> float | None:
        """``step`` of a record predicted None (learned unscored, as River does: answer None) or
        NaN/inf: the same if the model then predicts it (River's MinMaxScaler divides by
        ``-inf`` before it saw a feature), else NaN."""
        self.model.learn_one(x, y)
        if yhat is not None and math.isnan(self.predict(x)):
            return math.nan  # diverged: what it learned here goes with it
        self._noted(x)
        self.records_learned += 1
        self.records_unscored += 1
        return None

    def step_with_prediction(self, x: dict[str, float], y: float, yhat: float) -> None:
        """Score a prediction made earlier (a late label), then learn the record now."""
        update_all(self.metrics, y, yhat)
        # The guard compares the model as it is now (it has not learned this label yet).
        restart = self.baseline is not None and self._score_baseline(x, y, self.predict(x))
        self.model.learn_one(x, y)
        self._noted(x)
        self._remember(y, yhat)
        if restart:
            self._restart_from_warm_start()

    def _remember(self, y: float, yhat: float) -> None:
        # The compiled kernel (streamlearn.fast.spec.learn_rows) does exactly these steps,
        # in this order.
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
    def metrics(self) -> dict[str, Metric]:
        """The cumulative prequential metrics (``streamlearn.metrics.METRICS``)."""
        named = self._metrics
        if named is None:
            named = self._metrics = metrics.new_metrics()
        self._cool(named)
        return named

    def _cool(self, named: dict[str, Metric]) -> None:
        """The metrics take back the fields scored in ``_hot`` since they were last read."""
        hot = self._hot
        if hot is not None:
            self._hot = None
            metrics.import_fields(named, hot)

    def _heat(self) -> array[float] | None:
        """``_hot`` made from the metrics (None: they are not ``METRICS``' three)."""
        named = self.metrics
        if len(named) != 3:
            return None
        mae, rmse, r2 = named.values()
        if type(mae) is not MAE or type(rmse) is not RMSE or type(r2) is not R2:
            return None
        global _remember  # one for every learner, the compiled one once it is loaded
        _remember = remember_step()
        hot = self._hot = array("d", metrics.export_fields(named))
        return hot

    def export_prequential(self, *, copy: bool = False) -> PrequentialState:
        """The prequential state as one record (see ``PrequentialState``).

        Without ``copy`` the window's buffers and the curve in it are the learner's own:
        the compiled kernel updates them in place, then hands the record back to
        ``import_prequential``. With ``copy`` it is a snapshot, to put back later.
        """
        window_y, window_yhat, curve = self._window_y, self._window_yhat, self.curve
        if copy:
            window_y, window_yhat, curve = window_y[:], window_yhat[:], curve.copy()
        return PrequentialState(
            records_learned=self.records_learned,
            metrics=metrics.export_fields(self.metrics),
            window_y=window_y,
            window_yhat=window_yhat,
            window_next=self._window_next,
            window_len=self._window_len,
            abs_sum=self._recent_abs_sum,
            curve=curve,
        )

    def import_prequential(self, state: PrequentialState) -> None:
        """Take ``state`` as the prequential state (an export updated, or a snapshot).

        A snapshot's window is copied into the learner's own buffers (views of them stay
        valid) and its curve is copied, so one snapshot can be imported again.
        """
        if state.window_y is not self._window_y or state.window_yhat is not self._window_yhat:
            if len(state.window_y) != self.rolling_window or len(state.window_yhat) != len(
                state.window_y
            ):
                raise ValueError("the state's window is not the size of this learner's")
            self._window_y[:] = state.window_y
            self._window_yhat[:] = state.window_yhat
        metrics.import_fields(self.metrics, state.metrics)
        self.records_learned = state.records_learned
        self._window_next = state.window_next
        self._window_len = state.window_len
        self._recent_abs_sum = state.abs_sum
        if state.curve is not self.curve:
            self.curve = state.curve.copy()

    def _score_baseline(self, x: dict[str, float], y: float, yhat: float) -> bool:
        """Score the baseline and let the guard compare it with ``yhat``; True: restart."""
        assert self.baseline_metrics is not None
        base_yhat = self.baseline.predict_one(x)
        if base_yhat is not None and base_yhat - base_yhat == 0.0:
            for metric in self.baseline_metrics.values():
                metric.update(y, base_yhat)
            self.baseline_scored += 1
            guard = self.guard
            if guard is not None and yhat - yhat == 0.0:
                return guard.score(y, yhat, base_yhat)
        return False

    def summary(self) -> dict[str, float | None]:
        """Cumulative prequential metrics."""
        if self._metrics is None:  # nothing scored yet
            return dict.fromkeys(METRICS)
        return _values(self.metrics, self.records_learned > self.records_unscored)

    def rolling_summary(self) -> dict[str, float | None]:
        """Rolling-window prequential metrics."""
        window = self._window_arrays()
        return rolling_scores(*window) if window is not None else rolling_scores([], [])

    def rolling_mae(self) -> float | None:
        """``rolling_summary()["mae"]``, the same bits, without RMSE and R2.

        The divergence guard reads it after every batch.
        """
        window = self._window_arrays()
        if window is None:
            return None
        import numpy as np

        ys, yhats = window
        return float(np.abs(ys - yhats).mean())

    def _window_arrays(self) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
        """The window as two numpy arrays, oldest first (no Python floats on the way);
        None while it is empty (no numpy import then)."""
        if not self._window_len:
            return None
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
        """The model learned (a River regressor or pipeline, or one of the project's own)."""
        return self._model

    @model.setter
    def model(self, model: Any) -> None:
        self._model = model
        self._fused = _fused_step(model)

    @property
    def fused(self) -> bool:
        """Whether the model predicts and learns in one call (``predict_learn_one``, as the
        project's own estimators do): ``step`` then makes one call per record, not two."""
        return self._fused is not None

    def __getstate__(self) -> dict[str, Any]:
        if self._metrics is not None:
            self._cool(self._metrics)
        state = self.__dict__.copy()
        del state["_fused"]  # a bound method: rebuilt from the model on load
        state.pop("_hot", None)
        used = self._window_len  # the rings as far as they are filled (``rings``)
        state["_window_y"] = packed(self._window_y, used)
        state["_window_yhat"] = packed(self._window_yhat, used)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "metrics" in state:  # pickled by an older streamlearn: eager metrics, deques
            state["_metrics"] = state.pop("metrics")
        size = state["rolling_window"]
        if "recent_y" in state:
            ys, yhats = list(state.pop("recent_y")), list(state.pop("recent_yhat"))
            state["_window_y"] = array("d", ys + [0.0] * (size - len(ys)))
            state["_window_yhat"] = array("d", yhats + [0.0] * (size - len(yhats)))
            state["_window_len"] = len(ys)
            state["_window_next"] = len(ys) % size
        for name in ("_window_y", "_window_yhat"):
            state[name] = unpacked(state[name], size, "d")
        for key in ("_metrics", "baseline_metrics"):
            if state.get(key):  # River's own objects, in a checkpoint of an older streamlearn
                state[key] = {name: metrics.adopt(m) for name, m in state[key].items()}
        state.setdefault("guard", None)  # a learner pickled before the baseline guard
        self.__dict__.update(state)
        self._fused = _fused_step(self._model)
