"""One scored record's metrics and rolling window: the record path's step after the model's.

Each labeled record a :class:`streamlearn.learner.Learner` scores updates River's MAE, RMSE
and R2 (their :data:`streamlearn.metrics.FIELDS`, kept in one array while they are scored)
and its rolling window (a ring of targets and predictions, its length, the running |error|
sum). A keyed run does this for every record of every key, and as Python it was about a
tenth of such a run's time; :func:`score_remember` is its specification and
``streamlearn.fast._kernels.score_remember`` its C rendering, one call a record. The tests
compare the two bit for bit (``tests/test_remember.py``); without the extension the Python
runs, with the same results.

>>> from array import array
>>> hot, ys, yhats = array("d", [0.0] * 8), array("d", [0.0] * 2), array("d", [0.0] * 2)
>>> state = (0, 0, 0.0)
>>> for y, yhat in [(1.0, 0.5), (2.0, 2.5), (0.0, 1.0)]:
...     state = score_remember(hot, ys, yhats, y, yhat, *state)
>>> state, ys.tolist(), yhats.tolist()   # the ring of 2 wrapped: slot 1 next, |errors| 0.5 + 1
((1, 2, 1.5), [0.0, 2.0], [1.0, 2.5])
>>> hot[0], hot[1]   # MAE: 3 errors, mean 2/3
(3.0, 0.6666666666666666)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, MutableSequence

__all__ = ["Remember", "remember_step", "score_remember"]


def score_remember(
    hot: MutableSequence[float],
    ys: MutableSequence[float],
    yhats: MutableSequence[float],
    y: float,
    yhat: float,
    slot: int,
    length: int,
    total: float,
) -> tuple[int, int, float]:
    """Score ``yhat`` against ``y`` in ``hot`` and put the pair in the ring ``ys``/``yhats``.

    ``hot`` holds MAE, RMSE and R2's ``FIELDS`` (``update_all`` with w = 1.0, operation for
    operation); the ring's next place is ``slot``, ``length`` pairs are in it and ``total``
    is their |error| sum (``Learner._remember``). Returns the next slot, the length and the sum.
    """
    error = y - yhat
    absolute = abs(error)
    n = hot[0] + 1.0
    hot[0] = n
    mean = hot[1]
    hot[1] = mean + (1.0 / n) * (absolute - mean)
    n = hot[2] + 1.0
    hot[2] = n
    mean = hot[3]
    hot[3] = mean + (1.0 / n) * (error**2 - mean)
    n = hot[4] + 1.0
    hot[4] = n
    old = hot[5]
    new = hot[5] = old + (1.0 / n) * (y - old)
    hot[6] += (y - old) * (y - new)
    hot[7] += error * error
    size = len(ys)
    if length == size:
        total -= abs(ys[slot] - yhats[slot])
    else:
        length += 1
    ys[slot] = y
    yhats[slot] = yhat
    slot += 1
    return (0 if slot == size else slot), length, total + absolute


Remember = Callable[
    [
        MutableSequence[float],
        MutableSequence[float],
        MutableSequence[float],
        float,
        float,
        int,
        int,
        float,
    ],
    tuple[int, int, float],
]


@functools.cache
def remember_step() -> Remember:
    """What the learner calls: the C rendering when the extension is built, else
    :func:`score_remember`. Asked when a learner first scores, not at import: a run that
    scores nothing (a header-only file) loads no extension."""
    try:
        from streamlearn.fast import _kernels
    except ImportError:  # not built (``block.compiled_kernels`` says so): the same in Python
        return score_remember
    compiled: Remember = _kernels.score_remember
    return compiled
