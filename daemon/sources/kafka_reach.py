"""How far a Kafka source reads: to the log end seen at its start, and at most N records.

``replay kafka://...`` stops at the end the topic had when it started (like ``kcat -e``);
``--count N`` stops after N records (like ``kcat -c``). :class:`Reach` keeps both limits for
:class:`~streamlearn.sources.kafka_base.KafkaSourceBase`; the source asks it how much it may
fetch and whether it is done.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

__all__ = ["Reach"]

log = logging.getLogger(__name__)


class Reach:
    """The limits of one source's reading, and how far it got.

    With ``until_end``, ``fix_ends`` takes each partition's end when the partitions are
    placed, and the first fetch of each partition confirms it or moves it up to that fetch's
    high-water mark (``confirm``): some brokers (tansu) report the start of their last record
    batch as the log end, a batch short. The source is not exhausted before every end is
    confirmed. With ``count``, ``cap`` keeps each fetch within what is left.

    >>> reach = Reach(until_end=True, count=None)
    >>> reach.fix_ends({0: 5, 1: 0}, {0: 6, 1: 0})
    'partition 0 at 6, partition 1 at 0'
    >>> reach.confirm(0, high_water=9), reach.confirm(1, high_water=0)
    (9, 0)
    >>> reach.exhausted({0: 5, 1: 0}), reach.exhausted({0: 9, 1: 0})
    (False, True)
    >>> counted = Reach(until_end=False, count=3)
    >>> counted.cap(1000), counted.took(3), counted.exhausted({})
    (3, None, True)
    """

    def __init__(self, *, until_end: bool, count: int | None) -> None:
        if count is not None and count < 1:
            raise ValueError(f"count must be 1 or more, got {count}")
        self.until_end = until_end
        #: Records still to hand out (None: no limit).
        self.remaining = count
        #: Where each partition's reading stops (until_end, once the partitions are placed).
        self.ends: dict[int, int] | None = None
        #: Partitions whose fetches went past their end.
        self.done: set[int] = set()
        #: Partitions whose end no fetch has confirmed yet.
        self.unconfirmed: set[int] = set()

    def fix_ends(self, positions: Mapping[int, int], log_end: Mapping[int, int]) -> str:
        """Take the log end of every partition placed at ``positions``; says where they are."""
        self.ends = {p: log_end[p] for p in positions}
        self.unconfirmed = set(positions)
        return ", ".join(f"partition {p} at {self.ends[p]}" for p in sorted(self.ends))

    def confirm(self, partition: int, high_water: int) -> int:
        """Where reading ``partition`` stops, given the high-water mark of a fetch of it."""
        assert self.ends is not None
        if partition in self.unconfirmed:
            self.unconfirmed.discard(partition)
            if high_water > self.ends[partition]:
                log.debug(
                    "partition %d ends at %d, not at the %d the broker reported",
                    partition,
                    high_water,
                    self.ends[partition],
                )
                self.ends[partition] = high_water
        return self.ends[partition]

    def reached(self, partition: int) -> bool:
        """Note that a fetch of ``partition`` went past its end; True the first time."""
        if partition in self.done:
            return False
        self.done.add(partition)
        return True

    def exhausted(self, next_offsets: Mapping[int, int]) -> bool:
        """Whether everything within the limits was handed out."""
        if self.remaining == 0:
            return True
        if self.ends is None or self.unconfirmed:
            return False
        return all(p in self.done or next_offsets.get(p, 0) >= end for p, end in self.ends.items())

    def cap(self, max_items: int) -> int:
        """How many records the next fetch may hand out."""
        return max_items if self.remaining is None else min(max_items, self.remaining)

    def took(self, records: int) -> None:
        """``records`` were handed out."""
        if self.remaining is not None:
            self.remaining -= records
