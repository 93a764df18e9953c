"""Fencing with real processes: an active instance paused past its session timeout
(SIGSTOP) loses the model to the standby; resumed (SIGCONT), it still believes it leads,
and its checkpoint writes are refused (logged, counted), never landing over the new
owner's: the newest checkpoint never goes back, and the final model is one replay's.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import pytest
from standby_group import Instance, LearnedWatch, the_active, wait_for

from streamhelpers import cli, inspect_json, make_regression, records_learned, write_csv
from streamlearn.producers.replay import produce
from streamlearn.state.epoch import read_epoch

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROWS = 1200


def test_a_paused_active_instance_is_fenced_when_it_resumes(
    kafka_bootstrap: str, kafka_topic_factory, tmp_path: Path
) -> None:
    X, y, _ = make_regression(ROWS, d=3, seed=43)
    rows_csv = tmp_path / "rows.csv"
    write_csv(rows_csv, X, y)
    topic = kafka_topic_factory(1)
    state = tmp_path / "state"
    producer = threading.Thread(
        target=produce, args=(rows_csv, kafka_bootstrap, topic), kwargs={"rate": 80}
    )
    stale = Instance(kafka_bootstrap, topic, state, tmp_path, 0)
    instances = [stale]
    checkpoints = LearnedWatch(state)
    try:
        wait_for(lambda: stale.role() == "active")
        standby = Instance(kafka_bootstrap, topic, state, tmp_path, 1)
        instances.append(standby)
        wait_for(lambda: standby.role() == "standby")
        producer.start()
        wait_for(lambda: records_learned(state) > 100)
        stale.proc.send_signal(signal.SIGSTOP)  # past its session timeout: the group moves on
        paused_at = records_learned(state)
        wait_for(lambda: standby.role() == "active")
        assert read_epoch(state) == 2
        wait_for(lambda: records_learned(state) > paused_at + 100)  # the new owner learns
        stale.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: "checkpoint refused" in stale.log_text())
        wait_for(lambda: (stale.refusals() or 0) >= 1)
        producer.join()
        wait_for(lambda: records_learned(state) >= ROWS)
        wait_for(lambda: the_active(instances) is not None)
        for instance in instances:
            instance.proc.send_signal(signal.SIGTERM)
            assert instance.proc.wait(timeout=30) == 0
    finally:
        checkpoints.stop()
        for instance in instances:
            if instance.proc.poll() is None:
                instance.proc.send_signal(signal.SIGCONT)
            instance.kill()
    assert checkpoints.backwards == []  # no stale checkpoint landed over a newer one
    summary = inspect_json(state)
    assert summary["records_learned"] == ROWS
    assert summary["position"]["next_offsets"] == {"0": ROWS}
    replay = json.loads(cli("replay", str(rows_csv), "--inspect-json").stdout)
    for name, value in replay["weights"].items():
        assert abs(summary["weights"][name] - value) < 1e-12
    assert abs(summary["intercept"] - replay["intercept"]) < 1e-12
    # The data group's offset (monitoring) is the last owner's: no stale commit landed after.
    assert committed(kafka_bootstrap, topic, topic) == {0: ROWS}


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        found = {}
        for partition in sorted(consumer.partitions_for_topic(topic) or ()):
            offset = consumer.committed(TopicPartition(topic, partition))
            if offset is not None:
                found[partition] = offset
        return found
    finally:
        consumer.close()
