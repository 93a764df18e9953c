"""A progress bar on a terminal (tqdm) for ``replay`` and ``produce``, and nothing elsewhere.

It shows the percent done with a bar, the records so far and their rate now (over the last
few seconds, not the average since the start), a note such as the running error, the
elapsed time and the time left. While a bar is up, log lines are written above it
(tqdm's logging redirect), so the two never share a line. tqdm is imported only when a bar
is drawn.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable
from contextlib import ExitStack
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["ProgressBar", "RecentRate"]

#: The bar's width and the screen's height on a terminal that does not say its own.
FALLBACK_COLUMNS, FALLBACK_ROWS = 100, 24
#: Seconds between redraws: often enough to look live, rarely enough to cost nothing.
REDRAW_EVERY = 0.2


class RecentRate:
    """Records per second over the last ``window`` seconds (the rate now).

    >>> rate = RecentRate(window=3.0)
    >>> for second in range(10):
    ...     rate.add(second * 1000, now=float(second))      # 1000 a second...
    >>> for second in range(10, 14):
    ...     rate.add(9000 + (second - 9) * 100, now=float(second))  # ...then 100 a second
    >>> round(rate.per_second())
    100
    """

    def __init__(self, window: float = 3.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, count: int, now: float) -> None:
        """``count`` records in all at time ``now``."""
        self._samples.append((now, count))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def per_second(self) -> float | None:
        """The rate over the samples kept; None until two samples a moment apart exist."""
        if len(self._samples) < 2:
            return None
        (start, first), (end, last) = self._samples[0], self._samples[-1]
        return (last - first) / (end - start) if end > start else None


class ProgressBar:
    """One bar on a terminal: ``position`` of ``total`` (bytes, rows), the records, a note.

    Use :meth:`on_terminal`, which gives None when ``stream`` is not a terminal; ``show``
    may be called after every batch (it redraws at most every :data:`REDRAW_EVERY` s).
    """

    def __init__(
        self,
        total: int | None,
        *,
        noun: str = "records",
        stream: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        self.noun = noun
        self.clock = clock
        self.rate = RecentRate()
        self._drawn = float("-inf")
        stream = stream or sys.stderr
        sized = _columns(stream) > 0  # a terminal that says its width (a bare pty says 0)
        self._bar: tqdm[None] = tqdm(
            total=total,
            file=stream,
            bar_format=_format(total),
            dynamic_ncols=sized,
            ncols=None if sized else FALLBACK_COLUMNS,
            nrows=None if sized else FALLBACK_ROWS,  # tqdm hides a bar below a height of 0
            mininterval=0,  # show() decides when to redraw...
            miniters=1,  # ...and each update() with progress redraws
            smoothing=0.3,  # the time left follows the rate now, not the average
            leave=True,
        )
        # Log records go above the bar while it is up.
        self._redirect = ExitStack()
        self._redirect.enter_context(logging_redirect_tqdm())

    @classmethod
    def on_terminal(
        cls, total: int | None, *, noun: str = "records", stream: IO[str] | None = None
    ) -> ProgressBar | None:
        """A bar on ``stream`` (stderr) when it is a terminal, else None: nothing is drawn."""
        stream = stream or sys.stderr
        return cls(total, noun=noun, stream=stream) if stream.isatty() else None

    def due(self) -> bool:
        """Whether ``show`` would redraw now (callers skip computing the note otherwise)."""
        return self.clock() - self._drawn >= REDRAW_EVERY

    def show(self, position: int, records: int, note: str = "", total: int | None = None) -> None:
        """At ``position`` (of ``total``, when it changed) after ``records`` records."""
        now = self.clock()
        if now - self._drawn < REDRAW_EVERY:
            return
        self._drawn = now
        self._set(records, note, total, now)
        if position != self._bar.n:
            self._bar.update(position - self._bar.n)  # redraws; feeds the time left's rate
        else:
            self._bar.refresh()

    def close(self, position: int, records: int, note: str = "") -> None:
        """The final state, left on its line; log lines go to stderr directly again."""
        self._set(records, note, None, self.clock())
        self._bar.n = position
        self._bar.close()  # draws it once more, then the newline
        self._redirect.close()

    def _set(self, records: int, note: str, total: int | None, now: float) -> None:
        self.rate.add(records, now)
        if total is not None and total != self._bar.total:
            self._bar.total = total
            self._bar.bar_format = _format(total)
        rate = self.rate.per_second()
        parts = [f"{records:,} {self.noun}"]
        if rate is not None:
            parts.append(f"{rate:,.0f} {self.noun}/s")
        if note:
            parts.append(note)
        self._bar.set_description_str(", ".join(parts), refresh=False)


def _columns(stream: IO[str]) -> int:
    """The terminal's width in columns; 0 when it does not say."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return 0


def _format(total: int | None) -> str:
    """tqdm's layout: percent and bar when the total is known, then the counts and times."""
    if total:
        return "{percentage:3.0f}%|{bar}| {desc} [{elapsed}<{remaining}]"
    return "{desc} [{elapsed}]"
