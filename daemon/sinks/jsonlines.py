"""Where predictions and dead letters go: JSON Lines files (Kafka topics: ``sinks.kafka``).

A sink takes plain dicts. File sinks append and flush on ``flush()``; the run
loop flushes sinks before it writes a checkpoint, so a record whose position is
in a checkpoint has its dead letter or prediction on disk already.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import orjson


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
    """Appends one JSON object per line to a file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "dead.jsonl"
    >>> sink = JsonLinesSink(path)
    >>> sink.write({"reason": "non_numeric", "raw": "a,b"})
    >>> sink.close()
    >>> path.read_text()
    '{"reason":"non_numeric","raw":"a,b"}\\n'
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] | None = open(self.path, "ab")  # noqa: SIM115 - held open on purpose

    def write(self, item: Mapping[str, Any]) -> None:
        if self._file is None:
            raise ValueError(f"sink {self.path} is closed")
        self._file.write(orjson.dumps(item, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def sync(self) -> None:
        # os.fsync on the descriptor is safe from the checkpoint writer's thread;
        # the Python buffer was already flushed by position() on the loop's thread.
        file = self._file
        if file is not None:
            # Closed meanwhile is fine: close() flushed and synced it.
            with contextlib.suppress(ValueError, OSError):
                os.fsync(file.fileno())

    def position(self) -> int:
        """The file's size, its buffer handed to the OS: stored in the checkpoint."""
        if self._file is None:
            return self.path.stat().st_size
        self._file.flush()
        return self._file.tell()

    def rewind(self, size: int) -> None:
        """Cut what was written after the checkpoint that recorded ``size``.

        After a crash the records past the checkpoint are read again; cutting
        their entries first keeps each dead letter and prediction in the file once.
        """
        if self._file is None:
            raise ValueError(f"sink {self.path} is closed")
        self._file.flush()
        if self._file.tell() > size:
            os.truncate(self.path, size)
            self._file.seek(size)

    def close(self) -> None:
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None
