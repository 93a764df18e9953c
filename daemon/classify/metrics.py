"""The class metrics River's ``progressive_val_score`` reports, restated as counts and one mean.

Accuracy, log loss (binary) or cross-entropy (multiclass), F1 of the positive class (binary)
or macro F1, ROC AUC (binary, River's ``ROCAUC()``: 10 thresholds) and the confusion matrix,
by class **code** (``streamlearn.classify.space``). Each is River's formula, operation for
operation (``tests/test_class_metrics.py`` feeds both the same pairs), but the state is a
few counts and a running mean: nothing of River's in a checkpoint, no ``river.metrics`` (and
``scipy``) import at the first scored record.

A record is scored as ``(y, predicted, loss, p_pos)``: its class, the class predicted (the
first with the largest probability), its log loss and, binary, the positive class's
probability. :func:`score` makes that from a probability tuple; :meth:`ClassMetrics.update`
takes one record, :meth:`ClassMetrics.update_many` a block of numpy arrays (the same bits).

>>> metrics = ClassMetrics(binary=True)
>>> for y, proba in [(1, (0.2, 0.8)), (0, (0.6, 0.4)), (1, (0.7, 0.3)), (0, (0.1, 0.9))]:
...     metrics.update(*score(y, proba, binary=True))
>>> values = metrics.values()
>>> values["accuracy"], values["f1"], values["roc_auc"], round(values["log_loss"], 6)
(0.5, 0.5, 0.25, 1.060132)
>>> metrics.confusion_counts()
{0: {0: 1, 1: 1}, 1: {0: 1, 1: 1}}
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from streamlearn.metrics import Mean
from streamlearn.rings import packed, unpacked

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "BINARY_METRICS",
    "MULTICLASS_METRICS",
    "THRESHOLDS",
    "ClassMetrics",
    "Proba",
    "Window",
    "binary_loss",
    "class_loss",
    "predicted",
    "score",
]

#: Probabilities indexed by class code (``classify.md``: a class the model did not list is 0).
Proba = tuple[float, ...]

#: The names reported, binary and multiclass (``ClassMetrics.values``), besides ``confusion``.
BINARY_METRICS = ("accuracy", "log_loss", "f1", "roc_auc")
MULTICLASS_METRICS = ("accuracy", "cross_entropy", "macro_f1")


def _thresholds(n: int) -> tuple[float, ...]:
    # ``river.metrics.ROCAUC.__init__``, float for float.
    thresholds = [i / (n - 1) for i in range(n)]
    thresholds[0] -= 1e-7
    thresholds[-1] += 1e-7
    return tuple(thresholds)


#: River's ``ROCAUC(n_thresholds=10)`` thresholds: a record counts above ``t`` when ``p > t``.
THRESHOLDS = _thresholds(10)

_LOW, _HIGH = 1e-15, 1 - 1e-15  # River's ``_clamp_proba``


def binary_loss(y: int, p_pos: float) -> float:
    """River's ``LogLoss`` of one record: ``y`` 1 (positive) or 0, ``p_pos`` P(positive)."""
    p = max(min(p_pos, _HIGH), _LOW)
    if y:
        return -math.log(p)
    return -math.log(1 - p)


def class_loss(y: int, proba: Sequence[float], listed: bool = True) -> float:
    """River's ``CrossEntropy`` of one record.

    ``listed`` False: the model's probability dict did not name class ``y`` (nor does a
    tuple shorter than ``y``): River then adds nothing, the loss is 0.
    """
    if not listed or y >= len(proba):
        return 0.0
    return -math.log(max(min(proba[y], _HIGH), _LOW))


def predicted(proba: Sequence[float]) -> int:
    """The first class code with the largest probability (River's ``max(proba, key=proba.get)``).

    >>> predicted((0.2, 0.5, 0.5))
    1
    """
    best, top = 0, proba[0]
    for code in range(1, len(proba)):
        if proba[code] > top:
            best, top = code, proba[code]
    return best


def score(
    y: int,
    proba: Sequence[float],
    *,
    binary: bool,
    choice: int | None = None,
    listed: bool = True,
) -> tuple[int, int, float, float]:
    """``(y, predicted, loss, p_pos)`` of one record, for :meth:`ClassMetrics.update`.

    ``choice``: the class the model chose, when known (River's ``predict_one`` breaks ties by
    its dict's order); else :func:`predicted`. ``listed``: see :func:`class_loss`.
    """
    pred = predicted(proba) if choice is None else choice
    if binary:
        p_pos = proba[1] if len(proba) > 1 else 0.0
        return y, pred, binary_loss(y, p_pos), p_pos
    return y, pred, class_loss(y, proba, listed), 0.0


class ClassMetrics:
    """The cumulative class metrics of one learner: counts and the running mean of the loss.

    Parameters
    ----------
    binary
        Binary (code 1 the positive class): log loss, F1 and ROC AUC. Else cross-entropy and
        macro F1.
    """

    def __init__(self, binary: bool) -> None:
        self.binary = binary
        #: ``confusion[true][predicted]`` counts, grown to the largest code seen.
        self.confusion: list[list[int]] = []
        #: The running mean of the log loss (River's ``MeanMetric`` state).
        self.loss = Mean()
        #: ROC AUC: positives and negatives by how many ``THRESHOLDS`` their P(positive) is
        #: above (``p > t``: the first ``bisect_left(THRESHOLDS, p)`` of them), 0 to 10.
        self.pos_bins = [0] * (len(THRESHOLDS) + 1)
        self.neg_bins = [0] * (len(THRESHOLDS) + 1)
        #: Records scored, and those predicted right.
        self.scored = 0
        self.right = 0

    def _grow(self, size: int) -> None:
        confusion = self.confusion
        if size <= len(confusion):
            return
        for row in confusion:
            row.extend([0] * (size - len(row)))
        confusion.extend([0] * size for _ in range(size - len(confusion)))

    def update(self, y: int, pred: int, loss: float, p_pos: float = 0.0) -> None:
        """One scored record (``score`` makes the arguments)."""
        top = y if y > pred else pred
        if top >= len(self.confusion):
            self._grow(top + 1)
        self.confusion[y][pred] += 1
        self.loss.update(loss)
        self.scored += 1
        if y == pred:
            self.right += 1
        if self.binary:
            # NaN compares false: below every threshold, as River counts it.
            (self.pos_bins if y == 1 else self.neg_bins)[bisect_left(THRESHOLDS, p_pos)] += 1

    def update_many(
        self,
        y: NDArray[np.int64],
        proba: NDArray[np.float64],
        loss: tuple[float, float] | None = None,
        pred: NDArray[np.int64] | None = None,
    ) -> None:
        """A block of records: class codes ``y`` and probabilities ``proba`` (rows by code).

        The same bits as ``update`` of each row in order. ``loss``: the running mean's
        ``(n, mean)`` after the block when the caller (the compiled kernel) kept it already;
        else the losses are computed and added here, one by one, as ``update`` adds them.
        ``pred``: the classes the model chose (River breaks ties in its dict's order); else
        the first most probable of each row.
        """
        import numpy as np

        rows, width = proba.shape
        if rows == 0:
            return
        y = np.asarray(y, dtype=np.int64)
        if pred is None:
            pred = np.argmax(proba, axis=1) if width else np.zeros(rows, dtype=np.int64)
        p_pos = proba[:, 1] if self.binary and width > 1 else np.zeros(rows)
        if loss is None:
            mean = self.loss
            if self.binary:
                for label, p in zip(y.tolist(), p_pos.tolist(), strict=True):
                    mean.update(binary_loss(label, p))
            else:
                for label, row in zip(y.tolist(), proba.tolist(), strict=True):
                    mean.update(class_loss(label, row))
        else:
            self.loss.n, self.loss._mean = loss
        self.add_counts(y, pred, p_pos)

    def add_counts(
        self, y: NDArray[np.int64], pred: NDArray[np.int64], p_pos: NDArray[np.float64]
    ) -> None:
        """The counts of a block of scored records (its losses are the caller's)."""
        import numpy as np

        rows = len(y)
        if rows == 0:
            return
        size = int(max(int(y.max()), int(pred.max()))) + 1
        self._grow(size)
        size = len(self.confusion)
        counts = np.bincount(y * size + pred, minlength=size * size).reshape(size, size)
        for row, added in zip(self.confusion, counts.tolist(), strict=True):
            for code, count in enumerate(added):
                row[code] += count
        self.scored += rows
        self.right += int(np.count_nonzero(y == pred))
        if self.binary:
            size = len(THRESHOLDS) + 1
            # ``p > t`` for the first k thresholds; NaN above none (searchsorted puts it last).
            bins = np.searchsorted(np.asarray(THRESHOLDS), p_pos, side="left")
            bins[np.isnan(p_pos)] = 0
            positive = y == 1
            pos = np.bincount(bins[positive], minlength=size).tolist()
            neg = np.bincount(bins[~positive], minlength=size).tolist()
            for k in range(size):
                self.pos_bins[k] += pos[k]
                self.neg_bins[k] += neg[k]

    # -- values, as River's ``get`` ------------------------------------------------------------

    def accuracy(self) -> float:
        """River's ``Accuracy``: the share of records predicted right (0.0 before any)."""
        total = self.scored
        return self.right / total if total else 0.0

    def f1(self) -> float:
        """River's ``F1()`` of the positive class (code 1)."""
        if len(self.confusion) < 2:
            return 0.0
        tp = self.confusion[1][1]
        predicted_pos = sum(row[1] for row in self.confusion)
        actual_pos = sum(self.confusion[1])
        precision = tp / predicted_pos if predicted_pos else 0.0
        recall = tp / actual_pos if actual_pos else 0.0
        b2 = 1
        try:
            return (1 + b2) * precision * recall / (b2 * precision + recall)
        except ZeroDivisionError:
            return 0.0

    def macro_f1(self) -> float:
        """River's ``MacroF1()``: F1 per class, averaged over the classes seen (true or predicted).

        Summed in code order; River sums in its set's order, so the last bit may differ.
        """
        confusion = self.confusion
        size = len(confusion)
        rows = [sum(row) for row in confusion]
        cols = [sum(confusion[r][c] for r in range(size)) for c in range(size)]
        classes = [c for c in range(size) if rows[c] or cols[c]]
        b2 = 1
        total = 0.0
        for c in classes:
            p = confusion[c][c] / cols[c] if cols[c] else 0
            r = confusion[c][c] / rows[c] if rows[c] else 0
            try:
                total += (1 + b2) * p * r / (b2 * p + r)
            except ZeroDivisionError:
                continue
        return total / len(classes) if classes else 0.0

    def roc_auc(self) -> float:
        """River's ``ROCAUC()``: the trapezoid under the ROC curve at ``THRESHOLDS``."""
        import numpy as np

        positives, negatives = sum(self.pos_bins), sum(self.neg_bins)
        tprs = [above / positives if positives else 0.0 for above in _above(self.pos_bins)]
        fprs = [above / negatives if negatives else 0.0 for above in _above(self.neg_bins)]
        # ``scipy.integrate.trapezoid(x=fprs, y=tprs)``, operation for operation.
        x, y = np.asarray(fprs, dtype=np.float64), np.asarray(tprs, dtype=np.float64)
        d = x[1:] - x[:-1]
        return float(-np.sum(d * (y[1:] + y[:-1]) / 2.0, dtype=np.float64))

    def values(self) -> dict[str, float | None]:
        """The metrics by name (``BINARY_METRICS`` or ``MULTICLASS_METRICS``); None before any
        record was scored."""
        if not self.scored:
            return dict.fromkeys(BINARY_METRICS if self.binary else MULTICLASS_METRICS)
        if self.binary:
            return {
                "accuracy": self.accuracy(),
                "log_loss": self.loss.get(),
                "f1": self.f1(),
                "roc_auc": self.roc_auc(),
            }
        return {
            "accuracy": self.accuracy(),
            "cross_entropy": self.loss.get(),
            "macro_f1": self.macro_f1(),
        }

    def confusion_counts(self) -> dict[int, dict[int, int]]:
        """``{true code: {predicted code: count}}``, the pairs seen only."""
        return {
            true: {pred: count for pred, count in enumerate(row) if count}
            for true, row in enumerate(self.confusion)
            if any(row)
        }

    def copy(self) -> ClassMetrics:
        """An independent copy (a snapshot the compiled path can put back)."""
        other = ClassMetrics(self.binary)
        other.confusion = [row[:] for row in self.confusion]
        other.loss.n, other.loss._mean = self.loss.n, self.loss._mean
        other.pos_bins, other.neg_bins = self.pos_bins[:], self.neg_bins[:]
        other.scored, other.right = self.scored, self.right
        return other


def _above(bins: list[int]) -> list[int]:
    """Records above each threshold, from the records by thresholds passed (``*_bins``)."""
    above, total = [], 0
    for k in range(len(bins) - 1, 0, -1):  # above threshold i: bins i+1 and up
        total += bins[k]
        above.append(total)
    return above[::-1]


#: The rings of a ``Window``, by array type code.
_RINGS = {"y": "q", "pred": "q", "loss": "d", "p_pos": "d"}


class Window:
    """The last ``size`` scored records, in a ring: the rolling metrics are computed from it
    when read (``metrics``), as ``streamlearn.learner`` does for regression.

    >>> window = Window(2)
    >>> for y, proba in [(1, (0.2, 0.8)), (0, (0.6, 0.4)), (1, (0.7, 0.3))]:
    ...     window.add(*score(y, proba, binary=True))
    >>> window.metrics(binary=True).confusion_counts()
    {0: {0: 1}, 1: {0: 1}}
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("the rolling window must hold at least 1 record")
        self.size = size
        self.y: array[int] = array("q", bytes(8 * size))
        self.pred: array[int] = array("q", bytes(8 * size))
        self.loss: array[float] = array("d", bytes(8 * size))
        self.p_pos: array[float] = array("d", bytes(8 * size))
        #: The slot the next record goes to (the oldest record's once the ring is full).
        self.next = 0
        #: How many records the ring holds (up to ``size``).
        self.len = 0
        #: How many of them were predicted right (kept as they come: the learning curve's).
        self.right = 0

    def add(self, y: int, pred: int, loss: float, p_pos: float = 0.0) -> None:
        slot = self.next
        if self.len == self.size:
            self.right -= self.y[slot] == self.pred[slot]
        self.right += y == pred
        self.y[slot], self.pred[slot], self.loss[slot], self.p_pos[slot] = y, pred, loss, p_pos
        self.next = 0 if slot + 1 == self.size else slot + 1
        if self.len < self.size:
            self.len += 1

    def in_order(self) -> list[int]:
        """The slots, oldest first."""
        if self.len < self.size:
            return list(range(self.len))
        return list(range(self.next, self.size)) + list(range(self.next))

    def metrics(self, binary: bool) -> ClassMetrics:
        """The window's records as a fresh ``ClassMetrics`` (added oldest first)."""
        out = ClassMetrics(binary)
        for slot in self.in_order():
            out.update(self.y[slot], self.pred[slot], self.loss[slot], self.p_pos[slot])
        return out

    def __getstate__(self) -> dict[str, Any]:
        # The rings as far as they are filled (``streamlearn.rings``): a key's learner of a
        # few records is pickled at every spill, without a window of zeros.
        state = self.__dict__.copy()
        for name in _RINGS:
            state[name] = packed(state[name], self.len)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, code in _RINGS.items():
            state[name] = unpacked(state[name], state["size"], code)
        self.__dict__.update(state)

    def copy(self) -> Window:
        other = Window(self.size)
        other.y, other.pred = self.y[:], self.pred[:]
        other.loss, other.p_pos = self.loss[:], self.p_pos[:]
        other.next, other.len, other.right = self.next, self.len, self.right
        return other
