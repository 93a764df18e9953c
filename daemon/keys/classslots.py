"""The keys of a keyed ``logistic`` run as rows of arrays: the compiled keyed path's state.

A key's slot (``keys.slotbase``: which key holds which slot, making room, settling) holds
its weights and intercept, its class counts and running log loss, its rolling window, both
learning curves and the 0/1 errors waiting for its drift monitor, all rows of arrays that
``learn_logistic_keyed`` updates in place (``streamlearn.fast.classkeyspec``). Settled, a
slot becomes the ``ClassMetrics``, ``Window`` and curves of the key's ``KeyClassifier``, as
record by record would have left them.
"""

from __future__ import annotations

from array import array
from typing import TypeGuard

import numpy as np
from numpy.typing import NDArray

from streamlearn.classify.learner import ClassPrequentialState
from streamlearn.classify.metrics import ClassMetrics, Window
from streamlearn.curve import Curve
from streamlearn.fast.classkeyspec import (
    C_CONFUSION,
    C_CORRECT,
    C_NEG_BINS,
    C_PENDING,
    C_POS_BINS,
    C_RIGHT,
    C_SCORED,
    N_BINS,
    N_CLASS_KEY_COUNTERS,
    N_POINT,
)
from streamlearn.fast.classspec import (
    CURVE_LEARNED,
    CURVE_LEN,
    CURVE_NEXT,
    CURVE_POINTS,
    CURVE_STRIDE,
    LOSS_MEAN,
    LOSS_N,
    N_LOSS_STATE,
)
from streamlearn.models.logistic import LogisticRegression

from .slotbase import SlotTable, plain_key_learner, ratio, zeros
from .units import KeyClassifier

__all__ = ["ClassKeySlots", "class_slot_learner"]


def class_slot_learner(learner: object, template: KeyClassifier) -> bool:
    """Whether a key's ``learner`` can live in a slot shaped after ``template``: a
    ``logistic`` ``KeyClassifier`` of a binary space with the same learning rate, window and
    curve size, its two curves at the same points, no baseline, no pseudo-labels, and a
    drift monitor (if any) that can only alert."""
    if type(learner) is not KeyClassifier or type(learner.model) is not LogisticRegression:
        return False
    curve, loss_curve = learner.curve, learner.loss_curve
    return (
        learner.classes.binary
        and learner.model.lr == template.model.lr
        and curve.max_points == loss_curve.max_points
        and curve.stride == loss_curve.stride
        and len(curve) == len(loss_curve)
        and plain_key_learner(learner, template)
    )


class ClassKeySlots(SlotTable[KeyClassifier]):
    """Slots of per-key ``logistic`` state for ``models``' keys, at most ``capacity``.

    ``SlotTable``'s parameters; ``template``, a fresh learner of a key (``codec.fresh``),
    gives the slots' learning rate, window, curve size, initial weights and drift monitor.
    """

    pending_at = C_PENDING

    def _shape(self, template: KeyClassifier) -> None:
        model = template.model
        self.lr = float(model.lr)
        self.initial = [*(float(model.weights.get(name, 0.0)) for name in self.features),
                        float(model.intercept)]  # fmt: skip
        self.window = template.rolling_window
        self.max_points = template.curve.max_points

    def _slot_bytes(self) -> int:
        width, window, points = len(self.features) + 1, self.window, self.max_points + 1
        counts = N_LOSS_STATE + N_CLASS_KEY_COUNTERS + N_POINT * points
        return 8 * (width + counts + 4 * window) + 2 * window

    def _arrays(self, size: int) -> None:
        width, window, points = len(self.features) + 1, self.window, self.max_points + 1
        self.weights: NDArray[np.float64] = zeros((size, width), np.float64)
        self.state: NDArray[np.float64] = zeros((size, N_LOSS_STATE), np.float64)
        self.counters = zeros((size, N_CLASS_KEY_COUNTERS), np.int64)
        #: The window's losses, then their partial sums (``classkeyspec``).
        self.ring: NDArray[np.float64] = zeros((size, 2 * window), np.float64)
        self.ring_y: NDArray[np.int8] = zeros((size, window), np.int8)
        self.ring_pred: NDArray[np.int8] = zeros((size, window), np.int8)
        self.ring_p: NDArray[np.float64] = zeros((size, window), np.float64)
        self.points: NDArray[np.float64] = zeros((size, points, N_POINT), np.float64)

    def _first(self, start: int, stop: int) -> None:
        if any(self.initial):
            self.weights[start:stop] = self.initial
        self.counters[start:stop, CURVE_STRIDE] = 1

    def holds(self, learner: object) -> TypeGuard[KeyClassifier]:
        return class_slot_learner(learner, self.template)

    # -- a slot's state ----------------------------------------------------------------------

    def _fresh(self, slot: int) -> None:
        self.weights[slot] = self.initial
        self.state[slot] = 0.0
        counters = self.counters[slot]
        counters[:] = 0
        counters[CURVE_STRIDE] = 1
        self.ring[slot] = 0.0
        self.ring_y[slot] = 0
        self.ring_pred[slot] = 0
        self.ring_p[slot] = 0.0

    def _load(self, slot: int, learner: KeyClassifier) -> None:
        model = learner.model
        self.weights[slot] = [*(model.weights.get(name, 0.0) for name in self.features),
                              model.intercept]  # fmt: skip
        metrics, window = learner.metrics, learner.window
        self.state[slot] = [metrics.loss.n, metrics.loss.get()]
        confusion = [[0, 0], [0, 0]]
        for y, row in enumerate(metrics.confusion):
            confusion[y][: len(row)] = row
        curve, loss_curve = learner.curve, learner.loss_curve
        points = len(curve)
        counters = self.counters[slot]
        counters[:] = 0
        counters[CURVE_LEARNED] = learner.records_learned
        counters[CURVE_STRIDE] = curve.stride
        counters[CURVE_NEXT], counters[CURVE_LEN] = window.next, window.len
        counters[CURVE_POINTS] = points  # and no partial sums taken (CURVE_DIRTY 0)
        counters[C_RIGHT] = window.right
        counters[C_SCORED] = metrics.scored
        counters[C_CORRECT] = metrics.right
        counters[C_CONFUSION : C_CONFUSION + 4] = [*confusion[0], *confusion[1]]
        counters[C_POS_BINS : C_POS_BINS + N_BINS] = metrics.pos_bins
        counters[C_NEG_BINS : C_NEG_BINS + N_BINS] = metrics.neg_bins
        size = self.window
        self.ring[slot, :size] = np.frombuffer(window.loss, dtype=np.float64)
        self.ring_y[slot] = np.frombuffer(window.y, dtype=np.int64)
        self.ring_pred[slot] = np.frombuffer(window.pred, dtype=np.int64)
        self.ring_p[slot] = np.frombuffer(window.p_pos, dtype=np.float64)
        if points:
            kept = self.points[slot, :points]
            kept[:, :3] = np.array(curve.points, dtype=np.float64)
            kept[:, 3:] = np.array([point[1:] for point in loss_curve.points], dtype=np.float64)

    def _store(self, slot: int, learner: KeyClassifier) -> None:
        model = learner.model
        values = self.weights[slot].tolist()
        model.intercept = values[-1]
        weights = model.weights
        for name, weight in zip(self.features, values, strict=False):
            weights[name] = weight
        counters = self.counters[slot].tolist()
        learner.import_prequential(
            ClassPrequentialState(
                records_learned=counters[CURVE_LEARNED],
                metrics=self._metrics(slot, counters),
                window=self._window(slot, counters),
                curve=self._curve(slot, counters, 1),
                loss_curve=self._curve(slot, counters, 3),
            )
        )
        self._handover(slot, learner)

    def _metrics(self, slot: int, counters: list[int]) -> ClassMetrics:
        """The slot's ``ClassMetrics``: its confusion as large as the codes seen make it."""
        metrics = ClassMetrics(binary=True)
        n00, n01, n10, n11 = counters[C_CONFUSION : C_CONFUSION + 4]
        if n01 or n10 or n11:
            metrics.confusion = [[n00, n01], [n10, n11]]
        elif n00:
            metrics.confusion = [[n00]]
        state = self.state[slot].tolist()
        metrics.loss.n, metrics.loss._mean = state[LOSS_N], state[LOSS_MEAN]
        metrics.pos_bins = counters[C_POS_BINS : C_POS_BINS + N_BINS]
        metrics.neg_bins = counters[C_NEG_BINS : C_NEG_BINS + N_BINS]
        metrics.scored, metrics.right = counters[C_SCORED], counters[C_CORRECT]
        return metrics

    def _window(self, slot: int, counters: list[int]) -> Window:
        window = Window(self.window)
        window.y = array("q", self.ring_y[slot].astype(np.int64).tobytes())
        window.pred = array("q", self.ring_pred[slot].astype(np.int64).tobytes())
        window.loss = array("d", self.ring[slot, : self.window].tobytes())
        window.p_pos = array("d", self.ring_p[slot].tobytes())
        window.next, window.len = counters[CURVE_NEXT], counters[CURVE_LEN]
        window.right = counters[C_RIGHT]
        return window

    def _curve(self, slot: int, counters: list[int], column: int) -> Curve:
        """The accuracy curve (``column`` 1) or the loss curve (3) of the slot."""
        curve = Curve(self.max_points)
        curve.stride = counters[CURVE_STRIDE]
        kept = self.points[slot, : counters[CURVE_POINTS]]
        curve._records = array("q", kept[:, 0].astype(np.int64).tolist())
        curve._rolling = array("d", kept[:, column].tobytes())
        curve._cumulative = array("d", kept[:, column + 1].tobytes())
        return curve

    def _score(self, slots: NDArray[np.intp]) -> list[float]:
        """The rolling accuracy (``describe_class``'s)."""
        return ratio(self.counters[slots, C_RIGHT], self.counters[slots, CURVE_LEN])
