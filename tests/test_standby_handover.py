"""A planned handover (SIGTERM of the active instance) re-learns nothing.

The active instance finishes its batch, writes its final checkpoint and only then leaves the
group; the standby is assigned the coordination partition at once (no session timeout to
wait for) and resumes from exactly that checkpoint: the records the leaving instance
learned are the ones the new one starts from, and the final model is one replay's.
"""

from __future__ import annotations

import json
import re
import signal
import threading
from pathlib import Path

import pytest
from standby_group import Instance, wait_for

from streamhelpers import cli, inspect_json, make_regression, records_learned, write_csv
from streamlearn.producers.replay import produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROWS = 900


def test_sigterm_hands_the_model_over_from_its_final_checkpoint(
    kafka_bootstrap: str, kafka_topic_factory, tmp_path: Path
) -> None:
    X, y, _ = make_regression(ROWS, d=3, seed=47)
    rows_csv = tmp_path / "rows.csv"
    write_csv(rows_csv, X, y)
    topic = kafka_topic_factory(1)
    state = tmp_path / "state"
    producer = threading.Thread(
        target=produce, args=(rows_csv, kafka_bootstrap, topic), kwargs={"rate": 100}
    )
    leaving = Instance(kafka_bootstrap, topic, state, tmp_path, 0)
    instances = [leaving]
    try:
        wait_for(lambda: leaving.role() == "active")
        staying = Instance(kafka_bootstrap, topic, state, tmp_path, 1)
        instances.append(staying)
        wait_for(lambda: staying.role() == "standby")
        producer.start()
        wait_for(lambda: records_learned(state) > 200)
        leaving.proc.send_signal(signal.SIGTERM)
        assert leaving.proc.wait(timeout=30) == 0
        final = re.search(r"learned (\d+) records as the active instance", leaving.log_text())
        assert final is not None, leaving.log_text()[-2000:]
        wait_for(lambda: staying.role() == "active")
        resumed = re.search(
            r"resuming \S+ from generation \d+: (\d+) records learned", staying.log_text()
        )
        assert resumed is not None
        assert resumed.group(1) == final.group(1)  # from the leaving one's final checkpoint
        producer.join()
        wait_for(lambda: records_learned(state) >= ROWS)
        staying.proc.send_signal(signal.SIGTERM)
        assert staying.proc.wait(timeout=30) == 0
    finally:
        for instance in instances:
            instance.kill()
    summary = inspect_json(state)
    assert summary["records_learned"] == ROWS
    assert summary["epoch"] == 2  # two takeovers: the first instance's, then the survivor's
    assert summary["epoch_holder"]["pid"] == staying.proc.pid
    replay = json.loads(cli("replay", str(rows_csv), "--inspect-json").stdout)
    for name, value in replay["weights"].items():
        assert abs(summary["weights"][name] - value) < 1e-12
