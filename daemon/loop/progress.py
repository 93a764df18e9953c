"""Pacing the loop to a rate, and a one-line progress report on a terminal."""

from __future__ import annotations

import sys
import threading
import time

from streamlearn.sources.base import Source


class Pacer:
    """Holds the loop to ``rate`` records per second (0: as fast as possible).

    It waits on the loop's stop event, so a stop ends the wait at once.
    """

    def __init__(self, rate: float, stop: threading.Event) -> None:
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
    """A one-line progress report on stderr, only when stderr is a terminal."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.enabled = sys.stderr.isatty()
        self.started = time.monotonic()
        self.last = 0.0

    def update(self, seen: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.5:
            return
        self.last = now
        self._draw(seen, now)

    def _draw(self, seen: int, now: float) -> None:
        rate = seen / max(now - self.started, 1e-9)
        size = self.source.size()
        offset = self.source.snapshot().get("offset") if size else None
        percent = f" {100.0 * offset / size:5.1f}%" if size and offset is not None else ""
        sys.stderr.write(f"\r{seen:>12,} records {rate:>10,.0f}/s{percent}")
        sys.stderr.flush()

    def close(self, seen: int) -> None:
        if self.enabled:
            self._draw(seen, time.monotonic())
            sys.stderr.write("\n")
            sys.stderr.flush()
