"""LocalBroker: starts, answers, freezes, stops; the ``broker`` command runs until Ctrl+C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamlearn.broker import (
    BrokerError,
    BrokerNotFound,
    LocalBroker,
    find_tansu,
    free_port,
    metadata_answers,
)

pytestmark = pytest.mark.kafka


def answers(broker: LocalBroker) -> bool:
    return metadata_answers("127.0.0.1", broker.port, timeout=0.5)


def test_a_started_broker_answers_and_a_stopped_one_is_gone(broker: LocalBroker) -> None:
    assert broker.running and answers(broker)
    assert broker.bootstrap == f"127.0.0.1:{broker.port}"
    pid = broker.pid
    broker.stop()
    assert not broker.running and not answers(broker)
    assert pid is not None and not Path(f"/proc/{pid}").exists()
    broker.stop()  # twice is fine


def test_it_serves_kafka_clients(broker: LocalBroker) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("hello", 2, 1)])
    assert "hello" in admin.list_topics()
    admin.close()


def _thread_states(pid: int) -> set[str]:
    states = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        states.add(stat[stat.rindex(")") + 2])
    return states


def test_pause_freezes_it_and_resume_thaws_it(broker: LocalBroker) -> None:
    broker.pause()
    assert broker.paused and broker.running
    # Every thread, at once: a thread still running would answer (seen under load in CI).
    assert broker.pid is not None and _thread_states(broker.pid) <= {"T", "t"}
    assert not answers(broker)  # the port is open, but nobody replies
    broker.resume()
    assert not broker.paused and answers(broker)


def test_a_paused_broker_still_stops(broker: LocalBroker) -> None:
    broker.pause()
    started = time.monotonic()
    broker.stop()
    assert not broker.running
    assert time.monotonic() - started < 5


def test_context_manager_starts_and_stops() -> None:
    try:
        find_tansu()
    except BrokerNotFound as exc:
        pytest.skip(str(exc))
    with LocalBroker() as local:
        assert answers(local)
        port = local.port
    assert not metadata_answers("127.0.0.1", port, timeout=0.5)


def test_a_taken_port_is_a_clear_error(broker: LocalBroker) -> None:
    second = LocalBroker(port=broker.port, start_timeout=5)
    with pytest.raises(BrokerError, match=r"AddrInUse|did not answer"):
        second.start()
    assert not second.running
    assert answers(broker)  # the first one is unharmed


def test_a_binary_that_is_not_there_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMLEARN_TANSU_BIN", "/nonexistent/tansu")
    with pytest.raises(BrokerNotFound, match="/nonexistent/tansu"):
        find_tansu()
    with pytest.raises(BrokerNotFound):
        LocalBroker().start()


def test_a_broker_that_dies_at_once_shows_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'no storage for you' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(BrokerError, match=r"(?s)exited with code 3.*no storage for you"):
        LocalBroker(binary=str(fake)).start()


def test_port_validation() -> None:
    with pytest.raises(ValueError, match="port"):
        LocalBroker(port=70000)


def test_broker_command_prints_the_address_and_stops_on_ctrl_c(broker: LocalBroker) -> None:
    broker.stop()  # only to make sure tansu is available; the command starts its own
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from streamlearn.cli.broker import broker_command; broker_command()",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line == f"127.0.0.1:{port}"
        assert metadata_answers("127.0.0.1", port, timeout=1)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert not metadata_answers("127.0.0.1", port, timeout=0.5)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
