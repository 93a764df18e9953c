"""The keyed classifier's kernels (``learn_logistic_keyed``, ``score_losses``): the C against
its Python specification (``streamlearn.fast.classkeyspec``) bit for bit, and both against
one ``ClassLearner`` of ``logistic`` per key and River's metrics."""

from __future__ import annotations

from bisect import bisect_left

import numpy as np
import pytest

from streamlearn.classify.learner import ClassLearner
from streamlearn.classify.metrics import THRESHOLDS
from streamlearn.classify.space import ClassSpace
from streamlearn.curve import Curve
from streamlearn.fast import classkeyspec as spec
from streamlearn.fast import classspec, keyspec
from streamlearn.fast.spec import LABELED, UNLABELED
from streamlearn.models.logistic import LogisticRegression

KEYS, FEATURES, ROWS, WINDOW, POINTS, LR = 40, 3, 4000, 7, 4, 0.3
KERNELS = [pytest.param(spec.learn_logistic_keyed, id="python")]
SCORERS = [pytest.param(spec.score_losses, id="python")]
NAMES = [f"x{j}" for j in range(FEATURES)]


def stream(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Rows of 40 keys, each with its own true weights, interleaved at random: values
    (features, then the class code 0.0 or 1.0) and each row's key."""
    rng = np.random.default_rng(seed)
    true = rng.normal(size=(KEYS, FEATURES)) * 2.0
    keys = rng.integers(KEYS, size=ROWS)
    X = rng.normal(size=(ROWS, FEATURES))
    margin = np.einsum("ij,ij->i", X, true[keys])
    y = (rng.random(ROWS) < 1.0 / (1.0 + np.exp(-margin))).astype(np.float64)
    return np.column_stack([X, y]), keys


class Table:
    """The arrays ``learn_logistic_keyed`` learns into, for ``KEYS`` slots."""

    def __init__(self, pend: int = 0) -> None:
        self.weights = np.zeros((KEYS, FEATURES + 1))
        self.state = np.zeros((KEYS, classspec.N_LOSS_STATE))
        self.counters = np.zeros((KEYS, spec.N_CLASS_KEY_COUNTERS), dtype=np.int64)
        self.counters[:, classspec.CURVE_STRIDE] = 1
        self.ring = np.zeros((KEYS, 2 * WINDOW))
        self.ring_y = np.zeros((KEYS, WINDOW), dtype=np.int8)
        self.ring_pred = np.zeros((KEYS, WINDOW), dtype=np.int8)
        self.ring_p = np.zeros((KEYS, WINDOW))
        self.points = np.zeros((KEYS, POINTS + 1, spec.N_POINT))
        self.pend_err = np.zeros((KEYS, pend))
        self.pend_idx = np.zeros((KEYS, pend), dtype=np.int64)

    def learn(self, kernel, values, status, slots, index, start, stop, p, loss, why) -> int:
        return kernel(
            values, status, slots, index, start, stop, self.weights, LR, self.state,
            self.counters, self.ring, self.ring_y, self.ring_pred, self.ring_p, self.points,
            self.pend_err, self.pend_idx, p, loss, why,
        )  # fmt: skip


def learn_all(kernel, values, keys, pend: int = 0):
    """Every row learned; a full error buffer emptied in order. The table, P(1) and the
    losses of the rows, and each key's errors in the order they were handed over."""
    table = Table(pend)
    status = np.zeros(ROWS, dtype=np.int8)
    slots = keys.astype(np.int64)
    index = np.arange(ROWS, dtype=np.int64) + 1000
    p = np.full(ROWS, np.nan)
    loss = np.full(ROWS, np.nan)
    why = np.zeros(1, dtype=np.int64)
    handed: list[list[float]] = [[] for _ in range(KEYS)]
    row = 0
    while True:
        row = table.learn(kernel, values, status, slots, index, row, ROWS, p, loss, why)
        if why[0] == keyspec.K_DONE:
            break
        assert why[0] == keyspec.K_FULL
        slot = slots[row]
        handed[slot] += table.pend_err[slot].tolist()
        assert table.pend_idx[slot].tolist() == (np.flatnonzero(keys == slot)[
            len(handed[slot]) - pend : len(handed[slot])] + 1000).tolist()  # fmt: skip
        table.counters[slot, spec.C_PENDING] = 0
    for slot in range(KEYS):
        waiting = int(table.counters[slot, spec.C_PENDING])
        handed[slot] += table.pend_err[slot, :waiting].tolist()
    return table, p, loss, [np.array(errors) for errors in handed]


def key_learner() -> ClassLearner:
    learner = ClassLearner(
        LogisticRegression(lr=LR), ClassSpace(binary=True), rolling_window=WINDOW
    )
    learner.curve = Curve(max_points=POINTS)
    learner.loss_curve = Curve(max_points=POINTS)
    return learner


def test_roc_bin_is_bisect_on_river_thresholds() -> None:
    probes = [0.0, 1.0, 0.5, 1 / 9, 2 / 9, 8 / 9, np.nextafter(1 / 9, 1), np.nextafter(1 / 9, 0)]
    probes += np.random.default_rng(1).random(2000).tolist()
    for p in probes:
        assert spec.roc_bin(float(p)) == bisect_left(THRESHOLDS, float(p))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("pend", [0, 5])
def test_each_key_learns_as_its_own_class_learner(kernel, pend: int) -> None:
    """Per key: weights, intercept, P(1), losses, class counts, log loss, window, both curves
    and the drift monitor's 0/1 errors equal a ``ClassLearner`` of ``logistic`` fed that
    key's rows in order, bit for bit."""
    values, keys = stream()
    table, p, loss, handed = learn_all(kernel, values, keys, pend)
    for key in range(KEYS):
        rows = np.flatnonzero(keys == key)
        learner = key_learner()
        probas = [
            learner.step(dict(zip(NAMES, values[r, :-1].tolist(), strict=True)), values[r, -1])
            for r in rows
        ]
        assert p[rows].tolist() == [proba[1] for proba in probas]
        model = learner.model
        assert table.weights[key].tolist() == [*(model.weights[n] for n in NAMES), model.intercept]
        metrics, window = learner.metrics, learner.window
        c = table.counters[key].tolist()
        assert table.state[key].tolist() == [metrics.loss.n, metrics.loss.get()]
        confusion = [c[spec.C_CONFUSION + i] for i in range(4)]
        assert confusion == [metrics.confusion[y][q] for y in range(2) for q in range(2)]
        assert (c[spec.C_SCORED], c[spec.C_CORRECT]) == (metrics.scored, metrics.right)
        assert c[spec.C_POS_BINS : spec.C_POS_BINS + spec.N_BINS] == metrics.pos_bins
        assert c[spec.C_NEG_BINS : spec.C_NEG_BINS + spec.N_BINS] == metrics.neg_bins
        assert c[classspec.CURVE_LEARNED] == learner.records_learned == len(rows)
        assert (c[classspec.CURVE_NEXT], c[classspec.CURVE_LEN]) == (window.next, window.len)
        assert c[spec.C_RIGHT] == window.right
        assert table.ring_y[key].tolist() == window.y.tolist()
        assert table.ring_pred[key].tolist() == window.pred.tolist()
        assert table.ring[key, :WINDOW].tolist() == window.loss.tolist()
        assert table.ring_p[key].tolist() == window.p_pos.tolist()
        assert loss[rows[-WINDOW:]].tolist() == _oldest_first(window)
        assert c[classspec.CURVE_STRIDE] == learner.curve.stride == learner.loss_curve.stride
        kept = table.points[key, : c[classspec.CURVE_POINTS]].tolist()
        assert [tuple(point[:3]) for point in kept] == [
            (float(n), r, cu) for n, r, cu in learner.curve.points
        ]
        assert [(point[0], *point[3:]) for point in kept] == [
            (float(n), r, cu) for n, r, cu in learner.loss_curve.points
        ]
        errors = [
            0.0 if (q[1] > q[0]) == bool(values[r, -1]) else 1.0
            for q, r in zip(probas, rows, strict=True)
        ]
        assert handed[key].tolist() == (errors if pend else [])


def _oldest_first(window) -> list[float]:
    return [window.loss[slot] for slot in window.in_order()]


@pytest.mark.parametrize("kernel", KERNELS)
def test_stops_where_the_caller_takes_over(kernel) -> None:
    """An unlabeled row, a row without a slot, a target not 0 or 1 (K_OTHER) and a margin
    that is not finite (K_DIVERGED) stop the kernel there, unlearned."""
    values, keys = stream()
    values = values[:40].copy()
    slots = keys[:40].astype(np.int64)
    status = np.zeros(40, dtype=np.int8)
    status[10] = UNLABELED
    slots[20] = -1
    values[25, -1] = 2.0
    values[30, 0] = np.inf
    table = Table()
    p, loss, why = np.full(40, np.nan), np.full(40, np.nan), np.zeros(1, dtype=np.int64)
    index = np.arange(40, dtype=np.int64)
    stops = []
    row = 0
    while row < 40:
        with np.errstate(invalid="ignore"):  # 0.0 * inf: the margin is NaN
            row = table.learn(kernel, values, status, slots, index, row, 40, p, loss, why)
        stops.append((row, int(why[0])))
        if why[0] == keyspec.K_DONE:
            break
        row += 1
    assert stops == [(10, keyspec.K_OTHER), (20, keyspec.K_OTHER), (25, keyspec.K_OTHER),
                     (30, keyspec.K_DIVERGED), (40, keyspec.K_DONE)]  # fmt: skip
    assert int(table.counters[:, classspec.CURVE_LEARNED].sum()) == 40 - 4
    assert status.tolist().count(LABELED) == 39


@pytest.mark.parametrize("scorer", SCORERS)
def test_score_losses_is_the_record_paths_loss_curve(scorer) -> None:
    """The running mean and the log-loss curve's points of ``score_losses`` over losses in
    blocks equal a ``ClassLearner`` remembering them one at a time."""
    rng = np.random.default_rng(2)
    losses = rng.exponential(size=3000)
    learner = ClassLearner(LogisticRegression(), ClassSpace(binary=True), rolling_window=WINDOW)
    state = np.zeros(classspec.N_LOSS_STATE)
    ring = np.zeros(2 * WINDOW)
    curve = np.zeros(classspec.N_CURVE, dtype=np.int64)
    curve[classspec.CURVE_STRIDE] = 1
    points = np.zeros((len(losses) + 1, 3))
    start = 0
    for stop in (1, 2, 50, 51, 1400, 3000):
        scorer(losses, start, stop, state, ring, curve, points)
        start = stop
    for value in losses.tolist():
        learner._remember({}, (0, 0, value, 0.0))
    assert state.tolist() == [learner.metrics.loss.n, learner.metrics.loss.get()]
    made = points[: curve[classspec.CURVE_POINTS]].tolist()
    assert made == [[float(n), r, c] for n, r, c in learner.loss_curve.points]
