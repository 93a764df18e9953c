"""The challenger of ``--on-drift background``: a fresh model that must beat the current one.

After a detection a fresh model learns the records that follow, each scored before it
learns it (prequentially, like the model; ``streamlearn.drift.scoring`` scores it by the
task: the absolute error, or a classifier's 0/1 error). Once it has scored a swap window of
records it replaces the model as soon as its mean error (MAE; a classifier's error rate)
over the last window is below the model's on the same records (``swap``); after
``SWAP_PATIENCE`` windows without winning it is dropped (``discard``).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from streamlearn.drift.config import SWAP_PATIENCE

__all__ = ["Challenger"]


class Challenger:
    """A fresh model learning beside the current one, both scored on the same records.

    Parameters
    ----------
    model
        The fresh model.
    window
        Records over which the two mean errors are compared (``--drift-swap-window``).
    started
        The stream record of the detection that started it.

    Examples
    --------
    >>> from streamlearn.drift.scoring import RegressionScoring
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> challenger = Challenger(SGDRegressor(lr=0.1), window=10, started=0)
    >>> for i in range(40):
    ...     x = {"a": (i % 5) / 5}
    ...     mine = RegressionScoring.challenger_error(challenger.model, x, 2 * x["a"])
    ...     challenger.push(mine, 1.0)   # the model is off by 1.0
    >>> challenger.verdict()
    'swap'
    """

    def __init__(self, model: Any, window: int, started: int) -> None:
        self.model = model
        self.started = started
        self.scored = 0
        self.mine: deque[float] = deque(maxlen=window)
        self.theirs: deque[float] = deque(maxlen=window)
        self.sum_mine = 0.0
        self.sum_theirs = 0.0

    @property
    def window(self) -> int:
        """Records over which the two mean errors are compared."""
        assert self.mine.maxlen is not None
        return self.mine.maxlen

    def push(self, mine: float, theirs: float) -> None:
        """The errors of the challenger and of the model on one record (the task's)."""
        if len(self.mine) == self.mine.maxlen:
            self.sum_mine -= self.mine[0]
            self.sum_theirs -= self.theirs[0]
        self.mine.append(mine)
        self.theirs.append(theirs)
        self.sum_mine += mine
        self.sum_theirs += theirs
        self.scored += 1

    def window_maes(self) -> tuple[float, float]:
        """Exact mean errors over the window (the running sums only decide when to look)."""
        n = len(self.mine)
        return math.fsum(self.mine) / n, math.fsum(self.theirs) / n

    def verdict(self) -> str | None:
        """``swap`` when it won over the last window, ``discard`` when it ran out of patience."""
        window = self.window
        if self.scored < window:
            return None
        if self.sum_mine < self.sum_theirs:
            mine, theirs = self.window_maes()
            if mine < theirs:
                return "swap"
        if self.scored >= window * SWAP_PATIENCE:
            return "discard"
        return None
