"""Blocks of plain CSV lines learned by ``logistic`` or ``softmax``: the compiled path of a
classifier, with the record path's results to the last bit.

The block is parsed by the compiled CSV parser as for ``sgd`` (``streamlearn.fast.block``);
a target is taken as a class code only when the class space says which code that number is
(``ClassSpace.numeric_codes``: ``1``/``0`` for the binary 1/0 pair, plain integers for
multiclass labels such as ``3``). Every other labeled row (text labels, ``2`` for a binary
model, ``3.0`` for a multiclass one) is marked ``DOUBT`` and judged by the decoder, which
encodes its label through the space as record by record does (third classes, unknown
classes, ``--max-classes``: its dead letters, in stream order).

Then a kernel (``classspec.learn_logistic`` or ``classspec.learn_softmax``, compiled)
predicts, scores the log loss and learns each row in order, and the class counts, the rolling
window and the learning curve of the ``ClassLearner`` are updated a block at a time from its
probabilities (``ClassMetrics.update_many``): the same state ``ClassLearner.step`` leaves
record by record. The kernel also makes the log-loss curve's points of the block, as record by
record makes them (``classspec.loss_point``).
The kernel stops at a row the record path must take (a non-finite margin, a class the model
has not learned yet); the run loop takes the rest of the block record by record.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import NDArray

from streamlearn.fast import classspec, spec
from streamlearn.fast.block import DOUBT, LABELED, BlockReader, Parsed, compiled_kernels
from streamlearn.models.logistic import LogisticRegression
from streamlearn.models.softmax import SoftmaxRegression

if TYPE_CHECKING:
    from streamlearn.classify.learner import ClassLearner, ClassPrequentialState
    from streamlearn.classify.metrics import Window
    from streamlearn.classify.space import ClassSpace

__all__ = [
    "ClassBlockLearner",
    "ClassKernels",
    "ClassSaved",
    "LossCurve",
    "Scored",
    "class_codes",
    "compiled_class_kernels",
    "python_class_kernels",
]

log = logging.getLogger(__name__)

#: The models this path learns.
ClassModel = LogisticRegression | SoftmaxRegression
#: Digits a multiclass integer label may have on this path (its value is then exact).
MAX_DIGITS = 15
#: The binary 1/0 pair's numbers: each is its class code.
_IDENTITY = {0.0: 0, 1.0: 1}


class ClassKernels(NamedTuple):
    """The CSV parser and the two classifiers' kernels, compiled or as their specification."""

    parse: Callable[..., int]
    logistic: Callable[..., int]
    softmax: Callable[..., int]


def python_class_kernels() -> ClassKernels:
    """The kernels as plain Python (slow; for tests and for checking the compiled ones)."""
    return ClassKernels(spec.parse_lines, classspec.learn_logistic, classspec.learn_softmax)


@functools.cache
def compiled_class_kernels() -> ClassKernels | None:
    """The kernels of ``streamlearn.fast._kernels``, or None when the extension was not built."""
    if compiled_kernels() is None:  # it says why, once
        return None
    from streamlearn.fast import _kernels

    return ClassKernels(_kernels.parse_lines, _kernels.learn_logistic, _kernels.learn_softmax)


class Scored(NamedTuple):
    """The learned rows of a block as the metrics take them."""

    y: NDArray[np.int64]  # the class codes
    proba: NDArray[np.float64]  # the probabilities by code
    pred: NDArray[np.int64]  # the class the model chose
    loss: NDArray[np.float64]  # River's log loss or cross-entropy
    p_pos: NDArray[np.float64]  # binary: the positive class's probability (else 0)


@dataclass
class ClassSaved:
    """What ``ClassBlockLearner.learn`` may change, as ``save`` took it."""

    weights: NDArray[np.float64]  # the model's arrays (see ``ClassBlockLearner.weights_of``)
    prequential: ClassPrequentialState  # a snapshot


class ClassBlockLearner(BlockReader):
    """Parses blocks of plain CSV lines and learns them into a ``ClassLearner`` of
    ``logistic`` or ``softmax``.

    Parameters
    ----------
    features
        The feature names, in column order (the target is the last column).
    classes
        The class space of the run (the learner's): which numbers are which class codes.
    kernels
        ``compiled_class_kernels()`` (the default) or ``python_class_kernels()``.

    Examples
    --------
    >>> from streamlearn.classify.learner import ClassLearner
    >>> from streamlearn.classify.space import ClassSpace
    >>> from streamlearn.models.logistic import LogisticRegression
    >>> from streamlearn.records import CsvDecoder
    >>> space = ClassSpace(binary=True)
    >>> model = LogisticRegression(lr=0.5, initial_weights={"a": 0.0})
    >>> learner = ClassLearner(model, space)
    >>> fast = ClassBlockLearner(["a"], space, kernels=python_class_kernels())
    >>> parsed = fast.parse_lines(b"1,1\\n2,0\\n3,\\n", 0, CsvDecoder(["a", "y"], classes=space))
    >>> fast.learn(learner, model, parsed, 0, parsed.rows)
    3
    >>> fast.yhat[:3, 1].round(6).tolist()   # P(1) before learning each row
    [0.5, 0.679179, 0.201471]
    >>> learner.records_learned, learner.summary()["confusion"]
    (2, {'0': {'1': 1}, '1': {'0': 1}})
    """

    def __init__(
        self, features: Sequence[str], classes: ClassSpace, kernels: ClassKernels | None = None
    ) -> None:
        kernels = kernels if kernels is not None else compiled_class_kernels()
        if kernels is None:
            raise RuntimeError("the compiled kernels (streamlearn.fast._kernels) are not built")
        super().__init__(features, kernels.parse)
        self.classes = classes
        self.kernels = kernels
        #: The probabilities by class code of each row the last ``learn`` handled.
        self.yhat: NDArray[np.float64] = np.empty((0, 0))

    def _doubt(self, parsed: Parsed) -> None:
        class_codes(self.classes, parsed)

    # -- learning ------------------------------------------------------------------------

    def weights_of(self, model: ClassModel) -> NDArray[np.float64]:
        """The model's weights as the kernel reads them: per class (logistic: one row) the
        weights in column order, then the intercept."""
        names = self.features
        if isinstance(model, LogisticRegression):
            weights = model.weights
            return np.array([*(weights[name] for name in names), model.intercept])
        rows = [
            [*(model.weights[c][name] for name in names), model.intercepts[c]]
            for c in model.classes
        ]
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(names) + 1)

    def put_weights(self, model: ClassModel, weights: NDArray[np.float64]) -> None:
        """Write ``weights`` (as ``weights_of`` makes them) back into the model."""
        names = self.features
        if isinstance(model, LogisticRegression):
            values = weights.tolist()
            model.intercept = values[-1]
            model_weights = model.weights
            for name, weight in zip(names, values, strict=False):
                model_weights[name] = weight
            return
        for c, row in zip(model.classes, weights.tolist(), strict=True):
            class_weights = model.weights[c]
            for name, weight in zip(names, row, strict=False):
                class_weights[name] = weight
            model.intercepts[c] = row[-1]

    def learn(
        self, learner: ClassLearner, model: ClassModel, parsed: Parsed, start: int, stop: int
    ) -> int:
        """Learn rows ``start..stop`` into ``learner`` and ``model``; returns where it stopped.

        That is ``stop`` (at most ``parsed.stop``), or the first row the record path must
        take (not learned). ``yhat`` holds the probabilities of every row handled. The
        model must hold a weight for every feature (as it does after its first record).
        """
        stop = max(start, min(stop, parsed.stop))
        rows = parsed.rows
        weights = self.weights_of(model)
        metrics = learner.metrics
        state = np.array([metrics.loss.n, metrics.loss.get()], dtype=np.float64)
        loss = np.empty(rows)
        curve = LossCurve.of(learner, stop - start)
        if isinstance(model, LogisticRegression):
            p = np.empty(rows)
            done = self.kernels.logistic(
                parsed.values, parsed.status, start, stop, weights, model.lr, state, p, loss,
                *curve,
            )  # fmt: skip
            proba = np.empty((rows, 2))
            proba[start:done, 1] = p[start:done]
            proba[start:done, 0] = 1.0 - p[start:done]
            to_code = np.arange(2)
        else:
            done, proba, to_code = self._learn_softmax(
                model, parsed, start, stop, weights, state, loss, curve
            )
        self.put_weights(model, weights)
        self.yhat = proba
        scored = np.flatnonzero(parsed.status[start:done] == LABELED) + start
        if scored.size:
            given = proba[scored]
            # River's choice: the first largest probability in the model's class order.
            if self.classes.binary:
                p_pos = given[:, 1]
                pred = (p_pos > given[:, 0]).astype(np.int64)  # {False: 1 - p, True: p}
            else:
                p_pos = np.zeros(len(scored))
                pred = to_code[np.argmax(given[:, to_code], axis=1)]
            y = parsed.values[scored, -1].astype(np.int64)
            mean = (float(state[0]), float(state[1]))
            self.score_learned(
                learner, Scored(y, given, pred, loss[scored], p_pos), mean, curve.made()
            )
        return done

    def _learn_softmax(
        self,
        model: SoftmaxRegression,
        parsed: Parsed,
        start: int,
        stop: int,
        weights: NDArray[np.float64],
        state: NDArray[np.float64],
        loss: NDArray[np.float64],
        curve: LossCurve,
    ) -> tuple[int, NDArray[np.float64], NDArray[np.int64]]:
        """The softmax kernel over the block; the probabilities by code, and each model
        class's code."""
        space = self.classes
        index = {label: i for i, label in enumerate(model.classes)}
        # The model's index of each code's class (-1: the model has not learned it yet).
        of_code = np.array([index.get(label, -1) for label in space.labels] + [-1])
        codes = parsed.values[:, -1]
        classes = np.full(parsed.rows, -1, dtype=np.int64)
        labeled = np.flatnonzero(parsed.status == LABELED)
        classes[labeled] = of_code[codes[labeled].astype(np.int64)]
        to_code = np.array([_code(space, c) for c in model.classes], dtype=np.int64)
        if (to_code < 0).any():
            return start, np.empty((parsed.rows, len(space))), to_code  # record by record
        p = np.empty((parsed.rows, len(model.classes)))
        done = self.kernels.softmax(
            parsed.values, parsed.status, classes, start, stop, weights, model.lr, state, p, loss,
            *curve,
        )  # fmt: skip
        proba = np.zeros((parsed.rows, len(space)))
        proba[start:done, to_code] = p[start:done]
        return done, proba, to_code

    def score(self, learner: ClassLearner, scored: Scored) -> None:
        """Score rows a model predicted and learned elsewhere (a River model, row by row), as
        ``ClassLearner.step`` scores them: their losses join the running mean in order."""
        if not len(scored.y):
            return
        mean = learner.metrics.loss
        for value in scored.loss.tolist():
            mean.update(value)
        self.score_learned(learner, scored, (mean.n, mean.get()))

    def score_learned(
        self,
        learner: ClassLearner,
        scored: Scored,
        mean: tuple[float, float],
        loss_points: list[list[float]] | None = None,
    ) -> None:
        """The class metrics, window, curve and count of the learned rows; ``mean`` is the
        running mean of the loss after them, as ``(n, mean)``; ``loss_points``: the loss
        curve's points as the kernel made them (None: from the losses, in the last bits
        not record by record's)."""
        start = learner.loss_mark() if loss_points is None else None
        y, pred = scored.y, scored.pred
        metrics = learner.metrics
        correct0 = metrics.right
        counts = (learner.records_learned, metrics.scored, learner.window.len)
        metrics.update_many(y, scored.proba, loss=mean, pred=pred)
        right = _fill_window(learner.window, scored)
        correct = np.cumsum(y == pred) + correct0
        _add_curve_points(learner, counts, correct, right)
        if start is not None:
            learner.add_loss_points(start, scored.loss)
        else:
            learner.loss_curve.add_many(loss_points or [])
        learner.records_learned = counts[0] + len(y)
        if learner.feature_names is not None:
            learner.feature_names.update(self.features)

    # -- saving and restoring (a monitor changed the model halfway through a block) --------

    def save(self, learner: ClassLearner, model: ClassModel) -> ClassSaved:
        """Everything ``learn`` may change, to ``restore`` it."""
        return ClassSaved(self.weights_of(model), learner.export_prequential(copy=True))

    def restore(self, learner: ClassLearner, model: ClassModel, saved: ClassSaved) -> None:
        """Put back what ``save`` took."""
        self.put_weights(model, saved.weights)
        learner.import_prequential(saved.prequential)


class LossCurve(NamedTuple):
    """The kernels' ``ring``, ``curve`` and ``points`` (``classspec.loss_point``): the log-loss
    curve's points made where record by record makes them, in the same operations."""

    ring: NDArray[np.float64]
    curve: NDArray[np.int64]
    points: NDArray[np.float64]

    @classmethod
    def of(cls, learner: ClassLearner, rows: int) -> LossCurve:
        """For a block of up to ``rows`` learned rows into ``learner``."""
        window, stride = learner.window, learner.loss_curve.stride
        curve = [learner.records_learned, stride, window.next, window.len, 0, 0]
        points = np.empty((max(rows, 0) // stride + 1, 3))
        ring = np.empty(2 * window.size)
        ring[: window.size] = window.loss  # then the partial sums, none taken yet
        return cls(ring, np.array(curve, np.int64), points)

    def made(self) -> list[list[float]]:
        points: list[list[float]] = self.points[: self.curve[classspec.CURVE_POINTS]].tolist()
        return points


def class_codes(classes: ClassSpace, parsed: Parsed) -> None:
    """Turn the targets the parser read into class codes, or mark their rows DOUBT: the
    decoder judges them (``ClassSpace.numeric_codes`` says which number is which code)."""
    status, values = parsed.status, parsed.values
    labeled = np.flatnonzero(status == LABELED)
    if not labeled.size:
        return
    table = classes.numeric_codes()
    if not table:
        status[labeled] = DOUBT
        return
    targets = values[labeled, -1]
    if table == _IDENTITY:  # the binary 1/0 pair: the number is the code
        status[labeled[(targets != 0.0) & (targets != 1.0)]] = DOUBT
        return
    keys = np.array(sorted(table), dtype=np.float64)
    where = np.minimum(np.searchsorted(keys, targets), len(keys) - 1)
    known = keys[where] == targets
    if not classes.binary:
        known &= _plain_integers(parsed, labeled)
    status[labeled[~known]] = DOUBT
    codes = np.array([table[key] for key in keys.tolist()], dtype=np.float64)
    values[labeled[known], -1] = codes[where[known]]


def _code(space: ClassSpace, model_label: Hashable) -> int:
    code = space.code_of(model_label)
    return -1 if code is None else code


def _plain_integers(parsed: Parsed, rows: NDArray[np.intp]) -> NDArray[np.bool_]:
    """Whether the target of each row is written as a plain integer (``3``, ``-12``; not
    ``3.0``, ``03``, ``+3``, ``-0``): the text of the multiclass label it is."""
    text = np.frombuffer(parsed.data, dtype=np.uint8)
    ends = parsed.starts[rows + 1]  # where each line ends, its newline included
    ends = ends - (text[ends - 1] == 10)  # the last line of a block may have none
    ends = ends - (text[ends - 1] == 13)  # CRLF: the CR is not the label's
    width = MAX_DIGITS + 2  # the digits, a sign, the comma
    back = ends[:, None] - np.arange(1, width + 1)[None, :]  # the bytes before the end
    window = np.where(back >= 0, text[np.maximum(back, 0)], 10)
    digit = (window >= 48) & (window <= 57)
    # The label is the run of digits before the end, after an optional minus, after a comma.
    run = np.argmin(digit, axis=1)  # digits before the first non-digit from the end
    ok: NDArray[np.bool_] = (run >= 1) & (run <= MAX_DIGITS)
    at = np.arange(len(rows))
    sign = window[at, np.minimum(run, width - 1)] == 45
    before = window[at, np.minimum(run + sign, width - 1)]
    ok &= (before == 44) | ((before == 10) & (parsed.values.shape[1] == 1))
    first = window[at, np.maximum(run - 1, 0)]  # the label's first digit
    ok &= (first != 48) | ((run == 1) & ~sign)
    return ok


def _fill_window(window: Window, scored: Scored) -> NDArray[np.int64]:
    """``window.add`` of each record in order; returns ``window.right`` after each."""
    y, pred = scored.y, scored.pred
    size, count = window.size, len(y)
    slot0, len0, right0 = window.next, window.len, window.right
    ring_y = np.frombuffer(window.y, dtype=np.int64)
    ring_pred = np.frombuffer(window.pred, dtype=np.int64)
    new = (y == pred).astype(np.int64)
    # What each added record pushes out of a full ring: a record of the ring as it was, or
    # (in a block longer than the ring) one added ``size`` records before it.
    j = np.arange(count)
    slots = (slot0 + j) % size
    pushed = (ring_y[slots] == ring_pred[slots]).astype(np.int64)
    pushed[size:] = new[: max(0, count - size)]
    pushed[len0 + j < size] = 0  # the ring was not full yet: nothing pushed out
    right = right0 + np.cumsum(new - pushed)
    keep = slice(max(0, count - size), count)
    for ring, values in (
        (ring_y, y),
        (ring_pred, pred),
        (np.frombuffer(window.loss), scored.loss),
        (np.frombuffer(window.p_pos), scored.p_pos),
    ):
        ring[slots[keep]] = values[keep]
    window.next = int(slot0 + count) % size
    window.len = min(size, len0 + count)
    window.right = int(right[-1])
    return right


def _add_curve_points(
    learner: ClassLearner,
    counts: tuple[int, int, int],
    correct: NDArray[np.int64],
    right: NDArray[np.int64],
) -> None:
    """The learning curve's points of the block, as ``ClassLearner._remember`` adds them.

    ``counts``: records learned, records scored and the window's length before the block;
    ``correct`` and ``right``: the records predicted right so far and in the window, after
    each record of the block. The points at multiples of the curve's stride go to
    ``Curve.add_many``, which thins the curve where ``add`` would (the ratios of integers
    below 2**53 are the same doubles in numpy as in Python).
    """
    learned0, scored0, len0 = counts
    curve, size = learner.curve, learner.window.size
    stride = curve.stride
    at = np.arange((learned0 // stride + 1) * stride, learned0 + len(correct) + 1, stride)
    if not at.size:
        return
    i = at - learned0 - 1  # the block's record that made each count
    rolling = right[i] / np.minimum(size, len0 + i + 1)
    cumulative = correct[i] / (scored0 + i + 1)
    curve.add_many(np.column_stack([at, rolling, cumulative]).tolist())
