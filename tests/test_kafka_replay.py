"""``replay kafka://...``: a backfill to the log end seen at start, like ``kcat -e``.

The replay reads every partition up to the high-water marks it found when it started,
checkpoints and exits 0; what is produced after that start waits for the next replay (or
``run``) on the same state directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from streamhelpers import STREAMLEARN, inspect_json

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CLIENTS = ["kafka-python", "confluent"]


def rows(start: int, count: int) -> list[bytes]:
    return [
        json.dumps({"a": float(i % 7), "b": float(i % 3), "y": 2.0 * (i % 7) - (i % 3)}).encode()
        for i in range(start, start + count)
    ]


def replay(bootstrap: str, topic: str, state: Path, *extra: str, client: str) -> dict:
    """``replay kafka://bootstrap/topic`` to its end; its ``--inspect-json`` summary."""
    result = subprocess.run(
        [
            *STREAMLEARN,
            "replay",
            f"kafka://{bootstrap}/{topic}",
            "--state-dir",
            str(state),
            "--kafka-client",
            client,
            "--inspect-json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def learned(state: Path) -> int:
    """Records learned in the newest checkpoint of ``state`` (0 before the first)."""
    if not list(state.glob("gen-*.ckpt")):
        return 0
    result = subprocess.run(
        [*STREAMLEARN, "inspect", str(state), "--json"], capture_output=True, text=True
    )
    return json.loads(result.stdout)["records_learned"] if result.returncode == 0 else 0


@pytest.mark.parametrize("client", CLIENTS)
def test_replay_reads_to_the_end_seen_at_start_and_exits(
    kafka_bootstrap, kafka_topic_factory, kafka_send, tmp_path, client
):
    topic = kafka_topic_factory(2)
    kafka_send(topic, rows(0, 300), partition=0)  # one producer batch: tansu's end reads low
    kafka_send(topic, rows(300, 200), partition=1)
    state = tmp_path / "state"

    summary = replay(kafka_bootstrap, topic, state, client=client)

    assert summary["records_learned"] == 500
    assert summary["position"]["next_offsets"] == {"0": 300, "1": 200}
    assert inspect_json(state)["records_learned"] == 500  # checkpointed

    # Nothing new: a second replay reads nothing and exits at once.
    assert replay(kafka_bootstrap, topic, state, client=client)["records_learned"] == 500


@pytest.mark.parametrize("client", CLIENTS)
def test_records_produced_after_the_start_wait_for_the_next_replay(
    kafka_bootstrap, kafka_topic_factory, kafka_send, tmp_path, client
):
    topic = kafka_topic_factory(1)
    kafka_send(topic, rows(0, 200))
    state = tmp_path / "state"
    log = tmp_path / "replay.log"
    with open(log, "w") as stderr:
        # Paced (about 2 s for 200 records), so that more arrive while it runs.
        proc = subprocess.Popen(
            [
                *STREAMLEARN,
                "replay",
                f"kafka://{kafka_bootstrap}/{topic}",
                "--state-dir",
                str(state),
                "--kafka-client",
                client,
                "--rate",
                "100",
                "--checkpoint-every",
                "5",
                "--checkpoint-interval",
                "0.1",
                "--inspect-json",
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        # Its first records learned (and checkpointed), the replay has fetched: its ends are
        # fixed (the log ends, or the first fetch's high-water marks when tansu reads low).
        deadline = time.monotonic() + 30
        while not learned(state):
            assert time.monotonic() < deadline, log.read_text()
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        kafka_send(topic, rows(200, 50))  # after the start: not this replay's
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()
    first = json.loads(out)
    assert first["records_learned"] == 200
    assert first["position"]["next_offsets"] == {"0": 200}

    second = replay(kafka_bootstrap, topic, state, client=client)
    assert second["records_learned"] == 250
    assert second["position"]["next_offsets"] == {"0": 250}
