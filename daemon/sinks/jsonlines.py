"""Where predictions and dead letters go: JSON Lines files (Kafka topics: ``sinks.kafka``).

A sink takes plain dicts. File sinks append and flush on ``flush()``; the run
loop flushes sinks before it writes a checkpoint, so a record whose position is
in a checkpoint has its dead letter or prediction on disk already. A full disk
never fails a write: the sink holds its output back (``held_back``) until a
``flush()`` gets it out, and the loop pauses meanwhile.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

#: Errors that say the disk is full (or the user's quota used up): output is held back and
#: written when space returns, never dropped.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})

#: Bytes a file sink collects before handing them to the OS, as a buffered file would.
BUFFER_BYTES = 64 * 1024


class Sink(ABC):
    """Receives JSON-serialisable dicts."""

    @abstractmethod
    def write(self, item: Mapping[str, Any]) -> None:
        """Queue one item."""

    def flush(self) -> None:
        """Make every written item durable enough to survive a crash of this process."""
        return None

    def sync(self) -> None:
        """Make what was written durable (may run on the checkpoint writer's thread)."""
        self.flush()

    def position(self) -> int | None:
        """A resumable position (bytes written), or None when the sink cannot rewind."""
        return None

    def rewind(self, size: int) -> None:
        """Forget what was written after ``position()`` returned ``size`` (files only)."""
        return None

    @property
    def held_back(self) -> OSError | None:
        """The error (a full disk) that holds written items back; None when none are held."""
        return None

    def describe(self) -> str:
        """Where the items go, for messages."""
        return type(self).__name__

    def close(self) -> None:
        """Flush and release; calling it twice is fine."""
        self.flush()


class NullSink(Sink):
    """Drops everything (no ``--predictions`` given)."""

    def write(self, item: Mapping[str, Any]) -> None:
        return None


class ListSink(Sink):
    """Keeps items in memory; for tests and the ``inspect`` of small runs."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def write(self, item: Mapping[str, Any]) -> None:
        self.items.append(dict(item))


class JsonLinesSink(Sink):
    """Appends one JSON object per line to a file (or a pipe, or a terminal).

    Lines are collected and handed to the OS in blocks of ``BUFFER_BYTES``, and at
    every ``flush()`` or ``position()``. On a full disk what could not be written is
    held in memory (``held_back``), with nothing lost or written twice: the next
    ``flush()`` or ``position()`` writes the rest of it, from the first byte that did
    not go. Only a regular file
    has a position to cut back to and is fsynced (``/dev/stdout`` is neither).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "dead.jsonl"
    >>> sink = JsonLinesSink(path)
    >>> sink.write({"reason": "non_numeric", "raw": "a,b"})
    >>> sink.position()
    37
    >>> sink.close()
    >>> path.read_text()
    '{"reason":"non_numeric","raw":"a,b"}\\n'
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(
            self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666
        )
        status = os.fstat(self._fd)
        #: A regular file: its size is a position to cut back to, and fsync applies.
        self.regular = stat.S_ISREG(status.st_mode)
        self._written = status.st_size if self.regular else 0  # bytes handed to the OS
        self._pending = bytearray()  # written here, not yet handed to the OS
        self._held: OSError | None = None

    def describe(self) -> str:
        return str(self.path)

    def write(self, item: Mapping[str, Any]) -> None:
        if self._fd is None:
            raise ValueError(f"sink {self.path} is closed")
        self._pending += orjson.dumps(item, option=orjson.OPT_SERIALIZE_NUMPY)
        self._pending += b"\n"
        if len(self._pending) >= BUFFER_BYTES and self._held is None:
            self._hand_over()

    def _hand_over(self) -> None:
        """Write what is pending to the OS; on a full disk keep the rest (``held_back``)."""
        fd = self._fd
        while self._pending and fd is not None:
            try:
                done = os.write(fd, self._pending)
            except OSError as exc:
                if exc.errno not in DISK_FULL:
                    raise
                self._held = exc
                return
            self._written += done
            del self._pending[:done]
        self._held = None

    @property
    def held_back(self) -> OSError | None:
        return self._held

    def flush(self) -> None:
        self._hand_over()
        if self._held is None:
            try:
                self.sync()
            except OSError as exc:
                if exc.errno not in DISK_FULL:
                    raise
                self._held = exc

    def sync(self) -> None:
        # Safe from the checkpoint writer's thread: only the descriptor is synced (the
        # loop's thread handed the lines over in position(), before the checkpoint). A
        # failure fails the checkpoint, which must not claim lines that are not durable.
        fd = self._fd
        if fd is None or not self.regular:
            return  # closed meanwhile (close() synced it), or a pipe or a terminal
        try:
            os.fsync(fd)
        except OSError as exc:
            if exc.errno != errno.EBADF:  # EBADF: closed meanwhile
                raise

    def position(self) -> int | None:
        """The file's size, every line handed to the OS: stored in the checkpoint.

        None for a pipe or a terminal (nothing to cut back to).
        """
        if not self.regular:
            return None
        if self._fd is None:
            return self.path.stat().st_size
        self._hand_over()
        return self._written + len(self._pending)

    def rewind(self, size: int) -> None:
        """Cut what was written after the checkpoint that recorded ``size``.

        After a crash the records past the checkpoint are read again; cutting
        their entries first keeps each dead letter and prediction in the file once.
        """
        if self._fd is None:
            raise ValueError(f"sink {self.path} is closed")
        if not self.regular:
            return
        self._hand_over()
        if self._written + len(self._pending) > size:
            self._pending.clear()
            os.ftruncate(self._fd, size)
            self._written = size

    def close(self) -> None:
        fd = self._fd
        if fd is None:
            return
        try:
            self.flush()
        finally:
            self._fd = None
            os.close(fd)
        if self._held is not None:
            log.warning(
                "%d bytes for %s were not written (%s); a restart from the last checkpoint "
                "writes them again",
                len(self._pending),
                self.path,
                self._held.strerror,
            )
