"""A followed CSV copy-truncated while the daemon was down (or killed before it checkpointed
the truncation) is read again from its start on restart, as a running daemon reads it.

After logrotate's copytruncate the file holds only rows written since: no header line. The
columns in force are the checkpoint's, so a restart needs no header at the file's start.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from streamhelpers import STREAMLEARN, inspect_json, records_learned, sgd_oracle
from streamlearn.sources.file import FileSource


def rows(first: int, count: int) -> bytes:
    return b"".join(
        b"%r,%r,%r\n" % (i / 100, (i % 7) / 10, 2 * i / 100 - (i % 7) / 10 + 1)
        for i in range(first, first + count)
    )


def drain(source: FileSource) -> list[bytes]:
    out: list[bytes] = []
    while batch := source.next_batch(100):
        out.extend(raw.value for raw in batch)
    return out


def _read_to_the_end(path: Path) -> dict:
    """Write a header and rows 0..100 to ``path``, follow it to its end: the source's snapshot."""
    path.write_bytes(b"a,b,y\n" + rows(0, 100))
    source = FileSource(path, follow=True)
    drain(source)
    snapshot = source.snapshot()
    source.close()
    return snapshot


@pytest.mark.parametrize("refill", [5, 500], ids=["shorter", "refilled-past-the-old-size"])
def test_a_followed_file_truncated_while_down_is_read_from_its_start(tmp_path, caplog, refill):
    path = tmp_path / "live.csv"
    snapshot = _read_to_the_end(path)
    with open(path, "r+b") as handle:  # copytruncate, then the writer goes on
        handle.truncate(0)
        handle.write(rows(100, refill))
    with caplog.at_level(logging.WARNING, logger="streamlearn.sources"):
        resumed = FileSource(path, follow=True, resume=snapshot)
    assert drain(resumed) == rows(100, refill).splitlines(keepends=True)
    assert sum("truncated" in message for message in caplog.messages) == 1, caplog.messages
    resumed.close()


def test_a_file_truncated_then_rotated_while_down_is_read_from_its_start_first(tmp_path):
    path = tmp_path / "live.csv"
    snapshot = _read_to_the_end(path)
    with open(path, "r+b") as handle:
        handle.truncate(0)
        handle.write(rows(100, 5))
    os.rename(path, tmp_path / "live.csv.1")
    path.write_bytes(b"a,b,y\n" + rows(200, 3))
    resumed = FileSource(path, follow=True, resume=snapshot, rotate_wait=0.2)
    got: list[bytes] = []
    deadline = time.monotonic() + 10
    while len(got) < 9 and time.monotonic() < deadline:
        got += drain(resumed)
        time.sleep(0.05)
    assert got == [
        *rows(100, 5).splitlines(keepends=True),
        b"a,b,y\n",
        *rows(200, 3).splitlines(keepends=True),
    ]
    resumed.close()


def _run_until_learned(path: Path, state: Path, count: int) -> str:
    proc = subprocess.Popen(
        [*STREAMLEARN, "run", str(path), "--state-dir", str(state), "--checkpoint-interval", "0.2"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while (
            records_learned(state) != count and proc.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    return stderr


@pytest.mark.slow  # two daemon runs each, ~1.7 s; the followed-file cases above stay quick
@pytest.mark.parametrize("refill", [5, 500], ids=["shorter", "refilled-past-the-old-size"])
def test_run_restarted_on_a_copy_truncated_csv_learns_the_new_rows_once(tmp_path, refill):
    path, state = tmp_path / "live.csv", tmp_path / "state"
    path.write_bytes(b"a,b,y\n" + rows(0, 100))
    _run_until_learned(path, state, 100)
    with open(path, "r+b") as handle:
        handle.truncate(0)
        handle.write(rows(100, refill))  # no header: the writer just goes on
    stderr = _run_until_learned(path, state, 100 + refill)
    assert "Traceback" not in stderr, stderr
    summary = inspect_json(state)
    assert (summary["records_learned"], summary["records_rejected"]) == (100 + refill, 0), stderr
    data = np.array(
        [[float(v) for v in line.split(b",")] for line in rows(0, 100 + refill).split()]
    )
    theta, theta0, _ = sgd_oracle(data[:, :2], data[:, 2], 0.01)
    np.testing.assert_allclose(
        [summary["weights"]["a"], summary["weights"]["b"]], theta, atol=1e-12
    )
    assert abs(summary["intercept"] - theta0) < 1e-12
