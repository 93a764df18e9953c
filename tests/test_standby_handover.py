"""A planned handover (SIGTERM of the active instance) re-learns nothing.

The active instance finishes its batch, writes its final checkpoint and only then leaves the
group; the standby is assigned the coordination partition at once (no session timeout to
wait for) and resumes from exactly that checkpoint: the records the leaving instance
learned are the ones the new one starts from, and the final model is one replay's.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from standby_group import Group, assert_one_replay, producer, regression_csv, wait_for

from streamhelpers import records_learned

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROWS = 900


def test_sigterm_hands_the_model_over_from_its_final_checkpoint(
    kafka_bootstrap: str, kafka_topic_factory, tmp_path: Path
) -> None:
    rows_csv = regression_csv(tmp_path, ROWS, seed=47)
    topic = kafka_topic_factory(1)
    state = tmp_path / "state"
    feed = producer(rows_csv, kafka_bootstrap, topic, rate=100)
    with Group(kafka_bootstrap, topic, state, tmp_path) as group:
        leaving, staying = group.start_pair()
        feed.start()
        wait_for(lambda: records_learned(state) > 200)
        assert leaving.stop() == 0
        final = re.search(r"learned (\d+) records as the active instance", leaving.log_text())
        assert final is not None, leaving.log_text()[-2000:]
        wait_for(lambda: staying.role() == "active")
        resumed = re.search(
            r"resuming \S+ from generation \d+: (\d+) records learned", staying.log_text()
        )
        assert resumed is not None
        assert resumed.group(1) == final.group(1)  # from the leaving one's final checkpoint
        feed.join()
        wait_for(lambda: records_learned(state) >= ROWS)
        assert staying.stop() == 0
    summary = assert_one_replay(state, rows_csv, ROWS)
    assert summary["epoch"] == 2  # two takeovers: the first instance's, then the survivor's
    assert summary["epoch_holder"]["pid"] == staying.proc.pid
