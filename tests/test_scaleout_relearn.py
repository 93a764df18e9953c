"""Issue 15, point 5: a SIGKILL re-learns only the records after the dead owner's last checkpoint.

The counterpart of ``test_audit_scaleout_moves.py`` (planned moves re-learn nothing): every
learner writes each labeled record's prediction to a topic as it learns it, so a record
learned twice is predicted twice. An owner is SIGKILLed (member and learners at once) after
it learned past its last checkpoint; the survivor takes its partition over from that
checkpoint. Then the records predicted twice are exactly the dead owner's partition from the
checkpoint's next offset on (as ``inspect --json`` of the dead owner's epoch reads it), every
record is predicted, and every key's model equals one pass. Real broker, real processes.
"""

from __future__ import annotations

import collections
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from scaleout_helpers import (
    Instance,
    assert_one_pass,
    checkpoint,
    learned,
    owners,
    partition_dirs,
    predicting_every_record,
    running,
)

from streamhelpers import STREAMLEARN, read_to_end, read_topic, wait_for
from streamlearn.scaleout.partitions import epochs, read_owner

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


class _Reader:
    """The messages of topics so far, read on as they come (one consumer, kept open)."""

    def __init__(self, bootstrap: str, *topics: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        assigned = []
        for topic in topics:
            found = self.consumer.partitions_for_topic(topic)
            assert found, f"topic {topic} does not exist"
            assigned += [TopicPartition(topic, p) for p in sorted(found)]
        self.consumer.assign(assigned)
        self.messages: dict[str, list[Any]] = {topic: [] for topic in topics}

    def poll(self) -> dict[str, list[Any]]:
        for tp, batch in self.consumer.poll(timeout_ms=200).items():
            self.messages[tp.topic].extend(batch)
        return self.messages

    def close(self) -> None:
        self.consumer.close()


def _epoch_of(state: Path, partition: int, instance: str) -> Path:
    """The directory of the epoch of ``partition`` that ``instance`` took over."""
    root = partition_dirs(state)[partition][1].parent
    found = [
        root / f"epoch-{e:08d}"
        for e in epochs(root)
        if (read_owner(root / f"epoch-{e:08d}") or {}).get("instance") == instance
    ]
    assert len(found) == 1, f"{instance}'s epochs of partition {partition}: {found}"
    return found[0]


def _next_offset(directory: Path, partition: int) -> int | None:
    found = checkpoint(directory)
    return None if found is None else found["source"]["next_offsets"].get(str(partition))


def _past_checkpoint(
    reader: _Reader, topic: str, predictions: str, b: Path, p: int, carried: int
) -> bool:
    """Whether b has made a checkpoint of ``p`` of its own (past the ``carried`` offset it
    took over at) and its learner has written a prediction past that checkpoint."""
    seen = reader.poll()
    x = _next_offset(b, p)
    if x is None or x <= carried:
        return False
    late = {m.value for m in seen[topic] if m.partition == p and m.offset >= x}
    ids = {json.loads(v)["id"] for v in late}
    return any(json.loads(m.value)["id"] in ids for m in seen[predictions])


def test_a_sigkill_relearns_only_the_records_after_the_last_checkpoint(
    kafka_bootstrap: str,
    kafka_topic_factory,
    kafka_send,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic, predictions, rows, producer = predicting_every_record(
        kafka_bootstrap, kafka_topic_factory, kafka_send, monkeypatch, seed=37
    )
    state = tmp_path / "shared"
    reader = _Reader(kafka_bootstrap, topic, predictions)
    with running({}) as instances:
        instances["a"] = Instance(kafka_bootstrap, topic, state, "a", tmp_path)
        wait_for(lambda: learned(state) == 100, "a learns the first 100", 40)
        producer.start()
        # b checkpoints every 3 s: the kill lands well after its last checkpoint.
        options = ("--checkpoint-interval", "3")
        instances["b"] = Instance(kafka_bootstrap, topic, state, "b", tmp_path, options=options)
        wait_for(lambda: set(owners(state).values()) == {"a", "b"}, "one partition each", 40)
        (p,) = [p for p, name in owners(state).items() if name == "b"]
        b = _epoch_of(state, p, "b")
        carried = _next_offset(b, p)  # the state b took over (a's, at the move)
        assert carried is not None
        wait_for(
            lambda: _past_checkpoint(reader, topic, predictions, b, p, carried),
            "b learns past its checkpoint",
            40,
        )
        instances["b"].kill()  # SIGKILL, member and learners at once
        wait_for(lambda: set(owners(state).values()) == {"a"}, "b's partition taken over", 40)
        assert producer.is_alive(), "the producer ended before the take-over: give it more rows"
        producer.stopping.set()
        producer.join(60)
        sent = producer.sent
        wait_for(lambda: learned(state) == sent, "every record learned", 40)
        assert instances["a"].stop() == 0
    reader.close()

    inspected = subprocess.run(
        [*STREAMLEARN, "inspect", "--json", str(b)], capture_output=True, text=True, timeout=60
    )
    assert inspected.returncode == 0, inspected.stderr
    x = json.loads(inspected.stdout)["position"]["next_offsets"][str(p)]
    where = {
        json.loads(m.value)["id"]: (m.partition, m.offset)
        for m in read_topic(kafka_bootstrap, topic, sent)
    }
    assert len(where) == sent
    written = [json.loads(m.value) for m in read_to_end(kafka_bootstrap, predictions)]
    counts = collections.Counter(w["id"] for w in written)
    assert set(counts) == set(where), "every record is predicted (so learned)"
    twice = {i for i, n in counts.items() if n > 1}
    assert all(counts[i] == 2 for i in twice)
    # b wrote its predictions in order: those that reached the topic before the kill are its
    # partition's offsets x, x+1, ... (the few still in its producer's buffer were lost).
    relearned = sorted(where[i][1] for i in twice)
    assert x > carried, "b's last checkpoint is its own"
    assert relearned, "b learned past its checkpoint, so some records are learned again"
    assert all(where[i][0] == p for i in twice), "only b's partition is learned again"
    assert relearned == list(range(x, x + len(relearned))), (
        f"re-learned offsets {relearned[:3]}..{relearned[-3:]}, b's checkpoint was at {x}"
    )
    assert_one_pass(state, rows[:sent])
    print(f"b took partition {p} over at {carried}, checkpointed it at {x}; {len(twice)} twice")
