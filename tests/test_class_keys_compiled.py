"""The keyed classifier's kernels (``learn_logistic_keyed``, ``score_losses``): the C against
its Python specification (``streamlearn.fast.classkeyspec``) bit for bit, and both against
one ``ClassLearner`` of ``logistic`` per key and River's metrics."""

from __future__ import annotations

import math
from bisect import bisect_left

import numpy as np
import pytest

from streamlearn.classify.learner import ClassLearner
from streamlearn.classify.metrics import THRESHOLDS
from streamlearn.classify.space import ClassSpace
from streamlearn.curve import Curve
from streamlearn.fast import _kernels, classspec, keyspec
from streamlearn.fast import classkeyspec as spec
from streamlearn.fast.spec import LABELED, UNLABELED
from streamlearn.models.logistic import LogisticRegression, sigmoid

KEYS, FEATURES, ROWS, WINDOW, POINTS, LR = 40, 3, 4000, 7, 4, 0.3
KERNELS = [
    pytest.param(spec.learn_logistic_keyed, id="python"),
    pytest.param(_kernels.learn_logistic_keyed, id="c"),
]
SCORERS = [
    pytest.param(spec.score_losses, id="python"),
    pytest.param(_kernels.score_losses, id="c"),
]
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


def drive(kernel, values, slots, status, blocks, table: Table):
    """Rows in blocks ending at ``blocks``, every stop as the caller takes it: a full buffer
    emptied (its errors kept), any other row skipped. The outputs and what each call returned."""
    rows = len(values)
    index = np.arange(rows, dtype=np.int64) * 3 + 7
    p, loss = np.full(rows, np.nan), np.full(rows, np.nan)
    why = np.zeros(1, dtype=np.int64)
    calls, handed = [], []
    start = 0
    for stop in blocks:
        row = start
        while row < stop:
            with np.errstate(all="ignore"):  # inf * 0.0 in a margin: NaN, the kernel's stop
                row = table.learn(kernel, values, status, slots, index, row, stop, p, loss, why)
            calls.append((row, int(why[0])))
            if why[0] == keyspec.K_FULL:
                slot = slots[row]
                handed.append(
                    (int(slot), table.pend_err[slot].tobytes(), table.pend_idx[slot].tolist())
                )
                table.counters[slot, spec.C_PENDING] = 0
            elif why[0] != keyspec.K_DONE:
                row += 1
        start = stop
    return p, loss, calls, handed


def test_c_learns_as_its_specification_bit_for_bit() -> None:
    """A long stream of few slots (windows wrap many times, curves thin again and again, error
    buffers fill), with margins large enough to clamp P(1), rows of other kinds, targets not
    0 or 1, non-finite margins and blocks of random length: every output array and every
    call's stop equal the Python's, bit for bit."""
    rng = np.random.default_rng(11)
    rows, keys = 20000, 6
    values = np.column_stack([rng.normal(size=(rows, FEATURES)) * rng.choice([1.0, 40.0], size=(rows, 1)),
                              (rng.random(rows) < 0.4).astype(np.float64)])  # fmt: skip
    slots = rng.integers(keys, size=rows).astype(np.int64)
    status = rng.choice([LABELED] * 30 + [UNLABELED], size=rows).astype(np.int8)
    slots[rng.choice(rows, 20, replace=False)] = -1
    slots[rng.choice(rows, 5, replace=False)] = keys  # one past the table
    values[rng.choice(rows, 20, replace=False), -1] = 2.0
    values[rng.choice(rows, 5, replace=False), 1] = np.inf
    values[rng.choice(rows, 5, replace=False), 2] = np.nan
    blocks = [*np.sort(rng.choice(np.arange(1, rows), 60, replace=False)).tolist(), rows]
    runs = []
    for kernel in (spec.learn_logistic_keyed, _kernels.learn_logistic_keyed):
        table = Table(pend=9)
        for name in ("weights", "state", "counters", "ring", "ring_y", "ring_pred", "ring_p",
                     "points", "pend_err", "pend_idx"):  # fmt: skip
            setattr(table, name, getattr(table, name)[:keys].copy())
        runs.append((table, *drive(kernel, values, slots, status, blocks, table)))
    (python, *py_out), (c, *c_out) = runs
    assert c_out[0].tobytes() == py_out[0].tobytes() and c_out[1].tobytes() == py_out[1].tobytes()
    assert c_out[2] == py_out[2] and c_out[3] == py_out[3]
    for name in vars(python):
        assert getattr(c, name).tobytes() == getattr(python, name).tobytes(), name
    counters = python.counters
    assert (counters[:, classspec.CURVE_LEARNED] > 20 * WINDOW).all()
    assert (counters[:, classspec.CURVE_STRIDE] >= 256).all()  # thinned many times
    assert {why for _, why in py_out[2]} == {keyspec.K_DONE, keyspec.K_OTHER, keyspec.K_FULL,
                                             keyspec.K_DIVERGED}  # fmt: skip
    assert np.isin(py_out[0][np.isfinite(py_out[0])], [0.0, 1.0]).any()  # saturated: clamped


def test_c_scores_losses_as_its_specification_bit_for_bit() -> None:
    """``score_losses`` in blocks of random length from a state part way through a curve:
    the state, ring, counters and points equal the Python's, bit for bit."""
    rng = np.random.default_rng(4)
    losses = rng.exponential(size=5000) * rng.choice([1e-3, 1.0, 30.0], size=5000)
    blocks = [*np.sort(rng.choice(np.arange(1, 5000), 40, replace=False)).tolist(), 5000]
    runs = []
    for scorer in (spec.score_losses, _kernels.score_losses):
        state = np.array([17.0, 0.3])
        ring = np.zeros(2 * 9)
        curve = np.zeros(classspec.N_CURVE, dtype=np.int64)
        curve[[classspec.CURVE_LEARNED, classspec.CURVE_STRIDE]] = 17, 3
        points = np.zeros((5000 // 3 + 2, 3))
        start = 0
        for stop in blocks:
            scorer(losses, start, stop, state, ring, curve, points)
            start = stop
        runs.append([state, ring, curve, points])
    assert [a.tobytes() for a in runs[1]] == [a.tobytes() for a in runs[0]]
    assert runs[0][2][classspec.CURVE_POINTS] == (17 + 5000) // 3 - 17 // 3


BAD_COUNTERS = [
    (classspec.CURVE_LEARNED, -1),
    (classspec.CURVE_STRIDE, 0),
    (classspec.CURVE_STRIDE, 2**62),  # doubled past int64
    (classspec.CURVE_NEXT, WINDOW),
    (classspec.CURVE_NEXT, -1),
    (classspec.CURVE_LEN, WINDOW + 1),
    (classspec.CURVE_LEN, -1),
    (classspec.CURVE_POINTS, POINTS + 1),
    (classspec.CURVE_POINTS, -1),
    (classspec.CURVE_DIRTY, WINDOW + 1),
    (classspec.CURVE_DIRTY, -1),
    (spec.C_PENDING, 65),
    (spec.C_PENDING, -1),
]


@pytest.mark.parametrize(("counter", "value"), BAD_COUNTERS)
def test_c_refuses_a_slot_whose_counters_are_out_of_range(counter: int, value: int) -> None:
    """A slot's counters index its arrays: one out of range is a ValueError when a row
    reaches it (the rows before it learned, it not), past a call stopped at a full buffer."""
    values, _ = stream()
    slots = np.zeros(ROWS, dtype=np.int64)
    slots[70:] = 1
    table = Table(pend=64)
    table.counters[1, counter] = value
    status = np.zeros(ROWS, dtype=np.int8)
    index = np.arange(ROWS, dtype=np.int64)
    p, loss, why = np.full(ROWS, np.nan), np.full(ROWS, np.nan), np.zeros(1, dtype=np.int64)
    kernel = _kernels.learn_logistic_keyed
    row = table.learn(kernel, values, status, slots, index, 0, ROWS, p, loss, why)
    assert (row, why[0]) == (64, keyspec.K_FULL)
    table.counters[0, spec.C_PENDING] = 0
    before = table.counters[1].copy()
    with pytest.raises(ValueError, match="out of range"):
        table.learn(kernel, values, status, slots, index, 64, ROWS, p, loss, why)
    assert table.counters[0, classspec.CURVE_LEARNED] == 70
    assert table.counters[1].tolist() == before.tolist()
    assert np.isnan(p[70:]).all()


def _wrong_tables():
    """(what is wrong, a change to a good table or call)."""
    n, w = KEYS, WINDOW
    return [
        ("ring", lambda t: setattr(t, "ring", np.zeros((n, 2 * w - 1)))),
        ("ring slots", lambda t: setattr(t, "ring", np.zeros((n - 1, 2 * w)))),
        ("ring_y", lambda t: setattr(t, "ring_y", np.zeros((n, w + 1), dtype=np.int8))),
        ("ring_pred", lambda t: setattr(t, "ring_pred", np.zeros((n, w - 1), dtype=np.int8))),
        ("ring_p", lambda t: setattr(t, "ring_p", np.zeros((n, w + 1)))),
        ("points", lambda t: setattr(t, "points", np.zeros((n, POINTS + 1, 3)))),
        ("points slots", lambda t: setattr(t, "points", np.zeros((n - 1, POINTS + 1, 5)))),
        ("one point", lambda t: setattr(t, "points", np.zeros((n, 1, 5)))),
        ("counters", lambda t: setattr(t, "counters", t.counters[:, :-1].copy())),
        ("state", lambda t: setattr(t, "state", np.zeros((n, 1)))),
        ("weights", lambda t: setattr(t, "weights", np.zeros((n, 0)))),
        ("wide weights", lambda t: setattr(t, "weights", np.zeros((n, FEATURES + 2)))),
        ("pend_idx", lambda t: setattr(t, "pend_idx", np.zeros((n, 3), dtype=np.int64))),
        ("pend_err slots", lambda t: setattr(t, "pend_err", np.zeros((n - 1, 2)))),
    ]


@pytest.mark.parametrize(("what", "change"), _wrong_tables(), ids=[w for w, _ in _wrong_tables()])
def test_c_refuses_arrays_of_the_wrong_shape(what, change) -> None:
    values, keys = stream()
    table = Table(pend=2)
    change(table)
    status = np.zeros(ROWS, dtype=np.int8)
    index = np.arange(ROWS, dtype=np.int64)
    p, loss, why = np.full(ROWS, np.nan), np.full(ROWS, np.nan), np.zeros(1, dtype=np.int64)
    with pytest.raises(ValueError, match="out of range"):
        table.learn(_kernels.learn_logistic_keyed, values, status, keys, index, 0, 10, p, loss, why)
    assert np.isnan(p).all()


def test_c_refuses_rows_out_of_range_and_wrong_item_types() -> None:
    values, keys = stream()
    status = np.zeros(ROWS, dtype=np.int8)
    index = np.arange(ROWS, dtype=np.int64)
    p, loss, why = np.full(ROWS, np.nan), np.full(ROWS, np.nan), np.zeros(1, dtype=np.int64)
    kernel = _kernels.learn_logistic_keyed
    table = Table()
    for start, stop, short in [(-1, 5, 0), (5, 4, 0), (0, ROWS + 1, 0), (0, ROWS, 1)]:
        with pytest.raises(ValueError, match="out of range"):
            table.learn(
                kernel, values, status[: ROWS - short], keys, index, start, stop, p, loss, why
            )
        with pytest.raises(ValueError, match="out of range"):
            table.learn(
                kernel, values, status, keys, index, start, stop, p[: ROWS - short], loss, why
            )
    with pytest.raises(ValueError, match="out of range"):
        table.learn(kernel, values, status, keys, index, 0, 5, p, loss, why[:0])
    table.ring_y = table.ring_y.astype(np.float64)
    with pytest.raises(TypeError, match="ring_y"):
        table.learn(kernel, values, status, keys, index, 0, 5, p, loss, why)
    table = Table()
    table.counters = table.counters.astype(np.int32)
    with pytest.raises(TypeError, match="counters"):
        table.learn(kernel, values, status, keys, index, 0, 5, p, loss, why)
    assert np.isnan(p).all()


def test_c_score_losses_refuses_arrays_out_of_range() -> None:
    losses = np.ones(100)
    curve = np.zeros(classspec.N_CURVE, dtype=np.int64)
    curve[classspec.CURVE_STRIDE] = 1
    good = (losses, 0, 100, np.zeros(2), np.zeros(2 * WINDOW), curve, np.zeros((101, 3)))
    wrong = [
        (0, 101), (-1, 100), (5, 4), (0, 100, np.zeros(1)), (0, 100, None, np.zeros(2 * WINDOW + 1)),
        (0, 100, None, None, curve[:-1]), (0, 100, None, None, None, np.zeros((100, 3))),
        (0, 100, None, None, None, np.zeros((101, 5))),
    ]  # fmt: skip
    for change in wrong:
        args = list(good)
        for at, value in enumerate(change, start=1):
            if value is not None:
                args[at] = value
        with pytest.raises(ValueError, match="out of range"):
            _kernels.score_losses(*args)
    for counter, value in [(classspec.CURVE_NEXT, WINDOW), (classspec.CURVE_STRIDE, 0),
                           (classspec.CURVE_DIRTY, 1), (classspec.CURVE_LEN, WINDOW + 1)]:  # fmt: skip
        bad = curve.copy()
        bad[counter] = value
        with pytest.raises(ValueError, match="out of range"):
            _kernels.score_losses(*good[:5], bad, good[6])
    assert _kernels.score_losses(*good) is None
    assert good[5][classspec.CURVE_POINTS] == 100


def test_the_c_numbers_are_the_specifications() -> None:
    for name in ("C_PENDING", "C_RIGHT", "C_SCORED", "C_CORRECT", "C_CONFUSION", "C_POS_BINS",
                 "C_NEG_BINS", "N_BINS", "N_CLASS_KEY_COUNTERS", "N_POINT"):  # fmt: skip
        assert getattr(_kernels, name) == getattr(spec, name), name


def _margins_on_thresholds() -> list[float]:
    """Margins whose sigmoid is exactly one of River's thresholds i / 9 (not every one is)."""
    margins = []
    for i in range(1, 9):
        low = high = math.log(i / (9 - i))
        for _ in range(200):
            low, high = math.nextafter(low, -math.inf), math.nextafter(high, math.inf)
            margins += [z for z in (low, high) if sigmoid(z) == i / 9]
    return sorted(set(margins))[:: max(1, len(set(margins)) // 10)]


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_probability_on_a_threshold_falls_in_bisects_bin(kernel) -> None:
    """P(1) exactly on a threshold (intercepts set so; the features 0) counts in the bin
    ``bisect_left`` gives it, a positive's and a negative's."""
    margins = _margins_on_thresholds()
    assert len({sigmoid(z) for z in margins}) >= 4
    table = Table()
    rows = 2 * len(margins)
    values = np.zeros((rows, FEATURES + 1))
    values[::2, -1] = 1.0
    slots = np.arange(rows, dtype=np.int64)
    table.weights[:rows:2, -1] = table.weights[1:rows:2, -1] = margins
    p, loss, why = np.zeros(rows), np.zeros(rows), np.zeros(1, dtype=np.int64)
    status, index = np.zeros(rows, dtype=np.int8), np.arange(rows, dtype=np.int64)
    assert table.learn(kernel, values, status, slots, index, 0, rows, p, loss, why) == rows
    for row, z in enumerate(np.repeat(margins, 2).tolist()):
        bins = spec.C_POS_BINS if row % 2 == 0 else spec.C_NEG_BINS
        counts = table.counters[row, bins : bins + spec.N_BINS].tolist()
        assert p[row] == sigmoid(z) and counts.index(1) == bisect_left(THRESHOLDS, p[row])
