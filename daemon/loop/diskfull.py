"""Paused on a full disk: no batch is taken, nothing is lost, and learning goes on with space.

A sink whose disk is full holds its lines back, and a checkpoint that cannot be
written fails; either way the loop stops taking batches (its position does not move
past what is durable), says so once, tries again with backoff, and goes on once the
lines and a checkpoint of them are written.
"""

from __future__ import annotations

import logging
import time

from streamlearn.sinks.jsonlines import DISK_FULL
from streamlearn.state import CheckpointError

log = logging.getLogger(__name__)


class StoppedOnFullDisk(CheckpointError):
    """Stopped while paused on a full disk: no final checkpoint (the last one is resumed)."""


def disk_full_error(exc: BaseException) -> OSError | None:
    """The full-disk error (ENOSPC, EDQUOT) that ``exc`` is, or was caused by; None if none.

    >>> import errno
    >>> disk_full_error(CheckpointError("writing failed")) is None
    True
    >>> try:
    ...     try:
    ...         raise OSError(errno.ENOSPC, "No space left on device")
    ...     except OSError as inner:
    ...         raise CheckpointError("writing a checkpoint failed") from inner
    ... except CheckpointError as outer:
    ...     disk_full_error(outer).strerror
    'No space left on device'
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in DISK_FULL:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class DiskFull:
    """Whether the loop is paused on a full disk, why, and how long to wait before a retry.

    Examples
    --------
    >>> import errno
    >>> disk = DiskFull()
    >>> disk.hit("dead.jsonl", OSError(errno.ENOSPC, "No space left on device"))
    >>> disk.paused, disk.reason
    (True, 'the disk of dead.jsonl is full (No space left on device)')
    >>> [disk.backoff() for _ in range(3)]
    [0.1, 0.2, 0.4]
    >>> disk.clear(); disk.paused
    False
    """

    def __init__(self, first_wait: float = 0.1, max_wait: float = 2.0) -> None:
        self.first_wait = first_wait
        self.max_wait = max_wait
        #: Why the loop is paused (None: it is not).
        self.reason: str | None = None
        self._since = 0.0
        self._wait = first_wait

    @property
    def paused(self) -> bool:
        return self.reason is not None

    def hit(self, where: str, error: OSError) -> None:
        """``where`` could not be written for lack of space: pause (said once a pause)."""
        reason = f"the disk of {where} is full ({error.strerror})"
        if self.reason is None:
            log.error("%s: learning paused, nothing is lost; retrying until space returns", reason)
            self._since = time.monotonic()
            self._wait = self.first_wait
        self.reason = reason

    def clear(self) -> None:
        """Everything held back was written and checkpointed: learning goes on."""
        if self.reason is not None:
            log.warning(
                "space returned after %.1f s: learning goes on", time.monotonic() - self._since
            )
        self.reason = None

    def backoff(self) -> float:
        """Seconds to wait before the next retry: doubling up to ``max_wait``."""
        wait = self._wait
        self._wait = min(self._wait * 2, self.max_wait)
        return wait
