"""A classifier's outputs on Kafka topics: the prediction messages carry the class and its
probabilities ({class: p}), as the ``--predictions`` file lines do, and bad labels go to the
dead-letter topic with their reasons."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from streamhelpers import ROOT, cli, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CHURN = ROOT / "examples" / "churn.csv"
OPTIONS = ("--target", "churned", "--model", "logistic", "--lr", "0.05")


def test_prediction_messages_carry_the_class_and_its_probabilities(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    predictions, dead = kafka_topic_factory(1), kafka_topic_factory(1)
    cli("replay", str(CHURN), *OPTIONS,
        "--predictions", f"kafka://{kafka_bootstrap}/{predictions}",
        "--dead-letter", f"kafka://{kafka_bootstrap}/{dead}")  # fmt: skip
    file = tmp_path / "predictions.jsonl"
    cli("replay", str(CHURN), *OPTIONS, "--predictions", str(file))
    expected = [json.loads(line) for line in file.read_text().splitlines()]
    sent = [orjson.loads(r.value) for r in read_topic(kafka_bootstrap, predictions, 3)]
    assert sent == expected
    assert [m["prediction"] for m in sent] == ["yes", "no", "yes"]
    for message in sent:
        probabilities = message["probabilities"]
        assert list(probabilities) == ["no", "yes"]
        assert message["prediction"] == max(probabilities, key=probabilities.get)
    letters = [orjson.loads(r.value) for r in read_topic(kafka_bootstrap, dead, 3)]
    assert [letter["reason"] for letter in letters] == ["non_numeric", "non_finite", "third_class"]
