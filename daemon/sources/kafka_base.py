"""What every Kafka source shares, whatever its client library: positions, checks, the watcher.

:class:`KafkaSourceBase` holds the semantics: start positions (the checkpoint, else the group's
committed offsets, else ``--from``), data loss (fail, or skip and record it), duplicates dropped
and counted, gaps counted, one snapshot format (so a state written with one client resumes with
the other), commits after a durable checkpoint, lag. :class:`WatcherBase` is the background thread
that owns every call that may block on the broker: it observes the topic, commits, and says
whether the broker answers.

The subclasses make only the client calls: ``streamlearn.sources.kafka`` with kafka-python and
``streamlearn.sources.kafka_confluent`` with confluent-kafka (librdkafka) build the consumers,
fetch, assign and seek, look at the log and commit.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, ClassVar, Generic, TypeVar

from streamlearn.sources.base import (
    PositionMismatch,
    Raw,
    Source,
    SourceError,
    arrivals_from_timestamps,
)
from streamlearn.sources.kafka_config import KafkaSettings

__all__ = [
    "WATCHER_REQUEST_TIMEOUT_S",
    "Fatal",
    "Fetched",
    "KafkaBlock",
    "KafkaSourceBase",
    "Observation",
    "WatcherBase",
]

log = logging.getLogger(__name__)

#: Metadata and offset look-ups give up after this long, so a hung broker is noticed quickly.
WATCHER_REQUEST_TIMEOUT_S = 3.0

ClientT = TypeVar("ClientT")
ConsumerT = TypeVar("ConsumerT")


@dataclass(frozen=True, slots=True)
class Observation:
    """What the watcher saw in one round; replaced whole, never mutated."""

    started_at: float  # time.monotonic() when the round began
    topic_exists: bool
    partitions: frozenset[int] = frozenset()
    log_start: Mapping[int, int] = field(default_factory=dict)
    log_end: Mapping[int, int] = field(default_factory=dict)
    committed: Mapping[int, int] = field(default_factory=dict)


class Fatal(Exception):
    """A watcher failure that retrying cannot fix (authentication, authorization, config)."""


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


class WatcherBase(threading.Thread, Generic[ClientT]):
    """Background thread that owns every call that may block on the broker.

    Every ``interval`` seconds it observes the topic through a look-up client of its own
    (partitions, log start and end offsets, the group's committed offsets) and sends the newest
    offsets the reader asked it to commit. Failures are retried with backoff, except those
    ``_is_fatal`` names; each connected/disconnected change is logged once. The subclass makes
    the client calls: ``_connect``, ``_observe``, ``_send_commit``, ``_close_client``.
    """

    #: Where it logs: the client module's logger, so log names say which client it is.
    _log: ClassVar[logging.Logger] = log

    def __init__(
        self, settings: KafkaSettings, interval: float, max_backoff: float, name: str
    ) -> None:
        super().__init__(name=f"{name}-{settings.topic}", daemon=True)
        self.settings = settings
        self.interval = interval
        self.max_backoff = max_backoff
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self.observed = threading.Event()  # set after every round; the reader clears it
        self.observation: Observation | None = None
        self.connected = False
        self.fatal: BaseException | None = None
        self.committed_offsets: dict[int, int] = {}  # what our own commits confirmed
        self.commit_failures = 0
        self._handoff: Any = None  # a fetching consumer built here, for the reader to take
        self._pending_commit: dict[int, int] | None = None
        self._ever_connected = False
        self._state_logged = False

    # -- called from the reading thread ---------------------------------------------------------

    def take_consumer(self) -> Any:
        """The fetching consumer this thread built, once (None if it built none)."""
        with self._lock:
            consumer, self._handoff = self._handoff, None
            return consumer

    def request_commit(self, offsets: dict[int, int]) -> None:
        with self._lock:
            self._pending_commit = dict(offsets)  # only the newest checkpoint matters
        self._wake.set()

    def refresh(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def close_consumer(self, consumer: Any) -> None:
        """Close a fetching consumer without committing anything (positions are ours)."""
        consumer.close()

    # -- what the client library does -----------------------------------------------------------

    @abstractmethod
    def _connect(self) -> ClientT:
        """The look-up client (may raise; retried like any round)."""

    @abstractmethod
    def _observe(self, client: ClientT) -> Observation:
        """One look at the topic. Must not create it: only metadata for a missing topic."""

    @abstractmethod
    def _send_commit(
        self, client: ClientT, group: str, offsets: dict[int, int]
    ) -> tuple[dict[int, int], dict[int, Any]]:
        """Commit ``offsets`` for ``group``: (partition -> offset confirmed, partition -> error)."""

    @abstractmethod
    def _close_client(self, client: ClientT) -> None:
        """Release the look-up client."""

    def _is_fatal(self, exc: Exception) -> bool:
        """Whether retrying cannot fix ``exc`` (the source then raises it to the run loop)."""
        return isinstance(exc, Fatal)

    def _is_transient(self, exc: Exception) -> bool:
        """Whether ``exc`` (not fatal) is retried; anything else stops the thread as a bug."""
        return True

    # -- the thread ----------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # a bug here must not leave the source looking healthy
            self.fatal = exc
            self.connected = False
            self._log.exception("the Kafka watcher for topic %r stopped", self.settings.topic)
        finally:
            self.observed.set()

    def _run(self) -> None:
        client: ClientT | None = None
        backoff = 0.25
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                wait = self.interval
                try:
                    if client is None:
                        client = self._connect()
                    self._publish(self._observe(client))
                    self._set_connected(True, None)
                    self._commit(client)
                    backoff = 0.25
                except Exception as exc:
                    if self._is_fatal(exc):
                        self.fatal = exc
                        self._set_connected(False, exc)
                        return
                    if not self._is_transient(exc):
                        raise
                    self._set_connected(False, exc)  # down, hung, restarting: retry with backoff
                    wait = backoff
                    backoff = min(backoff * 2, self.max_backoff)
                finally:
                    self.observed.set()
                self._wake.wait(wait)
        finally:
            if client is not None:
                if self.connected:
                    # The last checkpoint's offsets go out before we leave (bounded by the
                    # request timeout); failing here is harmless, the checkpoint is the truth.
                    try:
                        self._commit(client)
                    except Exception as exc:
                        self._log.warning(
                            "final offset commit for %s failed: %s", self.settings.topic, exc
                        )
                self._close_client(client)
            leftover = self.take_consumer()
            if leftover is not None:
                self.close_consumer(leftover)

    def _publish(self, observation: Observation) -> None:
        with self._lock:
            self.observation = observation

    def _commit(self, client: ClientT) -> None:
        with self._lock:
            offsets, self._pending_commit = self._pending_commit, None
        group = self.settings.group_id
        if not offsets or group is None:
            return
        try:
            confirmed, failed = self._send_commit(client, group, offsets)
        except Exception as exc:
            self.commit_failures += 1
            with self._lock:  # keep it for the next round unless a newer checkpoint came
                if self._pending_commit is None:
                    self._pending_commit = offsets
            self._log.warning("committing offsets of group %r failed (will retry): %s", group, exc)
            raise
        if failed:
            self.commit_failures += 1
            self._log.warning(
                "committing offsets of group %r failed for partitions %s", group, failed
            )
        self.committed_offsets.update(confirmed)

    def _set_connected(self, connected: bool, error: BaseException | None) -> None:
        """Record the connection state; log only when it changes (and the first failure)."""
        if connected == self.connected and self._state_logged:
            return
        servers = ",".join(self.settings.bootstrap_servers)
        if connected:
            verb = "reconnected" if self._ever_connected else "connected"
            self._log.info("%s to Kafka at %s (topic %r)", verb, servers, self.settings.topic)
            self._ever_connected = True
        else:
            self._log.warning(
                "cannot reach Kafka at %s (%s: %s); retrying with backoff",
                servers,
                type(error).__name__,
                error,
            )
        self._state_logged = True
        self.connected = connected


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

    A subclass builds its consumer (or lets its watcher build it: ``take_consumer``) and its
    watcher, starts the watcher, and implements the client calls ``_fetch``, ``_place`` and
    ``_reposition``.
    """

    kind: ClassVar[str] = "kafka"
    #: Appended to ``describe()``: which client library reads.
    client_label: ClassVar[str] = ""
    #: Where it logs: the client module's logger, so log names say which client it is.
    _log: ClassVar[logging.Logger] = log
    _watcher: WatcherBase[Any]

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

    # -- the Source contract -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._watcher.connected and not self._closed

    def describe(self) -> str:
        return (
            f"kafka://{','.join(self.settings.bootstrap_servers)}/{self.topic}{self.client_label}"
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
            if not self._topic_missing_logged:
                self._log.info("waiting for Kafka topic %r to be created", self.topic)
                self._topic_missing_logged = True
            return
        if self._topic_missing_logged:
            self._log.info("Kafka topic %r exists now", self.topic)
            self._topic_missing_logged = False
        if self._out_of_range:
            self._settle_out_of_range(self._consumer, observation)
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
        self._log.info(
            "reading Kafka topic %r: %s",
            self.topic,
            ", ".join(
                f"partition {p} from offset {positions[p]} ({starts[p][1]})"
                for p in sorted(positions)
            ),
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
