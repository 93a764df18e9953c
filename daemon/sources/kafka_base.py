"""What every Kafka source shares, whatever its client library: positions and their checks.

:class:`KafkaSourceBase` holds the semantics: start positions (the checkpoint, else the group's
committed offsets, else ``--from``), data loss (fail, or skip and record it), duplicates dropped
and counted, gaps counted, one snapshot format (so a state written with one client resumes with
the other), commits after a durable checkpoint, lag. Its watcher thread
(``streamlearn.sources.kafka_watcher``) owns every call that may block on the broker; what a
fetch hands out is in ``streamlearn.sources.kafka_fetch``.

The subclasses make only the client calls: ``streamlearn.sources.kafka`` with kafka-python and
``streamlearn.sources.kafka_confluent`` with confluent-kafka (librdkafka) build the consumers,
fetch, assign and seek, look at the log and commit.
"""

from __future__ import annotations

import gc
import logging
import time
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

from streamlearn.sources.base import (
    PositionMismatch,
    Raw,
    Source,
    SourceError,
    arrivals_from_timestamps,
)
from streamlearn.sources.kafka_config import KafkaSettings
from streamlearn.sources.kafka_fetch import Fetched, KafkaBlock
from streamlearn.sources.kafka_watcher import (
    WATCHER_REQUEST_TIMEOUT_S,
    Closable,
    Observation,
    WatcherBase,
)

__all__ = ["KafkaSourceBase"]

log = logging.getLogger(__name__)

ConsumerT = TypeVar("ConsumerT", bound=Closable)


class KafkaSourceBase(Source, Generic[ConsumerT]):
    """All partitions of one Kafka topic, resumable from a checkpoint (client-independent part).

    Start position per partition: the checkpoint's ``next_offset``; else the group's committed
    offset; else ``settings.start_from`` (partitions that appear later start at their beginning,
    since everything in them is new). A position below the log start (retention deleted records
    never learned) raises :class:`SourceError` unless ``settings.on_data_loss == "reset"``, which
    skips to the log start and appends to ``data_loss_events``.

    ``next_batch()`` never raises because the broker is down or hung: it returns ``[]`` and
    ``connected`` turns False until the watcher reaches the broker again. It does raise
    :class:`SourceError` for what retrying cannot fix (data loss, failed authentication).

    Counters: ``duplicates`` (records below the expected offset, dropped) and ``gaps`` (offset
    jumps, normal on compacted or transactional topics).

    With ``settings.until_end`` (``replay``, like ``kcat -e``) the source reads the partitions
    there at its start up to their log end at that moment, then is ``exhausted``: what is
    produced later waits for the next run. A topic that does not exist is a
    :class:`SourceError` then. Some brokers (tansu) report a log end at the start of their last
    record batch; the first fetch's high-water mark, when higher, moves the end up to it.

    A subclass builds its consumer (or lets its watcher build it: ``take_consumer``) and its
    watcher, starts the watcher, and implements the client calls ``_fetch``, ``_place`` and
    ``_reposition``.
    """

    kind: ClassVar[str] = "kafka"
    #: Appended to ``describe()``: which client library reads.
    client_label: ClassVar[str] = ""
    #: Where it logs: the client module's logger, so log names say which client it is.
    _log: ClassVar[logging.Logger] = log
    _watcher: WatcherBase[Any, ConsumerT]

    def __init__(
        self,
        settings: KafkaSettings,
        resume: Mapping[str, Any] | None,
        *,
        poll_timeout: float,
        refresh_interval: float,
    ) -> None:
        if not 0 < poll_timeout <= 1.0:
            raise ValueError(f"poll_timeout must be in (0, 1] seconds, got {poll_timeout}")
        if refresh_interval <= 0:
            raise ValueError(f"refresh_interval must be positive, got {refresh_interval}")
        self.settings = settings
        self.topic = settings.topic
        self.poll_timeout = poll_timeout
        self.duplicates = 0
        self.gaps = 0
        self.data_loss_events: list[dict[str, Any]] = []
        self._resume = self._read_resume(resume)
        self._next_offsets: dict[int, int] = {}  # partitions positioned in the consumer
        self._out_of_range: dict[int, float] = {}  # partition -> when the broker said so
        self._gap_logged: set[int] = set()
        self._topic_missing_logged = False
        # --from latest is about the data already there when we start; a topic or partition
        # that appears later is read from its start, because all of it is new.
        self._latest_applies: bool | None = None
        # until_end: where each partition read stops (set when the partitions are placed),
        # the partitions that got there, and those whose end a fetch has not confirmed yet.
        self._end_at: dict[int, int] | None = None
        self._done: set[int] = set()
        self._end_unconfirmed: set[int] = set()
        self._consumer: ConsumerT | None = None
        self._closed = False

    def _read_resume(self, resume: Mapping[str, Any] | None) -> dict[int, int]:
        if not resume:
            return {}
        kind = resume.get("kind", self.kind)
        if kind != self.kind:
            raise PositionMismatch(
                f"the checkpoint holds a {kind!r} position, but the source is Kafka topic "
                f"{self.topic!r}; use the state directory of that run or a fresh one"
            )
        topic = resume.get("topic")
        if topic != self.topic:
            raise PositionMismatch(
                f"the checkpoint was taken reading Kafka topic {topic!r}, not {self.topic!r}; "
                "use the state directory of that run or a fresh one"
            )
        raw_offsets = resume.get("next_offsets", {})
        if not isinstance(raw_offsets, Mapping):
            raise SourceError(f"bad Kafka position in the checkpoint: {resume!r}")
        offsets: dict[int, int] = {}
        for key, value in raw_offsets.items():
            try:
                partition, offset = int(key), int(value)
            except (TypeError, ValueError):
                raise SourceError(
                    f"bad Kafka position in the checkpoint: {key!r}: {value!r}"
                ) from None
            if partition < 0 or offset < 0 or isinstance(value, bool):
                raise SourceError(f"bad Kafka position in the checkpoint: {key!r}: {value!r}")
            offsets[partition] = offset
        return offsets

    # -- what the client library does -----------------------------------------------------------

    @abstractmethod
    def _fetch(self, consumer: ConsumerT, max_items: int) -> Fetched | None:
        """Up to ``max_items`` records in partition order, from each partition's next offset.

        Each record not at its partition's expected offset goes through ``_off_course``; the
        partitions' ``_next_offsets`` move past what is handed out. None (or nothing in it)
        when the poll brought no record.
        """

    @abstractmethod
    def _place(self, consumer: ConsumerT, positions: dict[int, int]) -> None:
        """Assign the partitions being read plus ``positions``' new ones; seek those there."""

    @abstractmethod
    def _reposition(self, consumer: ConsumerT, settled: dict[int, int]) -> None:
        """Seek the paused, out-of-range partitions ``settled`` to their position and resume."""

    @abstractmethod
    def _pause(self, consumer: ConsumerT, partitions: list[int]) -> None:
        """Stop fetching ``partitions`` (they reached their end)."""

    # -- the Source contract -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._watcher.connected and not self._closed

    def describe(self) -> str:
        return (
            f"kafka://{','.join(self.settings.bootstrap_servers)}/{self.topic}{self.client_label}"
        )

    @property
    def exhausted(self) -> bool:
        """With ``until_end``: every partition read reached the log end seen at start."""
        end_at = self._end_at
        if end_at is None:
            return False
        return all(
            p in self._done or self._next_offsets.get(p, 0) >= end for p, end in end_at.items()
        )

    def next_batch(self, max_items: int) -> list[Raw]:
        """Up to ``max_items`` records, in partition order; ``[]`` after at most a short wait."""
        fetched = self._fetch_ready(max_items)
        return [] if fetched is None else fetched.raws(self.topic)

    def next_block(self, max_lines: int) -> KafkaBlock | None:
        """Up to ``max_lines`` records as one ``KafkaBlock``, for the compiled fast path.

        The same records, checks and positions as ``next_batch``; None when that would
        return ``[]``.
        """
        fetched = self._fetch_ready(max_lines)
        if fetched is None:
            return None
        return KafkaBlock.of(fetched, self.topic)

    def _fetch_ready(self, max_items: int) -> Fetched | None:
        """``_fetch`` once partitions are positioned; notes the arrivals when tracked."""
        if self._closed or max_items <= 0:
            return None
        self._catch_up_with_watcher()
        if self.exhausted:
            return None
        consumer = self._consumer
        if consumer is None or not self._next_offsets:
            # Nothing to poll yet (connecting, topic missing): wait briefly for the watcher
            # rather than letting the run loop spin.
            self._watcher.observed.wait(self.poll_timeout)
            self._watcher.observed.clear()
            return None
        # A fetch makes thousands of message objects that die with it (no cycles): left on,
        # the cyclic collector would walk each batch two or three times as it ages them.
        collecting = gc.isenabled()
        gc.disable()
        try:
            fetched = self._fetch(consumer, max_items)
        finally:
            if collecting:
                gc.enable()
        if fetched is None or not fetched.values:
            return None
        if fetched.stamps is not None:
            self._arrivals = arrivals_from_timestamps(fetched.stamps, time.time())
        return fetched

    def wait_until_ready(self, timeout: float) -> bool:
        """Block up to ``timeout`` s until partitions are positioned; True if they are.

        Reads nothing. For startup logs and tests; the run loop does not need it.
        """
        deadline = time.monotonic() + timeout
        while not self._closed:
            self._catch_up_with_watcher()
            if self._next_offsets:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._watcher.observed.wait(min(remaining, self.poll_timeout))
            self._watcher.observed.clear()
        return False

    def snapshot(self) -> dict[str, Any]:
        """``{"kind": "kafka", "topic": T, "next_offsets": {"0": 123, ...}}``.

        Partitions the checkpoint knew but that are not being read yet keep their old position.
        """
        offsets = {**self._resume, **self._next_offsets}
        return {
            "kind": self.kind,
            "topic": self.topic,
            "next_offsets": {str(p): offsets[p] for p in sorted(offsets)},
        }

    def commit(self, snapshot: Mapping[str, Any]) -> None:
        """Commit the snapshot's offsets for the group, in the background (never blocks).

        Called once the checkpoint holding ``snapshot`` is durable. Failures are logged and
        retried with the next commit; the checkpoint, not the group, is the truth.
        """
        if self.settings.group_id is None or self._closed:
            return
        if snapshot.get("topic") != self.topic:
            self._log.error(
                "not committing a position of topic %r for %r", snapshot.get("topic"), self.topic
            )
            return
        offsets = {int(p): int(o) for p, o in snapshot.get("next_offsets", {}).items()}
        if offsets:
            self._watcher.request_commit(offsets)

    @property
    def committed_offsets(self) -> dict[int, int]:
        """The offsets our commits have confirmed so far (partition -> next offset)."""
        return dict(self._watcher.committed_offsets)

    @property
    def commit_failures(self) -> int:
        """How many offset commits failed so far (logged, retried, never fatal)."""
        return self._watcher.commit_failures

    def lag(self) -> dict[int, int]:
        """Records behind the log end per partition, from the watcher's last look (cheap).

        Refreshed every ``refresh_interval`` seconds. Against tansu the log end can read up to one
        producer batch low, so lag can read low too (never below 0).
        """
        observation = self._watcher.observation
        if observation is None or not observation.topic_exists:
            return {}
        return {
            p: max(0, observation.log_end[p] - next_offset)
            for p, next_offset in sorted(self._next_offsets.items())
            if p in observation.log_end
        }

    def close(self) -> None:
        """Stop the watcher (it sends a pending commit first) and close the consumer; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._watcher.stop()
        # Connected, the watcher sends the last commit (one request timeout at most). Not
        # connected, there is nothing to wait for: it is a daemon thread stuck in a request to a
        # broker that does not answer, and it cannot keep the process alive.
        connected = self._watcher.connected
        self._watcher.join(timeout=WATCHER_REQUEST_TIMEOUT_S + 2 if connected else 0.5)
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            consumer = self._watcher.take_consumer()
        if consumer is not None:
            self._watcher.close_consumer(consumer)

    # -- internals -----------------------------------------------------------------------------

    def _catch_up_with_watcher(self) -> None:
        watcher = self._watcher
        if watcher.fatal is not None:
            raise SourceError(
                f"Kafka at {','.join(self.settings.bootstrap_servers)} refused us: "
                f"{type(watcher.fatal).__name__}: {watcher.fatal}"
            )
        if self._consumer is None:
            self._consumer = watcher.take_consumer()
        observation = watcher.observation
        if observation is not None and self._latest_applies is None:
            self._latest_applies = observation.topic_exists and self.settings.start_from == "latest"
        if self._consumer is None or observation is None:
            return
        if not observation.topic_exists:
            if self.settings.until_end:
                raise SourceError(
                    f"Kafka topic {self.topic!r} does not exist at "
                    f"{','.join(self.settings.bootstrap_servers)}: there is nothing to replay"
                )
            if not self._topic_missing_logged:
                self._log.info("waiting for Kafka topic %r to be created", self.topic)
                self._topic_missing_logged = True
            return
        if self._topic_missing_logged:
            self._log.info("Kafka topic %r exists now", self.topic)
            self._topic_missing_logged = False
        if self._out_of_range:
            self._settle_out_of_range(self._consumer, observation)
        if self._end_at is not None:
            return  # reading until the end: only the partitions there at the start
        new = observation.partitions - self._next_offsets.keys()
        if new and all(p in observation.log_start and p in observation.log_end for p in new):
            self._assign(self._consumer, observation, new)

    def _assign(
        self, consumer: ConsumerT, observation: Observation, new: set[int] | frozenset[int]
    ) -> None:
        starts: dict[int, tuple[int, str]] = {}
        for p in sorted(new):
            if p in self._resume:
                starts[p] = (self._resume[p], "checkpoint")
            elif p in observation.committed:
                starts[p] = (observation.committed[p], "group commit")
            elif self._latest_applies:
                starts[p] = (observation.log_end[p], "latest")
            else:
                starts[p] = (observation.log_start[p], "earliest")
        positions: dict[int, int] = {}
        for p, (offset, origin) in starts.items():
            log_start = observation.log_start[p]
            if offset < log_start:
                offset = self._data_loss(p, offset, log_start, origin)
            positions[p] = offset
        self._place(consumer, positions)
        self._next_offsets.update(positions)
        self._latest_applies = False
        ends = ""
        if self.settings.until_end:
            self._end_at = {p: observation.log_end[p] for p in positions}
            self._end_unconfirmed = {p for p in positions if positions[p] < self._end_at[p]}
            ends = ", up to the log end seen now: " + ", ".join(
                f"partition {p} at {self._end_at[p]}" for p in sorted(positions)
            )
        self._log.info(
            "reading Kafka topic %r: %s%s",
            self.topic,
            ", ".join(
                f"partition {p} from offset {positions[p]} ({starts[p][1]})"
                for p in sorted(positions)
            ),
            ends,
        )

    def _data_loss(self, partition: int, offset: int, log_start: int, origin: str) -> int:
        """Position below the log start: fail loudly, or skip ahead and record it."""
        lost = log_start - offset
        if self.settings.on_data_loss != "reset":
            raise SourceError(
                f"Kafka topic {self.topic!r} partition {partition}: the {origin} resumes at offset "
                f"{offset}, but the log now starts at {log_start}; {lost} record(s) were deleted "
                "(retention) before they were learned. Refusing to skip them silently. To go on "
                f"from offset {log_start} and record the loss in the state, restart with "
                "--on-data-loss reset."
            )
        event = {
            "topic": self.topic,
            "partition": partition,
            "checkpoint_offset": offset,
            "log_start_offset": log_start,
            "records_lost": lost,
            "position_from": origin,
            "detected_at": time.time(),
        }
        self.data_loss_events.append(event)
        self._log.warning(
            "DATA LOSS on Kafka topic %r partition %d: %d record(s) between offsets %d and %d were "
            "deleted before they were learned; continuing from %d (--on-data-loss reset)",
            self.topic,
            partition,
            lost,
            offset,
            log_start,
            log_start,
        )
        return log_start

    def _end_of(self, partition: int, high_water: int) -> int:
        """Where reading ``partition`` stops (``until_end``), given a fetch's high-water mark.

        The first fetch of a partition confirms the log end seen at start, or moves it up to
        that fetch's high-water mark (a broker may report its last batch's start as its end).
        """
        assert self._end_at is not None
        if partition in self._end_unconfirmed:
            self._end_unconfirmed.discard(partition)
            if high_water > self._end_at[partition]:
                self._log.debug(
                    "partition %d ends at %d, not at the %d the broker reported",
                    partition,
                    high_water,
                    self._end_at[partition],
                )
                self._end_at[partition] = high_water
        return self._end_at[partition]

    def _reached_end(self, consumer: ConsumerT, partition: int) -> None:
        """``partition`` holds records past its end: it is done; its fetching stops."""
        if partition not in self._done:
            self._done.add(partition)
            self._pause(consumer, [partition])

    def _out_of_range_now(self, partition: int) -> bool:
        """Note that the broker called ``partition`` out of range; False if it is not ours.

        The caller pauses it; ``_settle_out_of_range`` repositions it once the watcher has
        looked at the log bounds after this moment.
        """
        if partition not in self._next_offsets:
            return False
        self._out_of_range[partition] = time.monotonic()
        return True

    def _settle_out_of_range(self, consumer: ConsumerT, observation: Observation) -> None:
        """Re-position partitions the broker called out of range, once we have fresh offsets."""
        settled: dict[int, int] = {}
        for p, seen_at in list(self._out_of_range.items()):
            if observation.started_at < seen_at:
                continue  # this look at the log is older than the complaint
            position = self._next_offsets[p]
            log_start = observation.log_start.get(p, 0)
            log_end = observation.log_end.get(p, position)
            if position < log_start:
                position = self._data_loss(p, position, log_start, "position")
            elif position > log_end:
                if self.settings.on_data_loss != "reset":
                    raise SourceError(
                        f"Kafka topic {self.topic!r} partition {p}: our position {position} is "
                        f"past the end of the log ({log_end}); was the topic deleted and "
                        "recreated? Use a fresh state directory, or restart with "
                        "--on-data-loss reset to read the partition from its start."
                    )
                position = self._data_loss(p, position, log_start, "position past the log end")
            self._next_offsets[p] = position
            del self._out_of_range[p]
            settled[p] = position
        if settled:
            self._reposition(consumer, settled)

    def _off_course(self, partition: int, expected: int, offset: int) -> bool:
        """A record not at the ``expected`` offset: hand it out (True) or drop it (False).

        Below it, the record was handed out already (a client-side rewind, a redelivery): it is
        dropped and counted in ``duplicates``. Above it, records are missing from the log (normal
        for compacted or transactional topics): counted in ``gaps``, the record is handed out.
        """
        if offset < expected:
            self.duplicates += 1
            return False
        self.gaps += 1
        if partition not in self._gap_logged:
            self._gap_logged.add(partition)
            self._log.info(
                "Kafka topic %r partition %d jumps from offset %d to %d (normal for compacted or "
                "transactional topics; further gaps are counted, not logged)",
                self.topic,
                partition,
                expected,
                offset,
            )
        else:
            self._log.debug("partition %d jumps from offset %d to %d", partition, expected, offset)
        return True
