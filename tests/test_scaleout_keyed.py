"""Keyed scale-out on a real broker, with real processes: instances of one group share a
6-partition topic's 20 keys, partitions and their models move on SIGTERM and SIGKILL, and
every key's model equals one uninterrupted pass over its rows."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from scaleout_helpers import (
    Instance,
    group_offsets,
    keyed_rows,
    learned,
    models,
    oracle,
    owners,
    send_rows,
)

from streamhelpers import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _owned_by(state: Path, names: set[str], partitions: int = 6) -> bool:
    found = owners(state)
    return len(found) == partitions and set(found.values()) == names


def _all_learned(state: Path, count: int) -> bool:
    return learned(state) == count


def test_scale_one_three_two_then_kill_one(
    kafka_bootstrap: str, kafka_topic_factory, kafka_send, tmp_path: Path
) -> None:
    topic = kafka_topic_factory(6)
    state = tmp_path / "shared"
    rows = keyed_rows(1200)
    batches = [rows[:300], rows[300:600], rows[600:900], rows[900:]]
    started = time.monotonic()
    instances: dict[str, Instance] = {}
    try:
        send_rows(kafka_send, topic, batches[0])
        instances["a"] = Instance(kafka_bootstrap, topic, state, "a", tmp_path)
        wait_for(lambda: _all_learned(state, 300), "a learns the first 300", 40)
        assert set(owners(state).values()) == {"a"}

        for name in ("b", "c"):  # scale 1 -> 3
            instances[name] = Instance(kafka_bootstrap, topic, state, name, tmp_path)
        wait_for(lambda: _owned_by(state, {"a", "b", "c"}), "three owners", 40)
        send_rows(kafka_send, topic, batches[1])
        wait_for(lambda: _all_learned(state, 600), "600 learned by three", 30)

        assert instances["c"].stop() == 0  # scale 3 -> 2 (SIGTERM)
        wait_for(lambda: _owned_by(state, {"a", "b"}), "c's partitions moved", 40)
        send_rows(kafka_send, topic, batches[2])
        wait_for(lambda: _all_learned(state, 900), "900 learned by two", 30)

        instances["b"].kill()  # SIGKILL: its partitions move after the session timeout
        wait_for(lambda: _owned_by(state, {"a"}), "b's partitions moved to a", 40)
        send_rows(kafka_send, topic, batches[3])
        wait_for(lambda: _all_learned(state, 1200), "all 1200 learned", 30)
        assert instances["a"].stop() == 0
        assert sum(group_offsets(kafka_bootstrap, topic, 6).values()) == len(rows)
    except AssertionError:
        for instance in instances.values():
            print(f"--- {instance.name}\n{instance.log()[-6000:]}")
        raise
    finally:
        for instance in instances.values():
            instance.kill()
    print(f"scale test: {time.monotonic() - started:.1f} s")
    got = models(state)
    want = oracle(rows)
    assert sorted(got) == sorted(want)
    for key, learner in want.items():
        assert got[key].records_learned == learner.records_learned, key
        for name, weight in learner.model.weights.items():
            assert got[key].model.weights[name] == pytest.approx(weight, abs=1e-12), key
        assert got[key].model.intercept == pytest.approx(learner.model.intercept, abs=1e-12)
    assert sum(learner.records_learned for learner in got.values()) == len(rows)
    assert "eager" in instances["a"].log()
