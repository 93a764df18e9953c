"""Issue 15, point 2: a partition never checkpointed starts per ``--from``; one with a
checkpoint resumes from it, whatever ``--from`` says (real broker, real processes).

A backlog sits in the topic before the first instance starts with ``--from latest``: it is
never learned. Rows sent while the instance runs are; rows sent while no instance runs are
learned by the next one from the partitions' checkpoints. Every key's model equals one pass
over the rows after the backlog.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from scaleout_helpers import Instance, assert_one_pass, keyed_rows, learned, owners, send_rows

from streamhelpers import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

_START = re.compile(r"partition (\d+) from offset (\d+) \((\w[\w ]*)\)")


def _starts(log: str) -> dict[int, tuple[int, str]]:
    """Partition -> (offset, origin) of each 'reading Kafka topic' line, the last one wins."""
    found: dict[int, tuple[int, str]] = {}
    for line in log.splitlines():
        if "reading Kafka topic" in line:
            for partition, offset, origin in _START.findall(line):
                found[int(partition)] = (int(offset), origin)
    return found


def test_a_new_partition_starts_from_latest_and_a_checkpointed_one_from_its_checkpoint(
    kafka_bootstrap: str,
    kafka_topic_factory,
    kafka_send,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = kafka_topic_factory(2)
    state = tmp_path / "shared"
    rows = keyed_rows(300, keys=8, seed=21)
    backlog = rows[:100]
    # One batch per message: the broker's log end is then exact, and so is "latest".
    kafka_send(
        topic,
        [json.dumps({**x, "y": y}).encode() for _, x, y in backlog],
        keys=[key.encode() for key, _, _ in backlog],
        one_batch_each=True,
    )
    monkeypatch.setenv("STREAMLEARN_FROM", "latest")  # the instances' environment
    a = Instance(kafka_bootstrap, topic, state, "a", tmp_path)
    try:
        wait_for(lambda: len(_starts(a.log())) == 2, "a's learners placed", 60)
        starts = _starts(a.log())
        assert {origin for _, origin in starts.values()} == {"latest"}
        assert sum(offset for offset, _ in starts.values()) == len(backlog)
        send_rows(kafka_send, topic, rows[100:200])
        wait_for(lambda: learned(state) == 100, "a learns what came after it started", 40)
        assert set(owners(state).values()) == {"a"}
    finally:
        assert a.stop() == 0

    send_rows(kafka_send, topic, rows[200:])  # no instance runs
    b = Instance(kafka_bootstrap, topic, state, "b", tmp_path)
    try:
        wait_for(lambda: learned(state) == 200, "b learns on from the checkpoints", 60)
        starts = _starts(b.log())
        assert {origin for _, origin in starts.values()} == {"checkpoint"}, starts
        assert sum(offset for offset, _ in starts.values()) == 200
    finally:
        assert b.stop() == 0
    assert_one_pass(state, rows[100:])
