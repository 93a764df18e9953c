"""When the next checkpoint is due: every N records or T seconds, never while the writer is busy.

The checkpoint owns its schedule (as Quix Streams' ``BaseCheckpoint.expired()``): the run loop
counts what it processed and asks after every batch; the schedule says whether to checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CheckpointSchedule:
    """Due every ``every`` records, or after ``interval`` seconds if anything came since.

    A batch ends where a checkpoint falls due (``room``), so checkpoints fall between
    batches, at the same record whatever path learned them. While the writer is still on
    the last checkpoint a new snapshot would only replace the one waiting: then the
    checkpoint waits for the first batch after the writer is free.

    Examples
    --------
    >>> now = [0.0]
    >>> schedule = CheckpointSchedule(every=100, interval=5.0, clock=lambda: now[0])
    >>> schedule.start()
    >>> schedule.count(60)
    >>> schedule.room, schedule.expired()
    (40, False)
    >>> schedule.count(40)
    >>> schedule.expired(), schedule.expired(writer_busy=lambda: True)
    (True, False)
    >>> schedule.taken()
    >>> now[0] = 6.0
    >>> schedule.expired()  # on time, but nothing came since the last one
    False
    >>> schedule.count(1)
    >>> schedule.expired()
    True
    """

    def __init__(
        self, every: int, interval: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        if interval <= 0:
            raise ValueError("checkpoint_interval must be positive")
        self.every = every
        self.interval = interval
        self.clock = clock
        #: Records processed since the last checkpoint.
        self.since = 0
        #: When the last checkpoint was taken (``clock`` seconds).
        self.last = clock()

    def start(self) -> None:
        """A run starts: count and time from here."""
        self.since = 0
        self.last = self.clock()

    @property
    def room(self) -> int:
        """Records before a checkpoint falls due by count (0 or less: already due)."""
        return self.every - self.since

    def count(self, records: int) -> None:
        """``records`` more were processed."""
        self.since += records

    def expired(self, writer_busy: Callable[[], bool] = lambda: False) -> bool:
        """Whether to checkpoint now: due by count or by time, and the writer free."""
        due_by_time = self.clock() - self.last >= self.interval
        wanted = self.since >= self.every or (due_by_time and self.since > 0)
        return wanted and not writer_busy()

    def taken(self) -> None:
        """A checkpoint was just taken."""
        self.since = 0
        self.last = self.clock()
