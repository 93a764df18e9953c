"""Keyed scale-out on a real broker, with real processes: instances of one group share a
6-partition topic's 20 keys while a producer writes, partitions and their models move on
scale up, SIGTERM and SIGKILL, and every key's model equals one uninterrupted pass over its
rows, each record learned once."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from scaleout_helpers import (
    Instance,
    Row,
    alive,
    assert_one_pass,
    group_offsets,
    keyed_rows,
    learned,
    owners,
    running,
    send_rows,
)

from streamhelpers import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _owned_by(state: Path, names: set[str], partitions: int = 6) -> bool:
    found = owners(state)
    return len(found) == partitions and set(found.values()) == names


class _Producer(threading.Thread):
    """Sends ``rows`` 10 at a time, 40 a second, until stopped: the moves happen while
    records flow. ``sent`` rows went out (the first 100 are sent before it starts)."""

    def __init__(self, send: object, topic: str, rows: list[Row]) -> None:
        super().__init__(daemon=True)
        self.send, self.topic, self.rows = send, topic, rows
        self.sent = 100
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set() and self.sent < len(self.rows):
            send_rows(self.send, self.topic, self.rows[self.sent : self.sent + 10])
            self.sent += 10
            time.sleep(0.25)

    def __enter__(self) -> _Producer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()


def test_scale_one_three_two_then_kill_one(
    kafka_bootstrap: str, kafka_topic_factory, kafka_send, tmp_path: Path
) -> None:
    topic = kafka_topic_factory(6)
    state = tmp_path / "shared"
    rows = keyed_rows(8000)
    started = time.monotonic()
    producer = _Producer(kafka_send, topic, rows)
    with running({}) as instances, producer:
        send_rows(kafka_send, topic, rows[:100])
        instances["a"] = Instance(kafka_bootstrap, topic, state, "a", tmp_path)
        wait_for(lambda: learned(state) == 100, "a learns the first 100", 40)
        assert _owned_by(state, {"a"})
        producer.start()

        for name in ("b", "c"):  # scale 1 -> 3
            instances[name] = Instance(kafka_bootstrap, topic, state, name, tmp_path)
        wait_for(lambda: _owned_by(state, {"a", "b", "c"}), "three owners", 40)

        assert instances["c"].stop() == 0  # scale 3 -> 2 (SIGTERM)
        wait_for(lambda: _owned_by(state, {"a", "b"}), "c's partitions moved", 40)

        # SIGKILL the member alone: its learners end with it (no orphan learns on), and its
        # partitions move after the session timeout.
        learners_of_b = instances["b"].learner_pids()
        assert learners_of_b
        os.kill(instances["b"].process.pid, signal.SIGKILL)
        wait_for(lambda: not any(map(alive, learners_of_b)), "b's learners end with b", 15)
        wait_for(lambda: _owned_by(state, {"a"}), "b's partitions moved to a", 40)
        assert producer.is_alive(), "the producer ended before the moves: give it more rows"
        producer.stopping.set()
        producer.join(60)
        rows = rows[: producer.sent]
        wait_for(lambda: learned(state) == len(rows), "every record learned", 30)
        assert instances["a"].stop() == 0
        assert sum(group_offsets(kafka_bootstrap, topic, 6).values()) == len(rows)
    print(f"scale test: {time.monotonic() - started:.1f} s, {len(rows)} rows")
    assert_one_pass(state, rows)  # each key's records learned once: their sum is len(rows)
    assert "eager round-robin assignment" in instances["a"].log()
