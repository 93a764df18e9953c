"""What one Kafka fetch hands out: its records as columns, or as one block of lines.

:class:`Fetched` holds the records a source takes from one poll, already checked against each
partition's expected offset; :class:`KafkaBlock` is the same records as one byte string of
lines, which the compiled fast path parses as it parses a file's block.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat

from streamlearn.sources.base import Raw

__all__ = ["Fetched", "KafkaBlock"]


@dataclass(slots=True)
class Fetched:
    """The records of one fetch that are handed out, in partition order, as columns.

    Each was checked against its partition's expected offset (``KafkaSourceBase._off_course``);
    a null value is ``b""``. ``stamps`` holds the message timestamps (ms since the epoch) when
    the source tracks arrivals, else None.
    """

    values: list[bytes]
    offsets: list[int]
    partitions: list[int]
    keys: list[bytes | None]
    stamps: list[int] | None

    @classmethod
    def empty(cls, stamped: bool) -> Fetched:
        """No records yet; with a list for timestamps if ``stamped``."""
        return cls([], [], [], [], [] if stamped else None)

    def raws(self, topic: str) -> list[Raw]:
        """The records as ``next_batch`` hands them out."""
        return list(map(Raw, self.values, self.offsets, self.partitions, self.keys, repeat(topic)))

    def in_partition_order(self) -> None:
        """Sort by partition, keeping offset order within each (a fetch may interleave them)."""
        partitions = self.partitions
        order = sorted(range(len(partitions)), key=partitions.__getitem__)
        self.values = [self.values[i] for i in order]
        self.offsets = [self.offsets[i] for i in order]
        self.partitions = [partitions[i] for i in order]
        self.keys = [self.keys[i] for i in order]
        if self.stamps is not None:
            self.stamps = [self.stamps[i] for i in order]


#: Stands in for a newline inside a message value in ``KafkaBlock.data``: not a byte of a
#: number, so the compiled parser doubts that line and the decoder judges the true value.
_NOT_A_NEWLINE = b"\x00"


@dataclass(frozen=True, slots=True)
class KafkaBlock:
    """Message values of one fetch as one byte string, for the compiled fast path.

    ``data`` holds ``lines`` lines, the value of each record (in partition order) followed by
    a newline, as a file's ``Block`` holds lines. ``locate(row)`` is row's ``Raw`` with its
    Kafka position (what dead letters and predictions name), ``raws()`` all of them: the
    records ``next_batch`` would have handed out. ``offset`` is 0: positions are ``locate``'s.

    A value holding newlines cannot be one line: its line in ``data`` ends at its last
    newline, and any other one stands as a byte no number holds, so the parser doubts the
    line and the decoder judges the value itself (``locate``), as record by record.

    >>> block = KafkaBlock.of(Fetched([b"1,2", b"3,\\n4"], [7, 8], [0, 0], [None, None], None), "t")
    >>> block.data, len(block)
    (b'1,2\\n3,\\x004\\n', 2)
    >>> block.locate(1)
    Raw(value=b'3,\\n4', offset=8, partition=0, key=None, topic='t', truncated=False)
    """

    data: bytes
    lines: int
    topic: str
    fetched: Fetched
    offset: int = 0

    @classmethod
    def of(cls, fetched: Fetched, topic: str) -> KafkaBlock:
        values = fetched.values
        values.append(b"")  # so that join ends the last value with a newline too
        data = b"\n".join(values)
        values.pop()
        if data.count(b"\n") != len(values):  # some values hold newlines (rare)
            lines = [value[:-1] if value.endswith(b"\n") else value for value in values]
            lines.append(b"")
            data = b"\n".join([line.replace(b"\n", _NOT_A_NEWLINE) for line in lines])
        return cls(data, len(values), topic, fetched)

    def __len__(self) -> int:
        return self.lines

    def locate(self, row: int) -> Raw:
        """The record of line ``row`` as ``next_batch`` hands it out."""
        fetched = self.fetched
        return Raw(
            fetched.values[row],
            fetched.offsets[row],
            fetched.partitions[row],
            fetched.keys[row],
            self.topic,
        )

    def raws(self) -> list[Raw]:
        """Every record of the block, as ``next_batch`` hands them out."""
        return self.fetched.raws(self.topic)
