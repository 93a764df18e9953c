"""A full disk (state dir, dead letters, predictions) pauses the daemon: nothing corrupted,
nothing lost, no traceback; it goes on when space returns (real processes, a small tmpfs).

The tmpfs is mounted by the test, so these run as root; elsewhere they are skipped with
the reason (in CI, where they must run, that is a failure)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from prom_server import free_port
from streamhelpers import (
    STREAMLEARN,
    fill_disk,
    inspect_json,
    records_learned,
    sgd_oracle,
    sigterm,
    small_tmpfs,
    wait_for,
)
from streamlearn.state import CheckpointStore


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for this test, unmounted after it."""
    with small_tmpfs(tmp_path, "2m") as mount:
        yield mount


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _paused_metric(port: int) -> float | None:
    _, body = _get(f"http://127.0.0.1:{port}/metrics")
    for line in body.splitlines():
        if line.startswith('streamlearn_paused{reason="disk_full"}'):
            return float(line.split()[-1])
    return None


def _rows(start: int, stop: int) -> str:
    """Good rows, every third one non-numeric (a dead letter) and every fifth unlabeled."""
    lines = []
    for i in range(start, stop):
        a, b = (i % 10) / 10, ((i * 7) % 11) / 10
        if i % 3 == 0:
            lines.append(f"{a},bad{i:06d}{'x' * 60},1\n")
        elif i % 5 == 0:
            lines.append(f"{a},{b},\n")
        else:
            lines.append(f"{a},{b},{2 * a - b + 1}\n")
    return "".join(lines)


def _oracle(stop: int) -> tuple[np.ndarray, float, int]:
    """The sgd weights after one pass over rows 0..stop (bad and unlabeled rows skipped)."""
    rows = [i for i in range(stop) if i % 3 and i % 5]
    X = np.array([[(i % 10) / 10, ((i * 7) % 11) / 10] for i in rows])
    y = 2 * X[:, 0] - X[:, 1] + 1
    theta, theta0, _ = sgd_oracle(X, y, 0.01)
    return theta, theta0, len(rows)


def _fill_after_the_first_rows(proc: subprocess.Popen, path: Path, state: Path, disk: Path) -> Path:
    """Once rows 0..300 are checkpointed, fill ``disk`` and append rows 300..3000; the filler."""
    wait_for(lambda: records_learned(state) == _oracle(300)[2], "the first rows", proc=proc)
    filler = fill_disk(disk)
    with open(path, "a") as handle:
        handle.write(_rows(300, 3000))
    return filler


def _check_learned_once(state: Path, stop: int) -> None:
    summary = inspect_json(state)
    theta, theta0, learned = _oracle(stop)
    assert summary["records_learned"] == learned
    np.testing.assert_allclose([summary["weights"]["a"], summary["weights"]["b"]], theta)
    assert abs(summary["intercept"] - theta0) < 1e-9


def _check_each_once(path: Path, expected: int) -> None:
    entries = [json.loads(line) for line in path.read_text().splitlines()]  # no torn line
    offsets = [entry["position"]["offset"] for entry in entries]
    assert len(offsets) == expected == len(set(offsets))


def _run(path: Path, state: Path, *extra: str, port: int | None = None) -> subprocess.Popen:
    args = [*STREAMLEARN, "run", str(path), "--state-dir", str(state)]
    args += ["--checkpoint-interval", "0.2", "--rotate-wait", "0.5", *extra]
    if port is not None:
        args += ["--metrics-port", str(port)]
    return subprocess.Popen(args, stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen) -> tuple[int, str]:
    started = time.monotonic()
    stderr = sigterm(proc, timeout=20)
    assert time.monotonic() - started < 2.0, "SIGTERM took longer than 2 s"
    return proc.returncode, stderr


@pytest.mark.slow
def test_a_full_dead_letter_disk_pauses_until_space_returns(tmp_path, small_disk):
    path, state = tmp_path / "rows.csv", tmp_path / "state"
    dead, predictions = small_disk / "dead.jsonl", small_disk / "predictions.jsonl"
    path.write_text("a,b,y\n" + _rows(0, 300))
    port = free_port()
    proc = _run(
        path, state, "--dead-letter", str(dead), "--predictions", str(predictions), port=port
    )
    try:
        filler = _fill_after_the_first_rows(proc, path, state, small_disk)
        wait_for(lambda: _get(f"http://127.0.0.1:{port}/readyz")[0] == 503, "not ready", proc=proc)
        _, body = _get(f"http://127.0.0.1:{port}/readyz")
        assert "disk" in body and "full" in body, body
        assert _paused_metric(port) == 1.0
        paused_at = records_learned(state)
        time.sleep(1.0)  # paused: the checkpoint does not move
        assert records_learned(state) == paused_at < _oracle(3000)[2]
        filler.unlink()
        wait_for(lambda: records_learned(state) == _oracle(3000)[2], "all rows learned", proc=proc)
        assert _get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        assert _paused_metric(port) == 0.0
    finally:
        code, stderr = _stop(proc)
    assert code == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.count("No space left") == 1, stderr
    _check_learned_once(state, 3000)
    _check_each_once(dead, len([i for i in range(3000) if i % 3 == 0]))
    _check_each_once(predictions, len([i for i in range(3000) if i % 3 and i % 5 == 0]))


@pytest.mark.slow
def test_sigterm_on_a_full_dead_letter_disk_is_one_line_and_loses_nothing(tmp_path, small_disk):
    path, state, dead = tmp_path / "rows.csv", tmp_path / "state", small_disk / "dead.jsonl"
    path.write_text("a,b,y\n" + _rows(0, 300))
    proc = _run(path, state, "--dead-letter", str(dead))
    try:
        filler = _fill_after_the_first_rows(proc, path, state, small_disk)
        wait_for(lambda: "No space left" in _peek(proc), "the pause", proc=proc)
    finally:
        code, stderr = _stop(proc)
    assert code == 1, stderr
    assert "Traceback" not in stderr, stderr
    filler.unlink()
    _check_restart_learns_the_rest(path, state, "--dead-letter", str(dead))
    _check_each_once(dead, len([i for i in range(3000) if i % 3 == 0]))


@pytest.mark.slow
def test_a_full_state_dir_pauses_and_sigterm_then_loses_nothing(tmp_path, small_disk):
    path, state = tmp_path / "rows.csv", small_disk / "state"
    path.write_text("a,b,y\n" + _rows(0, 300))
    port = free_port()
    proc = _run(path, state, port=port)
    try:
        filler = _fill_after_the_first_rows(proc, path, state, small_disk)
        wait_for(lambda: _get(f"http://127.0.0.1:{port}/readyz")[0] == 503, "not ready", proc=proc)
        assert "full" in _get(f"http://127.0.0.1:{port}/readyz")[1]
        assert _paused_metric(port) == 1.0
    finally:
        code, stderr = _stop(proc)
    assert code == 1, stderr
    assert "Traceback" not in stderr and "No space left" in stderr.splitlines()[-1], stderr
    assert stderr.count("No space left") == 2, stderr  # the pause, and the one-line exit
    filler.unlink()
    _check_restart_learns_the_rest(path, state)


def test_a_state_dir_full_before_the_run_starts_waits_for_space(tmp_path, small_disk):
    path, state = tmp_path / "rows.csv", small_disk / "state"
    path.write_text("a,b,y\n" + _rows(0, 300))
    CheckpointStore(state).close()  # a state dir made, with no checkpoint yet
    _check_a_run_waits_for_space(path, state, fill_disk(small_disk))


def test_a_new_state_dir_on_a_full_disk_waits_for_space(tmp_path, small_disk):
    # The key that signs the checkpoints is made at the first start: on a full disk it is
    # written before the first checkpoint, once space returns.
    path, state = tmp_path / "rows.csv", small_disk / "state"
    path.write_text("a,b,y\n" + _rows(0, 300))
    _check_a_run_waits_for_space(path, state, fill_disk(small_disk))


def test_a_pipe_or_terminal_as_dead_letter_sink_is_not_fsynced(tmp_path):
    # /dev/stdout is a pipe here: fsync would fail with EINVAL.
    path = tmp_path / "rows.csv"
    path.write_text("a,b,y\n1,2,3\n1,x,3\n4,5,6\n")
    for state in ([], ["--state-dir", str(tmp_path / "state")]):
        result = subprocess.run(
            [*STREAMLEARN, "replay", str(path), "--dead-letter", "/dev/stdout", *state],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        [letter] = [json.loads(line) for line in result.stdout.splitlines()]
        assert letter["reason"] == "non_numeric"


_PEEKED: dict[int, str] = {}


def _peek(proc: subprocess.Popen) -> str:
    """What the daemon logged so far (read without blocking; kept for ``communicate``)."""
    import fcntl

    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    try:
        chunk = os.read(fd, 1 << 20)
    except BlockingIOError:
        chunk = b""
    _PEEKED[proc.pid] = _PEEKED.get(proc.pid, "") + chunk.decode(errors="replace")
    return _PEEKED[proc.pid]


def _check_restart_learns_the_rest(path: Path, state: Path, *extra: str) -> None:
    proc = _run(path, state, *extra)
    try:
        wait_for(lambda: records_learned(state) == _oracle(3000)[2], "all rows learned", proc=proc)
    finally:
        code, stderr = _stop(proc)
    assert code == 0, stderr
    _check_learned_once(state, 3000)


def _check_a_run_waits_for_space(path: Path, state: Path, filler: Path) -> None:
    """A run started on the full disk pauses, then learns every row once ``filler`` is gone."""
    proc = _run(path, state)
    try:
        wait_for(lambda: "No space left" in _peek(proc), "the pause", proc=proc)
        filler.unlink()
        wait_for(lambda: records_learned(state) == _oracle(300)[2], "the rows learned", proc=proc)
    finally:
        code, stderr = _stop(proc)
    assert code == 0 and "Traceback" not in stderr, stderr
    _check_learned_once(state, 300)
