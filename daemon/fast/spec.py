"""The compiled kernels' specification: each loop of ``_kernels.c`` as plain Python.

The regressor's kernels and ADWIN's are here; the classifiers' are in
:mod:`streamlearn.fast.classspec`.

``daemon/fast/_kernels.c`` renders each function here line for line in C (the extension
``streamlearn.fast._kernels``); the daemon runs the C. The tests run both on the same
inputs and compare every output bit (``tests/test_kernels.py``, ``test_fastpath.py``,
``test_adwin.py``), and the Python against numpy and River. Without the extension the
ADWIN detector runs :func:`feed_values` as it is; the block paths are not taken (the
record path gives the same results).

- :func:`parse_lines` reads CSV lines of plain decimal numbers (sign, digits, point,
  exponent) to the double ``float()`` gives: with at most 17 significant digits whose
  value fits in 2**53 and a decimal exponent within +-22, one correctly rounded
  multiplication or division (Clinger's fast path); otherwise (the 17 digits of a
  float's repr, ``1e300``) a correctly rounded conversion of the text, as ``float()``'s
  is (``strtod`` in C). Any other line (quotes, blanks, ``NaN``, ``1e999``, a number
  beyond ``metrics.DIVERGED`` (an ``out_of_range`` target), a wrong field count, the
  header) is marked ``DOUBT``, for the decoder to judge.
- :func:`learn_rows` is ``Learner.step`` of ``sgd`` over a block of parsed rows: per
  record the prediction and the update of ``SGDRegressor.predict_learn_one``; the
  updates of the metrics (``streamlearn.metrics``, River's formulas, ``** 2`` through
  the C library's ``pow`` as CPython computes it); the rolling window and the learning
  curve (``Learner._remember``). It stops at a prediction the divergence guard must see.
- :func:`feed_values` is the update of ``streamlearn.drift.adwin.ADWIN`` (River's ADWIN,
  operation for operation) over an array of values.

Exempt from the size limits (about 500 lines a module, 80 a function): each function is
one loop that mirrors one C function line for line, and cut into pieces it would no
longer read side by side with the C.
"""

from __future__ import annotations

import math
from collections.abc import MutableSequence, Sequence
from typing import TYPE_CHECKING

from streamlearn import metrics
from streamlearn.metrics import DIVERGED

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["descend", "feed_values", "learn_rows", "linear", "mean_step", "parse_lines"]

# -- parse_lines and learn_rows: blocks of CSV lines learned by sgd ----------------------

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
    data: bytes,
    n_fields: int,
    values: NDArray[np.float64],
    status: NDArray[np.int8],
    starts: NDArray[np.int64],
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
                # An overflow (inf) is the decoder's to reject, and so is a number beyond
                # DIVERGED: as a target it is out of range (the exact branches above give
                # less than 1e42).
                if not abs(value) < DIVERGED:
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


# -- what the learning kernels share (inline functions in C) --------------------------------


def linear(intercept: float, w: NDArray[np.float64], x: NDArray[np.float64], n: int) -> float:
    """A linear model's score as River's ``predict_one`` sums it: the intercept, then the
    features in order."""
    z = intercept
    for j in range(n):
        z += w[j] * x[j]
    return z


def descend(w: NDArray[np.float64], x: NDArray[np.float64], n: int, step: float) -> None:
    """The SGD step on the weights: ``w_j -= step * x_j``, in order (the intercept is the
    caller's)."""
    for j in range(n):
        w[j] = w[j] - step * x[j]


def mean_step(n: float, mean: float, value: float) -> float:
    """River's ``stats.Mean.update``, the count ``n`` already incremented."""
    return mean + (1.0 / n) * (value - mean)


def learn_rows(
    values: NDArray[np.float64],
    status: NDArray[np.int8],
    start: int,
    stop: int,
    weights: NDArray[np.float64],
    lr: float,
    two: float,
    state: NDArray[np.float64],
    counters: NDArray[np.int64],
    ring_y: NDArray[np.float64],
    ring_yhat: NDArray[np.float64],
    yhat_out: NDArray[np.float64],
    curve_out: NDArray[np.float64],
) -> int:
    """Test then train rows ``start..stop`` in order; returns the row to go on from.

    It returns ``stop`` when done. It returns early at a row whose prediction is NaN,
    infinite or beyond ``metrics.DIVERGED`` (that row is left to the caller;
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
        yhat = linear(intercept, weights, values[row], n_features)  # SGDRegressor's
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
        mae_mean = mean_step(mae_n, mae_mean, abs(y - yhat))
        mse_n += 1.0
        mse_mean = mean_step(mse_n, mse_mean, (y - yhat) ** two)
        mean_old = var_mean
        var_n += 1.0
        var_mean += (1.0 / var_n) * (y - var_mean)
        var_s += 1.0 * (y - mean_old) * (y - var_mean)
        rss += (y - yhat) * (y - yhat) * 1.0
        # SGDRegressor's update: theta_j -= alpha * (yhat - y) * x_j, intercept as x_0 = 1.
        step = lr * (yhat - y)
        descend(weights, values[row], n_features, step)
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
            if learned % window == 0:  # re-sum, oldest first (metrics.abs_error_sum)
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


# -- feed_values: ADWIN -----------------------------------------------------------------

# The state buffer: a header of parameters and scalars, then one block per row of the
# bucket list: [count, totals (max_buckets + 1 slots), variances (max_buckets + 1 slots)].
# Counts, tick and detection count are floats: exact far beyond any stream length.
DELTA, CLOCK, MAX_BUCKETS, MIN_LENGTH, GRACE = range(5)
TOTAL, VARIANCE, WIDTH, TICK, DETECTIONS, ROWS, DETECTED, SEEN, SEEN_TOTAL = range(5, 14)
HEADER = 16
#: Rows of the bucket list: row ``i`` holds buckets of 2**i values and only exists once the
#: window holds more than 2**i values, so 64 rows can never fill (River shifts a u64 too).
MAX_ROWS = 64
#: River counts ticks in an i32 that wraps: with a clock that does not divide 2**32 the
#: tested values shift after 2**31 values, and ours shift with them.
_I32_MAX = 2147483647.0
_I32_SPAN = 4294967296.0


def feed_values(
    buf: MutableSequence[float] | NDArray[np.float64],
    values: Sequence[float] | NDArray[np.float64],
    start: int,
    stop: int,
) -> int:
    """Feed ``values[start:stop]`` to the detector in ``buf``; the first detection's index,
    or minus the number of values until the next tested one when none was detected.

    It stops right after a detection (the values after it are not fed). ``buf`` and
    ``values`` are float64 arrays when compiled, lists of floats when run as Python.
    Each formula keeps River's operation order, so the rounding matches it.
    """
    delta = buf[DELTA]
    clock = buf[CLOCK]
    max_buckets = int(buf[MAX_BUCKETS])
    min_length = buf[MIN_LENGTH]
    grace = buf[GRACE]
    cap = max_buckets + 1  # a row briefly holds one summary more before it is merged
    stride = 2 * cap + 1
    total = buf[TOTAL]
    variance = buf[VARIANCE]
    width = buf[WIDTH]
    tick = buf[TICK]
    detections = buf[DETECTIONS]
    rows = int(buf[ROWS])
    detected = buf[DETECTED] != 0.0
    seen = buf[SEEN]
    seen_total = buf[SEEN_TOTAL]
    hit = -1
    for i in range(start, stop):
        x = values[i]
        if detected:
            # River replaces its detector on the update after a detection: all starts anew.
            total = variance = width = tick = detections = seen = seen_total = 0.0
            rows = 1
            buf[HEADER] = 0.0
            detected = False
        seen += 1.0
        seen_total += x

        # Insert x as a bucket of one value (variance 0) in row 0; the window's variance
        # grows by the streaming (Welford) term.
        count = int(buf[HEADER])
        buf[HEADER + 1 + count] = x
        buf[HEADER + 1 + cap + count] = 0.0
        buf[HEADER] = count + 1.0
        width += 1.0
        increment = 0.0
        if width > 1.0:
            deviation = x - total / (width - 1.0)
            increment = (width - 1.0) * deviation * deviation / width
        variance += increment
        total += x

        # A full row merges its two oldest buckets into one of the next row, and so on up.
        row = 0
        while True:
            base = HEADER + row * stride
            if int(buf[base]) != cap:
                break
            size = float(1 << row)
            t0 = buf[base + 1]
            t1 = buf[base + 2]
            v0 = buf[base + 1 + cap]
            v1 = buf[base + 2 + cap]
            mu0 = t0 / size
            mu1 = t1 / size
            merged_total = t0 + t1
            merged_variance = v0 + v1 + size * 0.5 * (mu0 - mu1) * (mu0 - mu1)
            upper = base + stride
            if row + 1 >= rows:
                buf[upper] = 0.0
                rows += 1
            k = int(buf[upper])
            buf[upper + 1 + k] = merged_total
            buf[upper + 1 + cap + k] = merged_variance
            buf[upper] = k + 1.0
            for j in range(cap - 2):
                buf[base + 1 + j] = buf[base + 3 + j]
                buf[base + 1 + cap + j] = buf[base + 3 + cap + j]
            buf[base] = cap - 2.0
            if k + 1 <= max_buckets:
                break
            row += 1

        # Every `clock` values: test each cut, oldest buckets first; while one cut shows a
        # change, drop the oldest bucket and test again.
        tick += 1.0
        if tick > _I32_MAX:
            tick -= _I32_SPAN
        change = False
        if tick % clock == 0.0 and width > grace:
            again = True
            while again:
                again = False
                # Both depend on the window only (River computes them per cut: same values).
                delta_prime = math.log(2.0 * math.log(width) / delta)
                mean_variance = variance / width
                n0 = 0.0
                n1 = width
                u0 = 0.0
                u1 = total
                stop_scan = False
                row = rows - 1
                while row >= 0 and not stop_scan:
                    base = HEADER + row * stride
                    size = float(1 << row)
                    count = int(buf[base])
                    for k in range(count):
                        n0 += size
                        n1 -= size
                        part = buf[base + 1 + k]
                        u0 += part
                        u1 -= part
                        if row == 0 and k == count - 1:
                            stop_scan = True  # the newest bucket: no cut after it
                            break
                        if n1 < min_length or n0 < min_length:
                            continue
                        delta_mean = u0 / n0 - u1 / n1
                        m_recip = 1.0 / (n0 - min_length + 1.0) + 1.0 / (n1 - min_length + 1.0)
                        spread = 2.0 * m_recip * mean_variance * delta_prime
                        # A negative (rounded) variance gives River a NaN bound: no cut.
                        if not spread >= 0.0:
                            continue
                        epsilon = math.sqrt(spread) + 2.0 / 3.0 * delta_prime * m_recip
                        if not abs(delta_mean) > epsilon:
                            continue
                        again = True
                        change = True
                        if width > 0.0:
                            # Drop the oldest bucket (first of the last row) from the window.
                            last = rows - 1
                            top = HEADER + last * stride
                            size_old = float(1 << last)
                            u_old = buf[top + 1]
                            v_old = buf[top + 1 + cap]
                            mu_old = u_old / size_old
                            width -= size_old
                            total -= u_old
                            mu_window = total / width
                            variance -= v_old + size_old * width * (mu_old - mu_window) * (
                                mu_old - mu_window
                            ) / (size_old + width)
                            left = int(buf[top]) - 1
                            for j in range(left):
                                buf[top + 1 + j] = buf[top + 2 + j]
                                buf[top + 1 + cap + j] = buf[top + 2 + cap + j]
                            buf[top] = float(left)
                            if left == 0:
                                rows -= 1
                            stop_scan = True
                            break
                    row -= 1
        if change:
            detections += 1.0
            detected = True
            hit = i
            break

    buf[TOTAL] = total
    buf[VARIANCE] = variance
    buf[WIDTH] = width
    buf[TICK] = tick
    buf[DETECTIONS] = detections
    buf[ROWS] = float(rows)
    buf[DETECTED] = 1.0 if detected else 0.0
    buf[SEEN] = seen
    buf[SEEN_TOTAL] = seen_total
    if hit >= 0:
        return hit
    # No detection: how many values until the next tested one (the next multiple of the
    # clock), so ``ADWIN.update`` knows how long values may wait without a call. After a
    # detection the next value starts a fresh window at tick 1. Stopping at River's i32
    # wrap too keeps the count right past it.
    if detected:
        return -int(clock)
    return -int(max(1.0, min(clock - tick % clock, _I32_MAX - tick)))
