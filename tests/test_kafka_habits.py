"""kcat's habits on Kafka sources: ``--from`` an offset or a time, ``--partition``, ``--count``.

Against the real broker, with both clients. The source-level tests read with
``KafkaSource`` and ``ConfluentKafkaSource``; the command-level ones run ``streamlearn``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from streamhelpers import cli
from streamlearn.sources.base import Raw, SourceError
from streamlearn.sources.kafka import KafkaSource
from streamlearn.sources.kafka_base import KafkaSourceBase
from streamlearn.sources.kafka_config import KafkaSettings
from streamlearn.sources.kafka_confluent import ConfluentKafkaSource

pytestmark = pytest.mark.kafka

CLIENTS = {"kafka-python": KafkaSource, "confluent": ConfluentKafkaSource}

Open = Callable[..., KafkaSourceBase[Any]]


@pytest.fixture(params=list(CLIENTS))
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_source(kafka_bootstrap: str, client: str) -> Iterator[Open]:
    """``open_source(topic, resume=None, **settings)``: a source of the client under test."""
    opened: list[KafkaSourceBase[Any]] = []

    def make(topic: str, resume: dict | None = None, **settings: Any) -> KafkaSourceBase[Any]:
        kafka = KafkaSettings.build(
            bootstrap_servers=kafka_bootstrap, topic=topic, environ={}, **settings
        )
        source = CLIENTS[client](kafka, resume, refresh_interval=0.3)
        opened.append(source)
        return source

    yield make
    for source in opened:
        source.close()


def drain(source: KafkaSourceBase[Any], *, settle: float = 1.0, timeout: float = 20.0) -> list[Raw]:
    """Everything the source hands out until it is exhausted, or quiet for ``settle`` s."""
    items: list[Raw] = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while time.monotonic() < deadline and not source.exhausted:
        batch = source.next_batch(1000)
        if batch:
            items.extend(batch)
            quiet_since = time.monotonic()
        elif items and time.monotonic() - quiet_since > settle:
            break
        elif not items and time.monotonic() - quiet_since > settle + 4:
            break  # nothing at all (positioning included) for a while
    return items


def where(items: list[Raw]) -> list[tuple[int, int]]:
    return [(raw.partition, raw.offset) for raw in items]


def values(n: int, tag: str = "r") -> list[bytes]:
    return [f"{tag}{i}".encode() for i in range(n)]


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ("earliest", [(p, o) for p in (0, 1) for o in range(10)]),
        ("latest", []),
        ("4", [(p, o) for p in (0, 1) for o in range(4, 10)]),
        ("-3", [(p, o) for p in (0, 1) for o in range(7, 10)]),
        ("25", []),  # past the end: the end
    ],
)
def test_from_earliest_latest_or_an_offset_in_every_partition(
    kafka_topic_factory, kafka_send, open_source: Open, start: str, expected: list
) -> None:
    topic = kafka_topic_factory(2)
    for partition in (0, 1):
        # One batch each: tansu's reported log end is exact then (-3 counts back from it).
        kafka_send(topic, values(10), partition=partition, one_batch_each=True)
    source = open_source(topic, start_from=start)
    assert source.wait_until_ready(15)
    got = where(drain(source, settle=0.5))
    # Kafka orders records within a partition, not across partitions: a client may interleave
    # them either way. Each partition's records must come in order.
    assert sorted(got) == sorted(expected)
    assert sorted(got, key=lambda place: place[0]) == sorted(got)
    kafka_send(topic, [b"after"], partition=1)
    assert where(drain(source)) == [(1, 10)]  # what comes next is read wherever it started


def test_from_an_iso_time_starts_at_the_first_record_stamped_at_or_after_it(
    kafka_topic_factory, kafka_send, open_source: Open
) -> None:
    topic = kafka_topic_factory(2)
    kafka_send(topic, values(5, "old"), partition=0)
    kafka_send(topic, values(3, "old"), partition=1)
    time.sleep(0.05)
    moment = datetime.now(UTC)
    time.sleep(0.05)
    kafka_send(topic, values(4, "new"), partition=0)
    kafka_send(topic, values(2, "new"), partition=1)
    source = open_source(topic, start_from=moment.isoformat())
    items = drain(source)
    got = where(items)
    # Kafka orders records within a partition, not across partitions (librdkafka has handed
    # partition 1's first): each partition's records in order, from the first new one.
    assert sorted(got, key=lambda place: place[0]) == sorted(got)
    assert sorted(got) == [(0, 5), (0, 6), (0, 7), (0, 8), (1, 3), (1, 4)]
    value_at = dict(zip(got, (raw.value for raw in items), strict=True))
    assert [value_at[place] for place in sorted(got)] == values(4, "new") + values(2, "new")


def test_from_a_time_after_every_record_starts_at_the_end(
    kafka_topic_factory, kafka_send, open_source: Open, client: str
) -> None:
    if client == "confluent":
        pytest.skip(
            "tansu answers a time after every record with offset 0 (Kafka says -1), and "
            "librdkafka hands out no timestamp to tell the two apart"
        )
    topic = kafka_topic_factory(1)
    kafka_send(topic, values(6), one_batch_each=True)  # tansu's log end is exact then
    source = open_source(topic, start_from="2999-01-01T00:00:00Z")
    assert drain(source, settle=0.5) == []
    assert source.snapshot()["next_offsets"] == {"0": 6}


def test_partition_reads_that_partition_only(
    kafka_topic_factory, kafka_send, open_source: Open
) -> None:
    topic = kafka_topic_factory(3)
    for partition in range(3):
        kafka_send(topic, values(5 + partition), partition=partition)
    source = open_source(topic, partition=1)
    items = drain(source)
    assert where(items) == [(1, o) for o in range(6)]
    assert source.snapshot()["next_offsets"] == {"1": 6}


def test_a_partition_the_topic_lacks_is_an_error(kafka_topic_factory, open_source: Open) -> None:
    topic = kafka_topic_factory(2)
    source = open_source(topic, partition=5)
    deadline = time.monotonic() + 15
    with pytest.raises(SourceError, match="partitions 0 to 1: there is no partition 5"):
        while time.monotonic() < deadline:
            source.next_batch(10)


def test_count_hands_out_exactly_n_records_then_is_exhausted(
    kafka_topic_factory, kafka_send, open_source: Open
) -> None:
    topic = kafka_topic_factory(2)
    for partition in (0, 1):
        kafka_send(topic, values(10), partition=partition)
    source = open_source(topic, count=7)
    items = drain(source)
    assert len(items) == 7 and source.exhausted
    assert source.next_batch(1000) == []
    snapshot = source.snapshot()
    assert sum(snapshot["next_offsets"].values()) == 7
    # The rest, from that position: nothing lost, nothing twice.
    rest = drain(open_source(topic, snapshot, count=100))
    assert sorted(where(items) + where(rest)) == [(p, o) for p in (0, 1) for o in range(10)]


def test_until_end_with_count_and_partition_together(
    kafka_topic_factory, kafka_send, open_source: Open
) -> None:
    topic = kafka_topic_factory(2)
    kafka_send(topic, values(8), partition=0)
    kafka_send(topic, values(8), partition=1, one_batch_each=True)  # exact ends on tansu
    source = open_source(topic, partition=1, start_from="2", count=4, until_end=True)
    assert where(drain(source)) == [(1, 2), (1, 3), (1, 4), (1, 5)]
    assert source.exhausted
    # Fewer left than --count: the end of the log ends it.
    rest = open_source(topic, source.snapshot(), partition=1, count=100, until_end=True)
    assert where(drain(rest)) == [(1, 6), (1, 7)]
    assert rest.exhausted


# -- the commands ---------------------------------------------------------------------------


def rows(n: int) -> list[bytes]:
    return [json.dumps({"a": float(i % 5), "y": 3.0 * (i % 5) + 1}).encode() for i in range(n)]


def test_run_with_count_learns_n_records_checkpoints_and_exits(
    kafka_bootstrap, kafka_topic_factory, kafka_send, tmp_path, client: str
) -> None:
    topic = kafka_topic_factory(2)
    kafka_send(topic, rows(40), partition=0)
    # One batch each: tansu's reported log end is exact, so --from 5 is not brought back.
    kafka_send(topic, rows(40), partition=1, one_batch_each=True)
    state = tmp_path / "state"
    url = f"kafka://{kafka_bootstrap}/{topic}"
    common = ["--state-dir", str(state), "--kafka-client", client, "--inspect-json"]

    first = cli("replay", url, "--count", "30", "--partition", "1", "--from", "5", *common)
    summary = json.loads(first.stdout)
    assert summary["records_learned"] == 30
    assert summary["position"]["next_offsets"] == {"1": 35}

    # run (which follows) stops too once --count records came: partition 1 goes on from its
    # checkpoint (5 left), partition 0 (new to the state) from its start (40).
    second = cli("run", url, "--count", "45", "--state-dir", str(state), "--kafka-client", client)
    assert second.returncode == 0
    after = json.loads(cli("inspect", str(state), "--json").stdout)
    assert after["records_learned"] == 75
    assert after["position"]["next_offsets"] == {"0": 40, "1": 40}


def test_kafka_only_options_on_a_file_are_a_usage_error(tmp_path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("a,y\n1,2\n")
    result = cli("replay", str(data), "--count", "1", check=False)
    assert result.returncode == 2
    assert "--count reads Kafka topics, not files" in result.stderr
