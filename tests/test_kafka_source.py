"""KafkaSource against a real Kafka-protocol broker: positions, resume, commits, outages.

The tests that hold for any Kafka source take the ``source_class`` fixture (through
``make_source``); ``test_kafka_confluent.py`` imports them and runs them with ConfluentKafkaSource.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import create_topic

from streamlearn.sources.base import PositionMismatch, Raw, SourceError
from streamlearn.sources.kafka import KafkaSource
from streamlearn.sources.kafka_base import KafkaSourceBase
from streamlearn.sources.kafka_config import KafkaSettings

pytestmark = pytest.mark.kafka

READY_TIMEOUT = 15.0

#: ``make_source(bootstrap, topic, resume=None, *, group=None, ...)``: a positioned source.
MakeSource = Callable[..., KafkaSourceBase[Any]]


@pytest.fixture
def source_class() -> type[KafkaSourceBase[Any]]:
    """The source under test (``test_kafka_confluent.py`` overrides it)."""
    return KafkaSource


@pytest.fixture
def make_source(source_class: type[KafkaSourceBase[Any]]) -> Iterator[MakeSource]:
    """Opens sources (of ``source_class`` unless ``cls=`` says otherwise), positioned unless
    ``ready=False``; closes them after the test, also when it fails."""
    opened: list[KafkaSourceBase[Any]] = []

    def make(
        bootstrap: str,
        topic: str,
        resume: dict | None = None,
        *,
        group: str | None = None,
        start_from: str = "earliest",
        on_data_loss: str = "fail",
        ready: bool = True,
        cls: type[KafkaSourceBase[Any]] | None = None,
        **options: Any,
    ) -> KafkaSourceBase[Any]:
        settings = KafkaSettings.build(
            bootstrap_servers=bootstrap,
            topic=topic,
            group_id=group,
            start_from=start_from,
            on_data_loss=on_data_loss,
            environ={},
        )
        source = (cls or source_class)(settings, resume, refresh_interval=0.3, **options)
        opened.append(source)
        if ready:
            assert source.wait_until_ready(READY_TIMEOUT), "the source never positioned"
        return source

    yield make
    for source in opened:
        source.close()


@pytest.fixture
def rewind() -> Callable[[Any, int, int], None]:
    """Moves a source's fetch position behind its back, as a client-side reset would."""

    def seek(source: KafkaSource, partition: int, offset: int) -> None:
        from kafka import TopicPartition

        assert source._consumer is not None
        source._consumer.seek(TopicPartition(source.topic, partition), offset)

    return seek


def read_until(
    source: KafkaSourceBase[Any], count: int, *, timeout: float = 15.0, max_items: int = 1000
) -> list[Raw]:
    """Poll until ``count`` items came (or time runs out), then check nothing more arrives."""
    items: list[Raw] = []
    deadline = time.monotonic() + timeout
    while len(items) < count and time.monotonic() < deadline:
        items.extend(source.next_batch(max_items))
    # A little longer: anything beyond ``count`` would be a duplicate handed out.
    settle = time.monotonic() + 0.5
    while time.monotonic() < settle:
        items.extend(source.next_batch(max_items))
    return items


def positions(items: list[Raw]) -> list[tuple[int, int]]:
    return [(raw.partition, raw.offset) for raw in items]


def test_every_record_is_returned_exactly_once_in_partition_order(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send,
    make_source: MakeSource,
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
    for partition in range(3):  # within a partition, offset order
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
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send,
    make_source: MakeSource,
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


def test_records_below_next_offset_are_dropped_and_counted(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send,
    make_source: MakeSource,
    rewind,
) -> None:
    topic = kafka_topic_factory(1)
    kafka_send(topic, [b"%d" % i for i in range(10)], partition=0)
    source = make_source(
        kafka_bootstrap, topic, resume={"kind": "kafka", "topic": topic, "next_offsets": {"0": 5}}
    )
    assert [raw.offset for raw in read_until(source, 5)] == [5, 6, 7, 8, 9]

    # Redelivery, as after a client-side reset: rewind the fetch position behind the source's
    # back. Records it already handed out must not come out again.
    rewind(source, 0, 0)
    kafka_send(topic, [b"10", b"11"], partition=0)
    again = read_until(source, 2)

    assert [raw.offset for raw in again] == [10, 11]
    assert source.duplicates == 10
    assert source.snapshot()["next_offsets"] == {"0": 12}
    source.close()


def test_commit_is_visible_to_the_group_tools(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send,
    make_source: MakeSource,
) -> None:
    from kafka import KafkaAdminClient, TopicPartition

    topic = kafka_topic_factory(3)
    kafka_send(topic, [b"a", b"b"], partition=0)
    kafka_send(topic, [b"c"], partition=2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    source = make_source(kafka_bootstrap, topic, group=group)
    read_until(source, 3)

    source.commit(source.snapshot())

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    expected = {
        TopicPartition(topic, 0): 2,
        TopicPartition(topic, 1): 0,
        TopicPartition(topic, 2): 1,
    }
    deadline = time.monotonic() + 10
    seen: dict = {}
    while time.monotonic() < deadline:
        found = admin.list_group_offsets({group: None}).get(group, {})
        seen = {tp: meta.offset for tp, meta in found.items()}
        # The broker shows the commit before the watcher has read the broker's answer.
        if seen == expected and source.committed_offsets:
            break
        time.sleep(0.1)
    admin.close()
    assert seen == expected
    assert source.committed_offsets == {0: 2, 1: 0, 2: 1}
    source.close()


def test_a_commit_right_before_close_still_lands(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send,
    make_source: MakeSource,
) -> None:
    from kafka import KafkaAdminClient, TopicPartition

    topic = kafka_topic_factory(1)
    kafka_send(topic, [b"a", b"b", b"c"], partition=0)
    group = f"g-{uuid.uuid4().hex[:8]}"
    source = make_source(kafka_bootstrap, topic, group=group)
    read_until(source, 3)
    source.commit(source.snapshot())
    source.close()  # the last checkpoint's offsets go out before the watcher stops

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    found = admin.list_group_offsets({group: None}).get(group, {})
    admin.close()
    assert {tp: meta.offset for tp, meta in found.items()} == {TopicPartition(topic, 0): 3}


def test_without_a_group_commit_does_nothing(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], make_source: MakeSource
) -> None:
    topic = kafka_topic_factory(1)
    source = make_source(kafka_bootstrap, topic)
    source.commit(source.snapshot())
    source.close()
    assert source.committed_offsets == {}


def test_group_commit_is_the_fallback_for_partitions_the_checkpoint_lacks(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send,
    make_source: MakeSource,
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
    # The checkpoint knows partition 0 (it wins over the group), not 1 (group) nor 2 (earliest).
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
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send,
    make_source: MakeSource,
) -> None:
    topic = kafka_topic_factory(2)
    # One batch per message: tansu's log end is the last batch's base offset + 1.
    kafka_send(topic, [b"old-%d" % i for i in range(5)], partition=0, one_batch_each=True)
    kafka_send(topic, [b"old"], partition=1)
    source = make_source(kafka_bootstrap, topic, start_from="latest")
    assert source.snapshot()["next_offsets"] == {"0": 5, "1": 1}

    kafka_send(topic, [b"new-0", b"new-1"], partition=0)
    kafka_send(topic, [b"new-2"], partition=1)
    items = read_until(source, 3)

    assert sorted(raw.value for raw in items) == [b"new-0", b"new-1", b"new-2"]
    source.close()


def test_latest_does_not_apply_to_a_topic_created_after_start(
    kafka_bootstrap: str, kafka_send, make_source: MakeSource
) -> None:

    topic = f"later-latest-{uuid.uuid4().hex[:8]}"
    source = make_source(kafka_bootstrap, topic, start_from="latest", ready=False)
    assert not source.wait_until_ready(1.0)
    create_topic(kafka_bootstrap, topic, 1)
    kafka_send(topic, [b"first", b"second"], partition=0)
    # Everything in a topic born while we wait is new, so it is read from its start.
    assert sorted(raw.value for raw in read_until(source, 2)) == [b"first", b"second"]
    source.close()


def test_a_topic_that_does_not_exist_yet_is_waited_for(
    kafka_bootstrap: str, kafka_send, caplog: pytest.LogCaptureFixture, make_source: MakeSource
) -> None:
    from kafka import KafkaAdminClient

    topic = f"later-{uuid.uuid4().hex[:8]}"
    source = make_source(kafka_bootstrap, topic, ready=False)
    caplog.set_level("INFO", logger=type(source).__module__)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert source.next_batch(10) == []
    assert source.connected
    assert sum("waiting for Kafka topic" in message for message in caplog.messages) == 1
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    # Waiting must not create the topic (on tansu a fetch for an unknown topic would).
    assert topic not in admin.list_topics()
    admin.close()

    create_topic(kafka_bootstrap, topic, 2)
    kafka_send(topic, [b"a"], partition=0)
    kafka_send(topic, [b"b"], partition=1)
    items = read_until(source, 2)

    assert sorted(positions(items)) == [(0, 0), (1, 0)]
    source.close()


def test_new_partitions_are_picked_up(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send,
    make_source: MakeSource,
) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewPartitions
    from kafka.errors import IncompatibleBrokerVersion, UnsupportedVersionError

    topic = kafka_topic_factory(1)
    kafka_send(topic, [b"p0"], partition=0)
    source = make_source(kafka_bootstrap, topic)
    assert [raw.value for raw in read_until(source, 1)] == [b"p0"]
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_partitions({topic: NewPartitions(3)})
    except (IncompatibleBrokerVersion, UnsupportedVersionError) as exc:
        source.close()
        pytest.skip(f"the broker cannot add partitions (CreatePartitions): {exc}")
    finally:
        admin.close()
    kafka_send(topic, [b"p1"], partition=1)
    kafka_send(topic, [b"p2"], partition=2)
    items = read_until(source, 2)
    # New partitions are read from their start, whatever --from says.
    assert sorted(positions(items)) == [(1, 0), (2, 0)]
    source.close()


def test_empty_and_null_values_still_come_out(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send,
    make_source: MakeSource,
) -> None:
    topic = kafka_topic_factory(1)
    kafka_send(topic, [b"", None, b"x"], partition=0, keys=[b"k1", b"k2", None])
    source = make_source(kafka_bootstrap, topic)
    items = read_until(source, 3)
    assert [(raw.value, raw.key) for raw in items] == [(b"", b"k1"), (b"", b"k2"), (b"x", None)]
    source.close()


def test_a_block_holds_what_next_batch_hands_out(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send,
    make_source: MakeSource,
    rewind,
) -> None:
    topic = kafka_topic_factory(2)
    values = [b"1,2", b"", None, b"3,4\n", b"5,\n6", b"7,8\r", b"9,10"]
    kafka_send(topic, values, partition=0, keys=[b"k", None, b"null", *[None] * 4])
    kafka_send(topic, [b"11,12"], partition=1)
    by_batch = make_source(kafka_bootstrap, topic)
    expected = read_until(by_batch, 8)
    by_block = make_source(kafka_bootstrap, topic)
    blocks = []
    deadline = time.monotonic() + 15
    while sum(map(len, blocks)) < 8 and time.monotonic() < deadline:
        block = by_block.next_block(1000)
        if block is not None:
            blocks.append(block)

    raws = [raw for block in blocks for raw in block.raws()]
    assert sorted(raws, key=lambda raw: (raw.partition, raw.offset)) == sorted(
        expected, key=lambda raw: (raw.partition, raw.offset)
    )
    for block in blocks:
        assert [block.locate(row) for row in range(len(block))] == block.raws()
        # One line a record: its value, a trailing newline dropped, any other one masked.
        assert block.data.split(b"\n") == [
            *(raw.value.removesuffix(b"\n").replace(b"\n", b"\x00") for raw in block.raws()),
            b"",
        ]
        partitions = [raw.partition for raw in block.raws()]
        assert partitions == sorted(partitions)
    assert by_block.snapshot() == by_batch.snapshot()
    assert by_block.next_block(10) is None  # idle

    # Records handed out already are dropped from blocks too.
    rewind(by_block, 0, 0)
    kafka_send(topic, [b"13,14"], partition=0)
    again: list[Raw] = []
    deadline = time.monotonic() + 15
    while not again and time.monotonic() < deadline:
        block = by_block.next_block(1000)
        again = block.raws() if block is not None else []
    assert [(raw.offset, raw.value) for raw in again] == [(7, b"13,14")]
    assert by_block.duplicates == 7


def test_offset_gaps_are_counted(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], make_source: MakeSource
) -> None:
    from kafka import KafkaProducer

    topic = kafka_topic_factory(1)
    # A committed transaction leaves a control record in the log: the next data offset jumps.
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
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send,
    make_source: MakeSource,
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


def test_a_snapshot_of_another_topic_is_refused(
    kafka_bootstrap: str, source_class: type[KafkaSourceBase[Any]]
) -> None:
    settings = KafkaSettings.build(bootstrap_servers=kafka_bootstrap, topic="mine", environ={})
    with pytest.raises(PositionMismatch, match="'theirs'"):
        source_class(settings, {"kind": "kafka", "topic": "theirs", "next_offsets": {"0": 3}})
    with pytest.raises(PositionMismatch, match="'file'"):
        source_class(settings, {"kind": "file", "path": "/data/x.csv", "offset": 10})
    with pytest.raises(SourceError, match="bad Kafka position"):
        source_class(settings, {"kind": "kafka", "topic": "mine", "next_offsets": {"0": -1}})


@pytest.fixture
def retention_deleted_first_records(monkeypatch: pytest.MonkeyPatch) -> int:
    """Make the log start read 5 records later than it is.

    tansu cannot delete records (no DeleteRecords, no retention in memory), so this shifts the
    one number retention would move, the EARLIEST offset the broker reports; everything else
    (metadata, fetches, commits) still goes over the wire.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import OffsetSpec
    from kafka.structs import OffsetAndTimestamp

    shift = 5
    real = KafkaAdminClient.list_partition_offsets

    def list_partition_offsets(self, specs, *args, **kwargs):
        result = real(self, specs, *args, **kwargs)
        return {
            tp: OffsetAndTimestamp(found.offset + shift, found.timestamp, found.leader_epoch)
            if specs[tp] == OffsetSpec.EARLIEST
            else found
            for tp, found in result.items()
        }

    monkeypatch.setattr(KafkaAdminClient, "list_partition_offsets", list_partition_offsets)
    return shift


def test_data_loss_fails_loudly_by_default(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send,
    retention_deleted_first_records: int,
    make_source: MakeSource,
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
    kafka_send,
    retention_deleted_first_records: int,
    make_source: MakeSource,
) -> None:
    topic = kafka_topic_factory(1)
    kafka_send(topic, [b"%d" % i for i in range(8)], partition=0)
    resume = {"kind": "kafka", "topic": topic, "next_offsets": {"0": 2}}
    source = make_source(kafka_bootstrap, topic, resume=resume, on_data_loss="reset")

    items = read_until(source, 3)

    assert [raw.offset for raw in items] == [5, 6, 7]
    [event] = source.data_loss_events
    assert event["partition"] == 0
    assert event["checkpoint_offset"] == 2
    assert event["log_start_offset"] == 5
    assert event["records_lost"] == 3
    source.close()


def test_a_paused_broker_costs_no_records_and_raises_nothing(
    broker, make_source: MakeSource
) -> None:
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


def test_a_broker_that_is_down_at_start_is_waited_for(broker, make_source: MakeSource) -> None:
    port = broker.port
    broker.stop()
    source = make_source(f"127.0.0.1:{port}", "t", ready=False, max_backoff=0.5)
    started = time.monotonic()
    for _ in range(5):
        assert source.next_batch(10) == []
    assert time.monotonic() - started < 3.0
    assert not source.connected

    from streamlearn.broker import LocalBroker

    with LocalBroker(port=port) as again:
        create_topic(again.bootstrap, "t", 1)
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=again.bootstrap)
        producer.send("t", b"hello", partition=0)
        producer.flush()
        producer.close()
        items = read_until(source, 1, timeout=30)
        assert [raw.value for raw in items] == [b"hello"]
        assert source.connected
        source.close()


def test_partitions_that_appear_later_in_metadata_are_read_from_their_start(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send,
    monkeypatch: pytest.MonkeyPatch,
    make_source: MakeSource,
) -> None:
    # tansu cannot add partitions (no CreatePartitions), so the topic has 3 from the start and
    # the broker's metadata answer is staged to show only partition 0 at first. Records are
    # produced and fetched over the real wire; only partition discovery is staged.
    from kafka import KafkaAdminClient

    topic = kafka_topic_factory(3)
    grown = threading.Event()
    original = KafkaAdminClient.describe_topics

    def staged(self: KafkaAdminClient, topics: list[str] | None = None) -> list[dict]:
        described = original(self, topics)
        if not grown.is_set():
            for item in described:
                if item.get("name") == topic:
                    item["partitions"] = [
                        p for p in item.get("partitions", []) if p["partition_index"] == 0
                    ]
        return described

    monkeypatch.setattr(KafkaAdminClient, "describe_topics", staged)
    kafka_send(topic, [b"p0"], partition=0)
    kafka_send(topic, [b"early"], partition=1)
    source = make_source(kafka_bootstrap, topic, start_from="latest")
    kafka_send(topic, [b"p0-2"], partition=0)
    assert [raw.value for raw in read_until(source, 1)] == [b"p0-2"]
    kafka_send(topic, [b"p2"], partition=2)
    grown.set()
    items = read_until(source, 2)
    # New partitions are read from their start, whatever --from says: nothing is skipped.
    assert sorted((raw.partition, raw.offset, raw.value) for raw in items) == [
        (1, 0, b"early"),
        (2, 0, b"p2"),
    ]
    source.close()
