"""Two instances of one model on one state dir: the one that cannot join says, in one line,
that every instance of a group must be started with ``--standby`` (issue 15, point 4).

The holder is a ``CheckpointStore`` in this process, as a running instance holds it: a
shared lock (a ``--standby`` instance) or the exclusive one (a plain run, with its pid).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from standby_group import Instance, wait_for

from streamhelpers import STREAMLEARN, cli
from streamlearn.state import CheckpointStore, StateLocked

SOURCE = "kafka://127.0.0.1:1/t?group=g"  # never reached: the state dir is refused first


def _one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    return lines[0]


def _plain_run_beside(holder: CheckpointStore, state: Path) -> str:
    """A plain ``run`` on ``state`` while ``holder`` holds it (closed after): it exits 1, and
    this is its one line of error."""
    try:
        result = cli("run", SOURCE, "--state-dir", str(state), check=False, timeout=60)
    finally:
        holder.close()
    assert result.returncode == 1
    return _one_line_error(result.stderr)


def test_a_plain_run_beside_standby_instances_is_told_to_add_standby(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "lock").write_text("999999\n")  # a pid left by an earlier plain run
    line = _plain_run_beside(CheckpointStore(state, shared=True), state)
    assert "--standby" in line and str(state) in line
    assert "999999" not in line  # a shared lock names no owner: the old pid is not one


def test_a_second_plain_run_names_the_first_and_points_to_standby(tmp_path: Path) -> None:
    state = tmp_path / "state"
    line = _plain_run_beside(CheckpointStore(state), state)
    assert f"pid {os.getpid()}" in line and "--standby" in line


def test_a_standby_instance_beside_a_plain_run_says_the_run_lacks_standby(
    tmp_path: Path,
) -> None:
    # Through the command line a --standby instance opens the state dir only once the
    # group elected it (a broker is needed): the store's refusal is what it prints.
    state = tmp_path / "state"
    first = CheckpointStore(state)
    try:
        with pytest.raises(StateLocked) as caught:
            CheckpointStore(state, shared=True)
    finally:
        first.close()
    message = str(caught.value)
    assert f"pid {os.getpid()}" in message
    assert "without --standby" in message and "\n" not in message
    assert caught.value.owner == str(os.getpid())


@pytest.mark.kafka
@pytest.mark.slow
def test_on_a_real_group_the_second_kind_is_refused_either_way(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic_factory(1)
    source = f"kafka://{kafka_bootstrap}/{topic}?group={topic}"  # the group Instance joins
    state = tmp_path / "state"
    active = Instance(kafka_bootstrap, topic, state, tmp_path, 0)
    try:
        wait_for(lambda: active.role() == "active")
        plain = cli("run", source, "--state-dir", str(state), check=False, timeout=120)
        assert plain.returncode == 1
        line = _one_line_error(plain.stderr.strip().splitlines()[-1])
        assert "--standby instances of a group" in line
        assert active.role() == "active" and active.proc.poll() is None
        active.proc.send_signal(signal.SIGTERM)
        assert active.proc.wait(timeout=60) == 0
    finally:
        active.kill()

    alone = tmp_path / "alone"
    with open(tmp_path / "plain.log", "w") as log:
        first = subprocess.Popen(
            [*STREAMLEARN, "run", source, "--state-dir", str(alone)], stderr=log, text=True
        )
    standby = None
    try:
        wait_for(lambda: (alone / "lock").is_file() and (alone / "lock").read_text().strip())
        standby = Instance(kafka_bootstrap, topic, alone, tmp_path, 1)
        assert standby.proc.wait(timeout=120) == 1
        line = standby.log_text().strip().splitlines()[-1]
        assert line.startswith("Error: ") and "Traceback" not in standby.log_text()
        assert f"without --standby (pid {first.pid})" in line
        assert first.poll() is None  # the plain run learns on, alone
    finally:
        if standby is not None:
            standby.kill()
        first.terminate()
        first.wait(timeout=60)
