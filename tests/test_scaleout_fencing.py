"""Fencing on a real broker: an instance paused past its session timeout (SIGSTOP) loses its
partitions to another; resumed (SIGCONT), its learners' checkpoint writes are refused (a
newer epoch owns each partition), counted in its metrics, and the models are the new owner's."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from scaleout_helpers import (
    Instance,
    assert_one_pass,
    group_offsets,
    keyed_rows,
    learned,
    metric,
    owners,
    partition_dirs,
    running,
    send_rows,
)

from streamhelpers import cli, wait_for
from streamlearn.broker import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_a_paused_owner_is_fenced(
    kafka_bootstrap: str, kafka_topic_factory, kafka_send, tmp_path: Path
) -> None:
    topic = kafka_topic_factory(2)
    state = tmp_path / "shared"
    rows = keyed_rows(600, keys=8, seed=11)
    port = free_port()
    with running({}, tail=8000) as instances:
        send_rows(kafka_send, topic, rows[:300])
        instances["a"] = Instance(kafka_bootstrap, topic, state, "a", tmp_path, metrics_port=port)
        wait_for(lambda: learned(state) == 300, "a learns the first 300", 40)
        assert metric(port, "streamlearn_partitions_owned") == 2
        assert metric(port, "streamlearn_rebalances_total") == 1
        assert metric(port, "streamlearn_fencing_refusals_total") == 0
        instances["a"].signal(signal.SIGSTOP)  # the member and its learners
        instances["b"] = Instance(kafka_bootstrap, topic, state, "b", tmp_path)
        wait_for(lambda: set(owners(state).values()) == {"b"}, "b takes both over", 40)
        send_rows(kafka_send, topic, rows[300:])
        wait_for(lambda: learned(state) == 600, "b learns the rest", 30)
        stale = {p: epoch for p, (epoch, _) in partition_dirs(state).items()}
        assert all(epoch >= 2 for epoch in stale.values())

        instances["a"].signal(signal.SIGCONT)
        wait_for(lambda: "FENCED" in instances["a"].log(), "a's learners are fenced", 30)
        wait_for(
            lambda: (metric(port, "streamlearn_fencing_refusals_total") or 0) >= 2,
            "a counts the refusals",
            30,
        )
        wait_for(lambda: learned(state) == 600 and len(owners(state)) == 2, "a settles", 30)
        assert instances["a"].stop() == 0
        assert instances["b"].stop() == 0
        # The group's offsets are those of the partitions' checkpoints, never a's stale ones.
        assert sum(group_offsets(kafka_bootstrap, topic, 2).values()) == len(rows)
    # What a wrote in its old epochs after it was resumed never became the partitions' state:
    # every key equals one pass, learned once.
    want = assert_one_pass(state, rows)
    assert "refusing to write this checkpoint" in instances["a"].log()

    # inspect on the shared store: each partition's owner, epoch and next offset; a key's model
    shown = json.loads(cli("inspect", str(state), "--json").stdout)
    newest = partition_dirs(state)
    assert [entry["partition"] for entry in shown["partitions"]] == [0, 1]
    for entry in shown["partitions"]:
        assert entry["epoch"] == newest[entry["partition"]][0] >= 2
        assert entry["owner"] == owners(state)[entry["partition"]]
    assert sum(entry["next_offset"] for entry in shown["partitions"]) == len(rows)
    assert shown["keys_total"] == len(want) and shown["records_learned"] == len(rows)
    one = json.loads(cli("inspect", str(state), "--key", "k3", "--json").stdout)
    assert one["weights"] == want["k3"].model.weights
    rows = json.loads(cli("inspect", str(state), "--keys", "--sort", "key", "--json").stdout)
    assert {row["key"]: row["records_learned"] for row in rows} == {
        key: learner.records_learned for key, learner in want.items()
    }
