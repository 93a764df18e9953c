"""Fencing with real processes: an active instance paused past its session timeout
(SIGSTOP) loses the model to the standby; resumed (SIGCONT), it still believes it leads,
and its checkpoint writes are refused (logged, counted), never landing over the new
owner's: the newest checkpoint never goes back, and the final model is one replay's.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from standby_group import (
    Group,
    LearnedWatch,
    assert_one_replay,
    producer,
    regression_csv,
    the_active,
    wait_for,
)

from streamhelpers import committed, records_learned
from streamlearn.state.epoch import read_epoch

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROWS = 1200


def test_a_paused_active_instance_is_fenced_when_it_resumes(
    kafka_bootstrap: str, kafka_topic_factory, tmp_path: Path
) -> None:
    rows_csv = regression_csv(tmp_path, ROWS, seed=43)
    topic = kafka_topic_factory(1)
    state = tmp_path / "state"
    feed = producer(rows_csv, kafka_bootstrap, topic, rate=80)
    group = Group(kafka_bootstrap, topic, state, tmp_path)
    with group, LearnedWatch(state) as checkpoints:
        stale, standby = group.start_pair()
        feed.start()
        wait_for(lambda: records_learned(state) > 100)
        stale.proc.send_signal(signal.SIGSTOP)  # past its session timeout: the group moves on
        paused_at = records_learned(state)
        wait_for(lambda: standby.role() == "active")
        assert read_epoch(state) == 2
        wait_for(lambda: records_learned(state) > paused_at + 100)  # the new owner learns
        stale.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: "checkpoint refused" in stale.log_text())
        wait_for(lambda: (stale.refusals() or 0) >= 1)
        feed.join()
        wait_for(lambda: records_learned(state) >= ROWS)
        wait_for(lambda: the_active(group.instances) is not None)
        for instance in group.instances:
            assert instance.stop() == 0
    assert checkpoints.backwards == []  # no stale checkpoint landed over a newer one
    assert_one_replay(state, rows_csv, ROWS)
    # The data group's offset (monitoring) is the last owner's: no stale commit landed after.
    assert committed(kafka_bootstrap, topic, topic) == {0: ROWS}
