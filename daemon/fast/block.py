"""The compiled fast path: blocks of plain CSV lines learned by the ``sgd`` model.

The common case (a CSV in the plain layout, features then the target and no id
column, learned by ``sgd``) used to spend its time on Python overhead: a ``Raw``,
a list and a dict per line and a dozen method calls per record. Here a block of
lines (at most ``service.BLOCK_LINES``, never past a due checkpoint) is parsed by
one compiled function and learned by another, record by record, with the
arithmetic of the per-record path, operation for operation, so the results are
the same to the last bit:

- :func:`parse_lines` reads plain decimal numbers (sign, digits, point, exponent) to
  the double ``float()`` gives: with at most 17 significant digits whose value fits in
  2**53 and a decimal exponent within +-22, one correctly rounded multiplication or
  division (Clinger's fast path); otherwise (the 17 digits of a float's repr, ``1e300``)
  a correctly rounded conversion of the text, as ``float()``'s is (``strtod`` in the C
  kernel). Any other line (quotes, blanks, ``NaN``, ``1e999``, a wrong field count, the
  header) is marked ``DOUBT`` and decoded by the per-line ``CsvDecoder.decode``, so bad
  rows reach the dead letters in stream order with the same reasons.
- :func:`learn_rows` runs, per record: the prediction and the seed's update
  (``SGDRegressor.predict_learn_one``); the updates of River's ``MAE``, ``RMSE``
  and ``R2`` (``stats.Mean.update`` and ``stats.Var.update`` formula by formula,
  ``** 2`` through the C library's ``pow`` as CPython computes it); the rolling
  window and the learning curve (``Learner._remember``). An unlabeled row gets
  the prediction of the model as it is at that row. A prediction the divergence
  guard must see (NaN, inf, beyond ``learner.DIVERGED``) stops the kernel there:
  the run loop takes the rest of the block record by record.

The state stays where it lives on the per-record path: the weights in the
``SGDRegressor``, the metrics in River's objects, the window in the learner's
ring (shared with the kernel without a copy). :class:`BlockLearner` loads it
into arrays before a block and writes it back after, and the run loop
checkpoints only between blocks, at a line boundary with its byte offset.

Both kernels are written here in plain Python, the specification; the daemon runs
their line-for-line C rendering in ``streamlearn.fast._kernels`` (``daemon/fast/_kernels.c``,
built by pip). The tests run both on the same blocks and compare every bit, and the
Python ones against the numpy oracle too. Without the extension (a source tree never
built) the daemon takes the per-record path, with the same results.

Why C and not numba, which compiled these same functions before: a process paid about
1 s to load numba's cached kernels (numba's import, its typing registries, scipy.linalg
for a BLAS check) and 110 MiB, more than learning a million rows takes; the extension
loads in about a millisecond and runs as fast.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from streamlearn import metrics
from streamlearn.learner import DIVERGED, Learner, PrequentialState
from streamlearn.records import Decoded, Record
from streamlearn.sources.base import Raw

log = logging.getLogger(__name__)

#: Row kinds in ``Parsed.status``; the kernel learns LABELED rows and predicts UNLABELED ones.
LABELED = 0
UNLABELED = 1
DOUBT = 2  # not read by the parser: ``CsvDecoder.decode`` decides (then one of the others)
REJECTED = 3  # a dead letter (counted as seen)
NOTHING = 4  # a header or blank line (not a record)

#: Exact powers of ten (10**22 is the largest exactly representable in a double).
_POW10 = [float(10**k) for k in range(23)]
_MAX_MANTISSA = 2**53
#: Longer numbers are left to the decoder.
_MAX_TOKEN = 64

# ``learn_rows`` state vector: the model's intercept, the metrics' fields in the layout
# ``metrics.FIELDS`` defines, and ``PrequentialState.abs_sum``.
INTERCEPT = 0
MAE_N, MAE_MEAN, MSE_N, MSE_MEAN, VAR_N, VAR_MEAN, VAR_S, RSS = (
    INTERCEPT + 1 + metrics.FIELDS.index(name)
    for name in (
        "mae.n",
        "mae.mean",
        "rmse.n",
        "rmse.mean",
        "r2.var_n",
        "r2.var_mean",
        "r2.var_s",
        "r2.rss",
    )
)
ABS_SUM = INTERCEPT + 1 + len(metrics.FIELDS)
N_STATE = ABS_SUM + 1
# ``learn_rows`` counters: in and out (records learned, ring slot and length, curve
# stride and room left before it thins), out (curve points written, 1 if it stopped at
# a prediction the divergence guard must see).
LEARNED, SLOT, LENGTH, STRIDE, ROOM, POINTS, STOPPED = range(7)
N_COUNTERS = STOPPED + 1


def parse_lines(
    data: np.ndarray,
    n_fields: int,
    values: np.ndarray,
    status: np.ndarray,
    starts: np.ndarray,
) -> int:
    """Parse complete CSV lines of numbers; returns how many lines were read.

    ``data`` holds whole lines (``bytes``), each ending in a newline. Row ``i`` spans
    ``data[starts[i]:starts[i + 1]]``; its numbers go to ``values[i]`` (the target,
    the last field, is NaN when empty) and its kind to ``status[i]``: ``LABELED``,
    ``UNLABELED`` (an empty last field) or ``DOUBT``.
    """
    size = len(data)
    rows = len(status)
    last = n_fields - 1
    row = 0
    pos = 0
    while pos < size and row < rows:
        starts[row] = pos
        kind = LABELED
        field = 0
        value = 0.0
        while True:
            c = data[pos] if pos < size else 10
            if field == last and (c == 10 or (c == 13 and pos + 1 < size and data[pos + 1] == 10)):
                kind = UNLABELED  # an empty target
                values[row, field] = math.nan
                break
            negative = c == 45  # '-'
            if negative or c == 43:  # '+'
                pos += 1
            # Digits: leading zeros are skipped first, so the digit loops carry no branch
            # but the end test. More than 17 significant digits may overflow the int64
            # mantissa; such a number is not exact here anyway and goes to the decoder.
            begin = pos
            while pos < size and data[pos] == 48:
                pos += 1
            first = pos
            mantissa = 0
            while pos < size and 48 <= data[pos] <= 57:
                mantissa = mantissa * 10 + (data[pos] - 48)
                pos += 1
            digits = pos - first  # significant digits so far
            seen = pos > begin
            exponent = 0
            if pos < size and data[pos] == 46:  # '.'
                pos += 1
                fraction = pos
                if digits == 0:  # 0.000123: zeros after the point are not significant either
                    while pos < size and data[pos] == 48:
                        pos += 1
                first = pos
                while pos < size and 48 <= data[pos] <= 57:
                    mantissa = mantissa * 10 + (data[pos] - 48)
                    pos += 1
                digits += pos - first
                exponent = fraction - pos
                seen = seen or pos > fraction
            exact = seen and digits <= 17 and mantissa <= _MAX_MANTISSA
            valid = seen  # the number float() reads: digits, and an exponent's digits
            if pos < size and (data[pos] == 101 or data[pos] == 69):  # 'e' or 'E'
                pos += 1
                exponent_negative = False
                if pos < size and (data[pos] == 45 or data[pos] == 43):
                    exponent_negative = data[pos] == 45
                    pos += 1
                power = 0
                power_digits = 0
                while pos < size:
                    c = data[pos]
                    if c < 48 or c > 57:
                        break
                    power = power * 10 + (c - 48)
                    power_digits += 1
                    pos += 1
                exact = exact and 0 < power_digits <= 4
                valid = valid and power_digits > 0
                exponent += -power if exponent_negative else power
            if exact and mantissa == 0:
                value = 0.0
            elif exact and 0 <= exponent <= 22:
                value = float(mantissa) * _POW10[exponent]
            elif exact and -22 <= exponent < 0:
                value = float(mantissa) / _POW10[-exponent]
            elif valid and pos - begin < _MAX_TOKEN:
                # 17 digits (a float's repr) or a far exponent: one multiplication would
                # round twice; float() rounds once, correctly (the C kernel: strtod).
                value = float(bytes(data[begin:pos]))
                if not math.isfinite(value):  # an overflow: the decoder's to reject
                    kind = DOUBT
                    break
            else:
                kind = DOUBT
                break
            values[row, field] = -value if negative else value
            c = data[pos] if pos < size else 10
            if c == 44:  # ','
                field += 1
                if field > last:  # too many fields
                    kind = DOUBT
                    break
                pos += 1
                continue
            if c == 13 and pos + 1 < size and data[pos + 1] == 10:
                pos += 1  # CRLF: the decoder strips the CR as well
                c = 10
            if c != 10 or field != last:  # something else after the number, or too few fields
                kind = DOUBT
            break
        while pos < size and data[pos] != 10:  # to the end of the line (a DOUBT stops early)
            pos += 1
        pos += 1
        status[row] = kind
        row += 1
    starts[row] = min(pos, size)
    return row


def learn_rows(
    values: np.ndarray,
    status: np.ndarray,
    start: int,
    stop: int,
    weights: np.ndarray,
    lr: float,
    two: float,
    state: np.ndarray,
    counters: np.ndarray,
    ring_y: np.ndarray,
    ring_yhat: np.ndarray,
    yhat_out: np.ndarray,
    curve_out: np.ndarray,
) -> int:
    """Test then train rows ``start..stop`` in order; returns the row to go on from.

    It returns ``stop`` when done. It returns early at a row whose prediction is NaN,
    infinite or beyond ``learner.DIVERGED`` (that row is left to the caller;
    ``counters[STOPPED]`` is 1), and right after a
    row whose curve point fills the curve (``Curve.add`` then thins it and doubles
    the stride, which the caller passes in again). ``two`` is 2.0: a value the
    compiler cannot see, so ``** two`` calls the C library's ``pow`` as CPython does
    (``x * x`` differs from it in the last bit for about 1 in 1000 values).
    """
    n_features = weights.shape[0]
    intercept = state[INTERCEPT]
    mae_n = state[MAE_N]
    mae_mean = state[MAE_MEAN]
    mse_n = state[MSE_N]
    mse_mean = state[MSE_MEAN]
    var_n = state[VAR_N]
    var_mean = state[VAR_MEAN]
    var_s = state[VAR_S]
    rss = state[RSS]
    abs_sum = state[ABS_SUM]
    learned = counters[LEARNED]
    slot = counters[SLOT]
    length = counters[LENGTH]
    stride = counters[STRIDE]
    room = counters[ROOM]
    window = ring_y.shape[0]
    points = 0
    diverged = 0
    row = start
    while row < stop:
        kind = status[row]
        if kind != LABELED and kind != UNLABELED:
            row += 1
            continue
        # SGDRegressor.predict_one / predict_learn_one: intercept, then features in order.
        yhat = intercept
        for j in range(n_features):
            yhat += weights[j] * values[row, j]
        yhat_out[row] = yhat
        if not -DIVERGED < yhat < DIVERGED:  # Learner.step/predict's rule: NaN, inf or absurd
            diverged = 1  # the run loop's divergence guard takes this row over
            break
        if kind == UNLABELED:
            row += 1
            continue
        y = values[row, n_features]
        # River: MAE and MSE are stats.Mean of |e| and e ** 2; R2 is stats.Var of y
        # plus the residual sum of squares (metrics/mae.py, mse.py, r2.py, stats/var.py).
        mae_n += 1.0
        mae_mean += (1.0 / mae_n) * (abs(y - yhat) - mae_mean)
        mse_n += 1.0
        mse_mean += (1.0 / mse_n) * ((y - yhat) ** two - mse_mean)
        mean_old = var_mean
        var_n += 1.0
        var_mean += (1.0 / var_n) * (y - var_mean)
        var_s += 1.0 * (y - mean_old) * (y - var_mean)
        rss += (y - yhat) * (y - yhat) * 1.0
        # The seed's update: theta_j -= alpha * (yhat - y) * x_j, the intercept as x_0 = 1.
        step = lr * (yhat - y)
        for j in range(n_features):
            weights[j] = weights[j] - step * values[row, j]
        intercept -= step
        # Learner._remember: the ring, the running |error| sum, the curve.
        if length == window:
            abs_sum -= abs(ring_y[slot] - ring_yhat[slot])
        else:
            length += 1
        ring_y[slot] = y
        ring_yhat[slot] = yhat
        slot += 1
        if slot == window:
            slot = 0
        abs_sum += abs(y - yhat)
        learned += 1
        row += 1
        if learned % stride == 0:
            if learned % window == 0:  # re-sum, oldest first (learner.abs_error_sum)
                abs_sum = 0.0
                for k in range(window):
                    at = (slot + k) % window
                    abs_sum += abs(ring_y[at] - ring_yhat[at])
            curve_out[points, 0] = learned
            curve_out[points, 1] = abs_sum / length
            curve_out[points, 2] = mae_mean
            points += 1
            if points > room:  # Curve.add thins now: the caller applies it, then goes on
                break
    state[INTERCEPT] = intercept
    state[MAE_N] = mae_n
    state[MAE_MEAN] = mae_mean
    state[MSE_N] = mse_n
    state[MSE_MEAN] = mse_mean
    state[VAR_N] = var_n
    state[VAR_MEAN] = var_mean
    state[VAR_S] = var_s
    state[RSS] = rss
    state[ABS_SUM] = abs_sum
    counters[LEARNED] = learned
    counters[SLOT] = slot
    counters[LENGTH] = length
    counters[POINTS] = points
    counters[STOPPED] = diverged
    return row


Kernels = tuple[Callable[..., int], Callable[..., int]]


def python_kernels() -> Kernels:
    """The kernels as plain Python (slow; for tests and for checking the compiled ones)."""
    return parse_lines, learn_rows


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

    values: np.ndarray  # (rows, features + 1); the last column is the target
    status: np.ndarray  # row kinds (LABELED ... NOTHING)
    starts: np.ndarray  # byte offset of each line in the block, and the end
    data: bytes
    offset: int  # file offset of the block's first byte
    judged: dict[int, Decoded]  # row -> the decoder's verdict, for DOUBT rows
    # row -> its Raw, for blocks whose rows are not file lines (a Kafka block's messages)
    locate: Callable[[int], Raw] | None = None

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

    def abs_errors(self, yhat: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``|y - yhat|`` of the rows selected by the mask ``rows`` (same floats as Python's)."""
        if rows.all():  # the common block: every row labeled
            count = rows.shape[0]
            return np.abs(self.values[:count, -1] - yhat[:count])
        selected = np.flatnonzero(rows)
        return np.abs(self.values[selected, -1] - yhat[selected])


@dataclass
class _Arrays:
    """A learner's prequential state and its sgd model as ``learn_rows`` reads and writes them."""

    weights: np.ndarray
    state: np.ndarray
    counters: np.ndarray
    ring_y: np.ndarray  # views of the learner's window buffers (no copy)
    ring_yhat: np.ndarray
    prequential: PrequentialState  # the export the arrays were loaded from


@dataclass
class Saved:
    """What ``BlockLearner.learn`` may change, as ``BlockLearner.save`` took it."""

    intercept: float
    weights: list[float]
    prequential: PrequentialState  # a snapshot (copies of the window and the curve)


class LinearModel(Protocol):
    """What the kernel reads and writes of an ``sgd`` model (``SGDRegressor``)."""

    lr: float
    intercept: float
    weights: dict[Hashable, float]


class BlockLearner:
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
    >>> parsed = fast.parse(b"a,y\\n1,2\\n2,\\n", 0, CsvDecoder(["a", "y"]))
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
        self.features = list(features)
        kernels = kernels if kernels is not None else compiled_kernels()
        if kernels is None:
            raise RuntimeError("the compiled kernels (streamlearn.fast._kernels) are not built")
        self._parse, self._learn = kernels
        self.yhat = np.empty(0)

    # -- parsing ---------------------------------------------------------------

    def parse(
        self,
        data: bytes,
        offset: int,
        decoder: Any,
        lines: int | None = None,
        locate: Callable[[int], Raw] | None = None,
    ) -> Parsed:
        """Parse a block of whole lines; ``decoder`` judges the lines the parser doubts.

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
        for row in np.flatnonzero(status == DOUBT).tolist():
            parsed.judged[row] = self._judge(parsed, row, decoder)
        return parsed

    def _judge(self, parsed: Parsed, row: int, decoder: Any) -> Decoded:
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

    # -- learning --------------------------------------------------------------

    def learn(
        self, learner: Learner, model: LinearModel, parsed: Parsed, start: int, stop: int
    ) -> int:
        """Learn rows ``start..stop`` into ``learner`` and ``model``; returns where it stopped.

        That is ``stop``, or the first row whose prediction the run loop must treat
        as divergence (not learned). Predictions of every row handled are in
        ``self.yhat``. The model must hold a weight for every feature (as it does after
        its first record): a missing weight is skipped by ``predict_one``, which a
        vector cannot mirror.
        """
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

    def score(self, learner: Learner, parsed: Parsed, yhat: np.ndarray, done: int) -> None:
        """Score the predictions ``yhat`` of the labeled rows before ``done`` (made by any model).

        River's MAE, RMSE and R2, the rolling window and the learning curve end as
        ``Learner.step`` leaves them record by record (``learner.records_learned`` too):
        ``learn_rows`` runs on (prediction, target) pairs with a stand-in linear model
        that predicts its one input (weight 1, intercept 0, learning rate 0).

        >>> from streamlearn.learner import Learner
        >>> learner = Learner(model=None)
        >>> fast = BlockLearner(["a"], kernels=python_kernels())
        >>> parsed = fast.parse(b"7,2\\n1,\\n9,4\\n", 0, decoder=None)
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
