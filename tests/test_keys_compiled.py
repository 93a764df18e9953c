"""The compiled keyed kernels (``learn_rows_keyed``, ``held_slots``, ``cut_column``): the C
against its Python
specification (``streamlearn.fast.keyspec``) bit for bit, and both against one ``Learner`` of
``sgd`` per key and a numpy loop per key."""

from __future__ import annotations

import numpy as np
import pytest

from streamhelpers import sgd_oracle
from streamlearn import metrics
from streamlearn.curve import Curve
from streamlearn.fast import _kernels, keyspec
from streamlearn.fast.spec import ABS_SUM, INTERCEPT, LABELED, N_STATE, NOTHING, UNLABELED
from streamlearn.learner import Learner
from streamlearn.models.sgd import SGDRegressor

KEYS, FEATURES, ROWS, WINDOW, POINTS, LR = 50, 3, 4000, 7, 4, 0.05
KERNELS = [
    pytest.param(keyspec.learn_rows_keyed, id="python"),
    pytest.param(_kernels.learn_rows_keyed, id="c"),
]


def stream(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Rows of 50 keys with their own true weights, interleaved at random: values
    (features then target) and each row's key."""
    rng = np.random.default_rng(seed)
    true = rng.normal(size=(KEYS, FEATURES))
    bias = rng.normal(size=KEYS)
    keys = rng.integers(KEYS, size=ROWS)
    X = rng.normal(size=(ROWS, FEATURES))
    y = np.einsum("ij,ij->i", X, true[keys]) + bias[keys] + 0.1 * rng.normal(size=ROWS)
    return np.column_stack([X, y]), keys


class Table:
    """The arrays ``learn_rows_keyed`` learns into, for ``KEYS`` slots."""

    def __init__(self, pend: int = 0) -> None:
        self.weights = np.zeros((KEYS, FEATURES))
        self.state = np.zeros((KEYS, N_STATE))
        self.counters = np.zeros((KEYS, keyspec.N_KEY_COUNTERS), dtype=np.int64)
        self.counters[:, keyspec.K_STRIDE] = 1
        self.ring_y = np.zeros((KEYS, WINDOW))
        self.ring_yhat = np.zeros((KEYS, WINDOW))
        self.curve = np.zeros((KEYS, POINTS + 1, 3))
        self.pend_err = np.zeros((KEYS, pend))
        self.pend_idx = np.zeros((KEYS, pend), dtype=np.int64)

    def learn(self, kernel, values, status, slots, index, start, stop, yhat, why) -> int:
        return kernel(
            values, status, slots, index, start, stop, self.weights, LR, 2.0, self.state,
            self.counters, self.ring_y, self.ring_yhat, self.curve, self.pend_err,
            self.pend_idx, yhat, why,
        )  # fmt: skip


def learn_all(kernel, values, keys, pend: int = 0) -> tuple[Table, np.ndarray, list[np.ndarray]]:
    """Every row learned; a full error buffer emptied in order. The table, the
    predictions, and each key's errors in the order they were handed over."""
    table = Table(pend)
    status = np.zeros(ROWS, dtype=np.int8)
    slots = keys.astype(np.int64)
    index = np.arange(ROWS, dtype=np.int64) + 1000
    yhat = np.full(ROWS, np.nan)
    why = np.zeros(1, dtype=np.int64)
    handed: list[list[float]] = [[] for _ in range(KEYS)]
    row = 0
    while True:
        row = table.learn(kernel, values, status, slots, index, row, ROWS, yhat, why)
        if why[0] == keyspec.K_DONE:
            break
        assert why[0] == keyspec.K_FULL
        slot = slots[row]
        handed[slot] += table.pend_err[slot].tolist()
        assert table.pend_idx[slot].tolist() == (np.flatnonzero(keys == slot)[
            len(handed[slot]) - pend : len(handed[slot])] + 1000).tolist()  # fmt: skip
        table.counters[slot, keyspec.K_PENDING] = 0
    for slot in range(KEYS):
        waiting = int(table.counters[slot, keyspec.K_PENDING])
        handed[slot] += table.pend_err[slot, :waiting].tolist()
    return table, yhat, [np.array(errors) for errors in handed]


@pytest.mark.parametrize("kernel", KERNELS)
def test_each_key_learns_as_its_own_learner(kernel) -> None:
    """Per key: weights, intercept, metrics, ring, curve and predictions equal a ``Learner``
    of ``sgd`` fed that key's rows in order (bit for bit), and a numpy loop (1e-12)."""
    values, keys = stream()
    table, yhat, _ = learn_all(kernel, values, keys)
    names = [f"x{j}" for j in range(FEATURES)]
    for key in range(KEYS):
        rows = np.flatnonzero(keys == key)
        learner = Learner(SGDRegressor(lr=LR), rolling_window=WINDOW)
        learner.curve = Curve(max_points=POINTS)
        expected = [
            learner.step(dict(zip(names, values[r, :-1].tolist(), strict=True)), values[r, -1])
            for r in rows
        ]
        assert yhat[rows].tolist() == expected
        model = learner.model
        assert table.weights[key].tolist() == [model.weights[name] for name in names]
        assert table.state[key, INTERCEPT] == model.intercept
        exported = learner.export_prequential()
        assert table.state[key, INTERCEPT + 1 : ABS_SUM].tolist() == exported.metrics
        assert table.state[key, ABS_SUM] == exported.abs_sum
        counters = table.counters[key].tolist()
        assert counters[keyspec.K_LEARNED] == learner.records_learned == len(rows)
        assert counters[keyspec.K_SLOT] == exported.window_next
        assert counters[keyspec.K_LENGTH] == exported.window_len
        assert table.ring_y[key].tolist() == exported.window_y.tolist()
        assert table.ring_yhat[key].tolist() == exported.window_yhat.tolist()
        assert counters[keyspec.K_STRIDE] == learner.curve.stride
        points = [tuple(point) for point in table.curve[key, : counters[keyspec.K_POINTS]]]
        assert points == [(float(n), r, c) for n, r, c in learner.curve.points]
        theta, theta0, predictions = sgd_oracle(values[rows, :-1], values[rows, -1], LR)
        np.testing.assert_allclose(table.weights[key], theta, rtol=0, atol=1e-12)
        assert abs(table.state[key, INTERCEPT] - theta0) < 1e-12
        np.testing.assert_allclose(yhat[rows], predictions, rtol=0, atol=1e-12)
        assert metrics.export_fields(learner.metrics) == exported.metrics


def test_c_equals_python_bit_for_bit() -> None:
    """The same rows, with error buffers of 5 (emptied when full): every array equal."""
    values, keys = stream(seed=11)
    python, yhat_py, handed_py = learn_all(keyspec.learn_rows_keyed, values, keys, pend=5)
    c, yhat_c, handed_c = learn_all(_kernels.learn_rows_keyed, values, keys, pend=5)
    assert yhat_py.tobytes() == yhat_c.tobytes()
    for name in ("weights", "state", "counters", "ring_y", "ring_yhat", "curve"):
        assert getattr(python, name).tobytes() == getattr(c, name).tobytes(), name
    for key in range(KEYS):
        rows = np.flatnonzero(keys == key)
        assert handed_c[key].tolist() == np.abs(values[rows, -1] - yhat_c[rows]).tolist()
        assert handed_py[key].tolist() == handed_c[key].tolist()


@pytest.mark.parametrize("kernel", KERNELS)
def test_stops_where_the_caller_takes_over(kernel) -> None:
    """It stops at an unlabeled row, a row without a slot and a divergent prediction, and
    learns none of them."""
    values, keys = stream()
    values = values[:10].copy()
    slots = keys[:10].astype(np.int64)
    status = np.zeros(10, dtype=np.int8)
    status[3] = UNLABELED
    slots[5] = -1
    values[7, 0] = 1e200
    table = Table()
    table.weights[slots[7]] = 1.0
    yhat = np.zeros(10)
    why = np.zeros(1, dtype=np.int64)
    index = np.arange(10, dtype=np.int64)
    stops = []
    row = 0
    while row < 10:
        row = table.learn(kernel, values, status, slots, index, row, 10, yhat, why)
        stops.append((row, int(why[0])))
        row += 1
    assert stops[:3] == [(3, keyspec.K_OTHER), (5, keyspec.K_OTHER), (7, keyspec.K_DIVERGED)]
    assert int(table.counters[:, keyspec.K_LEARNED].sum()) == 7
    assert status[0] == LABELED


def test_c_refuses_a_slot_whose_counters_are_out_of_range() -> None:
    """A slot's counters index its arrays: one out of range is a ValueError when a row
    reaches it (the rows before it learned, it not), past a call stopped at a full buffer."""
    values, _ = stream()
    slots = np.zeros(ROWS, dtype=np.int64)
    slots[70:] = 1
    table = Table(pend=64)
    table.counters[1, keyspec.K_SLOT] = WINDOW  # one past the ring
    status = np.zeros(ROWS, dtype=np.int8)
    index = np.arange(ROWS, dtype=np.int64)
    yhat = np.full(ROWS, np.nan)
    why = np.zeros(1, dtype=np.int64)
    row = table.learn(_kernels.learn_rows_keyed, values, status, slots, index, 0, ROWS, yhat, why)
    assert (row, why[0]) == (64, keyspec.K_FULL)
    table.counters[0, keyspec.K_PENDING] = 0
    with pytest.raises(ValueError, match="out of range"):
        table.learn(_kernels.learn_rows_keyed, values, status, slots, index, 64, ROWS, yhat, why)
    assert table.counters[0, keyspec.K_LEARNED] == 70 and table.counters[1, keyspec.K_LEARNED] == 0


@pytest.mark.parametrize("held", [keyspec.held_slots, _kernels.held_slots], ids=["python", "c"])
def test_held_slots_finds_each_labeled_rows_slot(held) -> None:
    """Each labeled row with a key id gets its key's slot and stamps it with the clock; other
    rows get -1; the count is the labeled rows whose key holds no slot. Against a plain
    reading of the arrays, on rows after ``start`` only."""
    rng = np.random.default_rng(5)
    rows, ids_known, slots_held = 3000, 400, 100
    ids = rng.integers(-1, ids_known, size=rows).astype(np.int64)
    status = rng.choice([LABELED, LABELED, UNLABELED, NOTHING], size=rows).astype(np.int8)
    slot_of_id = np.full(ids_known, -1, dtype=np.int64)
    slot_of_id[rng.choice(ids_known, slots_held, replace=False)] = np.arange(slots_held)
    stamp = np.zeros(slots_held, dtype=np.int64)
    out = np.full(rows, 7, dtype=np.int64)
    start, stop = 100, 2900
    missed = held(ids, status, slot_of_id, stamp, 42, out, start, stop)
    expected, expected_missed, stamped = [], 0, set()
    for row in range(start, stop):
        slot = int(slot_of_id[ids[row]]) if status[row] == LABELED and ids[row] >= 0 else -1
        expected_missed += status[row] == LABELED and ids[row] >= 0 and slot < 0
        stamped |= {slot} if slot >= 0 else set()
        expected.append(slot)
    assert out[start:stop].tolist() == expected
    assert (out[:start] == 7).all() and (out[stop:] == 7).all()  # rows outside: untouched
    assert missed == expected_missed > 0
    assert sorted(np.flatnonzero(stamp == 42).tolist()) == sorted(stamped)
    assert set(stamp.tolist()) <= {0, 42}


def test_c_held_slots_refuses_a_key_id_past_its_array() -> None:
    ids = np.array([0, 5], dtype=np.int64)
    status = np.zeros(2, dtype=np.int8)
    slot_of_id = np.zeros(3, dtype=np.int64)
    stamp = np.zeros(1, dtype=np.int64)
    out = np.zeros(2, dtype=np.int64)
    with pytest.raises(ValueError, match="out of range"):
        _kernels.held_slots(ids, status, slot_of_id, stamp, 1, out, 0, 2)


@pytest.mark.parametrize("cut", [keyspec.cut_column, _kernels.cut_column], ids=["python", "c"])
def test_cut_column(cut) -> None:
    """The key cell and one comma out of each line; a line it doubts is left whole."""
    lines = [
        b"s1,1,2,3\n",
        b"1,s2,2,3\r\n",
        b"1,2,3,s3\n",
        b'1,"q",2,3\n',
        b"1, s5,2,3\n",
        b"1,,2,3\n",
        b"1\n",
        b"\n",
        b"1,2,3,k" + b"x" * 300 + b"\n",
        b"4,5,6,last",
    ]
    data = b"".join(lines)
    for column in (0, 1, 3):
        starts = np.zeros(len(lines) + 1, dtype=np.int64)
        out, keys = cut(data, column, starts)
        assert starts.tolist() == np.cumsum([0] + [len(line) for line in lines]).tolist()
        expected_keys: list[str | None] = []
        expected = b""
        for line in lines:
            text = line.rstrip(b"\r\n")
            cells = text.split(b",")
            cell = cells[column] if len(cells) > column else b""
            if b'"' in text or not 0 < len(cell) <= 256 or cell != cell.strip():
                expected_keys.append(None)
                expected += line
                continue
            expected_keys.append(cells.pop(column).decode())
            expected += b",".join(cells) + line[len(text) :]
        assert keys == expected_keys
        assert out == expected
    assert cut(data, 1, np.zeros(len(lines) + 1, dtype=np.int64))[1][:3] == ["1", "s2", "2"]


@pytest.mark.parametrize("index", [keyspec.KeyIndex, _kernels.KeyIndex], ids=["python", "c"])
def test_key_index_gives_each_key_one_id(index) -> None:
    """``cut`` is ``cut_column`` with ids: one per distinct key in the order first seen
    (across blocks, through table growth), -1 for a doubted line, each new key's text once;
    ``id`` finds a key cut before by its bytes and adds one it never saw; ``clear`` restarts."""
    rng = np.random.default_rng(5)
    names = [f"k{n}" for n in rng.integers(3000, size=6000)]
    names[10] = "x" * 256
    lines = [f"1,{name},2.5\n".encode() for name in names]
    lines[7] = b'1,"k1",2\n'
    keys = index()
    ids_seen: dict[str, int] = {}
    for block in range(0, len(lines), 1000):
        data = b"".join(lines[block : block + 1000])
        starts = np.zeros(1001, dtype=np.int64)
        ids = np.full(1000, 99, dtype=np.int64)
        out, new = keys.cut(data, 1, starts, ids)
        expected_out, expected_keys = keyspec.cut_column(data, 1, np.zeros(1001, dtype=np.int64))
        assert out == expected_out
        fresh = [key for key in dict.fromkeys(expected_keys) if key and key not in ids_seen]
        assert new == fresh
        ids_seen.update({key: len(ids_seen) + n for n, key in enumerate(fresh)})
        assert ids.tolist() == [-1 if key is None else ids_seen[key] for key in expected_keys]
    assert len(keys) == len(ids_seen)
    assert keys.id(b"k1") == ids_seen["k1"]
    assert keys.id("caf\u00e9".encode()) == len(ids_seen)
    assert len(keys) == len(ids_seen) + 1
    keys.clear()
    ids = np.zeros(2, dtype=np.int64)
    assert keys.cut(b"1,b,2\n1,a,3\n", 1, np.zeros(3, dtype=np.int64), ids)[1] == ["b", "a"]
    assert ids.tolist() == [0, 1] and len(keys) == 2


def test_the_c_numbers_are_the_specifications() -> None:
    assert _kernels.N_KEY_COUNTERS == keyspec.N_KEY_COUNTERS
    assert _kernels.K_FULL == keyspec.K_FULL
