"""The Source contract every input obeys: non-blocking batches and a resumable snapshot.

The shape follows Bytewax's source partitions: ``next_batch()`` never blocks for
long and returns ``[]`` when idle, and ``snapshot()`` is the position that
resumes *after the last item returned*. The run loop checkpoints that snapshot
together with the model, so the checkpoint, not the source, is the truth.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np

    #: When the items of a batch arrived, in Unix seconds: ``(times, None)`` is one time
    #: per item, in batch order; ``(times, counts)`` says ``counts[i]`` consecutive items
    #: arrived at ``times[i]`` (a file's lines come many to a read).
    Arrivals = tuple[np.ndarray, np.ndarray | None]


@dataclass(slots=True)
class Raw:
    """One undecoded item as it came off a source.

    ``offset`` is the byte offset of the line start for files and the message
    offset for Kafka; ``partition`` is -1 for files. ``truncated`` marks a line
    that was longer than the source's limit: ``value`` then holds only its head.
    """

    value: bytes
    offset: int
    partition: int = -1
    key: bytes | None = None
    topic: str | None = None
    truncated: bool = False

    def where(self) -> dict[str, Any]:
        """The position of this item, for dead letters and predictions."""
        if self.topic is not None:
            return {"topic": self.topic, "partition": self.partition, "offset": self.offset}
        return {"offset": self.offset}


class SourceError(Exception):
    """A source cannot go on (bad path, mismatched resume position, data loss)."""


class PositionMismatch(SourceError):
    """The checkpointed position belongs to another input (another file, another topic)."""


class Source(ABC):
    """A resumable input of raw records.

    Contract (checked for every implementation by ``tests/test_source_contract.py``):

    - ``next_batch(n)`` returns at most ``n`` items, never blocks longer than a
      short poll, and returns ``[]`` when nothing is ready.
    - ``snapshot()`` is JSON-serialisable and resumes after the last item returned.
    - A partial last line (no newline yet) is never emitted.
    - ``close()`` may be called more than once.
    """

    kind: ClassVar[str] = "source"
    #: Turned on by the run loop when it reports learn latency (only with telemetry):
    #: the source then notes when the items of each batch arrived, for ``arrivals()``.
    #: Off, noting them costs nothing.
    track_arrivals: bool = False
    _arrivals: Arrivals | None = None

    @abstractmethod
    def next_batch(self, max_items: int) -> list[Raw]:
        """Up to ``max_items`` raw items; ``[]`` when idle."""

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """The position after the last item returned (JSON-serialisable)."""

    @property
    def exhausted(self) -> bool:
        """True when a finite source has returned everything it will ever return."""
        return False

    @property
    def connected(self) -> bool:
        """False while the source cannot reach its data (broker down); for /readyz."""
        return True

    def commit(self, snapshot: Mapping[str, Any]) -> None:
        """Called after a checkpoint holding ``snapshot`` is durable (Kafka commits offsets)."""
        return None

    def arrivals(self) -> Arrivals | None:
        """When the items of the last non-empty batch (or block) arrived, if the source knows.

        Only while ``track_arrivals`` is on; None from sources that cannot tell. A Kafka
        message arrives at its timestamp (the producer's CreateTime, or the broker's
        LogAppendTime); a file's line when the source read it.
        """
        return self._arrivals

    def describe(self) -> str:
        """A short human description for logs."""
        return self.kind

    def size(self) -> int | None:
        """The input's size in bytes, when the source knows it (a file): for progress reports.

        The position ``snapshot()["offset"]`` then says how far the loop has read.
        """
        return None

    def close(self) -> None:
        """Release resources; calling it twice is fine."""
        return None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def arrivals_from_timestamps(stamps: Sequence[int | None], received: float) -> Arrivals:
    """Kafka message timestamps (ms since the epoch) as ``Arrivals``.

    A message without a timestamp (-1 or None: an old message format) counts as arrived
    at ``received``, the Unix time the consumer handed it over.

    >>> times, counts = arrivals_from_timestamps([1_700_000_000_250, -1], received=1_700_000_001.0)
    >>> times.tolist(), counts
    ([1700000000.25, 1700000001.0], None)
    """
    import numpy as np

    try:
        millis = np.array(stamps, dtype=np.int64)
    except TypeError:  # a None among them
        millis = np.array([-1 if s is None else s for s in stamps], dtype=np.int64)
    times = millis * 1e-3
    missing = millis <= 0
    if missing.any():
        times[missing] = received
    return times, None
