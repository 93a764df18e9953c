"""When a file's lines arrived: the time of the read that brought each line's newline.

For the learn-latency metric: a file source notes each read (the file offset it
reached and the time) and turns the reads into arrival times of the lines it hands
out, a few reads a batch, with no per-line work.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from streamlearn.sources.base import Raw

if TYPE_CHECKING:
    from streamlearn.sources.base import Arrivals


class ReadLog:
    """The reads of one open file not yet accounted for, as (offset after it, Unix time).

    >>> log = ReadLog()
    >>> log.note(8, at=100.0)
    >>> log.note(12, at=101.0)
    >>> times, counts = log.of_lines([Raw(b"1,2\\n", 0), Raw(b"3,4\\n", 4), Raw(b"5,6\\n", 8)])
    >>> times.tolist(), counts.tolist()
    ([100.0, 101.0], [2, 1])
    """

    def __init__(self) -> None:
        self._reads: list[tuple[int, float]] = []

    def note(self, end: int, at: float | None = None) -> None:
        """A read that reached file offset ``end``, now (or at Unix time ``at``)."""
        self._reads.append((end, time.time() if at is None else at))

    def of_lines(self, out: list[Raw]) -> Arrivals:
        """Arrival times of the lines ``out`` (consecutive, in file order)."""

        def complete_before(end: int) -> int:  # the lines are in file order: a bisection
            return bisect.bisect_right(out, end, key=lambda raw: raw.offset + len(raw.value))

        return self._arrivals(out[0].offset, len(out), complete_before)

    def of_block(self, offset: int, data: bytes, lines: int) -> Arrivals:
        """Arrival times of a block's ``lines`` lines, ``data`` from file offset ``offset``."""
        end_of_block = offset + len(data)

        def complete_before(end: int) -> int:
            if end >= end_of_block:
                return lines
            return data.count(b"\n", 0, max(end - offset, 0))

        return self._arrivals(offset, lines, complete_before)

    def _arrivals(self, first: int, lines: int, complete_before: Callable[[int], int]) -> Arrivals:
        """Arrival times of ``lines`` lines handed out from file offset ``first``.

        A line arrived with the read that brought its newline (time spent in the file
        before a read saw it is not counted). ``complete_before(end)`` is how many of the
        lines end at or before file offset ``end``.
        """
        import numpy as np

        reads = self._reads
        spent = 0
        while spent < len(reads) and reads[spent][0] <= first:
            spent += 1
        del reads[:spent]  # reads whose bytes all went out in earlier batches
        times: list[float] = []
        counts: list[int] = []
        done = 0
        for end, at in reads:
            upto = min(complete_before(end), lines)
            if upto > done:
                times.append(at)
                counts.append(upto - done)
                done = upto
            if done == lines:
                break
        if done < lines:  # bytes read before tracking began, or a rotation: now, at worst
            times.append(time.time())
            counts.append(lines - done)
        return np.array(times), np.array(counts, dtype=np.int64)
