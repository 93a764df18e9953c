"""A Kafka topic as a Source, read with confluent-kafka (librdkafka) instead of kafka-python.

Same contract and semantics as :class:`streamlearn.sources.kafka.KafkaSource`, so either can resume
from the other's checkpoint: every partition is ``assign()``ed (no group membership, no
rebalance), start positions come from the checkpoint, else the group's committed offsets, else
``settings.start_from``; duplicates are dropped and counted, gaps counted; the snapshot is
``{"kind": "kafka", "topic": T, "next_offsets": {"0": 123, ...}}``; ``commit()`` sends explicit
offsets after a durable checkpoint, in the background.

librdkafka decodes records in C on its own threads, which is what makes this source faster on one
core (``bench/bench_kafka_clients.py``). Everything that can block on the broker (metadata, log
bounds, committed offsets, commits) runs on a background watcher thread with a second librdkafka
consumer used only for look-ups; ``next_batch()`` only calls ``consume()`` with a short timeout.

Settings: ``settings.client_config`` holds kafka-python names; the common ones (security, TLS,
SASL, client id, fetch sizes) are translated to librdkafka's, kafka-python-only tuning is ignored,
anything else is passed on with dots (librdkafka rejects what it does not know, and that is
reported as a :class:`SourceError` when the source is built). librdkafka does not check record
CRCs by default (``check.crcs``), unlike kafka-python.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from streamlearn.kafka_config import KafkaSettings
from streamlearn.sources.base import PositionMismatch, Raw, Source, SourceError

if TYPE_CHECKING:
    from confluent_kafka import Consumer

__all__ = ["CONSUMER_TUNING", "ConfluentKafkaSource", "librdkafka_config"]

log = logging.getLogger(__name__)

#: librdkafka consumer settings streamlearn chooses unless ``client_config`` says otherwise: big
#: fetches and a deep local queue, so the fetcher thread stays ahead of ``consume()``.
CONSUMER_TUNING: dict[str, Any] = {
    "fetch.max.bytes": 64 * 1024 * 1024,
    "max.partition.fetch.bytes": 8 * 1024 * 1024,
    "queued.max.messages.kbytes": 256 * 1024,
    "queued.min.messages": 500_000,
    "fetch.wait.max.ms": 100,
    "reconnect.backoff.max.ms": 5000,
    # As kafka-python does by default (librdkafka's defaults differ): check record CRCs (in C,
    # hardware CRC32C, cheap) and hand out records of open or aborted transactions too.
    "check.crcs": True,
    "isolation.level": "read_uncommitted",
}
#: Metadata and offset look-ups give up after this long, so a hung broker is noticed quickly.
WATCHER_REQUEST_TIMEOUT_S = 3.0

# kafka-python names (as in KafkaSettings.client_config) -> librdkafka names.
_RENAMED = {
    "security_protocol": "security.protocol",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "ssl_password": "ssl.key.password",
    "ssl_crlfile": "ssl.crl.location",
    "ssl_ciphers": "ssl.cipher.suites",
    "sasl_mechanism": "sasl.mechanisms",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "client_id": "client.id",
    "fetch_max_bytes": "fetch.max.bytes",
    "max_partition_fetch_bytes": "max.partition.fetch.bytes",
    "fetch_max_wait_ms": "fetch.wait.max.ms",
    "fetch_min_bytes": "fetch.min.bytes",
    "check_crcs": "check.crcs",
    "request_timeout_ms": "socket.timeout.ms",
    "connections_max_idle_ms": "connections.max.idle.ms",
    "reconnect_backoff_ms": "reconnect.backoff.ms",
    "reconnect_backoff_max_ms": "reconnect.backoff.max.ms",
    "metadata_max_age_ms": "metadata.max.age.ms",
    "receive_buffer_bytes": "socket.receive.buffer.bytes",
    "send_buffer_bytes": "socket.send.buffer.bytes",
    "isolation_level": "isolation.level",
}
# kafka-python settings with no librdkafka counterpart (or meaningless here): ignored.
_IGNORED = frozenset(
    {
        "max_poll_records",
        "max_poll_interval_ms",
        "api_version",
        "api_version_auto_timeout_ms",
        "bootstrap_timeout_ms",
        "retry_backoff_ms",
        "ssl_check_hostname",
        "session_timeout_ms",
        "heartbeat_interval_ms",
        "exclude_internal_topics",
        "allow_auto_create_topics",
        "linger_ms",
        "batch_size",
        "acks",
        "compression_type",
        "retries",
    }
)
# Positions are ours; these would fight the source.
_OURS = frozenset({"bootstrap.servers", "group.id", "enable.auto.commit", "auto.offset.reset"})


def librdkafka_config(settings: KafkaSettings) -> dict[str, Any]:
    """The librdkafka settings for ``settings.client_config`` (kafka-python names), tuned.

    >>> from streamlearn.kafka_config import KafkaSettings
    >>> s = KafkaSettings(["b:9092"], "t", client_config={"security_protocol": "SSL",
    ...                   "max_poll_records": 10, "queued_min_messages": 1000})
    >>> cfg = librdkafka_config(s)
    >>> cfg["security.protocol"], cfg["queued.min.messages"], "max.poll.records" in cfg
    ('SSL', 1000, False)
    """
    config = dict(CONSUMER_TUNING)
    for key, value in settings.client_config.items():
        if key in _IGNORED or value is None:
            continue
        name = _RENAMED.get(key, key.replace("_", "."))
        if name in _OURS:
            continue
        config[name] = value
    config["bootstrap.servers"] = ",".join(settings.bootstrap_servers)
    return config


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
    """A failure that retrying cannot fix (authentication, authorization, configuration)."""


def _is_fatal(error: Any) -> bool:
    """True for a librdkafka ``KafkaError`` that retrying cannot fix."""
    from confluent_kafka import KafkaError

    codes = {
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError._INVALID_ARG,
        KafkaError._UNKNOWN_PROTOCOL,
        KafkaError._SSL,
    }
    return bool(error.fatal()) or error.code() in codes


class _Watcher(threading.Thread):
    """Background thread that owns every call that may block on the broker.

    Observes the topic every ``interval`` seconds (partitions, log start and end offsets, the
    group's committed offsets) with a look-up consumer of its own, performs offset commits, and
    logs each connected/disconnected change once.
    """

    def __init__(
        self, settings: KafkaSettings, config: dict[str, Any], interval: float, max_backoff: float
    ) -> None:
        super().__init__(name=f"streamlearn-confluent-watcher-{settings.topic}", daemon=True)
        self.settings = settings
        self.interval = interval
        self.max_backoff = max_backoff
        self._config = config
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self.observed = threading.Event()  # set after every round; the reader clears it
        self.observation: _Observation | None = None
        self.connected = False
        self.fatal: BaseException | None = None
        self.committed_offsets: dict[int, int] = {}
        self.commit_failures = 0
        self._pending_commit: dict[int, int] | None = None
        self._ever_connected = False
        self._state_logged = False

    def request_commit(self, offsets: dict[int, int]) -> None:
        with self._lock:
            self._pending_commit = dict(offsets)  # only the newest checkpoint matters
        self._wake.set()

    def refresh(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

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
        from confluent_kafka import Consumer, KafkaException

        lookup = Consumer(self._config)
        backoff = 0.25
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                wait = self.interval
                try:
                    self._observe(lookup)
                    self._set_connected(True, None)
                    self._commit(lookup)
                    backoff = 0.25
                except _Fatal as exc:
                    self.fatal = exc
                    self._set_connected(False, exc)
                    return
                except KafkaException as exc:
                    if _is_fatal(exc.args[0]):
                        self.fatal = exc
                        self._set_connected(False, exc)
                        return
                    self._set_connected(False, exc)  # down, hung, restarting: retry with backoff
                    wait = backoff
                    backoff = min(backoff * 2, self.max_backoff)
                finally:
                    self.observed.set()
                self._wake.wait(wait)
        finally:
            if self.connected:
                # The last checkpoint's offsets go out before we leave (bounded by the request
                # timeout); failing here is harmless, the checkpoint is the truth.
                try:
                    self._commit(lookup)
                except Exception as exc:
                    log.warning("final offset commit for %s failed: %s", self.settings.topic, exc)
            lookup.close()

    def _observe(self, lookup: Consumer) -> None:
        from confluent_kafka import KafkaError, TopicPartition

        started = time.monotonic()
        topic = self.settings.topic
        # Metadata of all topics: asking for an unknown topic by name may create it on tansu.
        metadata = lookup.list_topics(timeout=WATCHER_REQUEST_TIMEOUT_S)
        entry = metadata.topics.get(topic)
        error = entry.error if entry is not None else None
        if entry is None or (
            error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        ):
            self._publish(_Observation(started, topic_exists=False))
            return
        if error is not None:
            if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise _Fatal(f"not authorized to read topic {topic!r}")
            raise RuntimeError(f"metadata for topic {topic!r}: {error}")
        # A partition without a leader yet (error) is left for a later round.
        partitions = frozenset(p for p, meta in entry.partitions.items() if meta.error is None)
        log_start: dict[int, int] = {}
        log_end: dict[int, int] = {}
        for p in sorted(partitions):
            low, high = lookup.get_watermark_offsets(
                TopicPartition(topic, p), timeout=WATCHER_REQUEST_TIMEOUT_S, cached=False
            )
            log_start[p], log_end[p] = low, high
        committed: dict[int, int] = {}
        if self.settings.group_id is not None and partitions:
            found = lookup.committed(
                [TopicPartition(topic, p) for p in sorted(partitions)],
                timeout=WATCHER_REQUEST_TIMEOUT_S,
            )
            committed = {
                tp.partition: tp.offset for tp in found if tp.error is None and tp.offset >= 0
            }
        self._publish(
            _Observation(
                started_at=started,
                topic_exists=True,
                partitions=partitions,
                log_start=log_start,
                log_end=log_end,
                committed=committed,
            )
        )

    def _publish(self, observation: _Observation) -> None:
        with self._lock:
            self.observation = observation

    def _commit(self, lookup: Consumer) -> None:
        from confluent_kafka import TopicPartition

        with self._lock:
            offsets, self._pending_commit = self._pending_commit, None
        group = self.settings.group_id
        if not offsets or group is None:
            return
        topic = self.settings.topic
        request = [TopicPartition(topic, p, offset) for p, offset in sorted(offsets.items())]
        try:
            result = lookup.commit(offsets=request, asynchronous=False) or []
        except Exception as exc:
            self.commit_failures += 1
            with self._lock:  # keep it for the next round unless a newer checkpoint came
                if self._pending_commit is None:
                    self._pending_commit = offsets
            log.warning("committing offsets of group %r failed (will retry): %s", group, exc)
            raise
        failed = {tp.partition: tp.error for tp in result if tp.error is not None}
        if failed:
            self.commit_failures += 1
            log.warning("committing offsets of group %r failed for partitions %s", group, failed)
        self.committed_offsets.update(
            {p: offset for p, offset in offsets.items() if p not in failed}
        )

    def _set_connected(self, connected: bool, error: BaseException | None) -> None:
        """Record the connection state; log only when it changes (and the first failure)."""
        if self._state_logged and connected == self.connected:
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


class ConfluentKafkaSource(Source):
    """All partitions of one Kafka topic via confluent-kafka, resumable from a checkpoint.

    A drop-in for :class:`streamlearn.sources.kafka.KafkaSource` (same constructor, ``kind``,
    snapshot format, counters ``duplicates``/``gaps``/``data_loss_events``, ``commit()``,
    ``committed_offsets``, ``commit_failures``, ``lag()``, ``wait_until_ready()``). Raises
    :class:`SourceError` at construction when librdkafka rejects the client settings.
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
        from confluent_kafka import Consumer, KafkaException

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
        self._latest_applies: bool | None = None
        self._closed = False

        base = librdkafka_config(settings)
        # Positions are ours: no auto commit, and an invalid position must surface as an error
        # instead of being reset silently. librdkafka wants a group id even for assign(); without
        # one of ours a throwaway id is used and never committed to.
        group = settings.group_id or f"streamlearn-unused-{uuid.uuid4().hex[:12]}"
        fetch_config = {
            **base,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
            "allow.auto.create.topics": False,
            "enable.partition.eof": False,
        }
        lookup_config = {
            **base,
            "group.id": group,
            "enable.auto.commit": False,
            "allow.auto.create.topics": False,
            "socket.timeout.ms": int(WATCHER_REQUEST_TIMEOUT_S * 1000),
        }
        try:
            self._consumer: Consumer | None = Consumer(fetch_config)
        except KafkaException as exc:
            raise SourceError(f"confluent-kafka rejected the Kafka settings: {exc}") from exc
        self._watcher = _Watcher(settings, lookup_config, refresh_interval, max_backoff)
        self._watcher.start()

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
        return f"kafka://{','.join(self.settings.bootstrap_servers)}/{self.topic} (confluent-kafka)"

    def next_batch(self, max_items: int) -> list[Raw]:
        """Up to ``max_items`` records, in partition order; ``[]`` after at most a short wait."""
        if self._closed or max_items <= 0:
            return []
        self._catch_up_with_watcher()
        consumer = self._consumer
        if consumer is None or not self._next_offsets:
            self._watcher.observed.wait(self.poll_timeout)
            self._watcher.observed.clear()
            return []
        return self._poll(consumer, max_items)

    def wait_until_ready(self, timeout: float) -> bool:
        """Block up to ``timeout`` s until partitions are positioned; True if they are."""
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
        """``{"kind": "kafka", "topic": T, "next_offsets": {"0": 123, ...}}`` (as KafkaSource)."""
        offsets = {**self._resume, **self._next_offsets}
        return {
            "kind": self.kind,
            "topic": self.topic,
            "next_offsets": {str(p): offsets[p] for p in sorted(offsets)},
        }

    def commit(self, snapshot: Mapping[str, Any]) -> None:
        """Commit the snapshot's offsets for the group, in the background (never blocks)."""
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
        """Records behind the log end per partition, from the watcher's last look (cheap)."""
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
        connected = self._watcher.connected
        self._watcher.join(timeout=WATCHER_REQUEST_TIMEOUT_S + 2 if connected else 0.5)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()

    # -- internals -----------------------------------------------------------------------------

    def _catch_up_with_watcher(self) -> None:
        watcher = self._watcher
        if watcher.fatal is not None:
            raise SourceError(
                f"Kafka at {','.join(self.settings.bootstrap_servers)} refused us: "
                f"{type(watcher.fatal).__name__}: {watcher.fatal}"
            )
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

    def _reassign(self, consumer: Consumer) -> None:
        """Assign every partition at its next offset (librdkafka drops what it prefetched)."""
        from confluent_kafka import TopicPartition

        consumer.assign(
            [TopicPartition(self.topic, p, o) for p, o in sorted(self._next_offsets.items())]
        )

    def _assign(
        self, consumer: Consumer, observation: _Observation, new: set[int] | frozenset[int]
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
        self._next_offsets.update(positions)
        self._reassign(consumer)
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
        self.data_loss_events.append(
            {
                "topic": self.topic,
                "partition": partition,
                "checkpoint_offset": offset,
                "log_start_offset": log_start,
                "records_lost": lost,
                "position_from": origin,
                "detected_at": time.time(),
            }
        )
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

    def _settle_out_of_range(self, consumer: Consumer, observation: _Observation) -> None:
        """Re-position partitions the broker called out of range, once we have fresh offsets."""
        from confluent_kafka import TopicPartition

        settled = []
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
            settled.append(TopicPartition(self.topic, p))
        if settled:
            self._reassign(consumer)
            consumer.resume(settled)

    def _on_error(self, consumer: Consumer, message: Any) -> None:
        """A consumer event instead of a record: out of range, fatal, or transient."""
        from confluent_kafka import KafkaError, TopicPartition

        error = message.error()
        code = error.code()
        if code in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
            partition = message.partition()
            if message.topic() == self.topic and partition in self._next_offsets:
                consumer.pause([TopicPartition(self.topic, partition)])
                self._out_of_range[partition] = time.monotonic()
            log.warning(
                "Kafka says the offset of partition %s is out of range (%s); checking the log "
                "bounds",
                partition,
                error,
            )
            self._watcher.refresh()
        elif _is_fatal(error):
            raise SourceError(f"Kafka refused to serve topic {self.topic!r}: {error}")
        else:  # transient: librdkafka reconnects by itself
            log.debug("consume reported %s, will retry", error)

    def _poll(self, consumer: Consumer, max_items: int) -> list[Raw]:
        from confluent_kafka import KafkaException

        try:
            # Typed Any: a record's partition() and offset() are never None, unlike an event's.
            messages: list[Any] = consumer.consume(
                num_messages=max_items, timeout=self.poll_timeout
            )
        except KafkaException as exc:
            if _is_fatal(exc.args[0]):
                raise SourceError(f"Kafka refused to serve topic {self.topic!r}: {exc}") from exc
            log.debug("consume failed, will retry: %s", exc)
            return []
        if not messages:
            return []

        items: list[Raw] = []
        append = items.append  # the per-record loop is hot
        topic = self.topic
        next_offsets = self._next_offsets
        current = -1  # the partition whose expected offset is in ``expected``
        expected: int | None = None
        mixed = False
        for message in messages:
            if message.error() is not None:
                self._on_error(consumer, message)
                continue
            partition = message.partition()
            if partition != current:
                if expected is not None:
                    next_offsets[current] = expected
                if current != -1:
                    mixed = True
                current = partition
                expected = next_offsets.get(partition)
                if expected is None:  # not ours (cannot happen with assign); never hand it out
                    current = -1
                    continue
            elif expected is None:
                continue
            offset = message.offset()
            if offset != expected:
                if offset < expected:
                    self.duplicates += 1
                    continue
                self._gap(partition, expected, offset)
            value = message.value()
            append(Raw(b"" if value is None else value, offset, partition, message.key(), topic))
            expected = offset + 1
        if expected is not None and current != -1:
            next_offsets[current] = expected
        if mixed:
            items.sort(key=_by_partition)  # stable: offset order within a partition stays
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


def _by_partition(raw: Raw) -> int:
    return raw.partition
