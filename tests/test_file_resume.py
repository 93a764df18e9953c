"""A saved file position resumes only the file it was taken in, at a line boundary.

The first KiB of two files may be the same (a CSV header and the same first rows): the
line before the offset tells them apart. A followed file truncated and refilled past the
old size before the source looked again is read from its start.
"""

from __future__ import annotations

import logging
import time

import pytest

from streamlearn.sources.base import PositionMismatch
from streamlearn.sources.file import FileSource

#: Whole lines, more than the 1 KiB fingerprint: what the two files share.
PREFIX = b"a,b,y\n" + b"".join(b"%d,%d,%d\n" % (i, i + 1, i + 2) for i in range(200))


def drain(source: FileSource) -> list[bytes]:
    out: list[bytes] = []
    while batch := source.next_batch(100):
        out.extend(raw.value for raw in batch)
    return out


def saved_after(path, data: bytes, **kwargs) -> dict:
    """The snapshot of a source that read all of ``data`` from ``path``."""
    path.write_bytes(data)
    source = FileSource(path, **kwargs)
    drain(source)
    snapshot = source.snapshot()
    source.close()
    assert snapshot["offset"] == len(data)
    return snapshot


def test_a_file_sharing_the_first_kib_is_not_resumed_mid_line(tmp_path):
    path = tmp_path / "a.csv"
    assert len(PREFIX) > 1024
    snapshot = saved_after(path, PREFIX + b"111,22,33\n")
    # Another file: the same first KiB, and the saved offset falls inside "111,22,33".
    path.write_bytes(PREFIX + b"7,77,77\n" + b"111,22,33\n")
    with pytest.raises(PositionMismatch, match="--reset"):
        drain(FileSource(path, resume=snapshot))


def test_a_file_with_another_line_before_the_offset_is_refused(tmp_path):
    path = tmp_path / "a.csv"
    snapshot = saved_after(path, PREFIX + b"111,22,33\n")
    path.write_bytes(PREFIX + b"222,22,33\n" + b"4,5,6\n")  # a line boundary, another line
    with pytest.raises(PositionMismatch, match="--reset"):
        drain(FileSource(path, resume=snapshot))


def test_the_same_file_grown_resumes_after_its_last_line(tmp_path):
    path = tmp_path / "a.csv"
    snapshot = saved_after(path, PREFIX + b"111,22,33\n")
    with open(path, "ab") as handle:
        handle.write(b"4,5,6\n")
    assert drain(FileSource(path, resume=snapshot)) == [b"4,5,6\n"]


def test_a_replayed_file_ending_without_a_newline_resumes_at_its_end(tmp_path):
    path = tmp_path / "a.csv"
    snapshot = saved_after(path, b"a,y\n1,2\n3,4")
    assert drain(FileSource(path, resume=snapshot)) == []


def test_an_older_checkpoint_without_the_line_checksum_checks_the_newline(tmp_path):
    path = tmp_path / "a.csv"
    snapshot = saved_after(path, PREFIX + b"111,22,33\n")
    older = {k: v for k, v in snapshot.items() if k not in ("tail", "tail_bytes")}
    path.write_bytes(PREFIX + b"7,77,77\n" + b"111,22,33\n")
    with pytest.raises(PositionMismatch, match="--reset"):
        drain(FileSource(path, resume=older))
    path.write_bytes(PREFIX + b"111,22,33\n4,5,6\n")
    assert drain(FileSource(path, resume=older)) == [b"4,5,6\n"]


def test_resume_inside_an_over_long_line_still_skips_its_rest(tmp_path):
    path = tmp_path / "long.log"
    path.write_bytes(b"ok\n" + b"x" * 100 + b"\nnext\n")
    source = FileSource(path, follow=True, max_line_bytes=16, read_size=8)
    assert source.next_batch(2)[-1].truncated
    snapshot = source.snapshot()
    source.close()
    assert drain(FileSource(path, follow=True, resume=snapshot, max_line_bytes=16)) == [b"next\n"]


def test_copy_truncate_refilled_past_the_old_size_is_read_from_the_start(tmp_path, caplog):
    path = tmp_path / "live.csv"
    old = b"a,y\n" + b"".join(b"%d,%d\n" % (i, i) for i in range(200))
    path.write_bytes(old)
    source = FileSource(path, follow=True)
    assert len(drain(source)) == 201
    # copy-truncate, then the writer refills the file past the old size before the
    # source looks again: the bytes before its position are no longer the ones it read.
    new = b"a,y\n" + b"".join(b"%d,%d\n" % (i, -i) for i in range(1000, 1400))
    with open(path, "r+b") as handle:
        handle.truncate(0)
        handle.write(new)
    assert len(new) > len(old)
    with caplog.at_level(logging.WARNING, logger="streamlearn.sources.file"):
        got = drain(source)
    assert got == new.splitlines(keepends=True)
    assert sum("truncated" in message for message in caplog.messages) == 1
    source.close()


def test_a_followed_file_appended_to_while_reading_is_not_restarted(tmp_path, caplog):
    """The truncation check does not mistake ordinary appends (at any read size) for it."""
    path = tmp_path / "live.csv"
    path.write_bytes(b"a,y\n")
    source = FileSource(path, follow=True, read_size=7)
    got: list[bytes] = []
    expected = [b"a,y\n"]
    with caplog.at_level(logging.WARNING, logger="streamlearn.sources.file"):
        for i in range(50):
            line = b"%d,%d\n" % (i, i)
            expected.append(line)
            with open(path, "ab") as handle:
                handle.write(line[:2])
            got += drain(source)
            with open(path, "ab") as handle:
                handle.write(line[2:])
            got += drain(source)
            time.sleep(0.001)
    assert got == expected
    assert not caplog.messages
    source.close()


def test_replay_refuses_a_different_file_with_the_same_first_kib(tmp_path):
    """The command line says so on one line and learns nothing from the other file."""
    from streamhelpers import cli

    path, state = tmp_path / "a.csv", tmp_path / "state"
    path.write_bytes(PREFIX + b"111,22,33\n")
    cli("replay", str(path), "--state-dir", str(state))
    path.write_bytes(PREFIX + b"7,77,77\n" + b"111,22,33\n")
    result = cli("replay", str(path), "--state-dir", str(state), check=False)
    assert result.returncode == 1, result.stderr
    assert "is not the file this state was learned from" in result.stderr
    assert "--reset" in result.stderr and "Traceback" not in result.stderr
