"""KafkaSink and open_sink: JSON messages on a real broker; file paths stay JSON Lines files."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from streamhelpers import read_topic
from streamlearn.broker import free_port
from streamlearn.sinks.jsonlines import JsonLinesSink
from streamlearn.sinks.kafka import KafkaSink, KafkaSinkError, open_sink


@pytest.mark.kafka
def test_items_arrive_as_json_messages(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str]
) -> None:
    import numpy as np

    topic = kafka_topic_factory(1)
    sink = open_sink(f"kafka://{kafka_bootstrap}/{topic}", environ={})
    assert isinstance(sink, KafkaSink)
    items = [
        {"id": "7", "prediction": 1.5, "position": {"topic": "in", "partition": 0, "offset": 3}},
        {"id": None, "prediction": np.float64(2.25)},
        {"reason": "non_numeric", "raw": "YSxi", "raw_encoding": "base64"},
    ]
    for item in items:
        sink.write(item)
    sink.flush()
    assert sink.sent == 3

    records = read_topic(kafka_bootstrap, topic, 3)
    assert [orjson.loads(record.value) for record in records] == [
        items[0],
        {"id": None, "prediction": 2.25},
        items[2],
    ]
    sink.close()
    sink.close()
    with pytest.raises(ValueError, match="closed"):
        sink.write({"late": True})


@pytest.mark.kafka
def test_servers_can_come_from_the_environment(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str]
) -> None:
    topic = kafka_topic_factory(1)
    sink = open_sink(
        f"kafka:///{topic}", environ={"STREAMLEARN_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    )
    sink.write({"n": 1})
    sink.close()
    assert [orjson.loads(r.value) for r in read_topic(kafka_bootstrap, topic, 1)] == [{"n": 1}]


def test_an_unreachable_broker_is_an_error_not_a_hang() -> None:
    sink = KafkaSink([f"127.0.0.1:{free_port()}"], "predictions", connect_timeout=1.0)
    sink.flush()  # nothing written yet: nothing to wait for, no connection needed
    started = time.monotonic()
    with pytest.raises(KafkaSinkError, match="cannot connect to Kafka"):
        sink.write({"prediction": 1.0})
    assert time.monotonic() - started < 5
    sink.close()


def test_paths_give_json_lines_files(tmp_path: Path) -> None:
    sink = open_sink(str(tmp_path / "out" / "predictions.jsonl"))
    assert isinstance(sink, JsonLinesSink)
    sink.write({"prediction": 0.5})
    sink.close()
    assert (tmp_path / "out" / "predictions.jsonl").read_text() == '{"prediction":0.5}\n'


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("kafka://localhost:9092", "no topic"),
        ("kafka:///predictions", "no Kafka servers"),
        ("kafka://localhost:9092/predictions?acks=all", "takes no parameters"),
        ("kafka://user:pw@localhost:9092/predictions", "credentials do not belong"),
    ],
)
def test_bad_kafka_specs_are_plain_value_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_sink(spec, environ={})


def test_client_settings_reach_the_producer_and_others_are_dropped() -> None:
    sink = open_sink(
        "kafka://localhost:9092/p",
        client_config={"max_poll_records": 10, "compression_type": "gzip"},
        environ={"STREAMLEARN_KAFKA_CLIENT_ID": "predictor"},
    )
    assert isinstance(sink, KafkaSink)
    assert sink._config["compression_type"] == "gzip"
    assert sink._config["client_id"] == "predictor"
    assert (
        "max_poll_records" not in sink._config
    )  # a consumer setting; the producer would refuse it
