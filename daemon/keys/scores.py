"""How the keys are doing, in bounded space: a histogram of their scores and the worst few.

Each key counts once, in the bucket of its score as last written (a spill or a checkpoint),
so the histogram covers every key held, live or spilled, without reading any of them. The
worst keys are kept in a pool a few times larger than what is exported: a key in it that
gets better stays in it until worse ones push it out, so the worst ``k`` it reports are the
worst of the keys it has seen written, not an exhaustive ranking. Both are small and go into
the checkpoint, so a restart goes on with them.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from itertools import accumulate

__all__ = ["ACCURACY_BUCKETS", "MAE_BUCKETS", "POOL_FACTOR", "KeyScores"]

#: Upper bounds of the rolling MAE histogram, target units (1, 2.5, 5 a decade: 0.001 to 1000).
MAE_BUCKETS: tuple[float, ...] = (
    *(round(m * 10.0**e, 12) for e in range(-3, 3) for m in (1.0, 2.5, 5.0)),
    1000.0,
)
#: Upper bounds of the rolling accuracy histogram.
ACCURACY_BUCKETS: tuple[float, ...] = (
    0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0,
)  # fmt: skip
#: The worst-keys pool holds this many times the keys exported.
POOL_FACTOR = 16


class KeyScores:
    """Keys per score bucket, keys without a score, and the worst keys.

    Parameters
    ----------
    bounds
        Upper bounds of the buckets (``le``), increasing; one more bucket holds the rest.
    higher_is_worse
        True for an error (MAE), False for accuracy.
    worst
        How many worst keys ``worst_keys`` gives at most (``--metrics-top-keys``).

    Examples
    --------
    >>> scores = KeyScores((1.0, 10.0), higher_is_worse=True, worst=2)
    >>> scores.update("a", None, 0.5)
    >>> scores.update("b", None, 5.0)
    >>> scores.update("c", None, math.nan)
    >>> scores.update("a", 0.5, 50.0)   # key a got worse
    >>> scores.cumulative(), scores.unscored
    ([0, 1, 2], 1)
    >>> scores.worst_keys()
    [('a', 50.0), ('b', 5.0)]
    """

    def __init__(
        self,
        bounds: Sequence[float] = MAE_BUCKETS,
        *,
        higher_is_worse: bool = True,
        worst: int = 10,
    ) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("bounds must be increasing")
        if worst < 0:
            raise ValueError("worst must be 0 or more")
        self.bounds = tuple(float(bound) for bound in bounds)
        self.higher_is_worse = higher_is_worse
        self.worst = worst
        #: Keys per bucket (not cumulative); the last is beyond the last bound.
        self.counts: array[int] = array("q", bytes(8 * (len(self.bounds) + 1)))
        #: Keys written before they had a score.
        self.unscored = 0
        #: The sum of the keys' scores (kept up to date by difference: for the mean key's
        #: score in telemetry, not to the last bit).
        self.score_sum = 0.0
        self._pool: dict[str, float] = {}
        #: The pool's least bad key and its badness, while known.
        self._least: tuple[float, str] | None = None
        #: Keys counted at a score not written yet (``counted``), by that score.
        self._unwritten: dict[str, float] = {}

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_unwritten": {}}  # what a checkpoint holds is written

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._unwritten = {}  # (not in checkpoints written before it existed)

    def bucket(self, score: float) -> int:
        """The bucket of a finite score."""
        for index, bound in enumerate(self.bounds):
            if score <= bound:
                return index
        return len(self.bounds)

    def update(self, key: str, old: float | None, new: float) -> None:
        """Key ``key`` was written with score ``new`` (NaN: none); ``old`` its score as last
        written (NaN: none), None when it was never written before."""
        if self._unwritten:
            old = self._unwritten.pop(key, old)
        self._count(key, old, new)

    def counted(self, key: str, old: float | None, new: float) -> None:
        """Count key ``key`` at score ``new`` before it is written (a run without a state
        dir, whose live keys no checkpoint writes); ``old`` as in ``update``. The next
        ``update`` of the key replaces this score."""
        old = self._unwritten.get(key, old)
        self._unwritten[key] = new
        self._count(key, old, new)

    def _count(self, key: str, old: float | None, new: float) -> None:
        if old is not None:
            if math.isnan(old):
                self.unscored -= 1
            else:
                self.counts[self.bucket(old)] -= 1
                self.score_sum -= old
        if math.isnan(new):
            self.unscored += 1
            self.forget(key)
            return
        self.counts[self.bucket(new)] += 1
        self.score_sum += new
        self._offer(key, new)

    def _badness(self, score: float) -> float:
        return score if self.higher_is_worse else -score

    def _offer(self, key: str, score: float) -> None:
        pool = self._pool
        if not self.worst:
            return
        badness = self._badness(score)
        least = self._least
        if key in pool or len(pool) < POOL_FACTOR * self.worst:
            pool[key] = score
            if least is not None and (key == least[1] or badness < least[0]):
                self._least = None
            return
        if least is None:
            # Found again only after the least bad key left or got better: rare once the
            # pool holds the worst keys, so an offer costs a comparison.
            name = min(pool, key=lambda item: self._badness(pool[item]))
            least = self._least = (self._badness(pool[name]), name)
        if badness > least[0]:
            del pool[least[1]]
            pool[key] = score
            self._least = None

    def forget(self, key: str) -> None:
        """Drop ``key`` from the worst-keys pool (it is no longer held)."""
        if self._pool.pop(key, None) is not None:
            self._least = None

    def worst_keys(self, count: int | None = None) -> list[tuple[str, float]]:
        """The worst keys of the pool, worst first (ties by key), at most ``count``."""
        limit = self.worst if count is None else count
        badness = self._badness
        ranked = sorted(self._pool.items(), key=lambda item: (-badness(item[1]), item[0]))
        return ranked[:limit]

    def cumulative(self) -> list[int]:
        """Keys whose score is at most each bound, then all keys with a score (``+Inf``)."""
        return list(accumulate(self.counts))

    def snapshot(self) -> tuple[list[int], int, float, list[tuple[str, float]]]:
        """Cumulative counts, keys unscored, score sum and the worst keys, read at once.

        For another thread (a scrape): each part is copied in one C call, so the loop
        changing the scores meanwhile never breaks the read, at worst mixes two moments.
        """
        cumulative = list(accumulate(array("q", self.counts)))
        pool = dict(self._pool)
        badness = self._badness
        worst = sorted(pool.items(), key=lambda item: (-badness(item[1]), item[0]))
        return cumulative, self.unscored, self.score_sum, worst[: self.worst]

    def copy(self) -> KeyScores:
        twin = KeyScores(self.bounds, higher_is_worse=self.higher_is_worse, worst=self.worst)
        twin.counts = array("q", self.counts)
        twin.unscored = self.unscored
        twin.score_sum = self.score_sum
        twin._pool = dict(self._pool)
        twin._unwritten = dict(self._unwritten)
        return twin
