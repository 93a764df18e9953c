"""Blocks of plain CSV lines parsed and learned by the compiled kernels, for ``sgd``.

The plain layout (features then the target, no id column) learned by ``sgd`` takes
this path: a block of whole lines is parsed by one kernel (``parse_lines``) and
learned, record by record, by another (``learn_rows``), with the arithmetic of
``Learner.step``, operation for operation, so the results are the record path's to
the last bit. Lines the parser doubts are judged by the decoder itself
(``CsvDecoder.decode``), so bad rows reach the dead letters in stream order with the
same reasons. The kernels and their Python specification: ``streamlearn.fast.spec``.

The state stays where the record path keeps it: the weights in the ``SGDRegressor``,
the prequential state in the ``Learner``. :class:`BlockLearner` loads both into arrays
before a block (``Learner.export_prequential``; the window's buffers are shared, not
copied) and gives them back after (``Learner.import_prequential``); the run loop
checkpoints only between blocks, at a line boundary with its byte offset.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from streamlearn.fast import spec
from streamlearn.fast.spec import (
    ABS_SUM,
    DOUBT,
    INTERCEPT,
    LABELED,
    LEARNED,
    LENGTH,
    N_COUNTERS,
    NOTHING,
    POINTS,
    REJECTED,
    ROOM,
    SLOT,
    STOPPED,
    STRIDE,
    UNLABELED,
)
from streamlearn.interfaces import Block, LinearModel, LocatedBlock
from streamlearn.learner import Learner, PrequentialState
from streamlearn.records import Decoded, Record
from streamlearn.sources.base import Raw

__all__ = [
    "DOUBT",
    "LABELED",
    "NOTHING",
    "REJECTED",
    "UNLABELED",
    "BlockLearner",
    "BlockReader",
    "Kernels",
    "LineDecoder",
    "LinearModel",
    "Parsed",
    "Saved",
    "compiled_kernels",
    "locator",
    "python_kernels",
]

log = logging.getLogger(__name__)


#: The parser and the learner, compiled (``compiled_kernels``) or as Python (``python_kernels``):
#: ``spec.parse_lines`` and ``spec.learn_rows`` or their C renderings, of the same signatures.
Kernels = tuple[Callable[..., int], Callable[..., int]]


def python_kernels() -> Kernels:
    """The kernels as plain Python (slow; for tests and for checking the compiled ones)."""
    return spec.parse_lines, spec.learn_rows


@functools.cache
def compiled_kernels() -> Kernels | None:
    """The kernels of ``streamlearn.fast._kernels``, or None when the extension was not built."""
    try:
        from streamlearn.fast import _kernels
    except ImportError as exc:
        log.warning(
            "the compiled kernels are missing (%s): plain CSV + sgd takes the per-record "
            "path, same results, about 10x slower; reinstall with a C compiler to build them",
            exc,
        )
        return None
    return _kernels.parse_lines, _kernels.learn_rows


@dataclass
class Parsed:
    """A block parsed: numbers, row kinds, line boundaries and the rows the decoder judged."""

    values: NDArray[np.float64]  # (rows, features + 1); the last column is the target
    status: NDArray[np.int8]  # row kinds (LABELED ... NOTHING)
    starts: NDArray[np.int64]  # byte offset of each line in the block, and the end
    data: bytes
    offset: int  # file offset of the block's first byte
    judged: dict[int, Decoded]  # row -> the decoder's verdict, for DOUBT rows
    # row -> its Raw, for blocks whose rows are not file lines (a Kafka block's messages)
    locate: Callable[[int], Raw] | None = None
    # The first row the kernels must not learn (-1: none): a header row of other columns
    # (CSV), a record of other features (JSON). The rows from there go record by record.
    stop: int = -1

    def __post_init__(self) -> None:
        if self.stop < 0:
            self.stop = self.rows

    @property
    def rows(self) -> int:
        return int(self.status.shape[0])

    def raw(self, row: int) -> Raw:
        """The line of ``row`` as the per-line path sees it (newline included)."""
        if self.locate is not None:
            return self.locate(row)
        start, end = int(self.starts[row]), int(self.starts[row + 1])
        return Raw(self.data[start:end], self.offset + start)

    def x(self, row: int, features: Sequence[str]) -> dict[str, float]:
        """The features of ``row`` as the record dict the per-line decoder makes."""
        return dict(zip(features, self.values[row, :-1].tolist(), strict=True))

    def abs_errors(self, yhat: NDArray[np.float64], rows: NDArray[np.bool_]) -> NDArray[np.float64]:
        """``|y - yhat|`` of the rows selected by the mask ``rows`` (same floats as Python's)."""
        errors: NDArray[np.float64]
        if rows.all():  # the common block: every row labeled
            count = rows.shape[0]
            errors = np.abs(self.values[:count, -1] - yhat[:count])
        else:
            selected = np.flatnonzero(rows)
            errors = np.abs(self.values[selected, -1] - yhat[selected])
        return errors


@dataclass
class _Arrays:
    """A learner's prequential state and its sgd model as ``learn_rows`` reads and writes them."""

    weights: NDArray[np.float64]
    state: NDArray[np.float64]
    counters: NDArray[np.int64]
    ring_y: NDArray[np.float64]  # views of the learner's window buffers (no copy)
    ring_yhat: NDArray[np.float64]
    prequential: PrequentialState  # the export the arrays were loaded from


@dataclass
class Saved:
    """What ``BlockLearner.learn`` may change, as ``BlockLearner.save`` took it."""

    intercept: float
    weights: list[float]
    prequential: PrequentialState  # a snapshot (copies of the window and the curve)


class LineDecoder(Protocol):
    """What a block learner asks of the decoder: its verdict on a line the parser doubts.

    ``changes_schema`` first: a header row of other columns ends what the block's layout
    can say (``Parsed.stop``); it is decoded, in order, with the rows after it.
    """

    def changes_schema(self, raw: Raw) -> bool: ...

    def decode(self, raw: Raw) -> Decoded: ...


def locator(block: Block) -> Callable[[int], Raw] | None:
    """The block's own placing of rows (a Kafka fetch's ``locate``), or None for a file's
    lines (placed by their offset)."""
    return block.locate if isinstance(block, LocatedBlock) else None


class BlockReader:
    """Parses blocks of plain CSV lines: the compiled parser, then the decoder's verdict on
    each line the parser doubts. The block learners are block readers.

    Parameters
    ----------
    features
        The feature names, in column order (the target is the last column).
    parse
        ``spec.parse_lines`` or its compiled rendering.
    """

    def __init__(self, features: Sequence[str], parse: Callable[..., int]) -> None:
        self.features = list(features)
        self._parse = parse

    def _doubt(self, parsed: Parsed) -> None:
        """Mark ``DOUBT`` the parsed rows the learner cannot take as they are (a hook: a
        classifier's target that is no class code); they are judged with the others."""

    def parse(self, block: Block, decoder: LineDecoder) -> Parsed:
        """Parse a block of whole lines; ``decoder`` judges the lines the parser doubts."""
        return self.parse_lines(block.data, block.offset, decoder, block.lines, locator(block))

    def parse_lines(
        self,
        data: bytes,
        offset: int,
        decoder: LineDecoder,
        lines: int | None = None,
        locate: Callable[[int], Raw] | None = None,
    ) -> Parsed:
        """Parse ``lines`` whole lines of ``data`` (counted when None).

        ``locate(row)``, when given, is the ``Raw`` of a row (the decoder, dead letters and
        predictions see it) instead of the file line at ``offset``.
        """
        if lines is None:
            lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        n_fields = len(self.features) + 1
        values = np.empty((lines, n_fields))
        status = np.empty(lines, dtype=np.int8)
        starts = np.empty(lines + 1, dtype=np.int64)
        rows = self._parse(data, n_fields, values, status, starts)
        assert rows == lines, (rows, lines)
        parsed = Parsed(values, status, starts, data, offset, {}, locate)
        self._doubt(parsed)
        for row in np.flatnonzero(status == DOUBT).tolist():
            if decoder.changes_schema(parsed.raw(row)):
                # A header row of other columns: the lines after it are not this layout's.
                # It is decoded (the mapping switched) with them, after the rows before it.
                parsed.stop = row
                break
            parsed.judged[row] = self._judge(parsed, row, decoder)
        return parsed

    def _judge(self, parsed: Parsed, row: int, decoder: LineDecoder) -> Decoded:
        item = decoder.decode(parsed.raw(row))
        if item is None:
            parsed.status[row] = NOTHING
        elif type(item) is Record:
            # A row the parser could not read exactly (e.g. 17-digit numbers, spaces):
            # the decoder's float() values go to the kernel like any other row.
            parsed.values[row, :-1] = [item.x[name] for name in self.features]
            parsed.values[row, -1] = math.nan if item.y is None else item.y
            parsed.status[row] = UNLABELED if item.y is None else LABELED
        else:  # Rejected (a Label needs an id column, which the plain layout has not)
            parsed.status[row] = REJECTED
        return item


class BlockLearner(BlockReader):
    """Parses blocks of plain CSV lines and learns them into a ``Learner`` of ``sgd``.

    Parameters
    ----------
    features
        The feature names, in column order (the target is the last column).
    kernels
        ``compiled_kernels()`` (the default) or ``python_kernels()``.

    Examples
    --------
    >>> from streamlearn.learner import Learner
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> from streamlearn.records import CsvDecoder
    >>> learner = Learner(SGDRegressor(lr=0.1, initial_weights={"a": 0.0}))
    >>> fast = BlockLearner(["a"], kernels=python_kernels())
    >>> parsed = fast.parse_lines(b"a,y\\n1,2\\n2,\\n", 0, CsvDecoder(["a", "y"]))
    >>> parsed.status.tolist()
    [4, 0, 1]
    >>> fast.learn(learner, learner.model, parsed, 0, parsed.rows)
    3
    >>> learner.model.weights, learner.model.intercept, fast.yhat.tolist()[1:]
    ({'a': 0.2}, 0.2, [0.0, 0.6000000000000001])
    >>> learner.summary()["mae"]
    2.0
    """

    def __init__(self, features: Sequence[str], kernels: Kernels | None = None) -> None:
        kernels = kernels if kernels is not None else compiled_kernels()
        if kernels is None:
            raise RuntimeError("the compiled kernels (streamlearn.fast._kernels) are not built")
        super().__init__(features, kernels[0])
        self._learn = kernels[1]
        self.yhat: NDArray[np.float64] = np.empty(0)

    # -- learning --------------------------------------------------------------

    def learn(
        self, learner: Learner, model: LinearModel, parsed: Parsed, start: int, stop: int
    ) -> int:
        """Learn rows ``start..stop`` into ``learner`` and ``model``; returns where it stopped.

        That is ``stop`` (at most ``parsed.stop``), or the first row whose prediction the
        run loop must treat as divergence (not learned). Predictions of every row handled
        are in ``self.yhat``. The model must hold a weight for every feature (as it does after
        its first record): a missing weight is skipped by ``predict_one``, which a
        vector cannot mirror.
        """
        stop = max(start, min(stop, parsed.stop))
        if self.yhat.shape[0] < parsed.rows:
            self.yhat = np.empty(parsed.rows)
        arrays = self.load(learner, model)
        curve = arrays.prequential.curve
        curve_out = np.empty((stop - start + 1, 3))
        row = start
        while True:
            arrays.counters[STRIDE] = curve.stride
            arrays.counters[ROOM] = curve.room
            row = self._learn(
                parsed.values,
                parsed.status,
                row,
                stop,
                arrays.weights,
                model.lr,
                2.0,
                arrays.state,
                arrays.counters,
                arrays.ring_y,
                arrays.ring_yhat,
                self.yhat,
                curve_out,
            )
            curve.add_many(curve_out[: arrays.counters[POINTS]].tolist())
            if row >= stop or arrays.counters[STOPPED]:
                break
        self.store(arrays, learner, model)
        return row

    def load(self, learner: Learner, model: LinearModel) -> _Arrays:
        """The state of ``learner`` and its sgd ``model`` as arrays (the ring is shared)."""
        prequential = learner.export_prequential()
        state = np.array(
            [model.intercept, *prequential.metrics, prequential.abs_sum], dtype=np.float64
        )
        counters = np.zeros(N_COUNTERS, dtype=np.int64)
        counters[LEARNED] = prequential.records_learned
        counters[SLOT] = prequential.window_next
        counters[LENGTH] = prequential.window_len
        counters[STRIDE] = 1
        weights = np.array([model.weights[name] for name in self.features], dtype=np.float64)
        ring_y = np.frombuffer(prequential.window_y, dtype=np.float64)
        ring_yhat = np.frombuffer(prequential.window_yhat, dtype=np.float64)
        return _Arrays(weights, state, counters, ring_y, ring_yhat, prequential)

    def store(self, arrays: _Arrays, learner: Learner, model: LinearModel) -> None:
        """Write ``arrays`` back into ``learner`` and ``model``."""
        counters = arrays.counters.tolist()
        prequential = arrays.prequential
        if counters[LEARNED] == prequential.records_learned:
            return  # nothing learned: the objects already hold this state (types included)
        state = arrays.state.tolist()
        model.intercept = state[INTERCEPT]
        model_weights = model.weights
        for name, weight in zip(self.features, arrays.weights.tolist(), strict=True):
            model_weights[name] = weight
        prequential.metrics = state[INTERCEPT + 1 : ABS_SUM]
        prequential.abs_sum = state[ABS_SUM]
        prequential.records_learned = counters[LEARNED]
        prequential.window_next = counters[SLOT]
        prequential.window_len = counters[LENGTH]
        learner.import_prequential(prequential)

    def save(self, learner: Learner, model: LinearModel) -> Saved:
        """Everything ``learn`` may change, to ``restore`` it (a monitor swapped the model)."""
        return Saved(
            float(model.intercept),
            [float(model.weights[name]) for name in self.features],
            learner.export_prequential(copy=True),
        )

    def restore(self, learner: Learner, model: LinearModel, saved: Saved) -> None:
        """Put back what ``save`` took (the window's buffers are refilled in place)."""
        model.intercept = saved.intercept
        model_weights = model.weights
        for name, weight in zip(self.features, saved.weights, strict=True):
            model_weights[name] = weight
        learner.import_prequential(saved.prequential)

    # -- scoring predictions made elsewhere -------------------------------------------

    def score(self, learner: Learner, parsed: Parsed, yhat: NDArray[np.float64], done: int) -> None:
        """Score the predictions ``yhat`` of the labeled rows before ``done`` (made by any model).

        River's MAE, RMSE and R2, the rolling window and the learning curve end as
        ``Learner.step`` leaves them record by record (``learner.records_learned`` too):
        ``learn_rows`` runs on (prediction, target) pairs with a stand-in linear model
        that predicts its one input (weight 1, intercept 0, learning rate 0).

        >>> from streamlearn.learner import Learner
        >>> learner = Learner(model=None)
        >>> fast = BlockLearner(["a"], kernels=python_kernels())
        >>> parsed = fast.parse_lines(b"7,2\\n1,\\n9,4\\n", 0, decoder=None)
        >>> fast.score(learner, parsed, np.array([1.5, 0.0, 5.0]), 3)
        >>> learner.records_learned, learner.summary()["mae"], learner.recent_yhat
        (2, 0.75, [1.5, 5.0])
        """
        rows = np.flatnonzero(parsed.status[:done] == LABELED)
        count = len(rows)
        if not count:
            return
        pairs = np.column_stack((yhat[rows], parsed.values[rows, -1]))
        given = Parsed(
            pairs,
            np.full(count, LABELED, dtype=np.int8),
            np.zeros(count + 1, dtype=np.int64),
            b"",
            0,
            {},
        )
        BlockLearner(["yhat"], (self._parse, self._learn)).learn(
            learner, _GivenPrediction(), given, 0, count
        )
        # 0.0 + 1.0 * yhat is yhat, but for -0.0, which would enter the window as 0.0 (the
        # same scores, other bits): the newest pairs' predictions go into the ring as given.
        prequential = learner.export_prequential()
        size = len(prequential.window_yhat)
        kept = min(count, size)
        slots = (prequential.window_next - kept + np.arange(kept)) % size
        np.frombuffer(prequential.window_yhat, dtype=np.float64)[slots] = pairs[-kept:, 0]


class _GivenPrediction:
    """The sgd model ``BlockLearner.score`` lends ``learn_rows``: its prediction is its input."""

    lr = 0.0  # the kernel's step is then 0: weight and intercept stay as they are

    def __init__(self) -> None:
        self.intercept = 0.0
        self.weights: dict[Hashable, float] = {"yhat": 1.0}
