"""Rename rotation while following: the rotated-away file is read to its end before the new one.

A writer may keep appending to ``events.csv.1`` after ``mv events.csv events.csv.1`` (it
still holds the file open): every row written to either file is read exactly once.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from streamhelpers import follow, inspect_json, sigterm, wait_for_seen
from streamlearn.sources.file import FileSource


def rows(first: int, count: int) -> bytes:
    """Distinct small rows (the model learns them without diverging)."""
    return b"".join(b"%.3f,%.3f\n" % (i / 1000, 2 * i / 1000) for i in range(first, first + count))


def lines(first: int, count: int) -> list[bytes]:
    return rows(first, count).splitlines(keepends=True)


def drain(source: FileSource, until: int, timeout: float = 10.0) -> list[bytes]:
    """Lines from ``source`` until ``until`` of them came, or ``timeout`` seconds passed."""
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(out) < until and time.monotonic() < deadline:
        batch = source.next_batch(50)
        out.extend(raw.value for raw in batch)
        if not batch:
            time.sleep(0.02)
    return out


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def rotate(path: Path, new_rows: bytes) -> Path:
    """``mv path path.1`` and a new ``path`` holding the header and ``new_rows``."""
    old = path.with_name(path.name + ".1")
    os.rename(path, old)
    path.write_bytes(b"a,y\n" + new_rows)
    return old


def test_lines_appended_to_the_rotated_file_are_read_before_the_new_file(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(b"a,y\n" + rows(0, 100))
    source = FileSource(path, follow=True, rotate_wait=0.5)
    assert drain(source, 101) == [b"a,y\n", *lines(0, 100)]
    old = rotate(path, rows(1000, 100))
    assert drain(source, 1, timeout=0.2) == []  # the old file is quiet, but not for long enough
    append(old, rows(100, 100))  # the writer still holds the old file
    got = drain(source, 201)
    assert got == [*lines(100, 100), b"a,y\n", *lines(1000, 100)]
    assert source.snapshot()["inode"] == os.stat(path).st_ino
    source.close()


def test_rotation_wait_zero_switches_at_the_old_files_end(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(b"a,y\n" + rows(0, 3))
    source = FileSource(path, follow=True, rotate_wait=0)
    assert len(drain(source, 4)) == 4
    rotate(path, rows(10, 2))
    assert drain(source, 3) == [b"a,y\n", *lines(10, 2)]
    source.close()


def test_the_position_stays_in_the_old_file_while_it_is_drained(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(b"a,y\n" + rows(0, 10))
    source = FileSource(path, follow=True, rotate_wait=30)
    drain(source, 11)
    old_inode = os.stat(path).st_ino
    old = rotate(path, rows(1000, 10))
    append(old, rows(10, 5))
    assert drain(source, 5) == lines(10, 5)
    assert drain(source, 1, timeout=0.2) == []  # at its end, the rotation is seen
    snapshot = source.snapshot()
    assert snapshot["inode"] == old_inode
    assert snapshot["offset"] == os.path.getsize(old)
    assert snapshot["draining"] is True
    source.close()


def test_restart_while_draining_resumes_the_old_file_by_identity(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(b"a,y\n" + rows(0, 10))
    source = FileSource(path, follow=True, rotate_wait=30)
    drain(source, 11)
    old = rotate(path, rows(1000, 10))
    assert drain(source, 1, timeout=0.2) == []  # rotation seen: draining the old file
    snapshot = source.snapshot()
    source.close()
    append(old, rows(10, 5))  # written while the daemon was down
    resumed = FileSource(path, follow=True, resume=snapshot, rotate_wait=0.3)
    got = drain(resumed, 16)
    assert got == [*lines(10, 5), b"a,y\n", *lines(1000, 10)]
    resumed.close()


def test_restart_after_a_rotation_while_down_drains_the_old_file_first(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(b"a,y\n" + rows(0, 10))
    source = FileSource(path, follow=True)
    drain(source, 11)
    snapshot = source.snapshot()
    source.close()
    append(path, rows(10, 5))
    rotate(path, rows(1000, 10))
    resumed = FileSource(path, follow=True, resume=snapshot, rotate_wait=0.2)
    got = drain(resumed, 16)
    assert got == [*lines(10, 5), b"a,y\n", *lines(1000, 10)]
    resumed.close()


def test_restart_while_draining_a_file_since_deleted_goes_on_with_the_new_one(tmp_path, caplog):
    path = tmp_path / "events.csv"
    path.write_bytes(b"a,y\n" + rows(0, 10))
    source = FileSource(path, follow=True, rotate_wait=30)
    drain(source, 11)
    old = rotate(path, rows(1000, 10))
    assert drain(source, 1, timeout=0.2) == []
    snapshot = source.snapshot()
    source.close()
    old.unlink()  # compressed away while the daemon was down
    with caplog.at_level(logging.WARNING, logger="streamlearn.sources.file"):
        resumed = FileSource(path, follow=True, resume=snapshot, rotate_wait=0.2)
    assert any("is gone" in message for message in caplog.messages)
    assert drain(resumed, 11) == [b"a,y\n", *lines(1000, 10)]
    resumed.close()


@pytest.mark.slow
def test_a_followed_daemon_reads_every_row_of_both_files_once(tmp_path):
    """A real ``run``: rows written to the rotated file after the rotation are learned."""
    path = tmp_path / "events.csv"
    state = tmp_path / "state"
    path.write_bytes(b"a,y\n" + rows(0, 200))
    proc = follow(path, state, rotate_wait=3)
    try:
        seen = wait_for_seen(state, 200)
        assert seen == 200
        old = rotate(path, rows(1000, 200))
        time.sleep(0.3)  # the daemon polls the rotated file at its end a few times
        append(old, rows(200, 200))
        wait_for_seen(state, 600, timeout=20)
    finally:
        stderr = sigterm(proc)
    assert proc.returncode == 0, stderr
    summary = inspect_json(state)
    assert (summary["records_seen"], summary["records_rejected"]) == (600, 0), stderr
