"""ConfluentKafkaSource against a real Kafka-protocol broker: the source contract, positions,
resume, duplicates, commits; the same behaviours ``test_kafka_source.py`` checks for KafkaSource.

Skipped when confluent-kafka is not installed, except in CI (``CI=true``), where that fails.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

if os.environ.get("CI") != "true":
    pytest.importorskip("confluent_kafka", reason="confluent-kafka is not installed")

from conftest import KafkaHarness, create_topic

# The contract tests, run here against this module's ``harness`` fixture.
from test_source_contract import (  # noqa: F401
    test_batches_respect_max_items,
    test_close_twice_is_fine,
    test_idle_poll_returns_empty_list,
    test_partial_last_line_is_never_emitted,
    test_resume_after_last_item_returned,
)

from streamlearn.kafka_config import KafkaSettings
from streamlearn.sources.base import PositionMismatch, Raw, SourceError
from streamlearn.sources.kafka import KafkaSource
from streamlearn.sources.kafka_confluent import ConfluentKafkaSource, _Watcher, librdkafka_config

pytestmark = pytest.mark.kafka

READY_TIMEOUT = 15.0
_opened: list[Any] = []


@pytest.fixture(autouse=True)
def _close_sources_even_when_a_test_fails() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


class ConfluentHarness(KafkaHarness):
    """The contract harness of ``conftest.py``, opening a ConfluentKafkaSource instead."""

    def open(self, resume: dict | None = None) -> ConfluentKafkaSource:
        harness = self

        class SettledSource(ConfluentKafkaSource):
            def next_batch(self, max_items: int) -> list[Raw]:
                deadline = time.monotonic() + 5.0
                while True:
                    items = super().next_batch(max_items)
                    behind = harness.sent > self.snapshot()["next_offsets"].get("0", 0)
                    if items or not behind or time.monotonic() > deadline:
                        return items

        settings = KafkaSettings([self.bootstrap], self.topic)
        source = SettledSource(settings, resume, refresh_interval=0.3)
        assert source.wait_until_ready(15), "the source never positioned its partition"
        self.sources.append(source)
        return source


@pytest.fixture
def harness(tmp_path: object, kafka_bootstrap: str) -> Iterator[ConfluentHarness]:
    made = ConfluentHarness(tmp_path, kafka_bootstrap)
    yield made
    made.close()


def make_source(
    bootstrap: str,
    topic: str,
    resume: dict | None = None,
    *,
    group: str | None = None,
    start_from: str = "earliest",
    on_data_loss: str = "fail",
    ready: bool = True,
) -> ConfluentKafkaSource:
    settings = KafkaSettings.build(
        bootstrap_servers=bootstrap,
        topic=topic,
        group_id=group,
        start_from=start_from,
        on_data_loss=on_data_loss,
        environ={},
    )
    source = ConfluentKafkaSource(settings, resume, refresh_interval=0.3)
    _opened.append(source)
    if ready:
        assert source.wait_until_ready(READY_TIMEOUT), "the source never positioned its partitions"
    return source


def read_until(
    source: Any, count: int, *, timeout: float = 15.0, max_items: int = 1000
) -> list[Raw]:
    """Poll until ``count`` items came (or time runs out), then check nothing more arrives."""
    items: list[Raw] = []
    deadline = time.monotonic() + timeout
    while len(items) < count and time.monotonic() < deadline:
        items.extend(source.next_batch(max_items))
    settle = time.monotonic() + 0.5
    while time.monotonic() < settle:
        items.extend(source.next_batch(max_items))
    return items


def positions(items: list[Raw]) -> list[tuple[int, int]]:
    return [(raw.partition, raw.offset) for raw in items]


def test_every_record_is_returned_exactly_once_in_partition_order(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], kafka_send: Callable[..., None]
) -> None:
    topic = kafka_topic_factory(3)
    for partition in range(3):
        kafka_send(
            topic, [b'{"p": %d, "i": %d}' % (partition, i) for i in range(100)], partition=partition
        )
    source = make_source(kafka_bootstrap, topic)

    items = read_until(source, 300)

    assert len(items) == 300
    assert sorted(positions(items)) == [(p, i) for p in range(3) for i in range(100)]
    assert {raw.value for raw in items} == {
        b'{"p": %d, "i": %d}' % (p, i) for p in range(3) for i in range(100)
    }
    assert all(raw.topic == topic for raw in items)
    for partition in range(3):
        offsets = [raw.offset for raw in items if raw.partition == partition]
        assert offsets == sorted(offsets)
    assert source.snapshot() == {
        "kind": "kafka",
        "topic": topic,
        "next_offsets": {"0": 100, "1": 100, "2": 100},
    }
    assert source.duplicates == 0 and source.gaps == 0
    started = time.monotonic()
    assert source.next_batch(10) == []  # idle: empty, and promptly
    assert time.monotonic() - started < 1.5
    source.close()
    source.close()


def test_resume_from_a_snapshot_returns_exactly_the_rest(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], kafka_send: Callable[..., None]
) -> None:
    topic = kafka_topic_factory(3)
    for partition in range(3):
        kafka_send(topic, [b"%d-%d" % (partition, i) for i in range(50)], partition=partition)
    first = make_source(kafka_bootstrap, topic)
    taken: list[Raw] = []
    while len(taken) < 40:
        taken.extend(first.next_batch(7))
    snapshot = first.snapshot()
    first.close()

    second = make_source(kafka_bootstrap, topic, resume=snapshot)
    rest = read_until(second, 150 - len(taken))
    second.close()

    assert not set(positions(taken)) & set(positions(rest))
    assert sorted(positions(taken) + positions(rest)) == [
        (p, i) for p in range(3) for i in range(50)
    ]
    assert second.snapshot()["next_offsets"] == {"0": 50, "1": 50, "2": 50}


def test_states_are_interchangeable_with_kafka_source(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], kafka_send: Callable[..., None]
) -> None:
    topic = kafka_topic_factory(2)
    for partition in range(2):
        kafka_send(topic, [b"%d-%d" % (partition, i) for i in range(30)], partition=partition)
    settings = KafkaSettings.build(bootstrap_servers=kafka_bootstrap, topic=topic, environ={})
    # kafka-python first, then confluent, then kafka-python again: no record lost or repeated.
    first = KafkaSource(settings, None, refresh_interval=0.3)
    _opened.append(first)
    assert first.wait_until_ready(READY_TIMEOUT)
    taken: list[Raw] = []
    while len(taken) < 20:
        taken.extend(first.next_batch(9))
    first.close()
    second = make_source(kafka_bootstrap, topic, resume=first.snapshot())
    middle: list[Raw] = []
    while len(middle) < 20:
        middle.extend(second.next_batch(9))
    second.close()
    assert second.snapshot().keys() == first.snapshot().keys()
    third = KafkaSource(settings, second.snapshot(), refresh_interval=0.3)
    _opened.append(third)
    assert third.wait_until_ready(READY_TIMEOUT)
    rest = read_until(third, 60 - len(taken) - len(middle))
    third.close()

    everything = positions(taken) + positions(middle) + positions(rest)
    assert sorted(everything) == [(p, i) for p in range(2) for i in range(30)]


def test_records_below_next_offset_are_dropped_and_counted(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], kafka_send: Callable[..., None]
) -> None:
    from confluent_kafka import TopicPartition

    topic = kafka_topic_factory(1)
    kafka_send(topic, [b"%d" % i for i in range(10)], partition=0)
    source = make_source(
        kafka_bootstrap, topic, resume={"kind": "kafka", "topic": topic, "next_offsets": {"0": 5}}
    )
    assert [raw.offset for raw in read_until(source, 5)] == [5, 6, 7, 8, 9]

    # Redelivery, as after a client-side reset: rewind the fetch position behind the source's
    # back. Records it already handed out must not come out again.
    assert source._consumer is not None
    source._consumer.seek(TopicPartition(topic, 0, 0))
    kafka_send(topic, [b"10", b"11"], partition=0)
    again = read_until(source, 2)

    assert [raw.offset for raw in again] == [10, 11]
    assert source.duplicates == 10
    assert source.snapshot()["next_offsets"] == {"0": 12}
    source.close()


def _group_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        found = admin.list_group_offsets({group: None}).get(group, {})
        return {(tp.topic, tp.partition): meta.offset for tp, meta in found.items()}
    finally:
        admin.close()


def test_commit_is_visible_to_the_group_tools(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], kafka_send: Callable[..., None]
) -> None:
    topic = kafka_topic_factory(3)
    kafka_send(topic, [b"a", b"b"], partition=0)
    kafka_send(topic, [b"c"], partition=2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    source = make_source(kafka_bootstrap, topic, group=group)
    read_until(source, 3)

    source.commit(source.snapshot())

    expected = {(topic, 0): 2, (topic, 1): 0, (topic, 2): 1}
    deadline = time.monotonic() + 10
    seen: dict = {}
    while time.monotonic() < deadline:
        seen = _group_offsets(kafka_bootstrap, group)
        if seen == expected:
            break
        time.sleep(0.1)
    assert seen == expected
    assert source.committed_offsets == {0: 2, 1: 0, 2: 1}
    source.close()


def test_a_commit_right_before_close_still_lands(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], kafka_send: Callable[..., None]
) -> None:
    topic = kafka_topic_factory(1)
    kafka_send(topic, [b"a", b"b", b"c"], partition=0)
    group = f"g-{uuid.uuid4().hex[:8]}"
    source = make_source(kafka_bootstrap, topic, group=group)
    read_until(source, 3)
    source.commit(source.snapshot())
    source.close()  # the last checkpoint's offsets go out before the watcher stops

    assert _group_offsets(kafka_bootstrap, group) == {(topic, 0): 3}


def test_without_a_group_commit_does_nothing(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str]
) -> None:
    topic = kafka_topic_factory(1)
    source = make_source(kafka_bootstrap, topic)
    source.commit(source.snapshot())
    source.close()
    assert source.committed_offsets == {}


def test_group_commit_is_the_fallback_for_partitions_the_checkpoint_lacks(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], kafka_send: Callable[..., None]
) -> None:
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.structs import OffsetAndMetadata

    topic = kafka_topic_factory(3)
    for partition in range(3):
        kafka_send(topic, [b"%d" % i for i in range(10)], partition=partition)
    group = f"g-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.alter_group_offsets(
        group,
        {
            TopicPartition(topic, 0): OffsetAndMetadata(4, "", -1),
            TopicPartition(topic, 1): OffsetAndMetadata(7, "", -1),
        },
    )
    admin.close()
    resume = {"kind": "kafka", "topic": topic, "next_offsets": {"0": 6}}
    source = make_source(kafka_bootstrap, topic, resume=resume, group=group)

    items = read_until(source, 4 + 3 + 10)

    assert sorted(positions(items)) == (
        [(0, i) for i in range(6, 10)]
        + [(1, i) for i in range(7, 10)]
        + [(2, i) for i in range(10)]
    )
    source.close()


def test_start_from_latest_skips_what_was_there(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], kafka_send: Callable[..., None]
) -> None:
    topic = kafka_topic_factory(2)
    kafka_send(topic, [b"old-%d" % i for i in range(5)], partition=0, one_batch_each=True)
    kafka_send(topic, [b"old"], partition=1)
    source = make_source(kafka_bootstrap, topic, start_from="latest")
    assert source.snapshot()["next_offsets"] == {"0": 5, "1": 1}

    kafka_send(topic, [b"new-0", b"new-1"], partition=0)
    kafka_send(topic, [b"new-2"], partition=1)
    items = read_until(source, 3)

    assert sorted(raw.value for raw in items) == [b"new-0", b"new-1", b"new-2"]
    source.close()


def test_a_topic_that_does_not_exist_yet_is_waited_for(
    kafka_bootstrap: str, kafka_send: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    from kafka import KafkaAdminClient

    topic = f"later-{uuid.uuid4().hex[:8]}"
    source = make_source(kafka_bootstrap, topic, ready=False)
    caplog.set_level("INFO", logger="streamlearn.sources.kafka_confluent")
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert source.next_batch(10) == []
    assert source.connected
    assert sum("waiting for Kafka topic" in message for message in caplog.messages) == 1
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    assert topic not in admin.list_topics()  # waiting must not create the topic
    admin.close()

    create_topic(kafka_bootstrap, topic, 2)
    kafka_send(topic, [b"a"], partition=0)
    kafka_send(topic, [b"b"], partition=1)
    items = read_until(source, 2)

    assert sorted(positions(items)) == [(0, 0), (1, 0)]
    source.close()


def test_empty_and_null_values_still_come_out(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], kafka_send: Callable[..., None]
) -> None:
    topic = kafka_topic_factory(1)
    kafka_send(topic, [b"", None, b"x"], partition=0, keys=[b"k1", b"k2", None])
    source = make_source(kafka_bootstrap, topic)
    items = read_until(source, 3)
    assert [(raw.value, raw.key) for raw in items] == [(b"", b"k1"), (b"", b"k2"), (b"x", None)]
    source.close()


def test_offset_gaps_are_counted(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str]
) -> None:
    from kafka import KafkaProducer

    topic = kafka_topic_factory(1)
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"tx-{uuid.uuid4().hex[:8]}"
    )
    producer.init_transactions()
    for values in ([b"a", b"b"], [b"c"]):
        producer.begin_transaction()
        for value in values:
            producer.send(topic, value, partition=0)
        producer.commit_transaction()
    producer.close()
    source = make_source(kafka_bootstrap, topic)
    items = read_until(source, 3)
    assert [raw.value for raw in items] == [b"a", b"b", b"c"]
    assert source.gaps == 1
    source.close()


def test_lag_counts_records_not_yet_returned(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], kafka_send: Callable[..., None]
) -> None:
    topic = kafka_topic_factory(2)
    kafka_send(topic, [b"%d" % i for i in range(6)], partition=0, one_batch_each=True)
    source = make_source(kafka_bootstrap, topic)
    items = source.next_batch(2)
    while not items:
        items = source.next_batch(2)
    deadline = time.monotonic() + 5
    while source.lag() != {0: 4, 1: 0} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert source.lag() == {0: 4, 1: 0}
    source.close()


def test_a_snapshot_of_another_topic_is_refused(kafka_bootstrap: str) -> None:
    settings = KafkaSettings.build(bootstrap_servers=kafka_bootstrap, topic="mine", environ={})
    with pytest.raises(PositionMismatch, match="'theirs'"):
        ConfluentKafkaSource(settings, {"kind": "kafka", "topic": "theirs", "next_offsets": {}})
    with pytest.raises(PositionMismatch, match="'file'"):
        ConfluentKafkaSource(settings, {"kind": "file", "path": "/data/x.csv", "offset": 10})
    with pytest.raises(SourceError, match="bad Kafka position"):
        ConfluentKafkaSource(
            settings, {"kind": "kafka", "topic": "mine", "next_offsets": {"0": -1}}
        )


def test_settings_librdkafka_rejects_fail_at_construction(kafka_bootstrap: str) -> None:
    settings = KafkaSettings(
        [kafka_bootstrap], "t", client_config={"no_such_librdkafka_setting": "1"}
    )
    with pytest.raises(SourceError, match="rejected the Kafka settings"):
        ConfluentKafkaSource(settings)
    config = librdkafka_config(
        KafkaSettings([kafka_bootstrap], "t", client_config={"sasl_plain_username": "u"})
    )
    assert config["sasl.username"] == "u"


@pytest.fixture
def retention_deleted_first_records(monkeypatch: pytest.MonkeyPatch) -> int:
    """Make the log start read 5 records later than it is (tansu cannot delete records)."""
    shift = 5
    real = _Watcher._publish

    def publish(self: _Watcher, observation: Any) -> None:
        shifted = {p: start + shift for p, start in observation.log_start.items()}
        real(self, dataclasses.replace(observation, log_start=shifted))

    monkeypatch.setattr(_Watcher, "_publish", publish)
    return shift


def test_data_loss_fails_loudly_by_default(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send: Callable[..., None],
    retention_deleted_first_records: int,
) -> None:
    topic = kafka_topic_factory(1)
    kafka_send(topic, [b"%d" % i for i in range(8)], partition=0)
    resume = {"kind": "kafka", "topic": topic, "next_offsets": {"0": 2}}
    source = make_source(kafka_bootstrap, topic, resume=resume, ready=False)
    with pytest.raises(SourceError, match="--on-data-loss reset") as failure:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            source.next_batch(10)
    assert "resumes at offset 2, but the log now starts at 5" in str(failure.value)
    assert source.data_loss_events == []
    source.close()


def test_data_loss_reset_skips_to_the_log_start_and_records_it(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send: Callable[..., None],
    retention_deleted_first_records: int,
) -> None:
    topic = kafka_topic_factory(1)
    kafka_send(topic, [b"%d" % i for i in range(8)], partition=0)
    resume = {"kind": "kafka", "topic": topic, "next_offsets": {"0": 2}}
    source = make_source(kafka_bootstrap, topic, resume=resume, on_data_loss="reset")

    items = read_until(source, 3)

    assert [raw.offset for raw in items] == [5, 6, 7]
    [event] = source.data_loss_events
    assert (event["partition"], event["checkpoint_offset"], event["log_start_offset"]) == (0, 2, 5)
    assert event["records_lost"] == 3
    source.close()


def test_a_paused_broker_costs_no_records_and_raises_nothing(broker: Any) -> None:
    from kafka import KafkaProducer

    topic = create_topic(broker.bootstrap, "paused", 2)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=2)

    def send(values: list[bytes]) -> None:
        for i, value in enumerate(values):
            producer.send(topic, value, partition=i % 2)
        producer.flush()

    send([b"before-%d" % i for i in range(100)])
    source = make_source(broker.bootstrap, topic)
    before = read_until(source, 100)
    assert len(before) == 100 and source.connected

    broker.pause()
    slowest = 0.0
    try:
        deadline = time.monotonic() + 7
        while time.monotonic() < deadline:
            started = time.monotonic()
            assert source.next_batch(100) == []
            slowest = max(slowest, time.monotonic() - started)
        assert not source.connected
    finally:
        broker.resume()

    send([b"after-%d" % i for i in range(100)])
    after = read_until(source, 100, timeout=30)
    deadline = time.monotonic() + 10
    while not source.connected and time.monotonic() < deadline:
        source.next_batch(10)
    producer.close()

    assert slowest < 1.5  # never blocked the run loop (polls wait 0.2 s)
    assert sorted(raw.value for raw in after) == sorted(b"after-%d" % i for i in range(100))
    assert len(set(positions(before + after))) == 200
    assert source.connected
    assert source.snapshot()["next_offsets"] == {"0": 100, "1": 100}
    source.close()
