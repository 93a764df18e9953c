"""The learning curve a learner keeps: (records learned, rolling MAE, cumulative MAE),
bounded in size however long the run."""

from __future__ import annotations

from array import array
from typing import Any

__all__ = ["Curve"]


class Curve:
    """A bounded learning curve: (records learned, rolling MAE, cumulative MAE).

    Every ``stride`` records a point is kept; past ``max_points`` every other
    point is dropped and the stride doubles, so a months-long run keeps a curve
    of constant size with even spacing. The points are kept in three flat
    arrays: a checkpoint pickles them as three byte strings, not 4096 tuples.

    >>> curve = Curve(max_points=4)
    >>> for n in range(1, 11):
    ...     curve.add(n, 1.0 / n, 1.0)
    >>> curve.stride, [p[0] for p in curve.points]
    (4, [4, 8])
    """

    def __init__(self, max_points: int = 4096) -> None:
        self.max_points = max_points
        self.stride = 1
        self._records: array[int] = array("q")
        self._rolling: array[float] = array("d")
        self._cumulative: array[float] = array("d")

    @property
    def points(self) -> list[tuple[int, float, float]]:
        """The kept points, oldest first."""
        return list(zip(self._records, self._rolling, self._cumulative, strict=True))

    def __len__(self) -> int:
        return len(self._records)

    def add(self, n: int, rolling: float, cumulative: float) -> None:
        if n % self.stride:
            return
        self._records.append(n)
        self._rolling.append(rolling)
        self._cumulative.append(cumulative)
        if len(self._records) > self.max_points:
            self.stride *= 2
            keep = [i for i, m in enumerate(self._records) if m % self.stride == 0]
            self._records = array("q", [self._records[i] for i in keep])
            self._rolling = array("d", [self._rolling[i] for i in keep])
            self._cumulative = array("d", [self._cumulative[i] for i in keep])

    @property
    def room(self) -> int:
        """Points that can be added before the curve thins."""
        return self.max_points - len(self._records)

    def add_many(self, points: list[list[float]]) -> None:
        """``add`` each ``[n, rolling, cumulative]`` in order; ``n`` are multiples of ``stride``.

        The compiled kernel makes such points (up to one past ``room``, which thins the
        curve); those that fit are appended at once.
        """
        fit = points[: self.max_points - len(self._records)]
        self._records.extend(int(point[0]) for point in fit)
        self._rolling.extend(point[1] for point in fit)
        self._cumulative.extend(point[2] for point in fit)
        for n, rolling, cumulative in points[len(fit) :]:
            self.add(int(n), rolling, cumulative)

    def copy(self) -> Curve:
        """An independent copy (its arrays copied too)."""
        other = Curve(self.max_points)
        other.stride = self.stride
        other._records = self._records[:]
        other._rolling = self._rolling[:]
        other._cumulative = self._cumulative[:]
        return other

    def __setstate__(self, state: dict[str, Any]) -> None:
        points = state.pop("points", None)  # a curve pickled by an older streamlearn
        self.__dict__.update(state)
        if points is not None:
            self._records = array("q", [p[0] for p in points])
            self._rolling = array("d", [p[1] for p in points])
            self._cumulative = array("d", [p[2] for p in points])
