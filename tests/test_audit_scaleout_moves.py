"""Issue 15, point 5: a planned move (scale up, SIGTERM, scale up again) re-learns nothing.

Final models equal to one pass cannot tell: a move that re-learned records from an older
checkpoint ends with the same models. So every learner writes each labeled record's
prediction to a topic (``--predictions-all``) as it learns it: a record learned twice is
predicted twice. Real broker, real processes; the instances take their extra options from
the environment (``STREAMLEARN_*``), as a deployment would.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest
from scaleout_helpers import (
    Instance,
    assert_one_pass,
    learned,
    owners,
    predicting_every_record,
)

from streamhelpers import read_topic, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_planned_moves_learn_every_record_once(
    kafka_bootstrap: str,
    kafka_topic_factory,
    kafka_send,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic, predictions, rows, producer = predicting_every_record(
        kafka_bootstrap, kafka_topic_factory, kafka_send, monkeypatch, seed=31
    )
    state = tmp_path / "shared"
    instances: dict[str, Instance] = {}
    try:
        instances["a"] = Instance(kafka_bootstrap, topic, state, "a", tmp_path)
        wait_for(lambda: learned(state) == 100, "a learns the first 100", 40)
        producer.start()
        instances["b"] = Instance(kafka_bootstrap, topic, state, "b", tmp_path)  # scale up
        wait_for(lambda: set(owners(state).values()) == {"a", "b"}, "one partition each", 40)
        assert instances["b"].stop() == 0  # scale down
        wait_for(lambda: set(owners(state).values()) == {"a"}, "b's partition back to a", 40)
        instances["c"] = Instance(kafka_bootstrap, topic, state, "c", tmp_path)  # up again
        wait_for(lambda: set(owners(state).values()) == {"a", "c"}, "one partition each", 40)
        assert producer.is_alive(), "the producer ended before the moves: give it more rows"
        producer.stopping.set()
        producer.join(60)
        sent = producer.sent
        wait_for(lambda: learned(state) == sent, "every record learned", 40)
        for name in ("a", "c"):
            assert instances[name].stop() == 0
    finally:
        producer.stopping.set()
        for instance in instances.values():
            instance.stop()
    written = [json.loads(r.value) for r in read_topic(kafka_bootstrap, predictions, sent)]
    twice = {i: n for i, n in collections.Counter(w["id"] for w in written).items() if n > 1}
    assert twice == {}, f"{len(twice)} records predicted (so learned) more than once"
    assert len(written) == sent
    assert_one_pass(state, rows[:sent])
