"""Replaying files into Kafka: counts, types, pacing, keys, late labels in the promised order."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from streamhelpers import read_topic
from streamlearn.producers.cli import produce as produce_command
from streamlearn.producers.replay import ProduceError, produce, read_rows


def write_csv(path: Path, rows: int, *, with_time: bool = False) -> Path:
    lines = ["t,a,b,y" if with_time else "a,b,y"]
    for i in range(rows):
        cells = [str(i), str(i * 0.5), "" if i % 5 == 4 else str(i * 2)]
        if with_time:
            cells.insert(0, str(i * 0.1))
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def new_topic() -> Callable[[], str]:
    return lambda: f"replay-{uuid.uuid4().hex[:8]}"


# -- reading files (no broker) --------------------------------------------------------------


def test_csv_rows_become_typed_flat_objects(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("a,b,name,y\n1,2.5,x,\n-3,,  ,4e2\n")
    assert list(read_rows(path)) == [{"a": 1, "b": 2.5, "name": "x"}, {"a": -3, "y": 400.0}]


def test_json_lines_rows_pass_through(tmp_path: Path) -> None:
    path = tmp_path / "rows.data"  # no telling suffix: the content says JSON Lines
    path.write_text('{"a": 1, "y": null}\n\n{"a": [1, 2], "y": 3}\n')
    assert list(read_rows(path)) == [{"a": 1, "y": None}, {"a": [1, 2], "y": 3}]


def test_bad_rows_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(ProduceError, match=r"bad.jsonl:2: expected a JSON object"):
        list(read_rows(path))
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(ProduceError, match=r"bad.csv:3: 1 cells, but the header has 2"):
        list(read_rows(csv_path))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"speed": 2.0}, "--speed needs --time-column"),
        ({"speed": 2.0, "time_column": "t", "rate": 5}, "either --rate or --speed"),
        ({"label_delay": 1.0, "label_delay_records": 3}, "either --label-delay"),
        ({"labels_topic": "labels"}, "--labels-topic needs"),
        ({"rate": -1}, "rate must be 0"),
    ],
)
def test_contradictory_arguments_fail_before_connecting(
    tmp_path: Path, kwargs: dict, message: str
) -> None:
    path = write_csv(tmp_path / "rows.csv", 3)
    with pytest.raises(ValueError, match=message):
        produce(path, "127.0.0.1:1", "topic", **kwargs)


# -- against the broker ----------------------------------------------------------------------


@pytest.mark.kafka
def test_every_row_is_sent_once_and_the_topic_is_created(
    kafka_bootstrap: str, new_topic: Callable[[], str], tmp_path: Path
) -> None:
    from kafka import KafkaAdminClient

    topic = new_topic()
    path = write_csv(tmp_path / "rows.csv", 50)

    result = produce(path, kafka_bootstrap, topic, partitions=3)

    assert (result.sent, result.labels_sent, result.labels_topic) == (50, 0, None)
    assert result.created_topics == (topic,)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    [described] = admin.describe_topics([topic])
    admin.close()
    assert len(described["partitions"]) == 3
    values = sorted(
        (orjson.loads(r.value) for r in read_topic(kafka_bootstrap, topic, 50)),
        key=lambda v: v["a"],
    )
    assert len(values) == 50
    assert values[3] == {"a": 3, "b": 1.5, "y": 6}
    assert values[4] == {"a": 4, "b": 2.0}  # the empty label cell is left out: unlabeled


@pytest.mark.kafka
def test_rate_is_honoured(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic_factory(1)
    path = write_csv(tmp_path / "rows.csv", 30)
    started = time.monotonic()
    result = produce(path, kafka_bootstrap, topic, rate=60)
    elapsed = time.monotonic() - started
    # 30 rows at 60/s: the last row is due 29/60 s after the first.
    assert result.sent == 30
    assert 29 / 60 <= elapsed < 29 / 60 + 1.5


@pytest.mark.kafka
def test_speed_follows_the_time_column(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic_factory(1)
    path = tmp_path / "timed.jsonl"
    stamps = ["2024-05-01T12:00:00Z", "2024-05-01T12:00:01Z", "2024-05-01T12:00:02Z"]
    path.write_text("".join(f'{{"t": "{t}", "a": {i}}}\n' for i, t in enumerate(stamps)))
    started = time.monotonic()
    produce(path, kafka_bootstrap, topic, speed=4, time_column="t")
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 3.0  # 2 s of data at 4x
    records = read_topic(kafka_bootstrap, topic, 3)
    gap = (records[2].timestamp - records[0].timestamp) / 1000
    assert 0.45 <= gap < 1.5


@pytest.mark.kafka
def test_key_column_becomes_the_message_key(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic_factory(2)
    path = tmp_path / "keyed.csv"
    path.write_text("user,a,y\nann,1,2\nbob,3,4\nann,5,6\n")
    produce(path, kafka_bootstrap, topic, key_column="user")
    records = read_topic(kafka_bootstrap, topic, 3)
    by_key: dict[bytes, list[int]] = {}
    for record in records:
        by_key.setdefault(record.key, []).append(orjson.loads(record.value)["a"])
        assert orjson.loads(record.value)["user"] == record.key.decode()
    assert {key: sorted(xs) for key, xs in by_key.items()} == {b"ann": [1, 5], b"bob": [3]}
    # Same key, same partition.
    assert len({r.partition for r in records if r.key == b"ann"}) == 1


@pytest.mark.kafka
def test_a_feature_named_x_is_sent_in_the_envelope(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    # Flat, {"x": 1.5, "y": 2} reads as the envelope {"x": {...}} to some readers.
    topic = kafka_topic_factory(1)
    path = tmp_path / "x.csv"
    path.write_text("x,y\n1.5,2\n-0.25,\n")
    produce(path, kafka_bootstrap, topic)
    values = [orjson.loads(r.value) for r in read_topic(kafka_bootstrap, topic, 2)]
    assert values == [{"x": {"x": 1.5}, "y": 2}, {"x": {"x": -0.25}}]

    delayed = kafka_topic_factory(1)
    produce(path, kafka_bootstrap, delayed, label_delay_records=1)
    values = [orjson.loads(r.value) for r in read_topic(kafka_bootstrap, delayed, 3)]
    assert values == [{"x": {"x": 1.5}, "id": 0}, {"x": {"x": -0.25}, "id": 1}, {"id": 0, "y": 2}]


def check_features_then_labels(records: list, rows: int, unlabeled: set[int]) -> dict:
    """Each row's features once, its label once and after them (same partition, later offset)."""
    features: dict[int, tuple[int, int]] = {}
    labels: dict[int, tuple[int, int]] = {}
    for record in records:
        value = orjson.loads(record.value)
        where = (record.partition, record.offset)
        if "y" in value:
            assert set(value) == {"id", "y"}
            assert value["id"] not in labels, "a label was sent twice"
            labels[value["id"]] = where
        else:
            assert "id" in value
            assert value["id"] not in features, "features were sent twice"
            features[value["id"]] = where
    assert set(features) == set(range(rows))
    assert set(labels) == set(range(rows)) - unlabeled
    for record_id, (partition, offset) in labels.items():
        assert features[record_id][0] == partition
        assert features[record_id][1] < offset
    return {"features": features, "labels": labels}


@pytest.mark.kafka
def test_label_delay_in_seconds(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic_factory(3)
    path = write_csv(tmp_path / "rows.csv", 20)  # rows 4, 9, 14, 19 have no label

    result = produce(path, kafka_bootstrap, topic, rate=50, label_delay=0.3)

    assert (result.sent, result.labels_sent) == (20, 16)
    records = read_topic(kafka_bootstrap, topic, 36)
    assert len(records) == 36
    check_features_then_labels(records, 20, unlabeled={4, 9, 14, 19})
    sent_at = {}
    for record in records:
        value = orjson.loads(record.value)
        sent_at.setdefault(value["id"], {})["y" in value] = record.timestamp
    delays = [times[True] - times[False] for times in sent_at.values() if True in times]
    assert min(delays) >= 290  # milliseconds; the producer stamps each message when sent


@pytest.mark.kafka
def test_label_delay_in_records_to_a_labels_topic(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic_factory(1)
    labels_topic = kafka_topic_factory(1)
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(f'{{"order": "o{i}", "a": {i}, "y": {i * 10}}}\n' for i in range(10)))

    result = produce(
        path,
        kafka_bootstrap,
        topic,
        label_delay_records=3,
        labels_topic=labels_topic,
        id_column="order",
    )

    assert (result.sent, result.labels_sent, result.labels_topic) == (10, 10, labels_topic)
    features = [orjson.loads(r.value) for r in read_topic(kafka_bootstrap, topic, 10)]
    labels = [orjson.loads(r.value) for r in read_topic(kafka_bootstrap, labels_topic, 10)]
    assert features == [{"order": f"o{i}", "a": i} for i in range(10)]
    assert labels == [{"order": f"o{i}", "y": i * 10} for i in range(10)]


@pytest.mark.kafka
def test_label_delay_in_records_keeps_the_order_on_one_topic(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic_factory(1)
    path = write_csv(tmp_path / "rows.csv", 8)  # row 4 has no label
    produce(path, kafka_bootstrap, topic, label_delay_records=2)
    sequence = [
        ("label" if "y" in v else "features", v["id"])
        for v in (orjson.loads(r.value) for r in read_topic(kafka_bootstrap, topic, 15))
    ]
    # Row i's label goes right after row i+2's features; the last ones after the file ends.
    assert sequence == [
        ("features", 0),
        ("features", 1),
        ("features", 2),
        ("label", 0),
        ("features", 3),
        ("label", 1),
        ("features", 4),
        ("label", 2),
        ("features", 5),
        ("label", 3),
        ("features", 6),
        ("features", 7),
        ("label", 5),
        ("label", 6),
        ("label", 7),
    ]


def write_with_bad_rows(path: Path) -> Path:
    """Five good rows and two the producer cannot make an object of (lines 3 and 6)."""
    path.write_text("a,b,y\n1,2,3\n4,5\n6,7,8\n9,10,11\n1,2,3,4\n12,13,14\n15,16,17\n")
    return path


@pytest.mark.kafka
def test_bad_rows_are_skipped_and_reported(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic_factory(1)
    path = write_with_bad_rows(tmp_path / "rows.csv")

    result = produce(path, kafka_bootstrap, topic)

    assert (result.sent, result.skipped) == (5, 2)
    assert result.skipped_reasons == (
        f"{path}:3: 2 cells, but the header has 3",
        f"{path}:6: 4 cells, but the header has 3",
    )
    values = [orjson.loads(r.value)["a"] for r in read_topic(kafka_bootstrap, topic, 5)]
    assert values == [1, 6, 9, 12, 15]

    jsonl_topic = kafka_topic_factory(1)
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"a": 1, "y": 2}\n{"a": 2,\n[3]\n{"a": 4, "y": 5}\n')
    result = produce(jsonl, kafka_bootstrap, jsonl_topic)
    assert (result.sent, result.skipped) == (2, 2)
    assert [reason.split(": ")[0] for reason in result.skipped_reasons] == [
        f"{jsonl}:2",
        f"{jsonl}:3",
    ]


@pytest.mark.kafka
def test_rows_without_a_time_or_an_id_are_skipped_too(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic_factory(1)
    path = tmp_path / "rows.csv"
    path.write_text("t,order,a,y\n0,o1,1,2\n,o2,3,4\nnoon,o3,5,6\n0.1,,7,8\n0.2,o5,9,10\n")
    result = produce(
        path,
        kafka_bootstrap,
        topic,
        speed=100,
        time_column="t",
        label_delay_records=1,
        id_column="order",
    )
    assert (result.sent, result.labels_sent, result.skipped) == (2, 2, 3)
    assert [reason.split(": ")[0] for reason in result.skipped_reasons] == [
        f"{path}:3",
        f"{path}:4",
        f"{path}:5",
    ]


# -- the command ----------------------------------------------------------------------------


@pytest.mark.kafka
def test_command_prints_the_counts(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic_factory(1)
    path = write_csv(tmp_path / "rows.csv", 10)
    result = CliRunner().invoke(
        produce_command,
        [str(path), "-b", kafka_bootstrap, "-t", topic, "--label-delay-records", "1"],
        env={},
    )
    assert result.exit_code == 0, result.output
    assert "sent 10 records and 8 late labels to topic" in result.output
    assert len(read_topic(kafka_bootstrap, topic, 18)) == 18


@pytest.mark.kafka
def test_command_sends_what_it_can_and_says_what_it_skipped(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic_factory(1)
    path = write_with_bad_rows(tmp_path / "rows.csv")
    result = CliRunner().invoke(produce_command, [str(path), "-b", kafka_bootstrap, "-t", topic])
    assert result.exit_code == 0, result.output
    assert "sent 5 records to topic" in result.stdout
    assert "skipped 2 rows" in result.stderr
    assert f"{path}:3: 2 cells, but the header has 3" in result.stderr
    assert len(read_topic(kafka_bootstrap, topic, 5)) == 5


@pytest.mark.kafka
def test_strict_stops_at_the_first_bad_row_and_sends_nothing(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic_factory(1)
    path = write_with_bad_rows(tmp_path / "rows.csv")
    result = CliRunner().invoke(
        produce_command, [str(path), "-b", kafka_bootstrap, "-t", topic, "--strict"]
    )
    assert result.exit_code == 1
    assert f"{path}:3: 2 cells, but the header has 3" in result.stderr
    assert "nothing was sent" in result.stderr
    assert "Traceback" not in result.output
    assert read_topic(kafka_bootstrap, topic, 1, timeout=2) == []


def test_strict_checks_the_whole_file_before_connecting(tmp_path: Path) -> None:
    path = write_with_bad_rows(tmp_path / "rows.csv")
    with pytest.raises(ProduceError, match=r"rows.csv:3: .*nothing was sent"):
        produce(path, "127.0.0.1:1", "t", strict=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--speed", "2"], "--speed needs --time-column"),
        (["--rate", "-3"], "Invalid value for '--rate'"),
        (["-X", "no-equals-sign"], "expected key=value"),
        (["-X", "sasl.jaas.config=x"], "kafka-python has no JAAS"),
        (["--partitions", "0"], "Invalid value for '--partitions'"),
    ],
)
def test_command_reports_mistakes_without_tracebacks(
    tmp_path: Path, args: list[str], message: str
) -> None:
    path = write_csv(tmp_path / "rows.csv", 3)
    result = CliRunner().invoke(
        produce_command, [str(path), "-b", "127.0.0.1:1", "-t", "t", *args], env={}
    )
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_command_needs_servers_and_an_existing_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "rows.csv", 3)
    no_servers = CliRunner().invoke(produce_command, [str(path), "-t", "t"], env={})
    assert no_servers.exit_code == 2 and "no Kafka servers" in no_servers.output
    missing = CliRunner().invoke(produce_command, [str(tmp_path / "nope.csv"), "-t", "t"])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_command_reports_an_unreachable_broker(tmp_path: Path) -> None:
    from streamlearn.broker import free_port

    path = write_csv(tmp_path / "rows.csv", 3)
    result = CliRunner().invoke(
        produce_command,
        [str(path), "-b", f"127.0.0.1:{free_port()}", "-t", "t", "-X", "bootstrap.timeout.ms=500"],
        env={},
    )
    assert result.exit_code == 1
    assert "cannot connect to Kafka" in result.output
    assert "Traceback" not in result.output
