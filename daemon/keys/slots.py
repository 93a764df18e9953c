"""The keys of a keyed ``sgd`` run as rows of arrays: the compiled keyed path's state.

A key's slot (``keys.slotbase``: which key holds which slot, making room, settling) holds
its row of weights, its intercept and metrics, its rolling window, learning curve and the
errors waiting for its drift monitor, all rows of arrays that ``learn_rows_keyed`` updates
in place (``streamlearn.fast.keyspec``).
"""

from __future__ import annotations

from array import array
from typing import TypeGuard

import numpy as np
from numpy.typing import NDArray

from streamlearn.curve import Curve
from streamlearn.fast.keyspec import (
    K_LENGTH,
    K_PENDING,
    K_STRIDE,
    N_KEY_COUNTERS,
)
from streamlearn.fast.spec import ABS_SUM, INTERCEPT, N_STATE
from streamlearn.learner import PrequentialState
from streamlearn.models.sgd import SGDRegressor

from .slotbase import SlotTable, plain_key_learner, ratio, zeros
from .units import KeyRegressor

__all__ = ["KeySlots", "slot_learner"]


def slot_learner(learner: object, template: KeyRegressor) -> bool:
    """Whether a key's ``learner`` can live in a slot shaped after ``template``: an ``sgd``
    ``KeyRegressor`` of the same learning rate, window and curve size, no baseline, no
    pseudo-labels, and a drift monitor (if any) that can only alert."""
    if type(learner) is not KeyRegressor or type(learner.model) is not SGDRegressor:
        return False
    return learner.model.lr == template.model.lr and plain_key_learner(learner, template)


class KeySlots(SlotTable[KeyRegressor]):
    """Slots of per-key ``sgd`` state for ``models``' keys, at most ``capacity`` of them.

    ``SlotTable``'s parameters; ``template``, a fresh learner of a key (``codec.fresh``),
    gives the slots' learning rate, window, curve size, initial weights and drift monitor.
    """

    pending_at = K_PENDING

    def _shape(self, template: KeyRegressor) -> None:
        model = template.model
        self.lr = float(model.lr)
        self.intercept = float(model.intercept)
        self.initial = [float(model.weights.get(name, 0.0)) for name in self.features]
        self.window = template.rolling_window
        self.max_points = template.curve.max_points

    def _slot_bytes(self) -> int:
        width, window, points = len(self.features), self.window, self.max_points + 1
        return 8 * (width + N_STATE + N_KEY_COUNTERS + 2 * window + 3 * points)

    def _arrays(self, size: int) -> None:
        width, window, points = len(self.features), self.window, self.max_points + 1
        self.weights: NDArray[np.float64] = zeros((size, width), np.float64)
        self.state: NDArray[np.float64] = zeros((size, N_STATE), np.float64)
        self.counters = zeros((size, N_KEY_COUNTERS), np.int64)
        self.ring_y: NDArray[np.float64] = zeros((size, window), np.float64)
        self.ring_yhat: NDArray[np.float64] = zeros((size, window), np.float64)
        self.curve: NDArray[np.float64] = zeros((size, points, 3), np.float64)

    def _first(self, start: int, stop: int) -> None:
        if any(self.initial):
            self.weights[start:stop] = self.initial
        if self.intercept:
            self.state[start:stop, INTERCEPT] = self.intercept
        self.counters[start:stop, K_STRIDE] = 1

    def holds(self, learner: object) -> TypeGuard[KeyRegressor]:
        return slot_learner(learner, self.template)

    # -- a slot's state ----------------------------------------------------------------------

    def _fresh(self, slot: int) -> None:
        self.weights[slot] = self.initial
        self.state[slot] = 0.0
        self.state[slot, INTERCEPT] = self.intercept
        counters = self.counters[slot]
        counters[:] = 0
        counters[K_STRIDE] = 1
        self.ring_y[slot] = 0.0
        self.ring_yhat[slot] = 0.0

    def _load(self, slot: int, learner: KeyRegressor) -> None:
        learner.hear_held()  # the monitor the slot takes has heard of every error learned
        model = learner.model
        weights = model.weights
        self.weights[slot] = [weights.get(name, 0.0) for name in self.features]
        state = learner.export_prequential()
        row = self.state[slot]
        row[INTERCEPT] = model.intercept
        row[INTERCEPT + 1 : ABS_SUM] = state.metrics
        row[ABS_SUM] = state.abs_sum
        curve = state.curve
        points = len(curve)
        self.counters[slot] = [state.records_learned, state.window_next, state.window_len,
                               curve.stride, points, 0]  # fmt: skip
        self.ring_y[slot] = np.frombuffer(state.window_y, dtype=np.float64)
        self.ring_yhat[slot] = np.frombuffer(state.window_yhat, dtype=np.float64)
        if points:
            self.curve[slot, :points] = np.array(curve.points, dtype=np.float64)

    def _store(self, slot: int, learner: KeyRegressor) -> None:
        model = learner.model
        row = self.state[slot].tolist()
        model.intercept = row[INTERCEPT]
        weights = model.weights
        for name, weight in zip(self.features, self.weights[slot].tolist(), strict=True):
            weights[name] = weight
        learned, at, length, stride, points, _ = self.counters[slot].tolist()
        curve = Curve(self.max_points)
        curve.stride = stride
        kept = self.curve[slot, :points]
        curve._records = array("q", kept[:, 0].astype(np.int64).tolist())
        curve._rolling = array("d", kept[:, 1].tobytes())
        curve._cumulative = array("d", kept[:, 2].tobytes())
        learner.import_prequential(
            PrequentialState(
                records_learned=learned,
                metrics=row[INTERCEPT + 1 : ABS_SUM],
                window_y=array("d", self.ring_y[slot].tobytes()),
                window_yhat=array("d", self.ring_yhat[slot].tobytes()),
                window_next=at,
                window_len=length,
                abs_sum=row[ABS_SUM],
                curve=curve,
            )
        )
        self._handover(slot, learner)

    def _score(self, slots: NDArray[np.intp]) -> list[float]:
        """The rolling MAE (``describe_regression``'s)."""
        return ratio(self.state[slots, ABS_SUM], self.counters[slots, K_LENGTH])
