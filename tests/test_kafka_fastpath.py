"""CSV values from Kafka, learned a fetch at a time by the compiled fast path.

The same topic is learned twice, with the fast path and record by record
(``STREAMLEARN_FASTPATH=0``): the weights and metrics must be the same to the last bit, the
dead letters and predictions the same, with their Kafka positions, and the weights those of the
numpy oracle. Both Kafka clients.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamhelpers import make_regression, read_jsonl, run_until_seen, sgd_oracle
from streamlearn.app import AppUsageError, build
from streamlearn.config import Settings
from streamlearn.drift.config import DriftSettings

pytestmark = pytest.mark.kafka

CLIENTS = [
    "kafka-python",
    pytest.param(
        "confluent",
        marks=pytest.mark.skipif(
            not __import__("importlib").util.find_spec("confluent_kafka"),
            reason="confluent-kafka is not installed",
        ),
    ),
]
ROWS = 3000
LR = 0.01
BAD = {5: b"1.0,oops,2.0,3.0", 900: b"1.0,2.0", 2500: b"1e999,1,1,1"}  # row -> its value
UNLABELED = {7, 1800}


def messages() -> tuple[list[bytes], np.ndarray, np.ndarray, np.ndarray]:
    """The topic's values (a header first, then rows; some end in a newline, some bad) and the
    rows' features, targets and which are learned."""
    X, y, _ = make_regression(ROWS, d=3, seed=11)
    values = [b"x0,x1,x2,y"]  # a header sent as a message: not a record, either way
    for i in range(ROWS):
        if i in BAD:
            values.append(BAD[i])
            continue
        target = "" if i in UNLABELED else repr(float(y[i]))
        line = ",".join([*(repr(float(v)) for v in X[i]), target]).encode()
        values.append(line + b"\n" if i % 97 == 0 else line)  # as a line-by-line producer sends
    learned = np.array([i not in BAD and i not in UNLABELED for i in range(ROWS)])
    return values, X, y, learned


def learn(
    bootstrap: str, topic: str, client: str, tmp: Path, expected_seen: int
) -> tuple[dict[str, Any], list[dict], list[dict], bool]:
    """Run the daemon on the topic until it has seen every record; (summary, dead letters,
    predictions, whether the compiled fast path learned)."""
    dead, predictions = tmp / "dead.jsonl", tmp / "predictions.jsonl"
    settings = Settings(
        source=f"kafka://{bootstrap}/{topic}",
        follow=True,
        format="csv",
        features=("x0", "x1", "x2"),
        lr=LR,
        state_dir=tmp / "state",
        dead_letter=str(dead),
        predictions=str(predictions),
        kafka_client=client,
        drift=DriftSettings(drift_detector="none"),
    )
    app = build(settings)
    summary = run_until_seen(app, expected_seen)
    dead_letters, predicted = read_jsonl(dead, predictions)
    return summary, dead_letters, predicted, app.daemon.block_learner is not None


@pytest.mark.parametrize("client", CLIENTS)
def test_csv_values_from_kafka_learn_as_record_by_record(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send: Callable[..., None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    client: str,
) -> None:
    topic = kafka_topic_factory(1)
    values, X, y, learned = messages()
    kafka_send(topic, values, partition=0)
    seen = ROWS  # the header is not a record

    (tmp_path / "fast").mkdir()
    fast = learn(kafka_bootstrap, topic, client, tmp_path / "fast", seen)
    monkeypatch.setenv("STREAMLEARN_FASTPATH", "0")
    (tmp_path / "slow").mkdir()
    slow = learn(kafka_bootstrap, topic, client, tmp_path / "slow", seen)

    (summary, dead, predicted, compiled), (slow_summary, slow_dead, slow_predicted, _) = fast, slow
    assert compiled, "the compiled fast path never learned a block"
    assert summary["weights"] == slow_summary["weights"]  # to the last bit
    assert summary["metrics"] == slow_summary["metrics"]
    assert summary["records_learned"] == slow_summary["records_learned"] == learned.sum()
    assert dead == slow_dead
    assert predicted == slow_predicted
    # Dead letters and predictions name the message (offset = row + 1: the header is first).
    assert [entry["position"] for entry in dead] == [
        {"topic": topic, "partition": 0, "offset": row + 1} for row in sorted(BAD)
    ]
    assert [entry["raw"] for entry in dead] == [BAD[row].decode() for row in sorted(BAD)]
    assert [entry["position"]["offset"] for entry in predicted] == [
        row + 1 for row in sorted(UNLABELED)
    ]
    theta, theta0, _ = sgd_oracle(X, y, LR, labeled=learned)
    weights = summary["weights"]
    np.testing.assert_allclose([weights[f"x{j}"] for j in range(3)], theta, rtol=0, atol=1e-12)
    assert abs(summary["intercept"] - theta0) < 1e-12


def test_csv_values_from_kafka_need_the_feature_names(tmp_path: Path) -> None:
    settings = Settings(
        source="kafka://127.0.0.1:9/t", follow=True, format="csv", state_dir=tmp_path / "s"
    )
    with pytest.raises(AppUsageError, match="--features"):
        build(settings)
