"""A classifier's log-loss learning curve: (records learned, rolling loss, cumulative loss) at the
points of its accuracy curve, kept record by record or a block at a time (``streamlearn report``
plots both curves).

The loss is the class metrics' (log loss, binary; cross-entropy, multiclass). The rolling loss
of a point is the mean of the window's losses then; the cumulative one the running mean's value.
The compiled kernels of ``logistic`` and ``softmax`` make their blocks' points themselves, in
the operations ``rolling_loss`` and the running mean use (``fast.classspec.loss_point``);
``block_points`` serves the other blocks (River models scored a block at a time) from
differences of cumulative sums, which may differ from record by record's in the last bits.
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

__all__ = ["LossMark", "block_points", "mark", "rolling_loss"]


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


def block_points(
    start: LossMark, losses: NDArray[np.float64], stride: int, size: int
) -> list[list[float]]:
    """``[n, rolling, cumulative]`` at each multiple ``n`` of ``stride`` among the block's
    records (``losses``, one per record learned and scored, in order), for ``Curve.add_many``;
    ``size``: the window's.

    >>> import numpy as np
    >>> ring = array("d", [2.0, 4.0])  # 4.0 came first: the next slot to write is 1
    >>> start = LossMark(learned=2, ring=ring, next=1, len=2, n=2.0, mean=3.0)
    >>> block_points(start, np.array([1.0, 3.0, 5.0]), stride=2, size=2)
    [[4.0, 2.0, 2.5]]
    """
    import numpy as np

    count = len(losses)
    at = np.arange((start.learned // stride + 1) * stride, start.learned + count + 1, stride)
    if not at.size:
        return []
    i = at - start.learned - 1  # the block's record that made each point
    before = start.len
    sums = np.concatenate(([0.0], np.cumsum(np.concatenate((start.losses(), losses)))))
    ends = before + i + 1
    width = np.minimum(size, ends)
    rolling = (sums[ends] - sums[ends - width]) / width
    cumulative = (start.n * start.mean + (sums[ends] - sums[before])) / (start.n + i + 1)
    points: list[list[float]] = np.column_stack([at, rolling, cumulative]).tolist()
    return points
