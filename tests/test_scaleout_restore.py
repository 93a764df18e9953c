"""A member's restore and lag series (real broker, real processes): when an instance takes a
partition over, its scrape shows the bytes of state carried in, equal to the previous owner's
files on disk, and the seconds to the learner's checkpoint loaded; lag and restores carry the
topic and only the partitions the member owns."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from scaleout_helpers import Instance, keyed_rows, learned, metric, owners, send_rows

from streamhelpers import wait_for
from streamlearn.broker import free_port
from streamlearn.scaleout.member import MemberStats, Restore
from streamlearn.scaleout.partitions import OWNER_NAME, partition_root
from streamlearn.scaleout.telemetry import member_registry


def _state_bytes(directory: Path) -> int:
    """The sizes of an epoch directory's files, its owner record and lock left out."""
    total = 0
    for folder, _, names in os.walk(directory):
        total += sum(
            os.stat(os.path.join(folder, name)).st_size
            for name in names
            if name not in (OWNER_NAME, "lock")
        )
    return total


def _series(port: int, name: str) -> dict[str, float]:
    """The samples of metric ``name`` at ``port``: their label text -> value."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    found = re.findall(rf"^{name}\{{(.*)\}} (\S+)$", text, re.MULTILINE)
    return {labels: float(value) for labels, value in found}


def test_a_restore_shows_its_bytes_at_once_and_its_seconds_once_loaded() -> None:
    stats = MemberStats(topic="t", lag={0: 4, 3: 0})
    stats.restores = {0: Restore(1.0, 2048, 0.75), 3: Restore(2.0, 512)}  # 3 still loading
    registry = member_registry(stats)

    def sample(name: str, partition: int) -> float | None:
        labels = {"topic": "t", "partition": str(partition)}
        return registry.get_sample_value(name, labels)  # type: ignore[attr-defined]

    assert sample("streamlearn_partition_last_restore_bytes", 0) == 2048
    assert sample("streamlearn_partition_last_restore_bytes", 3) == 512
    assert sample("streamlearn_partition_last_restore_seconds", 0) == 0.75
    assert sample("streamlearn_partition_last_restore_seconds", 3) is None
    assert sample("streamlearn_partition_lag_records", 0) == 4
    assert sample("streamlearn_partition_lag_records", 1) is None


@pytest.mark.kafka
@pytest.mark.slow
def test_a_take_over_exports_its_restore_bytes_and_seconds(
    kafka_bootstrap: str, kafka_topic_factory, kafka_send, tmp_path: Path
) -> None:
    topic = kafka_topic_factory(1)
    state = tmp_path / "shared"
    rows = keyed_rows(300, keys=20, seed=8)
    send_rows(kafka_send, topic, rows)
    ports = {"a": free_port(), "b": free_port()}
    labels = f'partition="0",topic="{topic}"'
    instances: dict[str, Instance] = {}
    try:
        instances["a"] = Instance(
            kafka_bootstrap, topic, state, "a", tmp_path, metrics_port=ports["a"]
        )
        wait_for(lambda: learned(state) == len(rows), "a learns every record", 40)
        first = _series(ports["a"], "streamlearn_partition_last_restore_bytes")
        assert first == {labels: 0.0}  # epoch 1: nothing to carry in
        seconds = _series(ports["a"], "streamlearn_partition_last_restore_seconds")
        assert 0 < seconds[labels] < 60 and list(seconds) == [labels]
        wait_for(
            lambda: metric(ports["a"], "streamlearn_partition_lag_records", labels) == 0,
            "a's lag of the partition measured, 0",
            20,
        )
        assert instances["a"].stop() == 0  # the final checkpoint: epoch 1 no longer changes
        previous = partition_root(state, topic, 0) / "epoch-00000001"
        carried = _state_bytes(previous)
        assert carried > 0

        instances["b"] = Instance(
            kafka_bootstrap, topic, state, "b", tmp_path, metrics_port=ports["b"]
        )
        wait_for(lambda: owners(state) == {0: "b"}, "b takes the partition over", 40)
        wait_for(
            lambda: _series(ports["b"], "streamlearn_partition_last_restore_seconds"),
            "b's learner ready",
            30,
        )
        assert _series(ports["b"], "streamlearn_partition_last_restore_bytes") == {
            labels: float(carried)
        }
        took = _series(ports["b"], "streamlearn_partition_last_restore_seconds")[labels]
        assert 0 < took < 60
        total = metric(ports["b"], "streamlearn_partition_restore_seconds_total")
        assert total == pytest.approx(took)
        assert f"({carried} bytes of state carried in)" in instances["b"].log()
        assert instances["b"].stop() == 0
    except AssertionError:
        for instance in instances.values():
            print(f"--- {instance.name}\n{instance.log()[-6000:]}")
        raise
    finally:
        for instance in instances.values():
            instance.kill()
