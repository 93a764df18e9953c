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
from bisect import bisect_left
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from streamlearn.sources.base import SourceError
from streamlearn.sources.kafka_base import KafkaSourceBase
from streamlearn.sources.kafka_config import KafkaSettings, client_kwargs
from streamlearn.sources.kafka_fetch import Fetched
from streamlearn.sources.kafka_watcher import (
    WATCHER_REQUEST_TIMEOUT_S,
    Fatal,
    Observation,
    WatcherBase,
)

if TYPE_CHECKING:
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
    from kafka.consumer.fetcher import ConsumerRecord

__all__ = ["CONSUMER_TUNING", "KafkaSource"]

log = logging.getLogger(__name__)

#: Consumer settings that streamlearn chooses unless ``client_config`` says otherwise: big fetches
#: save round trips to a remote broker. What matters more for throughput is the ``crc32c`` C
#: extension, without which kafka-python checks CRCs in Python (figures: bench/README.md).
CONSUMER_TUNING: dict[str, Any] = {
    "max_poll_records": 5000,
    "fetch_max_bytes": 64 * 1024 * 1024,
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
    "fetch_max_wait_ms": 100,  # an idle poll returns soon; the run loop polls again anyway
    "reconnect_backoff_max_ms": 5000,  # after an outage, reconnect within seconds, not 30 s
}
#: Metadata and offset look-ups give up after this long, so a hung broker is noticed quickly.
WATCHER_REQUEST_TIMEOUT_MS = int(WATCHER_REQUEST_TIMEOUT_S * 1000)


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
    # kafka.errors is a third-party module whose class names vary between kafka-python
    # releases: the ones this release has are looked up by name.
    found = tuple(getattr(errors, name) for name in names if hasattr(errors, name))
    return (Fatal, TypeError, ValueError, *found)


class _Watcher(WatcherBase["KafkaAdminClient", "KafkaConsumer"]):
    """The watcher (see ``WatcherBase``) with a kafka-python admin client for its look-ups.

    It also builds the fetching consumer, since bootstrapping it may block, and hands it over
    (``take_consumer``).
    """

    _log = log

    def __init__(
        self,
        settings: KafkaSettings,
        consumer_config: dict[str, Any],
        admin_config: dict[str, Any],
        interval: float,
        max_backoff: float,
    ) -> None:
        super().__init__(settings, interval, max_backoff, "streamlearn-kafka-watcher")
        self._consumer_config = consumer_config
        self._admin_config = admin_config
        self._consumer_built = False
        self._fatal_errors = _fatal_errors()

    def close_consumer(self, consumer: KafkaConsumer) -> None:
        consumer.close(autocommit=False)

    def _is_fatal(self, exc: Exception) -> bool:
        return isinstance(exc, self._fatal_errors)

    def _connect(self) -> KafkaAdminClient:
        from kafka import KafkaAdminClient

        return KafkaAdminClient(**self._admin_config)

    def _close_client(self, admin: KafkaAdminClient) -> None:
        admin.close()

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

    def _observe(self, admin: KafkaAdminClient) -> Observation:
        """The fetching consumer is built first (once), then the look (``WatcherBase``)."""
        self._ensure_consumer()
        return super()._observe(admin)

    def _partitions(self, admin: KafkaAdminClient) -> frozenset[int] | None:
        topic = self.settings.topic
        described = admin.describe_topics([topic])
        entry = next((item for item in described if item.get("name") == topic), None)
        code = entry.get("error_code", 0) if entry else 3
        if code == 3:  # UNKNOWN_TOPIC_OR_PARTITION
            return None
        if code == 29:  # TOPIC_AUTHORIZATION_FAILED
            raise Fatal(f"not authorized to read topic {topic!r}")
        if code:
            raise RuntimeError(f"metadata for topic {topic!r} has error code {code}")
        # A partition without a leader yet (error code) is left for a later round.
        return frozenset(
            part["partition_index"]
            for part in entry.get("partitions", [])  # type: ignore[union-attr]
            if not part.get("error_code")
        )

    def _list_offsets(
        self, admin: KafkaAdminClient, partitions: frozenset[int], spec: Any
    ) -> dict[TopicPartition, Any]:
        """``list_partition_offsets`` of every partition at ``spec``, within the timeout."""
        from kafka import TopicPartition

        timeout = self._admin_config.get("request_timeout_ms", WATCHER_REQUEST_TIMEOUT_MS)
        request = {TopicPartition(self.settings.topic, p): spec for p in partitions}
        found: dict[TopicPartition, Any] = admin.list_partition_offsets(request, timeout_ms=timeout)
        return found

    def _log_bounds(
        self, admin: KafkaAdminClient, partitions: frozenset[int]
    ) -> tuple[dict[int, int], dict[int, int]]:
        from kafka.admin import OffsetSpec

        starts = self._list_offsets(admin, partitions, OffsetSpec.EARLIEST)
        ends = self._list_offsets(admin, partitions, OffsetSpec.LATEST)
        return (
            {tp.partition: found.offset for tp, found in starts.items()},
            {tp.partition: found.offset for tp, found in ends.items()},
        )

    def _offsets_at(
        self, admin: KafkaAdminClient, partitions: frozenset[int], moment: int
    ) -> dict[int, int]:
        from kafka.admin import OffsetTimestamp

        found_at = self._list_offsets(admin, partitions, OffsetTimestamp(moment))
        # No record that late: offset -1 (Kafka) or a timestamp of -1 (tansu says offset 0).
        return {
            tp.partition: found.offset if found.timestamp >= 0 else -1
            for tp, found in found_at.items()
        }

    def _group_offsets(
        self, admin: KafkaAdminClient, group: str, partitions: frozenset[int]
    ) -> dict[int, int]:
        from kafka import TopicPartition

        topic = self.settings.topic
        tps = sorted(TopicPartition(topic, p) for p in partitions)
        found = admin.list_group_offsets({group: tps}).get(group, {})
        return {
            tp.partition: meta.offset
            for tp, meta in found.items()
            if tp.topic == topic and meta is not None and meta.offset >= 0
        }

    def _send_commit(
        self, admin: KafkaAdminClient, group: str, offsets: dict[int, int]
    ) -> tuple[dict[int, int], dict[int, Any]]:
        from kafka import TopicPartition
        from kafka.errors import NoError
        from kafka.structs import OffsetAndMetadata

        topic = self.settings.topic
        request = {
            TopicPartition(topic, p): OffsetAndMetadata(offset, "", -1)
            for p, offset in offsets.items()
        }
        result = admin.alter_group_offsets(group, request)
        failed = {tp.partition: err for tp, err in result.items() if err is not NoError}
        confirmed = {
            tp.partition: request[tp].offset for tp in result if tp.partition not in failed
        }
        return confirmed, failed


class KafkaSource(KafkaSourceBase["KafkaConsumer"]):
    """All partitions of one Kafka topic, read with kafka-python, resumable from a checkpoint.

    The semantics (start positions, data loss, ``duplicates`` and ``gaps``, the snapshot,
    commits, ``lag()``, a ``next_batch()`` that never blocks on the broker) are those of
    :class:`~streamlearn.sources.kafka_base.KafkaSourceBase`; this class makes the client calls.
    """

    _log = log

    def _open(self, refresh_interval: float, max_backoff: float) -> _Watcher:
        """The watcher; it builds the fetching consumer too, since bootstrapping may block."""
        consumer_config, admin_config = self._client_configs(self.settings)
        return _Watcher(self.settings, consumer_config, admin_config, refresh_interval, max_backoff)

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

    # -- the client calls ----------------------------------------------------------------------

    def _place(self, consumer: KafkaConsumer, positions: dict[int, int]) -> None:
        from kafka import TopicPartition

        consumer.assign(
            [TopicPartition(self.topic, p) for p in sorted({*self._next_offsets, *positions})]
        )
        for p, offset in positions.items():
            consumer.seek(TopicPartition(self.topic, p), offset)

    def _reposition(self, consumer: KafkaConsumer, settled: dict[int, int]) -> None:
        from kafka import TopicPartition

        for p, position in settled.items():
            tp = TopicPartition(self.topic, p)
            consumer.seek(tp, position)
            consumer.resume(tp)

    def _pause(self, consumer: KafkaConsumer, partitions: list[int]) -> None:
        from kafka import TopicPartition

        consumer.pause(*(TopicPartition(self.topic, p) for p in partitions))

    def _fetch(self, consumer: KafkaConsumer, max_items: int) -> Fetched | None:
        from kafka import TopicPartition, errors

        try:
            polled = consumer.poll(timeout_ms=int(self.poll_timeout * 1000), max_records=max_items)
        except errors.OffsetOutOfRangeError as exc:
            detail = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
            for tp in detail:
                if tp.topic == self.topic and self._out_of_range_now(tp.partition):
                    consumer.pause(tp)
            self._log.warning(
                "Kafka says offsets %s are out of range; checking the log bounds", detail
            )
            self._watcher.refresh()
            return None
        except _fatal_errors() as exc:
            raise SourceError(f"Kafka refused to serve topic {self.topic!r}: {exc}") from exc
        except errors.KafkaError as exc:  # transient: the client reconnects by itself
            log.debug("poll failed, will retry: %s", exc)
            return None
        if self._until_end:
            self._confirm_ends(lambda p: consumer.highwater(TopicPartition(self.topic, p)))
        if not polled:
            return None

        # Columns, appended to in the per-record loop (the hottest loop of consuming).
        fetched = Fetched.empty(self.track_arrivals)
        values, offsets, keys = fetched.values, fetched.offsets, fetched.keys
        stamps = fetched.stamps  # for the learn-latency metric, only when telemetry asks
        until_end = self._until_end
        for tp in sorted(polled, key=lambda tp: tp.partition):
            partition = tp.partition
            expected = self._next_offsets.get(partition)
            if expected is None:  # not ours (cannot happen with assign); never hand it out
                continue
            records = polled[tp]
            if until_end:
                records = self._before_end(consumer, tp, records)
            taken = len(values)
            for record in records:
                offset = record.offset
                if offset != expected and not self._off_course(partition, expected, offset):
                    continue
                value = record.value
                values.append(b"" if value is None else value)
                offsets.append(offset)
                keys.append(record.key)
                if stamps is not None:
                    stamps.append(record.timestamp)
                expected = offset + 1
            fetched.partitions += [partition] * (len(values) - taken)
            self._next_offsets[partition] = expected
        return fetched

    def _before_end(
        self, consumer: KafkaConsumer, tp: TopicPartition, records: list[ConsumerRecord]
    ) -> list[ConsumerRecord]:
        """The records of ``tp`` before its end (``until_end``); past it, the partition is done."""
        end = self._end_of(tp.partition)
        if not records or records[-1].offset < end:
            return records
        self._reached_end(consumer, tp.partition)
        return records[: bisect_left(records, end, key=attrgetter("offset"))]
