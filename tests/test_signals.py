"""Real processes and signals: SIGKILL at any moment loses and duplicates nothing; SIGTERM and
SIGINT are honoured within a second in every state the daemon can be in."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from streamhelpers import (
    STREAMLEARN,
    cli,
    inspect_json,
    records_learned,
    sigterm,
    state_and_sinks,
    wait_for,
)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


@pytest.mark.slow
def test_sigkill_before_the_first_checkpoint_duplicates_no_dead_letter_or_prediction(tmp_path):
    # Bad rows (dead letters) and unlabeled rows (predictions), 1,000 of each, replayed slowly
    # enough to be killed mid-way, long before the first checkpoint is due.
    rows = []
    for i in range(1000):
        rows.append(f"{i},1,{i}")  # good
        rows.append(f"{i},oops{i},1")  # non_numeric: a dead letter
        rows.append(f"{i},2,")  # unlabeled: a prediction
    path = tmp_path / "rows.csv"
    path.write_text("a,b,y\n" + "\n".join(rows) + "\n")
    state, dead, predictions = tmp_path / "state", tmp_path / "dead.jsonl", tmp_path / "pred.jsonl"
    common = ["replay", str(path), *state_and_sinks(state, dead, predictions)]
    proc = subprocess.Popen(
        [*STREAMLEARN, *common, "--rate", "3000", "--checkpoint-interval", "3600"],
        stderr=subprocess.DEVNULL,
    )
    try:
        # Past the sinks' buffers: some entries have reached the files, no checkpoint has.
        wait_for(
            lambda: _size(dead) > 20_000 and _size(predictions) > 20_000, "sink output", every=0.01
        )
        assert not list(state.glob("gen-*.ckpt"))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    cli(*common)
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert len(letters) == 1000
    assert len({entry["position"]["offset"] for entry in letters}) == 1000
    predicted = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(predicted) == 1000
    assert len({entry["position"]["offset"] for entry in predicted}) == 1000
    assert inspect_json(state)["records_learned"] == 1000


def test_sigkill_while_waiting_for_the_file_then_restart_follows_it(tmp_path):
    # The start state of a run whose file was not there yet resumes as a fresh start.
    path, state = tmp_path / "events.jsonl", tmp_path / "state"
    args = [*STREAMLEARN, "run", str(path), "--state-dir", str(state)]
    proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (state / "start.ckpt").exists(), "the start state", every=0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    path.write_text("".join(f'{{"a": {i}, "y": {2 * i}}}\n' for i in range(50)))
    proc = subprocess.Popen(
        [*args, "--checkpoint-interval", "0.2"], stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: records_learned(state) == 50, "50 records learned", every=0.01)
    finally:
        stderr = sigterm(proc, timeout=20)
    assert proc.returncode == 0, stderr
    assert not (state / "start.ckpt").exists()


# -- SIGTERM and SIGINT are honoured within a second in every state ---------------------------


def _signal_and_time(proc: subprocess.Popen, signum: int) -> tuple[float, str]:
    """Send ``signum``; seconds until the process exited, and its stderr."""
    started = time.monotonic()
    proc.send_signal(signum)
    try:
        _, stderr = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        raise AssertionError(f"still running 10 s after {signal.Signals(signum).name}") from None
    return time.monotonic() - started, stderr or ""


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once it is closed


def _waiting(tmp_path: Path, state: str) -> tuple[list[str], str]:
    """The command line of a daemon in ``state``, and the log line that says it is there."""
    if state == "csv_file_not_there":
        return ["run", str(tmp_path / "later.csv")], "waiting for"
    if state == "csv_header_not_there":
        (tmp_path / "empty.csv").write_text("a,b")  # a header line not finished yet
        return ["run", str(tmp_path / "empty.csv")], "waiting for"
    if state == "jsonl_file_not_there":
        return ["run", str(tmp_path / "later.jsonl")], "waiting for"
    if state == "broker_unreachable":
        return ["run", f"kafka://127.0.0.1:{_closed_port()}/topic"], ""
    if state == "draining_a_rotated_file":
        path = tmp_path / "events.csv"
        path.write_text("a,y\n1,2\n")
        return ["run", str(path), "--rotate-wait", "60"], "rotated"
    assert state == "an_endless_line"
    return ["replay", "/dev/zero", "--format", "jsonl", "--max-line-bytes", "1000"], ""


STATES = [
    "csv_file_not_there",
    "csv_header_not_there",
    "jsonl_file_not_there",
    "broker_unreachable",
    "draining_a_rotated_file",
    "an_endless_line",
]


# Slow as a whole: ten daemons, most of them waiting 1-3 s for their state; make check keeps
# test_an_endless_line_is_dead_lettered_once and test_cli's SIGTERM exit for the quick loop.
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.parametrize("state", STATES)
def test_a_stop_signal_is_honoured_within_a_second(tmp_path, state, signum):
    args, logged = _waiting(tmp_path, state)
    log = tmp_path / "daemon.log"
    with open(log, "w") as handle:  # a file: looked at while it runs, read whole at the end
        proc = subprocess.Popen(
            [*STREAMLEARN, *args, "--checkpoint-interval", "0.2"], stderr=handle, cwd=tmp_path
        )
    try:
        # Its imports take seconds on a loaded machine (or beside other tests): the state is
        # timed from its first log line, or from the line that says it is there.
        wait_for(lambda: log.read_text().strip(), "its first log line", 60, proc=proc)
        if state == "draining_a_rotated_file":
            time.sleep(1.5)
            (tmp_path / "events.csv").rename(tmp_path / "events.csv.1")
            (tmp_path / "events.csv").write_text("a,y\n3,4\n")
        wait_for(lambda: logged in log.read_text(), f"{logged!r} in its log", 30, proc=proc)
        time.sleep(0.5 if logged else 1.5)  # well into the state
        assert proc.poll() is None, log.read_text()
    finally:
        seconds, _ = _signal_and_time(proc, signum)
    stderr = log.read_text()
    assert "Traceback" not in stderr, stderr
    assert logged in stderr, stderr
    assert proc.returncode == 0, stderr
    # Honoured at once (within a second); the rest is the final checkpoint and closing down,
    # with room for a loaded machine.
    assert seconds < 2.0, f"{seconds:.2f} s:\n{stderr}"


def test_an_endless_line_is_dead_lettered_once(tmp_path):
    dead = tmp_path / "dead.jsonl"
    args = ["replay", "/dev/zero", "--format", "jsonl", "--max-line-bytes", "1000"]
    proc = subprocess.Popen(
        [*STREAMLEARN, *args, "--dead-letter", str(dead), "--checkpoint-interval", "0.2"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: _size(dead) > 0, "the dead letter", every=0.01)
        time.sleep(1.0)  # more of the line read: no second dead letter
    finally:
        seconds, stderr = _signal_and_time(proc, signal.SIGTERM)
    assert proc.returncode == 0 and seconds < 2.0, stderr
    [letter] = [json.loads(line) for line in dead.read_text().splitlines()]
    assert letter["reason"] == "too_long" and len(letter["raw"]) <= 1000 * 4


@pytest.mark.parametrize("source", ["kafka:/localhost/topic", "kafka:localhost:9092/t"])
def test_a_kafka_url_with_one_slash_is_a_usage_error_at_once(tmp_path, source):
    started = time.monotonic()
    result = cli("run", source, check=False, timeout=30, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "kafka://HOST:PORT/TOPIC" in result.stderr
    assert time.monotonic() - started < 10
    (tmp_path / "x.csv").write_text("a,y\n1,2\n")
    result = cli("replay", "x.csv", "--dead-letter", source, check=False, timeout=30, cwd=tmp_path)
    assert result.returncode == 2 and "kafka://HOST:PORT/TOPIC" in result.stderr, result.stderr
