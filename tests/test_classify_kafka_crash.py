"""kill -9 during a classification run on a real Kafka topic, then a restart: the model, the
class metrics and the confusion matrix equal one uninterrupted pass, every dead letter and
prediction written once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streamhelpers import ROOT, STREAMLEARN, cli, inspect_json, saved, state_and_sinks
from streamlearn.producers.replay import ProduceResult, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CHURN = ROOT / "examples" / "churn.csv"
OPTIONS = ("--target", "churned", "--model", "logistic", "--lr", "0.05")
ROWS = 2006  # 2000 labeled, 3 bad, 3 unlabeled


def _seen(state: Path) -> int:
    summary = saved(state)
    return -1 if summary is None else int(summary["records_seen"])


def _wait(condition: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.02)


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_kill_9_during_a_kafka_classification_run_then_resume_equals_one_pass(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path, client: str
) -> None:
    topic = kafka_topic_factory(1)
    state, dead, predictions = tmp_path / "state", tmp_path / "dead.jsonl", tmp_path / "p.jsonl"
    log = tmp_path / "daemon.log"
    command = [
        *STREAMLEARN, "run", f"kafka://{kafka_bootstrap}/{topic}?group=crash",
        *state_and_sinks(state, dead, predictions), *OPTIONS,
        "--checkpoint-every", "50", "--checkpoint-interval", "0.2", "--kafka-client", client,
    ]  # fmt: skip
    sent: list[ProduceResult] = []
    # Rows arrive for about ten seconds from the moment the first daemon reads the topic, so
    # that each kill lands while the daemon learns (started before, the rows sent during a
    # loaded machine's start-up came as one batch, and the daemon had read them all by the
    # second kill).
    producer = threading.Thread(
        target=lambda: sent.append(produce(CHURN, kafka_bootstrap, topic, rate=200))
    )
    rng = random.Random(13)
    kills = 0
    try:
        for _ in range(2):
            with open(log, "a") as stderr:
                proc = subprocess.Popen(command, stderr=stderr, env={**os.environ})
            if not producer.is_alive() and not sent:
                _wait(lambda: b"reading Kafka topic" in log.read_bytes(), proc, log)
                producer.start()
            before = _seen(state)
            target = before + rng.randint(60, 300)
            _wait(lambda target=target: _seen(state) >= target, proc, log)
            time.sleep(rng.uniform(0.0, 0.2))
            if proc.poll() is None and _seen(state) < ROWS:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            else:  # a run that read every row is stopped, not waited for (it never ends)
                proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) in (0, -signal.SIGKILL), log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if producer.is_alive():
            producer.join()
    assert kills == 2
    assert sent and sent[0].sent == ROWS
    with open(log, "a") as stderr:
        proc = subprocess.Popen(command, stderr=stderr, env={**os.environ})
    try:
        _wait(lambda: _seen(state) >= ROWS, proc, log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    resumed = inspect_json(state)
    once_predictions = tmp_path / "once.jsonl"
    cli("replay", str(CHURN), "--state-dir", str(tmp_path / "once"), *OPTIONS,
        "--predictions", str(once_predictions))  # fmt: skip
    once = inspect_json(tmp_path / "once")
    for key in ("records_seen", "records_learned", "records_rejected", "records_unlabeled"):
        assert resumed[key] == once[key], key
    assert resumed["records_learned"] == 2000
    assert resumed["classes"] == once["classes"] == ["no", "yes"]
    got, want = dict(resumed["metrics"]), dict(once["metrics"])
    assert got.pop("confusion") == want.pop("confusion")
    assert got == pytest.approx(want, rel=0, abs=1e-12)
    assert resumed["weights"] == pytest.approx(once["weights"], rel=0, abs=1e-12)
    assert resumed["intercept"] == pytest.approx(once["intercept"], rel=0, abs=1e-12)
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    # JSON has no NaN: produce sends the "nan" cell as text, a non_numeric feature here.
    reasons = ["non_numeric", "non_numeric", "third_class"]
    assert [letter["reason"] for letter in letters] == reasons
    answers = [json.loads(line) for line in predictions.read_text().splitlines()]
    expected = [json.loads(line) for line in once_predictions.read_text().splitlines()]
    assert [answer["prediction"] for answer in answers] == ["yes", "no", "yes"]
    for answer, wanted in zip(answers, expected, strict=True):
        assert answer["prediction"] == wanted["prediction"]
        assert answer["probabilities"] == pytest.approx(wanted["probabilities"], abs=1e-12)
