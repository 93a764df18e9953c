"""The daemon on a real Kafka topic: effectively-once learning across SIGKILLs and faults."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from streamhelpers import STREAMLEARN, cli, committed, inspect_json, make_regression, write_csv
from streamlearn.producers.replay import produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


_RUNNING: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _kill_leftover_daemons():
    yield
    while _RUNNING:
        proc = _RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


CLIENTS = ["kafka-python", "confluent"]


def start(
    bootstrap: str,
    topic: str,
    state: Path,
    *extra: str,
    env: dict | None = None,
    client: str = "kafka-python",
    crash_before_commit: int | None = None,
):
    """The daemon on ``topic``; ``crash_before_commit``: it SIGKILLs itself once that
    checkpoint generation is durable, before the group commit (tests/crash_before_commit.py)."""
    command = STREAMLEARN
    if crash_before_commit is not None:
        launcher = Path(__file__).with_name("crash_before_commit.py")
        command = [sys.executable, str(launcher), str(crash_before_commit)]
    # stderr goes to a file: an unread pipe would fill up and block the daemon.
    log = open(state.parent / "daemon.log", "a")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [
            *command,
            "run",
            f"kafka://{bootstrap}/{topic}?group=g1",
            "--state-dir",
            str(state),
            "--checkpoint-every",
            "50",
            "--checkpoint-interval",
            "0.3",
            "--kafka-client",
            client,
            *extra,
        ],
        stderr=log,
        text=True,
        env={**os.environ, **(env or {})},
    )
    log.close()
    _RUNNING.append(proc)
    return proc


def reading(state: Path, runs: int) -> None:
    """Wait until the ``runs``-th daemon on this state has placed itself on the topic: it is
    past start-up, where a SIGTERM is not yet the loop's to handle."""
    log = state.parent / "daemon.log"
    wait_for(lambda: log.exists() and log.read_text().count("reading Kafka topic") >= runs)


def learned(state: Path) -> int:
    if not list(state.glob("gen-*.ckpt")):
        return 0
    return inspect_json(state)["records_learned"]


def wait_for(predicate, timeout: float = 60.0, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(step)


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    finally:
        proc.kill()


@pytest.fixture
def rows_csv(tmp_path):
    X, y, _ = make_regression(2000, d=3, seed=31)
    path = tmp_path / "rows.csv"
    write_csv(path, X, y)
    return path


@pytest.mark.parametrize("client", CLIENTS)
def test_three_sigkills_while_producing_learn_every_record_exactly_once(
    kafka_bootstrap, kafka_topic_factory, rows_csv, tmp_path, client
):
    topic = kafka_topic_factory(1)
    state = tmp_path / "state"
    # Slow enough that three kill-and-restart cycles happen while rows still arrive.
    producer = threading.Thread(
        target=produce, args=(rows_csv, kafka_bootstrap, topic), kwargs={"rate": 40}
    )
    producer.start()
    rng = random.Random(7)
    kills = 0
    for _ in range(3):
        proc = start(kafka_bootstrap, topic, state, client=client)
        before = learned(state)
        wait_for(lambda before=before: learned(state) > before + rng.randint(5, 40))
        time.sleep(rng.uniform(0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += learned(state) < 2000
    producer.join()
    assert kills == 3
    proc = start(kafka_bootstrap, topic, state, client=client)
    reading(state, 4)
    wait_for(lambda: learned(state) >= 2000)
    assert stop(proc) == 0
    summary = inspect_json(state)
    assert summary["records_learned"] == 2000
    replay = json.loads(cli("replay", str(rows_csv), "--inspect-json").stdout)
    for name, value in replay["weights"].items():
        assert abs(summary["weights"][name] - value) < 1e-12
    assert abs(summary["intercept"] - replay["intercept"]) < 1e-12
    assert summary["position"]["next_offsets"] == {"0": 2000}


@pytest.mark.parametrize("client", CLIENTS)
def test_sigkill_between_checkpoint_and_group_commit_learns_nothing_twice(
    kafka_bootstrap, kafka_topic_factory, rows_csv, tmp_path, client
):
    topic = kafka_topic_factory(1)
    produce(rows_csv, kafka_bootstrap, topic)
    state = tmp_path / "state"
    proc = start(
        kafka_bootstrap,
        topic,
        state,
        # Generation 2: the first comes after 50 records; JSON values learned a fetch at a time
        # (streamlearn.fast.jsonblock) may take all 2000 in the second, and never reach a third.
        crash_before_commit=2,
        client=client,
    )
    assert proc.wait(timeout=60) == -signal.SIGKILL
    at_crash = inspect_json(state)
    # The checkpoint is ahead of the group's committed offset: the window under test.
    assert at_crash["position"]["next_offsets"]["0"] > committed(kafka_bootstrap, "g1", topic).get(
        0, 0
    )
    proc = start(kafka_bootstrap, topic, state, client=client)
    reading(state, 2)  # the first run may have learned all 2000 before its crash
    wait_for(lambda: learned(state) >= 2000)
    assert stop(proc) == 0
    summary = inspect_json(state)
    assert summary["records_learned"] == 2000
    replay = json.loads(cli("replay", str(rows_csv), "--inspect-json").stdout)
    assert summary["weights"] == pytest.approx(replay["weights"], abs=1e-12)
    assert committed(kafka_bootstrap, "g1", topic) == {0: 2000}


@pytest.mark.parametrize("client", CLIENTS)
def test_three_partitions_every_record_once_and_lag_visible_in_the_group(
    kafka_bootstrap, kafka_topic_factory, kafka_send, tmp_path, client
):
    topic = kafka_topic_factory(3)
    for partition in range(3):
        kafka_send(
            topic,
            [
                json.dumps({"a": float(i % 7), "y": 2.0 * (i % 7)}).encode()
                for i in range(100 * (partition + 1))
            ],
            partition=partition,
        )
    state = tmp_path / "state"
    proc = start(kafka_bootstrap, topic, state, client=client)
    wait_for(lambda: learned(state) >= 600)
    # While the daemon runs idle, the group already holds the last checkpoint's offsets.
    wait_for(
        lambda: committed(kafka_bootstrap, "g1", topic) == {0: 100, 1: 200, 2: 300},
        timeout=20,
        step=0.5,
    )
    assert stop(proc) == 0
    summary = inspect_json(state)
    assert summary["records_learned"] == 600
    assert summary["position"]["next_offsets"] == {"0": 100, "1": 200, "2": 300}
    assert committed(kafka_bootstrap, "g1", topic) == {0: 100, 1: 200, 2: 300}
    kafka_send(topic, [json.dumps({"a": 1.0, "y": 2.0}).encode()] * 7, partition=1)
    assert committed(kafka_bootstrap, "g1", topic) == {0: 100, 1: 200, 2: 300}  # lag = 7 shows


def test_malformed_messages_go_to_the_dead_letter_topic_and_the_daemon_goes_on(
    kafka_bootstrap, kafka_topic_factory, kafka_send, tmp_path
):
    topic, dead_topic = kafka_topic_factory(1), kafka_topic_factory(1)
    bad = [
        b"not json",
        b'{"x": [3], "y": 1}',
        b'{"a": NaN, "y": 1}',
        b"",
        b"\xff\xfe\x00",
        b'{"a": "high", "y": 1}',
    ]
    good = [json.dumps({"a": float(i % 5), "y": float(i % 3)}).encode() for i in range(20)]
    kafka_send(topic, good[:10] + bad + good[10:])
    state = tmp_path / "state"
    proc = start(
        kafka_bootstrap, topic, state, "--dead-letter", f"kafka://{kafka_bootstrap}/{dead_topic}"
    )
    wait_for(lambda: learned(state) >= 20)
    assert stop(proc) == 0
    summary = inspect_json(state)
    assert summary["records_learned"] == 20 and summary["records_rejected"] == len(bad)
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    consumer.assign([TopicPartition(dead_topic, 0)])
    letters: list = []
    deadline = time.monotonic() + 15
    while len(letters) < len(bad) and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            letters.extend(json.loads(message.value) for message in batch)
    consumer.close()
    assert [letter["reason"] for letter in letters] == [
        "bad_json",
        "non_numeric",  # a feature named x that is not a number
        "non_finite",
        "empty",
        "undecodable",
        "non_numeric",
    ]
    assert [letter["position"]["offset"] for letter in letters] == list(range(10, 16))
    assert all(letter["position"]["topic"] == topic for letter in letters)
    assert letters[4]["raw_encoding"] == "base64"


def test_broker_paused_for_10_seconds_then_resumed_no_crash_no_loss(broker, tmp_path):
    from conftest import create_topic

    topic = create_topic(broker.bootstrap, f"paused-{time.time_ns()}", 1)
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(300):
        producer.send(topic, json.dumps({"a": float(i % 7), "y": float(i % 5)}).encode())
    producer.flush()
    state = tmp_path / "state"
    proc = start(broker.bootstrap, topic, state)
    wait_for(lambda: learned(state) >= 300)
    broker.pause()
    try:
        time.sleep(10)
        assert proc.poll() is None
    finally:
        broker.resume()
    for i in range(300, 500):
        producer.send(topic, json.dumps({"a": float(i % 7), "y": float(i % 5)}).encode())
    producer.flush()
    producer.close()
    wait_for(lambda: learned(state) >= 500, timeout=90)
    assert stop(proc) == 0
    assert inspect_json(state)["records_learned"] == 500


def test_second_daemon_on_the_same_state_dir_refuses(
    kafka_bootstrap, kafka_topic_factory, tmp_path
):
    topic = kafka_topic_factory(1)
    state = tmp_path / "state"
    first = start(kafka_bootstrap, topic, state)
    wait_for(lambda: (state / "lock").exists() and (state / "lock").read_text().strip())
    second = start(kafka_bootstrap, topic, state)
    assert second.wait(timeout=60) == 1
    assert "in use by another streamlearn" in (tmp_path / "daemon.log").read_text()
    assert stop(first) == 0
    _ = np  # numpy imported for make_regression's data


def test_delayed_labels_through_kafka_each_labeled_record_learned_once(
    kafka_bootstrap, kafka_topic_factory, tmp_path
):
    X, y, _ = make_regression(400, d=2, seed=17)
    path = tmp_path / "rows.csv"
    names = write_csv(path, X, y)
    with_ids = tmp_path / "with_ids.csv"
    lines = path.read_text().splitlines()
    with_ids.write_text(
        "id," + lines[0] + "\n" + "".join(f"r{i},{line}\n" for i, line in enumerate(lines[1:]))
    )
    topic = kafka_topic_factory(1)
    # Features first without y; each label follows 50 records later on the same topic.
    result = produce(with_ids, kafka_bootstrap, topic, id_column="id", label_delay_records=50)
    assert (result.sent, result.labels_sent) == (400, 400)
    state = tmp_path / "state"
    proc = start(
        kafka_bootstrap, topic, state, "--label-ttl", "1000r", "--features", ",".join(names)
    )
    wait_for(lambda: learned(state) >= 400)
    assert stop(proc) == 0
    summary = inspect_json(state)
    assert summary["records_learned"] == 400
    assert summary["records_unlabeled"] == 400
    assert summary["pending_labels"]["joined"] == 400
    assert summary["pending_labels"]["pending"] == 0
    assert summary["records_rejected"] == 0
