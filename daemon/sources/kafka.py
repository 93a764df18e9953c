"""A Kafka topic as a Source: this process reads every partition, from checkpointed positions.

Single-model mode does not join a consumer group: the source ``assign()``s all partitions of the
topic itself, so there is no rebalance and nobody else's offsets move ours. The group id, when
given, is used only to commit offsets after a durable checkpoint (for lag monitoring) and as a
fallback start position for partitions the checkpoint does not know.

Everything that can block on the broker (bootstrap, metadata, list offsets, offset commits) runs
on a background *watcher* thread with its own admin client. ``next_batch()`` only polls the
fetching consumer with a short timeout, so it returns promptly whether the broker is up, down,
or hung.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from streamlearn.kafka_config import KafkaSettings, client_kwargs
from streamlearn.sources.base import PositionMismatch, Raw, Source, SourceError

if TYPE_CHECKING:
    from kafka import KafkaAdminClient, KafkaConsumer

__all__ = ["CONSUMER_TUNING", "KafkaSource"]

log = logging.getLogger(__name__)

#: Consumer settings that streamlearn chooses unless ``client_config`` says otherwise. Measured on
#: loopback against tansu, kafka-python's pure-Python record decoding dominates (~88% of the time),
#: so these were within noise of the defaults there (60-85k msg/s either way); big fetches save
#: round trips to a remote broker. What did double throughput is the ``crc32c`` C extension:
#: without it kafka-python checks CRCs in Python (25-36k msg/s).
CONSUMER_TUNING: dict[str, Any] = {
    "max_poll_records": 5000,
    "fetch_max_bytes": 64 * 1024 * 1024,
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
    "fetch_max_wait_ms": 100,  # an idle poll returns soon; the run loop polls again anyway
    "reconnect_backoff_max_ms": 5000,  # after an outage, reconnect within seconds, not 30 s
}
#: Metadata and offset look-ups give up after this long, so a hung broker is noticed quickly.
WATCHER_REQUEST_TIMEOUT_MS = 3000


@dataclass(frozen=True, slots=True)
class _Observation:
    """What the watcher saw in one round; replaced whole, never mutated."""

    started_at: float  # time.monotonic() when the round began
    topic_exists: bool
    partitions: frozenset[int] = frozenset()
    log_start: Mapping[int, int] = field(default_factory=dict)
    log_end: Mapping[int, int] = field(default_factory=dict)
    committed: Mapping[int, int] = field(default_factory=dict)


class _Fatal(Exception):
    """A watcher failure that retrying cannot fix (authentication, authorization, config)."""


def _fatal_errors() -> tuple[type[BaseException], ...]:
    """Errors that retrying cannot fix: bad credentials or permissions, settings kafka-python
    rejects. Looked up by name because kafka-python renames error classes between releases."""
    from kafka import errors

    names = (
        "SaslAuthenticationFailedError",
        "UnsupportedSaslMechanismError",
        "AuthorizationError",
        "KafkaConfigurationError",
    )
    found = tuple(getattr(errors, name) for name in names if hasattr(errors, name))
    return (_Fatal, TypeError, ValueError, *found)


class _Watcher(threading.Thread):
    """Background thread that owns every call that may block on the broker.

    It connects (with backoff), builds the fetching consumer and hands it over, observes the
    topic every ``interval`` seconds (partitions, log start and end offsets, the group's committed
    offsets) and performs offset commits. It logs each connected/disconnected change once.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        consumer_config: dict[str, Any],
        admin_config: dict[str, Any],
        interval: float,
        max_backoff: float,
    ) -> None:
        super().__init__(name=f"streamlearn-kafka-watcher-{settings.topic}", daemon=True)
        self.settings = settings
        self.interval = interval
        self.max_backoff = max_backoff
        self._consumer_config = consumer_config
        self._admin_config = admin_config
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self.observed = threading.Event()  # set after every round; the reader clears it
        self.observation: _Observation | None = None
        self.connected = False
        self.fatal: BaseException | None = None
        self.committed_offsets: dict[int, int] = {}  # what our own commits confirmed
        self.commit_failures = 0
        self._handoff: KafkaConsumer | None = None
        self._consumer_built = False
        self._pending_commit: dict[int, int] | None = None
        self._ever_connected = False
        self._state_logged = False

    # -- called from the reading thread ---------------------------------------------------------

    def take_consumer(self) -> KafkaConsumer | None:
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

    # -- the thread ----------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # a bug here must not leave the source looking healthy
            self.fatal = exc
            self.connected = False
            log.exception("the Kafka watcher for topic %r stopped", self.settings.topic)
        finally:
            self.observed.set()

    def _run(self) -> None:
        fatal_errors = _fatal_errors()
        admin: KafkaAdminClient | None = None
        backoff = 0.25
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                wait = self.interval
                try:
                    if admin is None:
                        admin = self._make_admin()
                    self._ensure_consumer()
                    self._observe(admin)
                    self._set_connected(True, None)
                    self._commit(admin)
                    backoff = 0.25
                except fatal_errors as exc:
                    self.fatal = exc
                    self._set_connected(False, exc)
                    return
                except Exception as exc:  # broker down, hung, restarting: retry with backoff
                    self._set_connected(False, exc)
                    wait = backoff
                    backoff = min(backoff * 2, self.max_backoff)
                finally:
                    self.observed.set()
                self._wake.wait(wait)
        finally:
            if admin is not None:
                if self.connected:
                    # The last checkpoint's offsets go out before we leave (bounded by the
                    # request timeout); failing here is harmless, the checkpoint is the truth.
                    try:
                        self._commit(admin)
                    except Exception as exc:
                        log.warning(
                            "final offset commit for %s failed: %s", self.settings.topic, exc
                        )
                admin.close()
            leftover = self.take_consumer()
            if leftover is not None:
                leftover.close(autocommit=False)

    def _make_admin(self) -> KafkaAdminClient:
        from kafka import KafkaAdminClient

        return KafkaAdminClient(**self._admin_config)

    def _ensure_consumer(self) -> None:
        if self._consumer_built:
            return
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(**self._consumer_config)
        with self._lock:
            if self._stopping.is_set():
                consumer.close(autocommit=False)
                return
            self._handoff = consumer
            self._consumer_built = True

    def _observe(self, admin: KafkaAdminClient) -> None:
        from kafka import TopicPartition
        from kafka.admin import OffsetSpec

        started = time.monotonic()
        topic = self.settings.topic
        # Metadata first, and only for a topic that exists: on tansu, a ListOffsets or Fetch
        # for an unknown topic creates it, which must never be a side effect of waiting for it.
        described = admin.describe_topics([topic])
        entry = next((item for item in described if item.get("name") == topic), None)
        code = entry.get("error_code", 0) if entry else 3
        if code == 3:  # UNKNOWN_TOPIC_OR_PARTITION
            self._publish(_Observation(started, topic_exists=False))
            return
        if code == 29:  # TOPIC_AUTHORIZATION_FAILED
            raise _Fatal(f"not authorized to read topic {topic!r}")
        if code:
            raise RuntimeError(f"metadata for topic {topic!r} has error code {code}")
        # A partition without a leader yet (error code) is left for a later round.
        partitions = frozenset(
            part["partition_index"]
            for part in entry.get("partitions", [])  # type: ignore[union-attr]
            if not part.get("error_code")
        )
        tps = {TopicPartition(topic, p) for p in partitions}
        timeout = self._admin_config.get("request_timeout_ms", WATCHER_REQUEST_TIMEOUT_MS)
        starts = admin.list_partition_offsets(
            {tp: OffsetSpec.EARLIEST for tp in tps}, timeout_ms=timeout
        )
        ends = admin.list_partition_offsets(
            {tp: OffsetSpec.LATEST for tp in tps}, timeout_ms=timeout
        )
        committed: dict[int, int] = {}
        group = self.settings.group_id
        if group is not None and tps:
            found = admin.list_group_offsets({group: sorted(tps)}).get(group, {})
            committed = {
                tp.partition: meta.offset
                for tp, meta in found.items()
                if tp.topic == topic and meta is not None and meta.offset >= 0
            }
        self._publish(
            _Observation(
                started_at=started,
                topic_exists=True,
                partitions=partitions,
                log_start={tp.partition: found.offset for tp, found in starts.items()},
                log_end={tp.partition: found.offset for tp, found in ends.items()},
                committed=committed,
            )
        )

    def _publish(self, observation: _Observation) -> None:
        with self._lock:
            self.observation = observation

    def _commit(self, admin: KafkaAdminClient) -> None:
        from kafka import TopicPartition
        from kafka.errors import NoError
        from kafka.structs import OffsetAndMetadata

        with self._lock:
            offsets, self._pending_commit = self._pending_commit, None
        group = self.settings.group_id
        if not offsets or group is None:
            return
        topic = self.settings.topic
        request = {
            TopicPartition(topic, p): OffsetAndMetadata(offset, "", -1)
            for p, offset in offsets.items()
        }
        try:
            result = admin.alter_group_offsets(group, request)
        except Exception as exc:
            self.commit_failures += 1
            with self._lock:  # keep it for the next round unless a newer checkpoint came
                if self._pending_commit is None:
                    self._pending_commit = offsets
            log.warning("committing offsets of group %r failed (will retry): %s", group, exc)
            raise
        failed = {tp.partition: err for tp, err in result.items() if err is not NoError}
        if failed:
            self.commit_failures += 1
            log.warning("committing offsets of group %r failed for partitions %s", group, failed)
        self.committed_offsets.update(
            {tp.partition: request[tp].offset for tp in result if tp.partition not in failed}
        )

    def _set_connected(self, connected: bool, error: BaseException | None) -> None:
        """Record the connection state; log only when it changes (and the first failure)."""
        if connected == self.connected and self._state_logged:
            return
        servers = ",".join(self.settings.bootstrap_servers)
        if connected:
            verb = "reconnected" if self._ever_connected else "connected"
            log.info("%s to Kafka at %s (topic %r)", verb, servers, self.settings.topic)
            self._ever_connected = True
        else:
            log.warning(
                "cannot reach Kafka at %s (%s: %s); retrying with backoff",
                servers,
                type(error).__name__,
                error,
            )
        self._state_logged = True
        self.connected = connected


class KafkaSource(Source):
    """All partitions of one Kafka topic, resumable from a checkpoint.

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
    """

    kind: ClassVar[str] = "kafka"

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
        self._resume = self._read_resume(resume)
        self._next_offsets: dict[int, int] = {}  # partitions positioned in the consumer
        self._out_of_range: dict[int, float] = {}  # partition -> when the broker said so
        self._gap_logged: set[int] = set()
        self._topic_missing_logged = False
        # --from latest is about the data already there when we start; a topic or partition
        # that appears later is read from its start, because all of it is new.
        self._latest_applies: bool | None = None
        self._consumer: KafkaConsumer | None = None
        self._closed = False

        consumer_config, admin_config = self._client_configs(settings)
        self._watcher = _Watcher(
            settings, consumer_config, admin_config, refresh_interval, max_backoff
        )
        self._watcher.start()

    # -- configuration -------------------------------------------------------------------------

    @staticmethod
    def _client_configs(settings: KafkaSettings) -> tuple[dict[str, Any], dict[str, Any]]:
        common = {"bootstrap_servers": list(settings.bootstrap_servers)}
        consumer_config = {
            **CONSUMER_TUNING,
            **client_kwargs(settings.client_config, "consumer"),
            **common,
            # Positions are ours: no group membership, no auto commit, and an invalid position
            # must surface (OffsetOutOfRange) instead of being silently reset by the client.
            "group_id": None,
            "enable_auto_commit": False,
            "auto_offset_reset": "none",
            "allow_auto_create_topics": False,
        }
        admin_config = {
            "request_timeout_ms": WATCHER_REQUEST_TIMEOUT_MS,
            "bootstrap_timeout_ms": 10_000,
            "reconnect_backoff_max_ms": 5000,
            **client_kwargs(settings.client_config, "admin"),
            **common,
        }
        return consumer_config, admin_config

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

    # -- the Source contract -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._watcher.connected and not self._closed

    def describe(self) -> str:
        return f"kafka://{','.join(self.settings.bootstrap_servers)}/{self.topic}"

    def next_batch(self, max_items: int) -> list[Raw]:
        """Up to ``max_items`` records, in partition order; ``[]`` after at most a short wait."""
        if self._closed or max_items <= 0:
            return []
        self._catch_up_with_watcher()
        consumer = self._consumer
        if consumer is None or not self._next_offsets:
            # Nothing to poll yet (connecting, topic missing): wait briefly for the watcher
            # rather than letting the run loop spin.
            self._watcher.observed.wait(self.poll_timeout)
            self._watcher.observed.clear()
            return []
        return self._poll(consumer, max_items)

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
            log.error(
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
        self._watcher.join(timeout=WATCHER_REQUEST_TIMEOUT_MS / 1000 + 2 if connected else 0.5)
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            consumer = self._watcher.take_consumer()
        if consumer is not None:
            consumer.close(autocommit=False)

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
                log.info("waiting for Kafka topic %r to be created", self.topic)
                self._topic_missing_logged = True
            return
        if self._topic_missing_logged:
            log.info("Kafka topic %r exists now", self.topic)
            self._topic_missing_logged = False
        if self._out_of_range:
            self._settle_out_of_range(self._consumer, observation)
        new = observation.partitions - self._next_offsets.keys()
        if new and all(p in observation.log_start and p in observation.log_end for p in new):
            self._assign(self._consumer, observation, new)

    def _assign(
        self, consumer: KafkaConsumer, observation: _Observation, new: set[int] | frozenset[int]
    ) -> None:
        from kafka import TopicPartition

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
        consumer.assign(
            [TopicPartition(self.topic, p) for p in sorted({*self._next_offsets, *positions})]
        )
        for p, offset in positions.items():
            consumer.seek(TopicPartition(self.topic, p), offset)
        self._next_offsets.update(positions)
        self._latest_applies = False
        log.info(
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
        log.warning(
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

    def _settle_out_of_range(self, consumer: KafkaConsumer, observation: _Observation) -> None:
        """Re-position partitions the broker called out of range, once we have fresh offsets."""
        from kafka import TopicPartition

        for p, seen_at in list(self._out_of_range.items()):
            if observation.started_at < seen_at:
                continue  # this look at the log is older than the complaint
            tp = TopicPartition(self.topic, p)
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
            consumer.seek(tp, position)
            consumer.resume(tp)
            self._next_offsets[p] = position
            del self._out_of_range[p]

    def _poll(self, consumer: KafkaConsumer, max_items: int) -> list[Raw]:
        from kafka import errors

        try:
            polled = consumer.poll(timeout_ms=int(self.poll_timeout * 1000), max_records=max_items)
        except errors.OffsetOutOfRangeError as exc:
            detail = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
            now = time.monotonic()
            for tp in detail:
                if tp.topic == self.topic and tp.partition in self._next_offsets:
                    consumer.pause(tp)
                    self._out_of_range[tp.partition] = now
            log.warning("Kafka says offsets %s are out of range; checking the log bounds", detail)
            self._watcher.refresh()
            return []
        except _fatal_errors() as exc:
            raise SourceError(f"Kafka refused to serve topic {self.topic!r}: {exc}") from exc
        except errors.KafkaError as exc:  # transient: the client reconnects by itself
            log.debug("poll failed, will retry: %s", exc)
            return []
        if not polled:
            return []

        items: list[Raw] = []
        append = items.append  # the per-record loop is hot: ~8% of consuming time is spent here
        topic = self.topic
        for tp in sorted(polled, key=lambda tp: tp.partition):
            partition = tp.partition
            expected = self._next_offsets.get(partition)
            if expected is None:  # not ours (cannot happen with assign); never hand it out
                continue
            for record in polled[tp]:
                offset = record.offset
                if offset != expected:
                    if offset < expected:
                        self.duplicates += 1
                        continue
                    self._gap(partition, expected, offset)
                value = record.value
                append(Raw(b"" if value is None else value, offset, partition, record.key, topic))
                expected = offset + 1
            self._next_offsets[partition] = expected
        return items

    def _gap(self, partition: int, expected: int, offset: int) -> None:
        self.gaps += 1
        if partition not in self._gap_logged:
            self._gap_logged.add(partition)
            log.info(
                "Kafka topic %r partition %d jumps from offset %d to %d (normal for compacted or "
                "transactional topics; further gaps are counted, not logged)",
                self.topic,
                partition,
                expected,
                offset,
            )
        else:
            log.debug("partition %d jumps from offset %d to %d", partition, expected, offset)
