"""A classifier's log-loss learning curve: (records learned, rolling loss, cumulative loss) at the
points of its accuracy curve, kept record by record or a block at a time (``streamlearn report``
plots both curves).

The loss is the class metrics' (log loss, binary; cross-entropy, multiclass). The rolling loss
of a point is the mean of the window's losses then; the cumulative one the running mean's value.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from streamlearn.classify.metrics import Window
    from streamlearn.metrics import Mean

__all__ = [
    "LossMark",
    "block_points",
    "mark",
    "point_indices",
    "rolling_at",
    "rolling_loss",
    "running_means",
]


def rolling_loss(window: Window) -> float:
    """The mean loss of the records in ``window`` (0.0 while empty).

    >>> from streamlearn.classify.metrics import Window
    >>> window = Window(2)
    >>> for loss in (3.0, 1.0, 2.0):
    ...     window.add(0, 0, loss)
    >>> rolling_loss(window)
    1.5
    """
    if not window.len:
        return 0.0
    # Until the ring is full its records fill the first slots; then every slot holds one.
    return sum(window.loss[: window.len]) / window.len


@dataclass(frozen=True)
class LossMark:
    """What a block's loss points start from, taken before the block: records learned, the
    window's ring of losses (a copy, slot by slot: one memcpy per block), its next slot and
    length, and the running mean's state."""

    learned: int
    ring: array[float]
    next: int
    len: int
    n: float
    mean: float

    def losses(self) -> NDArray[np.float64]:
        """The window's losses, oldest first."""
        import numpy as np

        ring = np.frombuffer(self.ring, dtype=np.float64)
        if self.len < len(ring):  # not full: the first slots, in order
            return ring[: self.len]
        return np.concatenate((ring[self.next :], ring[: self.next]))


def mark(learned: int, window: Window, loss: Mean) -> LossMark:
    """The ``LossMark`` of a learner before a block."""
    return LossMark(learned, window.loss[:], window.next, window.len, loss.n, loss.get())


def point_indices(learned: int, count: int, stride: int) -> NDArray[np.intp]:
    """The records of a block that make curve points: the index in the block of each record
    whose count (``learned`` before the block, plus its place) is a multiple of ``stride``.

    >>> point_indices(learned=3, count=6, stride=2).tolist()
    [0, 2, 4]
    """
    import numpy as np

    at = np.arange((learned // stride + 1) * stride, learned + count + 1, stride)
    indices: NDArray[np.intp] = at - learned - 1
    return indices


def running_means(
    start: LossMark, losses: NDArray[np.float64], at: NDArray[np.intp]
) -> list[float]:
    """The running mean of the loss after each record ``at`` of the block (in order), as
    ``Mean.update`` leaves it record by record: the same recurrence, the same bits."""
    n, mean = start.n, start.mean
    out: list[float] = []
    if not len(at):
        return out
    wanted = iter(at.tolist())
    next_at = next(wanted)
    for index, value in enumerate(losses[: int(at[-1]) + 1].tolist()):
        n += 1.0
        mean += (1.0 / n) * (value - mean)
        if index == next_at:
            out.append(mean)
            next_at = next(wanted, -1)
    return out


#: Points whose windows are summed at once (bounds a block's scratch to this many windows).
_POINTS_AT_ONCE = 64


def rolling_at(
    start: LossMark, losses: NDArray[np.float64], at: NDArray[np.intp], size: int
) -> NDArray[np.float64]:
    """``rolling_loss`` of the window after each record ``at`` of the block, to the bit.

    The record path sums the ring slot by slot from slot 0 (``sum`` of floats: one addition
    after the other, as ``np.cumsum`` along a row); so here each point's ring is rebuilt
    (every slot holds the block's last loss written there by then, or the mark's) and summed
    in that order.
    """
    import numpy as np

    ring = np.frombuffer(start.ring, dtype=np.float64)
    slots = np.arange(size)
    out = np.empty(len(at))
    for first in range(0, len(at), _POINTS_AT_ONCE):
        i = at[first : first + _POINTS_AT_ONCE, None]
        # The block's last record written to each slot by record i (slot next + j for j).
        j = i - (i + start.next - slots[None, :]) % size
        values = np.where(j >= 0, losses[np.maximum(j, 0)], ring[None, :])
        length = np.minimum(size, start.len + i[:, 0] + 1)
        sums = np.cumsum(values, axis=1)[np.arange(len(length)), length - 1]
        out[first : first + len(length)] = sums / length
    return out


def block_points(
    start: LossMark,
    losses: NDArray[np.float64],
    stride: int,
    size: int,
    means: list[float] | None = None,
) -> list[list[float]]:
    """``[n, rolling, cumulative]`` at each multiple ``n`` of ``stride`` among the block's
    records (``losses``, one per record learned and scored, in order), for ``Curve.add_many``;
    ``size``: the window's. ``means``: the running mean after each of those records, if the
    caller kept it (else it is run again from the mark's).

    >>> import numpy as np
    >>> ring = array("d", [2.0, 4.0])  # 4.0 came first: the next slot to write is 1
    >>> start = LossMark(learned=2, ring=ring, next=1, len=2, n=2.0, mean=3.0)
    >>> block_points(start, np.array([1.0, 3.0, 5.0]), stride=2, size=2)
    [[4.0, 2.0, 2.5]]
    """
    import numpy as np

    i = point_indices(start.learned, len(losses), stride)
    if not i.size:
        return []
    if means is None:
        means = running_means(start, losses, i)
    at = i + start.learned + 1
    rolling = rolling_at(start, losses, i, size)
    points: list[list[float]] = np.column_stack([at, rolling, means]).tolist()
    return points
