"""The keyed kernels' specification: ``learn_rows_keyed`` and ``cut_column`` as plain Python.

``daemon/fast/_kernels.c`` renders each function here line for line in C; the tests run
both on the same inputs and compare every output bit (``tests/test_keys_compiled.py``).

- :func:`cut_column` cuts one CSV column (``--key-by``) out of each line of a block: the
  lines without it go to ``parse_lines`` as the plain layout, the cells come back as the
  keys' text. A cell the fast path does not take as it is (quotes, blanks at its ends, no
  such column, not printable ASCII, empty or over ``MAX_KEY_CHARS``) is None: its line is
  left whole, for the decoder to judge.
- :class:`KeyIndex` gives each distinct key an id (0, 1, 2... in order of first sight);
  its ``cut`` is :func:`cut_column` with each row's key as an id (-1 for None) and only the
  text of the keys new to it made: no Python object a row.
- :func:`learn_rows_keyed` is :func:`streamlearn.fast.spec.learn_rows` with one model per
  key: row ``r`` is learned by slot ``slots[r]`` (its row of weights, its intercept, metrics,
  ring and learning curve), with the same arithmetic as a ``Learner`` of ``sgd`` per key.
  Each learned error also waits in its slot's buffer for the key's drift monitor, with its
  stream index; the caller hands a full buffer to the monitor.
- :func:`held_slots` gives each labeled row of a block its key's slot, the step before
  :func:`learn_rows_keyed`, and marks the slots used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamlearn.fast.spec import (
    ABS_SUM,
    INTERCEPT,
    LABELED,
    MAE_MEAN,
    MAE_N,
    MSE_MEAN,
    MSE_N,
    RSS,
    VAR_MEAN,
    VAR_N,
    VAR_S,
    descend,
    linear,
    mean_step,
)
from streamlearn.metrics import DIVERGED

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "K_DIVERGED",
    "K_DONE",
    "K_FULL",
    "K_OTHER",
    "KeyIndex",
    "cut_column",
    "held_slots",
    "learn_rows_keyed",
]

#: A slot's counters: records learned, ring slot and length, curve stride and points,
#: errors waiting for the drift monitor.
K_LEARNED, K_SLOT, K_LENGTH, K_STRIDE, K_POINTS, K_PENDING = range(6)
N_KEY_COUNTERS = K_PENDING + 1
#: Why ``learn_rows_keyed`` returned (``why[0]``): all done; the row's prediction is one the
#: divergence guard must see; the row is not a labeled one with a slot; the row's slot has
#: a full buffer of errors. The row it returns is not learned but in the first case.
K_DONE, K_DIVERGED, K_OTHER, K_FULL = range(4)
#: Characters of a key's text at most (``streamlearn.keys.store.MAX_KEY_CHARS``).
_MAX_KEY = 256


def _plain_key(cell: bytes) -> bool:
    size = len(cell)
    if size < 1 or size > _MAX_KEY or cell[0] == 32 or cell[-1] == 32:
        return False
    return all(32 <= c <= 126 and c != 34 for c in cell)


def cut_column(
    data: bytes, column: int, starts: NDArray[np.int64]
) -> tuple[bytes, list[str | None]]:
    """Each line of ``data`` without its ``column``-th cell, and those cells.

    ``starts`` (rows + 1 long) receives each line's offset in ``data`` and the end. A line
    whose cell is None is copied whole; otherwise the cell and one comma beside it (after
    it; for the last cell, before it) are left out.
    """
    size = len(data)
    rows = len(starts) - 1
    out = bytearray()
    keys: list[str | None] = [None] * rows
    pos = 0
    row = 0
    while row < rows and pos < size:
        starts[row] = pos
        end = data.find(b"\n", pos)
        end = size if end < 0 else end
        line = data[pos:end]
        text_end = end - 1 if end > pos and data[end - 1] == 13 else end
        cell = pos
        field = 0
        while field < column and cell < text_end:
            if data[cell] == 44:
                field += 1
            cell += 1
        cell_end = cell
        while cell_end < text_end and data[cell_end] != 44:
            cell_end += 1
        following = end + 1 if end < size else end
        text = data[cell:cell_end]
        if 34 not in line and field == column and _plain_key(text):
            keys[row] = text.decode("ascii")
            cut_from, cut_to = cell, cell_end
            if cut_to < text_end:
                cut_to += 1
            elif cut_from > pos:
                cut_from -= 1
            out += data[pos:cut_from]
            out += data[cut_to:following]
        else:
            out += data[pos:following]
        pos = following
        row += 1
    for rest in range(row, rows):
        starts[rest] = pos
    starts[rows] = pos
    return bytes(out), keys


class KeyIndex:
    """Each distinct key (its bytes: a plain cell's, or a decoded key's in UTF-8) an id, 0, 1,
    2... in the order first seen; ``clear`` forgets them all."""

    def __init__(self) -> None:
        self._ids: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def clear(self) -> None:
        self._ids.clear()

    def id(self, key: bytes) -> int:
        """``key``'s id, added if new."""
        return self._ids.setdefault(bytes(key), len(self._ids))

    def cut(
        self, data: bytes, column: int, starts: NDArray[np.int64], ids: NDArray[np.int64]
    ) -> tuple[bytes, list[str]]:
        """:func:`cut_column`, each row's key as its id into ``ids`` (-1: None); the text of
        the keys new to the index, in the order of their ids."""
        out, keys = cut_column(data, column, starts)
        new: list[str] = []
        for row, key in enumerate(keys):
            if key is None:
                ids[row] = -1
                continue
            size = len(self._ids)
            ids[row] = self.id(key.encode("ascii"))
            if len(self._ids) > size:
                new.append(key)
        return out, new


def _curve_add(
    curve: NDArray[np.float64],
    counters: NDArray[np.int64],
    n: float,
    rolling: float,
    cumulative: float,
) -> None:
    """``Curve.add`` of a due point into a slot's curve (``curve``: its (max + 1, 3) rows)."""
    max_points = curve.shape[0] - 1
    count = int(counters[K_POINTS])
    curve[count, 0] = n
    curve[count, 1] = rolling
    curve[count, 2] = cumulative
    count += 1
    if count > max_points:
        stride = int(counters[K_STRIDE]) * 2
        kept = 0
        for i in range(count):
            if int(curve[i, 0]) % stride == 0:
                curve[kept] = curve[i]
                kept += 1
        counters[K_STRIDE] = stride
        count = kept
    counters[K_POINTS] = count


def _score(state: NDArray[np.float64], y: float, yhat: float, two: float) -> None:
    """River's MAE, MSE and R2 of a slot hear of one prediction (``learn_rows``' steps)."""
    state[MAE_N] += 1.0
    state[MAE_MEAN] = mean_step(float(state[MAE_N]), float(state[MAE_MEAN]), abs(y - yhat))
    state[MSE_N] += 1.0
    state[MSE_MEAN] = mean_step(float(state[MSE_N]), float(state[MSE_MEAN]), (y - yhat) ** two)
    mean_old = float(state[VAR_MEAN])
    state[VAR_N] += 1.0
    state[VAR_MEAN] += (1.0 / state[VAR_N]) * (y - state[VAR_MEAN])
    state[VAR_S] += 1.0 * (y - mean_old) * (y - state[VAR_MEAN])
    state[RSS] += (y - yhat) * (y - yhat) * 1.0


def _remember(
    state: NDArray[np.float64],
    counters: NDArray[np.int64],
    ring_y: NDArray[np.float64],
    ring_yhat: NDArray[np.float64],
    y: float,
    yhat: float,
) -> int:
    """``Learner._remember``'s ring and running |error| sum of a slot; the next ring slot."""
    window = ring_y.shape[0]
    slot = int(counters[K_SLOT])
    if counters[K_LENGTH] == window:
        state[ABS_SUM] -= abs(ring_y[slot] - ring_yhat[slot])
    else:
        counters[K_LENGTH] += 1
    ring_y[slot] = y
    ring_yhat[slot] = yhat
    slot += 1
    if slot == window:
        slot = 0
    counters[K_SLOT] = slot
    state[ABS_SUM] += abs(y - yhat)
    return slot


def held_slots(
    ids: NDArray[np.int64],
    status: NDArray[np.int8],
    slot_of_id: NDArray[np.int64],
    stamp: NDArray[np.int64],
    clock: int,
    held: NDArray[np.int64],
    start: int,
    stop: int,
) -> int:
    """``held[start:stop]``: each labeled row's slot, ``slot_of_id[ids[row]]`` (-1: a row of
    another kind, without a key id, or whose key holds no slot), and ``stamp[slot] = clock``
    for each slot found. Returns how many labeled rows with a key id found no slot."""
    missed = 0
    for row in range(start, stop):
        id_ = int(ids[row])
        slot = -1
        if status[row] == LABELED and id_ >= 0:
            slot = int(slot_of_id[id_])
            if slot >= 0:
                stamp[slot] = clock
            else:
                missed += 1
        held[row] = slot
    return missed


def learn_rows_keyed(
    values: NDArray[np.float64],
    status: NDArray[np.int8],
    slots: NDArray[np.int64],
    index: NDArray[np.int64],
    start: int,
    stop: int,
    weights: NDArray[np.float64],
    lr: float,
    two: float,
    state: NDArray[np.float64],
    counters: NDArray[np.int64],
    ring_y: NDArray[np.float64],
    ring_yhat: NDArray[np.float64],
    curve: NDArray[np.float64],
    pend_err: NDArray[np.float64],
    pend_idx: NDArray[np.int64],
    yhat_out: NDArray[np.float64],
    why: NDArray[np.int64],
) -> int:
    """Test then train rows ``start..stop``, each in slot ``slots[row]``; the row it stopped at.

    ``weights`` is (slots, features), ``state`` (slots, ``spec.N_STATE``), ``counters``
    (slots, ``N_KEY_COUNTERS``), the rings (slots, window), ``curve`` (slots, max points + 1,
    3), the error buffers (slots, pending; pending 0: no drift monitor). ``index[row]`` is the
    row's stream index, which the monitor's events report. ``why[0]`` says why it returned.
    """
    n_slots, n_features = weights.shape
    window = ring_y.shape[1]
    pend = pend_err.shape[1]
    row = start
    reason = K_DONE
    while row < stop:
        s = int(slots[row])
        if status[row] != LABELED or s < 0 or s >= n_slots:
            reason = K_OTHER
            break
        c = counters[s]
        if pend > 0 and c[K_PENDING] >= pend:
            reason = K_FULL
            break
        w = weights[s]
        st = state[s]
        ry = ring_y[s]
        ryhat = ring_yhat[s]
        x = values[row]
        yhat = linear(float(st[INTERCEPT]), w, x, n_features)
        yhat_out[row] = yhat
        if not -DIVERGED < yhat < DIVERGED:
            reason = K_DIVERGED
            break
        y = float(x[n_features])
        _score(st, y, yhat, two)
        step = lr * (yhat - y)
        descend(w, x, n_features, step)
        st[INTERCEPT] -= step
        slot = _remember(st, c, ry, ryhat, y, yhat)
        c[K_LEARNED] += 1
        learned = int(c[K_LEARNED])
        if pend > 0:
            at = int(c[K_PENDING])
            pend_err[s, at] = abs(y - yhat)
            pend_idx[s, at] = index[row]
            c[K_PENDING] = at + 1
        row += 1
        if learned % c[K_STRIDE] == 0:
            if learned % window == 0:
                total = 0.0
                for i in range(window):
                    at = (slot + i) % window
                    total += abs(ry[at] - ryhat[at])
                st[ABS_SUM] = total
            _curve_add(curve[s], c, float(learned), st[ABS_SUM] / float(c[K_LENGTH]), st[MAE_MEAN])
    why[0] = reason
    return row
