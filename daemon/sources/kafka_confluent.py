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
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from streamlearn.sources.base import SourceError
from streamlearn.sources.kafka_base import KafkaSourceBase
from streamlearn.sources.kafka_config import KafkaSettings
from streamlearn.sources.kafka_fetch import Fetched
from streamlearn.sources.kafka_watcher import (
    WATCHER_REQUEST_TIMEOUT_S,
    Fatal,
    WatcherBase,
)

if TYPE_CHECKING:
    from confluent_kafka import Consumer, KafkaError

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

    >>> from streamlearn.sources.kafka_config import KafkaSettings
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


def _is_fatal(error: KafkaError) -> bool:
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


class _Watcher(WatcherBase["Consumer", "Consumer"]):
    """The watcher (see ``WatcherBase``) with a librdkafka consumer used only for look-ups."""

    _log = log

    def __init__(
        self, settings: KafkaSettings, config: dict[str, Any], interval: float, max_backoff: float
    ) -> None:
        super().__init__(settings, interval, max_backoff, "streamlearn-confluent-watcher")
        self._config = config

    def _is_fatal(self, exc: Exception) -> bool:
        from confluent_kafka import KafkaException

        if isinstance(exc, KafkaException):
            return _is_fatal(exc.args[0])
        return isinstance(exc, Fatal)

    def _is_transient(self, exc: Exception) -> bool:
        from confluent_kafka import KafkaException

        return isinstance(exc, KafkaException)

    def _connect(self) -> Consumer:
        from confluent_kafka import Consumer

        return Consumer(self._config)

    def _close_client(self, lookup: Consumer) -> None:
        lookup.close()

    def _partitions(self, lookup: Consumer) -> frozenset[int] | None:
        from confluent_kafka import KafkaError

        topic = self.settings.topic
        # Metadata of all topics: asking for an unknown topic by name may create it on tansu.
        metadata = lookup.list_topics(timeout=WATCHER_REQUEST_TIMEOUT_S)
        entry = metadata.topics.get(topic)
        error = entry.error if entry is not None else None
        if entry is None or (
            error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        ):
            return None
        if error is not None:
            if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise Fatal(f"not authorized to read topic {topic!r}")
            raise RuntimeError(f"metadata for topic {topic!r}: {error}")
        # A partition without a leader yet (error) is left for a later round.
        return frozenset(p for p, meta in entry.partitions.items() if meta.error is None)

    def _log_bounds(
        self, lookup: Consumer, partitions: frozenset[int]
    ) -> tuple[dict[int, int], dict[int, int]]:
        from confluent_kafka import TopicPartition

        log_start: dict[int, int] = {}
        log_end: dict[int, int] = {}
        for p in sorted(partitions):
            low, high = lookup.get_watermark_offsets(
                TopicPartition(self.settings.topic, p),
                timeout=WATCHER_REQUEST_TIMEOUT_S,
                cached=False,
            )
            log_start[p], log_end[p] = low, high
        return log_start, log_end

    def _offsets_at(
        self, lookup: Consumer, partitions: frozenset[int], moment: int
    ) -> dict[int, int]:
        from confluent_kafka import TopicPartition

        found_at = lookup.offsets_for_times(
            [TopicPartition(self.settings.topic, p, moment) for p in sorted(partitions)],
            timeout=WATCHER_REQUEST_TIMEOUT_S,
        )
        return {tp.partition: tp.offset for tp in found_at if tp.error is None}

    def _group_offsets(
        self, lookup: Consumer, group: str, partitions: frozenset[int]
    ) -> dict[int, int]:
        # The lookup consumer was built with ``group.id`` = ``group``.
        from confluent_kafka import TopicPartition

        found = lookup.committed(
            [TopicPartition(self.settings.topic, p) for p in sorted(partitions)],
            timeout=WATCHER_REQUEST_TIMEOUT_S,
        )
        return {tp.partition: tp.offset for tp in found if tp.error is None and tp.offset >= 0}

    def _send_commit(
        self, lookup: Consumer, group: str, offsets: dict[int, int]
    ) -> tuple[dict[int, int], dict[int, Any]]:
        from confluent_kafka import TopicPartition

        topic = self.settings.topic
        request = [TopicPartition(topic, p, offset) for p, offset in sorted(offsets.items())]
        result = lookup.commit(offsets=request, asynchronous=False) or []
        failed = {tp.partition: tp.error for tp in result if tp.error is not None}
        return {p: offset for p, offset in offsets.items() if p not in failed}, failed


class ConfluentKafkaSource(KafkaSourceBase["Consumer"]):
    """All partitions of one Kafka topic via confluent-kafka, resumable from a checkpoint.

    A drop-in for :class:`streamlearn.sources.kafka.KafkaSource` (same constructor, ``kind``,
    snapshot format, counters ``duplicates``/``gaps``/``data_loss_events``, ``commit()``,
    ``committed_offsets``, ``commit_failures``, ``lag()``, ``wait_until_ready()``): both keep
    their semantics in :class:`~streamlearn.sources.kafka_base.KafkaSourceBase`. Raises
    :class:`SourceError` at construction when librdkafka rejects the client settings.
    """

    client_label = " (confluent-kafka)"
    _log = log

    def _open(self, refresh_interval: float, max_backoff: float) -> _Watcher:
        """The fetching consumer (librdkafka builds it without waiting for the broker) and
        the watcher."""
        from confluent_kafka import Consumer, KafkaException

        settings = self.settings
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
            self._consumer = Consumer(fetch_config)
        except KafkaException as exc:
            raise SourceError(f"confluent-kafka rejected the Kafka settings: {exc}") from exc
        return _Watcher(settings, lookup_config, refresh_interval, max_backoff)

    # -- the client calls ----------------------------------------------------------------------

    def _assign_at(self, consumer: Consumer, offsets: Mapping[int, int]) -> None:
        """Assign every partition at its offset (librdkafka drops what it prefetched)."""
        from confluent_kafka import TopicPartition

        consumer.assign([TopicPartition(self.topic, p, o) for p, o in sorted(offsets.items())])

    def _place(self, consumer: Consumer, positions: dict[int, int]) -> None:
        self._assign_at(consumer, {**self._next_offsets, **positions})

    def _reposition(self, consumer: Consumer, settled: dict[int, int]) -> None:
        from confluent_kafka import TopicPartition

        self._assign_at(consumer, self._next_offsets)
        consumer.resume([TopicPartition(self.topic, p) for p in settled])

    def _pause(self, consumer: Consumer, partitions: list[int]) -> None:
        from confluent_kafka import TopicPartition

        consumer.pause([TopicPartition(self.topic, p) for p in partitions])

    def _high_water(self, consumer: Consumer, partition: int) -> int | None:
        """The high-water mark of ``partition`` in the last fetch (None: no fetch yet)."""
        from confluent_kafka import TopicPartition

        _, high = consumer.get_watermark_offsets(TopicPartition(self.topic, partition), cached=True)
        return high if high >= 0 else None

    def _before_end(self, consumer: Consumer, messages: list[Any]) -> list[Any]:
        """The messages before their partition's end (``until_end``); a partition with
        messages past it is done."""
        kept: list[Any] = []
        for message in messages:
            if message.error() is not None:
                kept.append(message)
                continue
            partition = message.partition()
            if message.offset() < self._end_of(partition):
                kept.append(message)
            else:
                self._reached_end(consumer, partition)
        return kept

    def _on_error(self, consumer: Consumer, message: Any) -> None:
        """A consumer event instead of a record: out of range, fatal, or transient."""
        from confluent_kafka import KafkaError, TopicPartition

        error = message.error()
        code = error.code()
        if code in (KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
            partition = message.partition()
            if message.topic() == self.topic and self._out_of_range_now(partition):
                consumer.pause([TopicPartition(self.topic, partition)])
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

    def _fetch(self, consumer: Consumer, max_items: int) -> Fetched | None:
        from confluent_kafka import KafkaException

        try:
            # Typed Any: a record's partition() and offset() are never None, unlike an event's.
            # What is queued now, without waiting: consume(n, timeout) waits for n messages
            # or the timeout, so a stream slower than n per poll_timeout would add up to
            # poll_timeout to every record's latency.
            messages: list[Any] = consumer.consume(num_messages=max_items, timeout=0)
            if not messages:  # nothing queued: wait for the first, then take what came with it
                messages.extend(consumer.consume(num_messages=1, timeout=self.poll_timeout))
                if messages and max_items > 1:
                    messages.extend(consumer.consume(num_messages=max_items - 1, timeout=0))
        except KafkaException as exc:
            if _is_fatal(exc.args[0]):
                raise SourceError(f"Kafka refused to serve topic {self.topic!r}: {exc}") from exc
            log.debug("consume failed, will retry: %s", exc)
            return None
        if self._until_end:
            self._confirm_ends(lambda p: self._high_water(consumer, p))
            messages = self._before_end(consumer, messages)
        if not messages:
            return None

        # Columns, appended to in the per-record loop (hot).
        fetched = Fetched.empty(self.track_arrivals)
        values, offsets, keys = fetched.values, fetched.offsets, fetched.keys
        stamps = fetched.stamps  # for the learn-latency metric, only when telemetry asks
        partitions = fetched.partitions
        next_offsets = self._next_offsets
        current = -1  # the partition whose expected offset is in ``expected``
        expected: int | None = None
        taken = 0  # records of partitions before ``current``
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
                partitions += [current] * (len(values) - taken)
                taken = len(values)
                current = partition
                expected = next_offsets.get(partition)
                if expected is None:  # not ours (cannot happen with assign); never hand it out
                    current = -1
                    continue
            elif expected is None:
                continue
            offset = message.offset()
            if offset != expected and not self._off_course(partition, expected, offset):
                continue
            value = message.value()
            values.append(b"" if value is None else value)
            offsets.append(offset)
            keys.append(message.key())
            if stamps is not None:
                stamps.append(message.timestamp()[1])
            expected = offset + 1
        partitions += [current] * (len(values) - taken)
        if expected is not None and current != -1:
            next_offsets[current] = expected
        if mixed:
            fetched.in_partition_order()
        return fetched
