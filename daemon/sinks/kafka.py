"""Predictions and dead letters to a Kafka topic, one JSON object per message.

``open_sink()`` picks the sink from the command line's spelling: ``kafka://HOST:PORT/TOPIC`` gives a
:class:`KafkaSink`, anything else is a JSON Lines file path.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from streamlearn.sinks.jsonlines import JsonLinesSink, Sink
from streamlearn.sources.kafka_config import (
    ENV_PREFIX,
    client_kwargs,
    is_kafka_url,
    load_client_config,
    parse_kafka_url,
)

if TYPE_CHECKING:
    from kafka import KafkaProducer

__all__ = ["PRODUCER_TUNING", "KafkaSink", "KafkaSinkError", "open_sink"]

log = logging.getLogger(__name__)

#: Producer settings streamlearn chooses unless the client config says otherwise: wait a few
#: milliseconds to fill batches (predictions come in bursts of one poll), and acknowledge only
#: when all in-sync replicas have the batch, because the checkpoint trusts a flushed sink.
PRODUCER_TUNING: dict[str, Any] = {
    "acks": "all",
    "linger_ms": 5,
    "batch_size": 256 * 1024,
    "reconnect_backoff_max_ms": 5000,
}


class KafkaSinkError(RuntimeError):
    """Items could not be handed to Kafka (broker unreachable, a record rejected)."""


class KafkaSink(Sink):
    """Sends each item as a JSON message (orjson) to one topic.

    The producer is created on the first ``write()``, so a daemon whose broker is down at start
    does not fail before there is anything to send. ``flush()`` waits until every item written so
    far is acknowledged, and raises :class:`KafkaSinkError` if that fails: the run loop flushes
    before it checkpoints, so a checkpoint never claims predictions that were not delivered.
    """

    def __init__(
        self,
        bootstrap_servers: list[str],
        topic: str,
        client_config: Mapping[str, Any] | None = None,
        *,
        flush_timeout: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> None:
        if not bootstrap_servers:
            raise ValueError("a Kafka sink needs bootstrap servers")
        if flush_timeout <= 0 or connect_timeout <= 0:
            raise ValueError("flush_timeout and connect_timeout must be positive")
        self.bootstrap_servers = list(bootstrap_servers)
        self.topic = topic
        self.flush_timeout = flush_timeout
        self._config: dict[str, Any] = {
            **PRODUCER_TUNING,
            "bootstrap_timeout_ms": int(connect_timeout * 1000),
            "max_block_ms": int(connect_timeout * 1000),
            **client_kwargs(client_config or {}, "producer"),
            "bootstrap_servers": self.bootstrap_servers,
            "key_serializer": None,
            "value_serializer": None,
        }
        self._producer: KafkaProducer | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._failures = 0
        self._last_failure: BaseException | None = None
        self.sent = 0

    def __repr__(self) -> str:
        return f"KafkaSink(kafka://{','.join(self.bootstrap_servers)}/{self.topic})"

    def _ensure_producer(self) -> KafkaProducer:
        if self._producer is None:
            from kafka import KafkaProducer

            try:
                self._producer = KafkaProducer(**self._config)
            except Exception as exc:
                raise KafkaSinkError(
                    f"cannot connect to Kafka at {','.join(self.bootstrap_servers)} to write "
                    f"topic {self.topic!r}: {type(exc).__name__}: {exc}"
                ) from exc
        return self._producer

    def _on_failure(self, exc: BaseException) -> None:
        # Runs on the producer's I/O thread.
        with self._lock:
            self._failures += 1
            self._last_failure = exc

    def write(self, item: Mapping[str, Any]) -> None:
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        value = orjson.dumps(item, option=orjson.OPT_SERIALIZE_NUMPY)
        producer = self._ensure_producer()
        try:
            future = producer.send(self.topic, value=value)
        except Exception as exc:  # buffer full past max_block_ms, record too large
            raise KafkaSinkError(f"cannot queue a message for topic {self.topic!r}: {exc}") from exc
        future.add_errback(self._on_failure)
        self.sent += 1

    def flush(self) -> None:
        """Wait until everything written is acknowledged; raise :class:`KafkaSinkError` if not."""
        if self._producer is None:
            return
        try:
            self._producer.flush(timeout=self.flush_timeout)
        except Exception as exc:
            raise KafkaSinkError(
                f"messages for topic {self.topic!r} were not acknowledged within "
                f"{self.flush_timeout:.0f} s: {exc}"
            ) from exc
        with self._lock:
            failures, self._failures = self._failures, 0
            last, self._last_failure = self._last_failure, None
        if failures:
            raise KafkaSinkError(
                f"{failures} message(s) for topic {self.topic!r} were not delivered: "
                f"{type(last).__name__}: {last}"
            )

    def close(self) -> None:
        """Flush and close the producer; calling it twice is fine."""
        if self._closed:
            return
        self._closed = True
        if self._producer is None:
            return
        try:
            self.flush()
        finally:
            producer, self._producer = self._producer, None
            producer.close(timeout=self.flush_timeout)


def open_sink(
    spec: str,
    *,
    client_config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Sink:
    """A sink for ``--predictions`` / ``--dead-letter``: a Kafka topic or a JSON Lines file.

    ``kafka://HOST:PORT[,HOST:PORT]/TOPIC`` writes to Kafka with the security settings from the
    ``STREAMLEARN_KAFKA_*`` environment, overridden by ``client_config`` (pass the source's
    ``KafkaSettings.client_config`` to reuse ``-X`` and ``--kafka-config``). ``kafka:///TOPIC``
    takes the servers from ``bootstrap_servers`` in that config. Anything else is a file path.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "predictions.jsonl"
    >>> open_sink(str(path))  # doctest: +ELLIPSIS
    <streamlearn.sinks.jsonlines.JsonLinesSink object at ...>
    >>> open_sink("kafka://127.0.0.1:9092/predictions", environ={})
    KafkaSink(kafka://127.0.0.1:9092/predictions)
    """
    if not is_kafka_url(spec):
        return JsonLinesSink(spec)
    servers, topic, params = parse_kafka_url(spec)
    if params:
        raise ValueError(f"{spec}: a Kafka sink takes no parameters ({', '.join(params)})")
    if topic is None:
        raise ValueError(f"{spec}: no topic; write kafka://HOST:PORT/TOPIC")
    config = load_client_config(environ=os.environ if environ is None else environ)
    config.update(client_config or {})
    configured = config.pop("bootstrap_servers", None)
    config.pop("group_id", None)
    servers = servers or list(configured or [])
    if not servers:
        raise ValueError(
            f"{spec}: no Kafka servers; write kafka://HOST:PORT/{topic} or set "
            f"{ENV_PREFIX}BOOTSTRAP_SERVERS"
        )
    return KafkaSink(servers, topic, config)
