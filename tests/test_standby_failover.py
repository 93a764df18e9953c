"""A single model, highly available: two ``run --standby`` instances of one group on a real broker.

The group elects the active learner (the member holding ``ha.active``'s partition); the
other serves the latest checkpoint. The active one is SIGKILLed three times at random
moments and restarted each time as a new standby: the survivor's final model equals one
uninterrupted replay of the topic (sgd weights to 1e-12), and at no poll of both
instances' metrics do two say they are active.
"""

from __future__ import annotations

import json
import random
import signal
import threading
from pathlib import Path

import pytest
from standby_group import Instance, LearnedWatch, RoleWatch, the_active, wait_for

from streamhelpers import cli, inspect_json, make_regression, records_learned, write_csv
from streamlearn.producers.replay import produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROWS = 1500


def learned(state: Path) -> int:
    return max(records_learned(state), 0)


@pytest.fixture
def rows_csv(tmp_path: Path) -> Path:
    X, y, _ = make_regression(ROWS, d=3, seed=41)
    path = tmp_path / "rows.csv"
    write_csv(path, X, y)
    return path


def test_three_sigkills_of_the_active_instance_learn_every_record_once(
    kafka_bootstrap: str, kafka_topic_factory, rows_csv: Path, tmp_path: Path
) -> None:
    topic = kafka_topic_factory(1)
    state = tmp_path / "state"
    instances: list[Instance] = []
    numbers = iter(range(100))

    def new_instance() -> Instance:
        instance = Instance(kafka_bootstrap, topic, state, tmp_path, next(numbers))
        instances.append(instance)
        return instance

    producer = threading.Thread(
        target=produce, args=(rows_csv, kafka_bootstrap, topic), kwargs={"rate": 60}
    )
    watch = RoleWatch(lambda: list(instances))
    checkpoints = LearnedWatch(state)
    try:
        first = new_instance()
        wait_for(lambda: first.role() == "active")
        second = new_instance()
        wait_for(lambda: second.role() == "standby")
        assert second.readyz() == "ready: standby\n"
        assert first.readyz() == "ready: active\n"
        producer.start()
        rng = random.Random(11)
        for _ in range(3):
            active = the_active(instances)
            assert active is not None
            before = learned(state)
            wait_for(lambda before=before: learned(state) > before + rng.randint(5, 60))
            active.proc.send_signal(signal.SIGKILL)
            active.proc.wait()
            instances.remove(active)
            new_instance()  # the restarted one joins as a standby
            wait_for(lambda: the_active(instances) is not None)
        producer.join()
        survivor = the_active(instances)
        assert survivor is not None
        wait_for(lambda: learned(state) >= ROWS)
        # The standby's /predict answers from the checkpoint it follows: once it has loaded
        # the last one, exactly what the active instance answers.
        standby = next(i for i in instances if i is not survivor)
        wait_for(lambda: standby.role() == "standby")
        x = {"x0": 0.5, "x1": -1.0, "x2": 2.0}
        wait_for(lambda: (standby.predict(x) or {}).get("model_version") == ROWS)
        assert standby.predict(x) == survivor.predict(x)
        for instance in (standby, survivor):
            instance.proc.send_signal(signal.SIGTERM)
            assert instance.proc.wait(timeout=30) == 0
    finally:
        watch.stop()
        checkpoints.stop()
        for instance in instances:
            instance.kill()
    assert watch.both_active == [], f"two active at once in {len(watch.both_active)} polls"
    assert watch.active_seen > 10
    assert checkpoints.backwards == []  # no checkpoint ever went back to fewer records
    summary = inspect_json(state)
    assert summary["records_learned"] == ROWS
    assert summary["position"]["next_offsets"] == {"0": ROWS}
    replay = json.loads(cli("replay", str(rows_csv), "--inspect-json").stdout)
    for name, value in replay["weights"].items():
        assert abs(summary["weights"][name] - value) < 1e-12
    assert abs(summary["intercept"] - replay["intercept"]) < 1e-12
    assert (state / "epoch").read_text().strip() == "4"  # the first and three takeovers
