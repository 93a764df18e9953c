"""A classifier's log-loss learning curve: (records learned, rolling loss, cumulative loss) at the
points of its accuracy curve, kept record by record or a block at a time (``streamlearn report``
plots both curves).

The loss is the class metrics' (log loss, binary; cross-entropy, multiclass). The rolling loss
of a point is the mean of the window's losses then; the cumulative one the running mean's value.
"""

from __future__ import annotations

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
    """What a block's loss points start from: records learned, the window's losses (oldest
    first) and the running mean's state, taken before the block."""

    learned: int
    losses: tuple[float, ...]
    n: float
    mean: float


def mark(learned: int, window: Window, loss: Mean) -> LossMark:
    """The ``LossMark`` of a learner before a block."""
    return LossMark(learned, tuple(window.loss[i] for i in window.in_order()), loss.n, loss.get())


def block_points(
    start: LossMark, losses: NDArray[np.float64], stride: int, size: int
) -> list[list[float]]:
    """``[n, rolling, cumulative]`` at each multiple ``n`` of ``stride`` among the block's
    records (``losses``, one per record learned and scored, in order), for ``Curve.add_many``;
    ``size``: the window's.

    >>> import numpy as np
    >>> start = LossMark(learned=2, losses=(4.0, 2.0), n=2.0, mean=3.0)
    >>> block_points(start, np.array([1.0, 3.0, 5.0]), stride=2, size=2)
    [[4.0, 2.0, 2.5]]
    """
    import numpy as np

    count = len(losses)
    at = np.arange((start.learned // stride + 1) * stride, start.learned + count + 1, stride)
    if not at.size:
        return []
    i = at - start.learned - 1  # the block's record that made each point
    before = len(start.losses)
    sums = np.concatenate(([0.0], np.cumsum(np.concatenate((start.losses, losses)))))
    ends = before + i + 1
    width = np.minimum(size, ends)
    rolling = (sums[ends] - sums[ends - width]) / width
    cumulative = (start.n * start.mean + (sums[ends] - sums[before])) / (start.n + i + 1)
    return np.column_stack([at, rolling, cumulative]).tolist()
