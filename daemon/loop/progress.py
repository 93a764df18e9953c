"""Pacing the loop to a rate, and replay's progress bar on a terminal."""

from __future__ import annotations

import time
from collections.abc import Callable

from streamlearn.sources.base import Source

from .stopflag import StopFlag


class Pacer:
    """Holds the loop to ``rate`` records per second (0: as fast as possible).

    It waits on the loop's stop event, so a stop ends the wait at once.
    """

    def __init__(self, rate: float, stop: StopFlag) -> None:
        self.rate = rate
        self.stop = stop
        self.started = time.monotonic()
        self.processed = 0

    def start(self) -> None:
        """A run starts: the rate counts from here."""
        self.started = time.monotonic()
        self.processed = 0

    def pace(self, records: int) -> None:
        """``records`` more were processed: wait until the rate allows the next."""
        self.processed += records
        if self.rate > 0:
            delay = self.started + self.processed / self.rate - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)


class Progress:
    """Replay's progress bar on a terminal (``streamlearn.observe.progress``), else nothing.

    How far into the source (bytes of a file; a Kafka backfill has no total: records and
    rate only), the records seen, their rate now and the running (rolling) MAE from
    ``error``.
    """

    def __init__(
        self, source: Source, error: Callable[[], float | None], name: str = "MAE"
    ) -> None:
        from streamlearn.observe.progress import ProgressBar

        self.source = source
        self.error = error
        #: What ``error`` is: ``MAE``, or a classifier's ``error rate`` (the 0/1 error).
        self.name = name
        self.bar = ProgressBar.on_terminal(source.size())

    def update(self, seen: int) -> None:
        """After a batch: redraw when due (the position and error are read only then)."""
        if self.bar is not None and self.bar.due():
            self.bar.show(*self._state(seen))

    def close(self, seen: int) -> None:
        if self.bar is not None:
            position, records, note, _ = self._state(seen)
            self.bar.close(position, records, note)

    def _state(self, seen: int) -> tuple[int, int, str, int | None]:
        size = self.source.size()
        offset = self.source.snapshot().get("offset") if size else None
        position = offset if isinstance(offset, int) else seen
        error = self.error()
        note = f"{self.name} {error:.4g}" if error is not None else ""
        return position, seen, note, size
