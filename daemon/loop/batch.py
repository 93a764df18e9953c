"""A batch's bookkeeping: where it started, its prequential errors, which arrivals it learned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from streamlearn.records import Decoded, Label, Record

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class BatchStart:
    """The counts before a batch and its decode time: what its report compares against."""

    seen: int  # records seen before the batch
    learned: int  # records learned before the batch
    decode_seconds: float
    decoded: float  # ``time.perf_counter()`` when decoding ended (learning started)


class BatchErrors:
    """A batch's absolute prequential errors, for the divergence guard and telemetry.

    Floats from the record path, arrays from compiled blocks: turning a block's errors into
    Python floats (``tolist``) would cost more than learning its records.

    >>> errors = BatchErrors()
    >>> errors.append(1.0); errors.append(3.0)
    >>> len(errors), errors.mean(), errors.values()
    (2, 2.0, [1.0, 3.0])
    """

    __slots__ = ("arrays", "floats")

    def __init__(self) -> None:
        self.floats: list[float] = []
        self.arrays: list[NDArray[np.float64]] = []

    def __len__(self) -> int:
        return len(self.floats) + sum(len(array) for array in self.arrays)

    def values(self) -> list[float] | NDArray[np.float64]:
        """All of them, in order: the list of floats, or one array when a block added some."""
        if not self.arrays:
            return self.floats
        import numpy as np

        return np.concatenate([*self.arrays, np.asarray(self.floats, dtype=np.float64)])

    def mean(self) -> float:
        values = self.values()
        if isinstance(values, list):
            return float(sum(values) / len(values))
        return float(values.mean())

    def append(self, error: float) -> None:
        self.floats.append(error)

    def clear(self) -> None:
        self.floats.clear()
        self.arrays.clear()


def learned_arrivals(
    times: NDArray[np.float64],
    counts: NDArray[np.int64] | None,
    learned: int,
    items: list[Decoded] | None,
) -> tuple[NDArray[np.float64], NDArray[np.int64] | None]:
    """The arrivals (``Source.arrivals``) of the ``learned`` records among a batch's items.

    Usually a batch learns every item. When it does not, the decoded ``items`` (the
    record path) tell which were learned: labelled records and late labels. Without
    them (a compiled block: there, the header or a rejected line), the earliest arrivals
    are dropped. If fewer still were learned (a diverged prediction, a late label with no
    features waiting: rare), the first ``learned`` stand in for them, so the histogram's
    count stays that of ``streamlearn_records_learned_total{label="true"}``.

    >>> import numpy as np
    >>> from streamlearn.sources.base import Raw
    >>> learned_arrivals(np.array([1.0, 2.0]), np.array([3, 2]), 4, None)  # a header
    (array([1., 2.]), array([2, 2]))
    >>> labelled = Record({"a": 1.0}, 2.0, None, Raw(b"", 0))
    >>> unlabelled = Record({"a": 1.0}, None, None, Raw(b"", 1))
    >>> learned_arrivals(np.array([1.0, 2.0, 3.0]), None, 1, [unlabelled, labelled, None])
    (array([2.]), None)
    """
    import numpy as np

    total = len(times) if counts is None else int(counts.sum())
    if learned >= total:
        return times, counts
    if items is not None and len(items) == total:
        per_item = times if counts is None else np.repeat(times, counts)
        learnable = np.fromiter(
            (
                type(item) is Label or (type(item) is Record and item.y is not None)
                for item in items
            ),
            dtype=bool,
            count=total,
        )
        return per_item[learnable][:learned], None
    skip = total - learned
    if counts is None:
        return times[skip:], None
    ends = np.cumsum(counts)
    first = int(np.searchsorted(ends, skip, side="right"))  # the first run not all skipped
    kept = counts[first:].copy()
    kept[0] = ends[first] - skip
    return times[first:], kept
