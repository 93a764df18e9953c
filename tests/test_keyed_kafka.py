"""``--key-by :key`` on a real broker: the Kafka message key names each record's model; a
key's messages stay in order within its partition, so each key's model equals a run of its
own on its messages in the order they were produced."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from streamhelpers import cli
from streamlearn.learner import Learner
from streamlearn.models.sgd import SGDRegressor

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_message_keys_are_the_models(
    kafka_bootstrap: str, kafka_topic_factory, kafka_send, tmp_path: Path, client: str
) -> None:
    if client == "confluent" and os.environ.get("CI") != "true":
        pytest.importorskip("confluent_kafka", reason="confluent-kafka is not installed")
    topic = kafka_topic_factory(2)
    rng = random.Random(5)
    sent: list[tuple[str, dict[str, float], float]] = []
    for _ in range(300):
        key = f"sensor-{rng.randrange(6)}"
        a = rng.uniform(-1, 1)
        sent.append((key, {"a": a}, (int(key[-1]) + 1) * a))
    kafka_send(
        topic,
        [json.dumps({"a": x["a"], "y": y}).encode() for _, x, y in sent],
        keys=[key.encode() for key, _, _ in sent],
    )
    kafka_send(topic, [json.dumps({"a": 1.0, "y": 1.0}).encode()], partition=0)  # no key
    state = tmp_path / "state"
    summary = json.loads(
        cli(
            "replay", f"kafka://{kafka_bootstrap}/{topic}", "--key-by", ":key", "--lr", "0.1",
            "--kafka-client", client,
            "--state-dir", str(state), "--inspect-json",
        ).stdout
    )  # fmt: skip
    assert summary["keys_total"] == 6 and summary["records_learned"] == 300
    assert summary["rejected_by_reason"] == {"missing_key": 1}
    for key in sorted({key for key, _, _ in sent}):
        learner = Learner(SGDRegressor(lr=0.1))
        for other, x, y in sent:
            if other == key:
                learner.step(x, y)
        got = json.loads(cli("inspect", str(state), "--key", key, "--json").stdout)
        assert got["weights"] == learner.model.weights, key
        assert got["records_learned"] == learner.records_learned, key
