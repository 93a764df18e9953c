"""The keyed classifier's kernels' specification: ``learn_logistic_keyed`` and ``score_losses``.

As :mod:`streamlearn.fast.keyspec` is for ``sgd`` per key: ``daemon/fast/_kernels.c``
renders each function here line for line in C, and the tests run both on the same inputs
and compare every output bit (``tests/test_class_keys_compiled.py``).

- :func:`learn_logistic_keyed` is :func:`streamlearn.fast.classspec.learn_logistic` with one
  model per key: row ``r`` is learned by slot ``slots[r]`` (its weights and intercept, its
  class counts, log loss, rolling window, both learning curves and the errors waiting for
  its drift monitor), with the arithmetic of a ``ClassLearner`` of ``logistic`` per key
  (``ClassLearner.step``: ``ClassMetrics.update``, ``Window.add`` and the curves' points).
- :func:`score_losses` keeps the running mean of a block's log losses and the log-loss
  curve's points as ``ClassLearner._remember`` would, one loss after the other: the whole
  stream's tally of a keyed run (``keys.tally.ClassTally``) hears of the keys' predictions
  so, the rest of its metrics a block at a time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from streamlearn.fast.classspec import (
    CURVE_DIRTY,
    CURVE_LEARNED,
    CURVE_LEN,
    CURVE_NEXT,
    CURVE_POINTS,
    CURVE_STRIDE,
    LOSS_MEAN,
    LOSS_N,
    clamp_proba,
    loss_point,
)
from streamlearn.fast.keyspec import K_DIVERGED, K_DONE, K_FULL, K_OTHER
from streamlearn.fast.spec import LABELED, descend, linear, mean_step
from streamlearn.models.logistic import sigmoid

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "C_CONFUSION",
    "C_CORRECT",
    "C_NEG_BINS",
    "C_PENDING",
    "C_POS_BINS",
    "C_RIGHT",
    "C_SCORED",
    "N_BINS",
    "N_CLASS_KEY_COUNTERS",
    "N_POINT",
    "learn_logistic_keyed",
    "roc_bin",
    "score_losses",
]

#: A slot's counters (int64). The first six are ``classspec``'s curve counters, as
#: ``loss_point`` keeps them: records learned, the curves' stride, the window's next slot and
#: length, the points kept, the first slot written since the partial sums were taken. Then:
#: errors waiting for the drift monitor; the window's records predicted right
#: (``Window.right``); records scored and predicted right (``ClassMetrics.scored`` and
#: ``right``); the confusion counts ``[y][predicted]`` (y * 2 + predicted); the ROC bins of
#: the positives and of the negatives (``ClassMetrics.pos_bins``, ``neg_bins``).
C_PENDING = CURVE_DIRTY + 1
C_RIGHT = C_PENDING + 1
C_SCORED = C_RIGHT + 1
C_CORRECT = C_SCORED + 1
C_CONFUSION = C_CORRECT + 1
#: ROC AUC's bins: a probability above k of the 10 thresholds is in bin k.
N_BINS = 11
C_POS_BINS = C_CONFUSION + 4
C_NEG_BINS = C_POS_BINS + N_BINS
N_CLASS_KEY_COUNTERS = C_NEG_BINS + N_BINS
#: A point of a slot's curves: records learned, rolling and cumulative accuracy (the curve),
#: rolling and cumulative log loss (the loss curve).
N_POINT = 5


def roc_bin(p: float) -> int:
    """``bisect_left(classify.metrics.THRESHOLDS, p)`` of a probability in [0, 1]: the first
    threshold (-1e-7) is below it and the last (1 + 1e-7) above it, the others are i / 9."""
    count = 1
    for i in range(1, N_BINS - 2):
        if i / 9.0 < p:
            count += 1
    return count


def _point(
    ring: NDArray[np.float64],
    counters: NDArray[np.int64],
    points: NDArray[np.float64],
    learned: int,
    loss_mean: float,
) -> None:
    """``ClassLearner._add_curve_points`` of a slot at a multiple of the stride: the point
    added to both curves, thinned as ``Curve.add`` thins them."""
    size = ring.shape[0] // 2
    length = int(counters[CURVE_LEN])
    first = int(counters[CURVE_DIRTY])
    total = ring[size + first - 1] if first > 0 else 0.0  # sum(): slot by slot from slot 0
    for i in range(first, length):
        total += ring[i]
        ring[size + i] = total
    counters[CURVE_DIRTY] = length
    max_points = points.shape[0] - 1
    count = int(counters[CURVE_POINTS])
    point = points[count]
    point[0] = float(learned)
    point[1] = counters[C_RIGHT] / length
    point[2] = counters[C_CORRECT] / counters[C_SCORED]
    point[3] = total / float(length)
    point[4] = loss_mean
    count += 1
    if count > max_points:
        stride = int(counters[CURVE_STRIDE]) * 2
        kept = 0
        for i in range(count):
            if int(points[i, 0]) % stride == 0:
                points[kept] = points[i]
                kept += 1
        counters[CURVE_STRIDE] = stride
        count = kept
    counters[CURVE_POINTS] = count


def _judged(p: float, y: float) -> tuple[int, int, float]:
    """The class code of target ``y``, the class predicted (River's max of
    ``{False: 1 - p, True: p}``: False on a tie) and River's log loss of ``p``."""
    code = 1 if y == 1.0 else 0
    pred = 1 if p > 1.0 - p else 0
    clamped = clamp_proba(p)
    return code, pred, -math.log(clamped) if code == 1 else -math.log(1.0 - clamped)


def _score(
    state: NDArray[np.float64], c: NDArray[np.int64], code: int, pred: int, loss: float, p: float
) -> None:
    """``ClassMetrics.update`` of a slot: the confusion, the log loss, the counts, ROC's bins."""
    c[C_CONFUSION + 2 * code + pred] += 1
    state[LOSS_N] += 1.0
    state[LOSS_MEAN] = mean_step(float(state[LOSS_N]), float(state[LOSS_MEAN]), loss)
    c[C_SCORED] += 1
    if code == pred:
        c[C_CORRECT] += 1
    c[(C_POS_BINS if code == 1 else C_NEG_BINS) + roc_bin(p)] += 1


def _window_add(
    c: NDArray[np.int64],
    ring: NDArray[np.float64],
    ring_y: NDArray[np.int8],
    ring_pred: NDArray[np.int8],
    ring_p: NDArray[np.float64],
    code: int,
    pred: int,
    loss: float,
    p: float,
) -> None:
    """``Window.add`` of a slot, its losses' ring kept as ``classspec.loss_point`` keeps it."""
    size = ring_y.shape[0]
    slot = int(c[CURVE_NEXT])
    if c[CURVE_LEN] == size:
        c[C_RIGHT] -= int(ring_y[slot] == ring_pred[slot])
    c[C_RIGHT] += int(code == pred)
    ring_y[slot] = code
    ring_pred[slot] = pred
    ring_p[slot] = p
    ring[slot] = loss
    if slot < c[CURVE_DIRTY]:
        c[CURVE_DIRTY] = slot
    c[CURVE_NEXT] = 0 if slot + 1 == size else slot + 1
    if c[CURVE_LEN] < size:
        c[CURVE_LEN] += 1


def learn_logistic_keyed(
    values: NDArray[np.float64],
    status: NDArray[np.int8],
    slots: NDArray[np.int64],
    index: NDArray[np.int64],
    start: int,
    stop: int,
    weights: NDArray[np.float64],
    lr: float,
    state: NDArray[np.float64],
    counters: NDArray[np.int64],
    ring: NDArray[np.float64],
    ring_y: NDArray[np.int8],
    ring_pred: NDArray[np.int8],
    ring_p: NDArray[np.float64],
    points: NDArray[np.float64],
    pend_err: NDArray[np.float64],
    pend_idx: NDArray[np.int64],
    p_out: NDArray[np.float64],
    loss_out: NDArray[np.float64],
    why: NDArray[np.int64],
) -> int:
    """Test then train rows ``start..stop``, each in slot ``slots[row]``; the row it stopped at.

    ``weights`` is (slots, features + 1): the weights in column order, then the intercept;
    ``state`` (slots, ``N_LOSS_STATE``): the running mean of the log loss; ``counters``
    (slots, ``N_CLASS_KEY_COUNTERS``); ``ring`` (slots, 2 * window): the window's losses, then
    their partial sums; ``ring_y``, ``ring_pred`` and ``ring_p`` (slots, window): the window's
    classes, classes predicted and P(1); ``points`` (slots, max points + 1, ``N_POINT``); the
    error buffers (slots, pending; pending 0: no drift monitor). A labeled row's target is its
    class code, 0.0 or 1.0. Each row learned gets P(1) before learning in ``p_out`` and its
    log loss in ``loss_out``. ``why[0]`` says why it returned (``keyspec``'s reasons: a
    margin that is not finite is ``K_DIVERGED``, a target not 0 or 1 ``K_OTHER``).
    """
    n_slots = weights.shape[0]
    n_features = weights.shape[1] - 1
    pend = pend_err.shape[1]
    row = start
    reason = K_DONE
    while row < stop:
        s = int(slots[row])
        if status[row] != LABELED or s < 0 or s >= n_slots:
            reason = K_OTHER
            break
        c = counters[s]
        if pend > 0 and c[C_PENDING] >= pend:
            reason = K_FULL
            break
        x = values[row]
        y = float(x[n_features])
        if y != 0.0 and y != 1.0:
            reason = K_OTHER
            break
        w = weights[s]
        z = linear(float(w[n_features]), w, x, n_features)  # LogisticRegression's margin
        if not -math.inf < z < math.inf:
            reason = K_DIVERGED
            break
        p = sigmoid(z)  # the C: its two branches, with no overflow of exp
        p_out[row] = p
        code, pred, loss = _judged(p, y)
        loss_out[row] = loss
        # The seed's update: theta_j -= alpha * (p - y) * x_j, the intercept as x_0 = 1.
        step = lr * (p - y)
        descend(w, x, n_features, step)
        w[n_features] -= step
        st = state[s]
        _score(st, c, code, pred, loss, p)
        _window_add(c, ring[s], ring_y[s], ring_pred[s], ring_p[s], code, pred, loss, p)
        c[CURVE_LEARNED] += 1
        learned = int(c[CURVE_LEARNED])
        if pend > 0:  # the 0/1 error waits for the key's drift monitor
            at = int(c[C_PENDING])
            pend_err[s, at], pend_idx[s, at] = (0.0 if code == pred else 1.0), index[row]
            c[C_PENDING] = at + 1
        row += 1
        if learned % c[CURVE_STRIDE] == 0:
            _point(ring[s], c, points[s], learned, float(st[LOSS_MEAN]))
    why[0] = reason
    return row


def score_losses(
    loss: NDArray[np.float64],
    start: int,
    stop: int,
    state: NDArray[np.float64],
    ring: NDArray[np.float64],
    curve: NDArray[np.int64],
    points: NDArray[np.float64],
) -> None:
    """Losses ``loss[start:stop]``, in order, into the running mean in ``state`` and through
    ``classspec.loss_point`` (``ring``, ``curve`` and ``points`` as ``learn_logistic``'s)."""
    loss_n = float(state[LOSS_N])
    loss_mean = float(state[LOSS_MEAN])
    for row in range(start, stop):
        value = float(loss[row])
        loss_n += 1.0
        loss_mean = mean_step(loss_n, loss_mean, value)
        loss_point(ring, curve, points, value, loss_mean)
    state[LOSS_N] = loss_n
    state[LOSS_MEAN] = loss_mean
