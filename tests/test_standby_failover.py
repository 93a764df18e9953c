"""A single model, highly available: two ``run --standby`` instances of one group on a real broker.

The group elects the active learner (the member holding ``ha.active``'s partition); the
other serves the latest checkpoint. The active one is SIGKILLed three times at random
moments and restarted each time as a new standby: the survivor's final model equals one
uninterrupted replay of the topic (sgd weights to 1e-12), and at no poll of both
instances' metrics do two say they are active.
"""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest
from standby_group import (
    Group,
    LearnedWatch,
    RoleWatch,
    assert_one_replay,
    producer,
    regression_csv,
    the_active,
    wait_for,
)

from streamhelpers import records_learned

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROWS = 1500


def learned(state: Path) -> int:
    return max(records_learned(state), 0)


def test_three_sigkills_of_the_active_instance_learn_every_record_once(
    kafka_bootstrap: str, kafka_topic_factory, tmp_path: Path
) -> None:
    rows_csv = regression_csv(tmp_path, ROWS, seed=41)
    topic = kafka_topic_factory(1)
    state = tmp_path / "state"
    feed = producer(rows_csv, kafka_bootstrap, topic, rate=60)
    group = Group(kafka_bootstrap, topic, state, tmp_path)
    instances = group.instances
    with group, RoleWatch(lambda: list(instances)) as watch, LearnedWatch(state) as checkpoints:
        first, second = group.start_pair()
        assert second.readyz() == "ready: standby\n"
        assert first.readyz() == "ready: active\n"
        feed.start()
        rng = random.Random(11)
        for _ in range(3):
            active = the_active(instances)
            assert active is not None
            before = learned(state)
            wait_for(lambda before=before: learned(state) > before + rng.randint(5, 60))
            active.proc.send_signal(signal.SIGKILL)
            active.proc.wait()
            instances.remove(active)
            group.start()  # the restarted one joins as a standby
            wait_for(lambda: the_active(instances) is not None)
        feed.join()
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
            assert instance.stop() == 0
    assert watch.both_active == [], f"two active at once in {len(watch.both_active)} polls"
    assert watch.active_seen > 10
    assert checkpoints.backwards == []  # no checkpoint ever went back to fewer records
    assert_one_replay(state, rows_csv, ROWS)
    assert (state / "epoch").read_text().strip() == "4"  # the first and three takeovers
