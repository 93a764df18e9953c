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
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

from streamlearn.sources.base import (
    Raw,
    Source,
    SourceError,
    arrivals_from_timestamps,
)
from streamlearn.sources.kafka_config import KafkaSettings
from streamlearn.sources.kafka_fetch import Fetched, KafkaBlock
from streamlearn.sources.kafka_reach import Reach
from streamlearn.sources.kafka_start import checkpointed_offsets, choose_starts, data_loss_event
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
    offset; else ``settings.start_from``: earliest, latest, an offset or a time (partitions that
    appear later start at their beginning, since everything in them is new). Only
    ``settings.partition`` is read when it is given. A position below the log start (retention
    deleted records never learned) raises :class:`SourceError` unless
    ``settings.on_data_loss == "reset"``, which skips to the log start and appends to
    ``data_loss_events``.

    ``next_batch()`` never raises because the broker is down or hung: it returns ``[]`` and
    ``connected`` turns False until the watcher reaches the broker again. It does raise
    :class:`SourceError` for what retrying cannot fix (data loss, failed authentication).

    Counters: ``duplicates`` (records below the expected offset, dropped) and ``gaps`` (offset
    jumps, normal on compacted or transactional topics).

    With ``settings.until_end`` (``replay``, like ``kcat -e``) the source reads the partitions
    there at its start up to their log end at that moment, then is ``exhausted``: what is
    produced later waits for the next run (a topic that does not exist is a
    :class:`SourceError` then). With ``settings.count`` it is exhausted after that many
    records. Both limits are kept by :class:`~streamlearn.sources.kafka_reach.Reach`.

    A subclass builds its client objects in ``_open`` (the base starts the watcher it returns)
    and implements the client calls ``_fetch``, ``_place``, ``_reposition`` and ``_pause``.
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
        resume: Mapping[str, Any] | None = None,
        *,
        poll_timeout: float = 0.2,
        refresh_interval: float = 2.0,
        max_backoff: float = 10.0,
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
        self._resume = checkpointed_offsets(resume, self.kind, self.topic)
        self._next_offsets: dict[int, int] = {}  # partitions positioned in the consumer
        self._out_of_range: dict[int, float] = {}  # partition -> when the broker said so
        self._gap_logged: set[int] = set()
        self._topic_missing_logged = False
        # --from is about the data already there when we start; a topic or partition that
        # appears later is read from its start, because all of it is new.
        self._start = settings.start_at
        self._start_applies: bool | None = None
        self._reach = Reach(until_end=settings.until_end, count=settings.count)
        self._consumer: ConsumerT | None = None
        self._closed = False
        self._watcher = self._open(refresh_interval, max_backoff)
        self._watcher.start()

    # -- what the client library does -----------------------------------------------------------

    @abstractmethod
    def _open(self, refresh_interval: float, max_backoff: float) -> WatcherBase[Any, ConsumerT]:
        """The watcher (not started yet), with the fetching consumer in ``_consumer`` unless
        the watcher builds it (``take_consumer``); a client that rejects the settings raises
        :class:`SourceError`."""

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
        """Every partition read reached the log end seen at start (``until_end``), or
        ``count`` records were handed out."""
        return self._reach.exhausted(self._next_offsets)

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
            fetched = self._fetch(consumer, self._reach.cap(max_items))
        finally:
            if collecting:
                gc.enable()
        if fetched is None or not fetched.values:
            return None
        self._reach.took(len(fetched.values))
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
        if observation is not None and self._start_applies is None:
            self._start_applies = observation.topic_exists and self._start.kind != "earliest"
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
        if self._reach.ends is not None:
            return  # reading until the end: only the partitions there at the start
        new = self._readable(observation) - self._next_offsets.keys()
        timed = self._start_applies and self._start.kind == "time"
        if new and all(
            p in observation.log_start
            and p in observation.log_end
            and (not timed or p in observation.at_time)
            for p in new
        ):
            self._assign(self._consumer, observation, new)

    def _readable(self, observation: Observation) -> frozenset[int]:
        """The partitions of the topic this source reads: all, or ``settings.partition``."""
        wanted = self.settings.partition
        if wanted is None:
            return observation.partitions
        if wanted in observation.partitions:
            return frozenset({wanted})
        if observation.partitions and wanted > max(observation.partitions):
            raise SourceError(
                f"Kafka topic {self.topic!r} has partitions 0 to {max(observation.partitions)}: "
                f"there is no partition {wanted}"
            )
        return frozenset()  # not led by a broker yet: wait for it

    def _assign(
        self, consumer: ConsumerT, observation: Observation, new: set[int] | frozenset[int]
    ) -> None:
        starts = choose_starts(
            new, self._resume, observation, self._start if self._start_applies else None
        )
        positions: dict[int, int] = {}
        for p, (offset, origin) in starts.items():
            log_start = observation.log_start[p]
            if offset < log_start:
                offset = self._data_loss(p, offset, log_start, origin)
            positions[p] = offset
        self._place(consumer, positions)
        self._next_offsets.update(positions)
        self._watcher.look_up_times = False
        ends = ""
        if self.settings.until_end:
            ends = ", up to the log end seen now: " + self._reach.fix_ends(
                positions, observation.log_end
            )
        remembered = [p for p in positions if starts[p][1] in ("checkpoint", "group commit")]
        if self._start_applies and remembered and self._start.kind != "latest":
            self._log.info(
                "--from %s does not apply to partitions %s: the checkpoint or the group knows "
                "where they stand (--reset, or another --state-dir and group, to start there)",
                self._start,
                ", ".join(map(str, sorted(remembered))),
            )
        self._start_applies = False
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
        event = data_loss_event(self.settings, partition, offset, log_start, origin)
        self.data_loss_events.append(event)
        self._log.warning(
            "DATA LOSS on Kafka topic %r partition %d: %d record(s) between offsets %d and %d were "
            "deleted before they were learned; continuing from %d (--on-data-loss reset)",
            self.topic,
            partition,
            event["records_lost"],
            offset,
            log_start,
            log_start,
        )
        return log_start

    @property
    def _until_end(self) -> bool:
        """Whether fetches stop at each partition's end (``_end_of``, ``_reached_end``)."""
        return self._reach.ends is not None

    def _confirm_ends(self, high_water: Callable[[int], int | None]) -> None:
        """After a fetch: confirm the ends of partitions it brought a high-water mark for.

        ``high_water(partition)`` is the client's last high-water mark (None: not known yet).
        """
        for partition in list(self._reach.unconfirmed):
            mark = high_water(partition)
            if mark is not None and mark >= 0:
                self._reach.confirm(partition, mark)

    def _end_of(self, partition: int) -> int:
        """Where reading ``partition`` stops (``until_end``)."""
        assert self._reach.ends is not None
        return self._reach.ends[partition]

    def _reached_end(self, consumer: ConsumerT, partition: int) -> None:
        """A fetch of ``partition`` went past its end: the partition is done; pause it."""
        if self._reach.reached(partition):
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
