"""The classifiers' compiled kernels' specification: ``learn_logistic`` and ``learn_softmax``.

As :mod:`streamlearn.fast.spec` is for the regressor's kernels: ``daemon/fast/_kernels.c``
renders each function here line for line in C, the daemon runs the C, and the tests run both
on the same blocks and compare every output bit (``tests/test_class_kernels.py``).

- :func:`learn_logistic` and :func:`learn_softmax` are the prequential step of the
  classifiers ``logistic`` and ``softmax`` over a block of parsed rows (``spec.parse_lines``):
  the prediction before learning (a sigmoid, a softmax), River's log loss or cross-entropy of
  it kept as a running mean (the class counts are the caller's, a block at a time), and the
  seed's update. They stop at a row the record path must take (a non-finite score, a class
  new to the model).
- Given a ``curve`` (with its ``ring`` and ``points``), they also make the classifier's
  log-loss curve points as record by record does (``streamlearn.classify.losscurve``): the
  window's ring of losses kept as ``Window.add`` keeps it, and at each record count that is a
  multiple of the stride, ``[n, rolling, cumulative]``: the ring's sum slot by slot from
  slot 0 (as ``sum()``) over its length, and the running mean then.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from streamlearn.fast.spec import LABELED, UNLABELED, descend, linear, mean_step

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "CURVE_DIRTY",
    "CURVE_LEARNED",
    "CURVE_LEN",
    "CURVE_NEXT",
    "CURVE_POINTS",
    "CURVE_STRIDE",
    "EPSILON",
    "LOSS_MEAN",
    "LOSS_N",
    "N_CURVE",
    "N_LOSS_STATE",
    "clamp_proba",
    "learn_logistic",
    "learn_softmax",
    "loss_point",
]

#: ``learn_logistic``/``learn_softmax`` state: River's ``Mean`` of the log loss (``LogLoss``)
#: or of the cross-entropy (``CrossEntropy``), its count and its mean.
LOSS_N, LOSS_MEAN = range(2)
N_LOSS_STATE = LOSS_MEAN + 1
#: The ``curve`` argument (int64): records learned, the curve's stride, the window ring's next
#: slot and length, the points written to ``points`` so far, and the first slot written since
#: the ring's partial sums were taken (0: none taken yet).
CURVE_LEARNED, CURVE_STRIDE, CURVE_NEXT, CURVE_LEN, CURVE_POINTS, CURVE_DIRTY = range(6)
N_CURVE = CURVE_DIRTY + 1
#: River clamps a probability into [EPSILON, 1 - EPSILON] before its logarithm.
EPSILON = 1e-15


def clamp_proba(p: float) -> float:
    """River's clamp: ``max(min(p, 1 - EPSILON), EPSILON)``."""
    return max(min(p, 1.0 - EPSILON), EPSILON)


def loss_point(
    ring: NDArray[np.float64],
    curve: NDArray[np.int64],
    points: NDArray[np.float64],
    loss: float,
    loss_mean: float,
) -> None:
    """``Window.add`` of a learned record's ``loss`` to ``ring``, the record counted, and at a
    multiple of the stride the point ``[n, rolling, cumulative]`` as ``ClassLearner`` adds it.

    ``ring`` holds the window's losses, then as many partial sums: ``sum()`` of the slots up to
    each, kept so a point adds only from the first slot written since the last one (the same
    additions in the same order as summing from slot 0).
    """
    size = ring.shape[0] // 2
    slot = curve[CURVE_NEXT]
    ring[slot] = loss
    if slot < curve[CURVE_DIRTY]:
        curve[CURVE_DIRTY] = slot
    curve[CURVE_NEXT] = 0 if slot + 1 == size else slot + 1
    if curve[CURVE_LEN] < size:
        curve[CURVE_LEN] += 1
    curve[CURVE_LEARNED] += 1
    learned = curve[CURVE_LEARNED]
    if learned % curve[CURVE_STRIDE] != 0:
        return
    length = curve[CURVE_LEN]
    first = curve[CURVE_DIRTY]
    total = ring[size + first - 1] if first > 0 else 0.0  # sum(): slot by slot from slot 0
    for i in range(first, length):
        total += ring[i]
        ring[size + i] = total
    curve[CURVE_DIRTY] = length
    point = points[curve[CURVE_POINTS]]
    point[0] = float(learned)
    point[1] = total / float(length)
    point[2] = loss_mean
    curve[CURVE_POINTS] += 1


def learn_logistic(
    values: NDArray[np.float64],
    status: NDArray[np.int8],
    start: int,
    stop: int,
    weights: NDArray[np.float64],
    lr: float,
    state: NDArray[np.float64],
    p_out: NDArray[np.float64],
    loss_out: NDArray[np.float64],
    ring: NDArray[np.float64] | None = None,
    curve: NDArray[np.int64] | None = None,
    points: NDArray[np.float64] | None = None,
) -> int:
    """Test then train the binary ``logistic`` on rows ``start..stop``; returns where it stopped.

    ``weights`` holds the model's weights in column order, then its intercept. Per row:
    ``p = sigmoid(intercept + w . x)`` goes to ``p_out`` (the prediction before learning);
    for a labeled row (target 0.0 or 1.0), River's log loss of ``p`` to ``loss_out`` and
    into the running mean in ``state``, then the update ``w -= lr * (p - y) * x``. It
    returns ``stop`` when done, or early at a row whose ``z`` is NaN or infinite or whose
    target is not 0 or 1 (that row is left to the caller, unlearned). With ``curve``, each
    learned row goes through ``loss_point`` (``ring``: the window's losses and room for their
    partial sums, ``points``: room for a point per stride of rows, and one).
    """
    n_features = weights.shape[0] - 1
    intercept = weights[n_features]
    loss_n = state[LOSS_N]
    loss_mean = state[LOSS_MEAN]
    row = start
    while row < stop:
        kind = status[row]
        if kind != LABELED and kind != UNLABELED:
            row += 1
            continue
        z = linear(intercept, weights, values[row], n_features)  # LogisticRegression's
        if not -math.inf < z < math.inf:  # NaN or inf: the record path decides
            break
        if z >= 0.0:  # the sigmoid, without an overflow of exp on either side
            p = 1.0 / (1.0 + math.exp(-z))
        else:
            e = math.exp(z)
            p = e / (1.0 + e)
        p_out[row] = p
        if kind == UNLABELED:
            row += 1
            continue
        y = values[row, n_features]
        if y != 0.0 and y != 1.0:  # not a code: the caller doubts such rows first
            break
        # River's LogLoss: the probability clamped, then a stats.Mean of -log.
        clamped = clamp_proba(p)
        loss = -math.log(clamped) if y == 1.0 else -math.log(1.0 - clamped)
        loss_out[row] = loss
        loss_n += 1.0
        loss_mean = mean_step(loss_n, loss_mean, loss)
        if curve is not None:
            assert ring is not None and points is not None
            loss_point(ring, curve, points, loss, loss_mean)
        # The seed's update: theta_j -= alpha * (p - y) * x_j, the intercept as x_0 = 1.
        step = lr * (p - y)
        descend(weights, values[row], n_features, step)
        intercept -= step
        row += 1
    weights[n_features] = intercept
    state[LOSS_N] = loss_n
    state[LOSS_MEAN] = loss_mean
    return row


def learn_softmax(
    values: NDArray[np.float64],
    status: NDArray[np.int8],
    classes: NDArray[np.int64],
    start: int,
    stop: int,
    weights: NDArray[np.float64],
    lr: float,
    state: NDArray[np.float64],
    p_out: NDArray[np.float64],
    loss_out: NDArray[np.float64],
    ring: NDArray[np.float64] | None = None,
    curve: NDArray[np.int64] | None = None,
    points: NDArray[np.float64] | None = None,
) -> int:
    """Test then train the multiclass ``softmax`` on rows ``start..stop``; returns where it stopped.

    ``weights`` has a row per class of the model, in the model's order: its weights in
    column order, then its intercept. ``classes[row]`` is the model's index of a labeled
    row's class. Per row: ``p = softmax(intercepts + W x)`` goes to ``p_out[row]`` (before
    learning); for a labeled row, River's cross-entropy of ``p`` to ``loss_out`` and into
    the running mean in ``state``, then per class ``c`` the update
    ``W_c -= lr * (p_c - [y == c]) * x``. It returns ``stop`` when done, or early at a row
    with a non-finite ``z_c`` or a class the model does not have (``classes[row]`` out of
    range: the model adds it record by record); that row is left to the caller. ``ring``,
    ``curve`` and ``points``: as ``learn_logistic``'s.
    """
    n_classes = weights.shape[0]
    n_features = weights.shape[1] - 1
    loss_n = state[LOSS_N]
    loss_mean = state[LOSS_MEAN]
    row = start
    while row < stop:
        kind = status[row]
        if kind != LABELED and kind != UNLABELED:
            row += 1
            continue
        target = classes[row] if kind == LABELED else 0
        if target < 0 or target >= n_classes:  # a class new to the model
            break
        # SoftmaxRegression.predict_learn_one: per class its intercept, then the features in
        # order; the largest first found; exp(z - largest) summed in class order.
        p = p_out[row]
        finite = True
        largest = 0.0
        for c in range(n_classes):
            z = linear(weights[c, n_features], weights[c], values[row], n_features)
            if not -math.inf < z < math.inf:
                finite = False
            if c == 0 or z > largest:
                largest = z
            p[c] = z
        if not finite:  # NaN or inf: the record path decides
            break
        total = 0.0
        for c in range(n_classes):
            p[c] = math.exp(p[c] - largest)
            total += p[c]
        for c in range(n_classes):
            p[c] = p[c] / total
        if kind == UNLABELED:
            row += 1
            continue
        # River's CrossEntropy: the true class's probability clamped, then a stats.Mean of -log.
        loss = -math.log(clamp_proba(p[target]))
        loss_out[row] = loss
        loss_n += 1.0
        loss_mean = mean_step(loss_n, loss_mean, loss)
        if curve is not None:
            assert ring is not None and points is not None
            loss_point(ring, curve, points, loss, loss_mean)
        # The seed's update per class: W_c -= alpha * (p_c - [y == c]) * x, intercept as x_0 = 1.
        for c in range(n_classes):
            step = lr * (p[c] - (1.0 if c == target else 0.0))
            descend(weights[c], values[row], n_features, step)
            weights[c, n_features] -= step
        row += 1
    state[LOSS_N] = loss_n
    state[LOSS_MEAN] = loss_mean
    return row
