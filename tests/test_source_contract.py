"""One contract over every Source: resume, idle poll, partial lines, close twice; plus tail -F."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamlearn.sources.base import PositionMismatch, Source
from streamlearn.sources.file import FileSource
from streamlearn.testing import ListSource


class FileHarness:
    """A live file written line by line, read by a following FileSource."""

    follow = True

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "stream.jsonl"
        self.path.write_bytes(b"")

    def append(self, data: bytes) -> None:
        with open(self.path, "ab") as handle:
            handle.write(data)

    def open(self, resume=None) -> Source:
        return FileSource(self.path, follow=self.follow, resume=resume, read_size=7)


class ListHarness:
    """The in-memory test source (live mode), held to the same contract."""

    def __init__(self, tmp_path: Path) -> None:
        self.items: list[bytes] = []
        self.pending = b""
        self.sources: list[ListSource] = []

    def append(self, data: bytes) -> None:
        data = self.pending + data
        *complete, self.pending = data.split(b"\n")
        new = [line + b"\n" for line in complete]
        self.items.extend(new)
        for source in self.sources:
            source.extend(new)

    def open(self, resume=None) -> Source:
        source = ListSource(list(self.items), resume=resume, follow=True)
        self.sources.append(source)
        return source


def _kafka_harness(tmp_path: Path, request: pytest.FixtureRequest):
    from conftest import KafkaHarness

    request.applymarker(pytest.mark.kafka)
    return KafkaHarness(tmp_path, request.getfixturevalue("kafka_bootstrap"))


HARNESSES = [FileHarness, ListHarness, "kafka"]


def drain(source: Source, limit: int = 1000) -> list[bytes]:
    out = []
    for _ in range(limit):
        batch = source.next_batch(3)
        if not batch:
            break
        out.extend(raw.value for raw in batch)
    return out


@pytest.fixture(params=HARNESSES, ids=lambda h: h if isinstance(h, str) else h.__name__)
def harness(request, tmp_path):
    if request.param == "kafka":
        made = _kafka_harness(tmp_path, request)
        yield made
        made.close()
    else:
        yield request.param(tmp_path)


def test_idle_poll_returns_empty_list(harness):
    source = harness.open()
    assert source.next_batch(10) == []
    assert source.next_batch(10) == []
    source.close()


def test_partial_last_line_is_never_emitted(harness):
    source = harness.open()
    harness.append(b'{"a": 1}\n{"a": ')
    assert drain(source) == [b'{"a": 1}\n']
    harness.append(b"2}\n")
    assert drain(source) == [b'{"a": 2}\n']
    source.close()


def test_resume_after_last_item_returned(harness):
    harness.append(b"".join(b'{"i": %d}\n' % i for i in range(10)))
    source = harness.open()
    first = source.next_batch(4)
    assert [raw.value for raw in first] == [b'{"i": %d}\n' % i for i in range(4)]
    snapshot = source.snapshot()
    source.close()
    resumed = harness.open(resume=snapshot)
    assert drain(resumed) == [b'{"i": %d}\n' % i for i in range(4, 10)]
    resumed.close()


def test_batches_respect_max_items(harness):
    harness.append(b"".join(b"%d\n" % i for i in range(10)))
    source = harness.open()
    assert len(source.next_batch(4)) == 4
    assert len(source.next_batch(100)) == 6
    source.close()


def test_close_twice_is_fine(harness):
    source = harness.open()
    source.close()
    source.close()


# -- files only: identity, rotation, truncation, long lines -------------------------------


def test_resume_on_a_different_file_is_refused(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"x,y\n1,2\n")
    source = FileSource(path)
    drain(source)
    snapshot = source.snapshot()
    source.close()
    path.write_bytes(b"x,y\n9,9\n")
    with pytest.raises(PositionMismatch, match="--reset"):
        FileSource(path, resume=snapshot)


def test_resume_on_the_same_file_grown_reads_only_new_lines(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"x,y\n1,2\n")
    source = FileSource(path)
    assert drain(source) == [b"x,y\n", b"1,2\n"]
    snapshot = source.snapshot()
    source.close()
    with open(path, "ab") as handle:
        handle.write(b"3,4\n")
    assert drain(FileSource(path, resume=snapshot)) == [b"3,4\n"]


def test_replay_emits_a_final_line_without_newline_and_ends(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"x,y\n1,2")
    source = FileSource(path, follow=False)
    assert drain(source) == [b"x,y\n", b"1,2"]
    assert source.exhausted
    assert source.snapshot()["offset"] == 7


def test_follow_survives_rename_rotation(tmp_path):
    path = tmp_path / "live.log"
    path.write_bytes(b"1\n2\n")
    # rotate_wait=0: switch as soon as the old file is read to its end (the default waits
    # for it to be quiet a while: tests/test_file_rotation.py)
    source = FileSource(path, follow=True, rotate_wait=0)
    assert drain(source) == [b"1\n", b"2\n"]
    with open(path, "ab") as handle:
        handle.write(b"3\n")
    os.rename(path, tmp_path / "live.log.1")
    path.write_bytes(b"4\n5\n")
    # The old file is drained first, then the new one is followed from its start.
    assert drain(source) + drain(source) == [b"3\n", b"4\n", b"5\n"]
    with open(path, "ab") as handle:
        handle.write(b"6\n")
    assert drain(source) == [b"6\n"]
    assert source.snapshot()["inode"] == os.stat(path).st_ino


def test_follow_survives_copy_truncate(tmp_path):
    path = tmp_path / "live.log"
    path.write_bytes(b"1\n2\n3\n")
    source = FileSource(path, follow=True)
    assert drain(source) == [b"1\n", b"2\n", b"3\n"]
    with open(path, "r+b") as handle:
        handle.truncate(0)
    assert drain(source) == []  # notices the truncation
    with open(path, "ab") as handle:
        handle.write(b"7\n8\n")
    assert drain(source) == [b"7\n", b"8\n"]


def test_follow_waits_for_a_file_that_does_not_exist_yet(tmp_path):
    path = tmp_path / "later.log"
    source = FileSource(path, follow=True)
    assert source.next_batch(5) == []
    path.write_bytes(b"1\n")
    assert drain(source) == [b"1\n"]


def test_over_long_line_is_handed_out_once_truncated_then_skipped(tmp_path):
    path = tmp_path / "long.log"
    path.write_bytes(b"ok\n" + b"x" * 100 + b"\nnext\n")
    source = FileSource(path, follow=False, max_line_bytes=16, read_size=8)
    batch = source.next_batch(10) + source.next_batch(10)
    assert [(raw.value, raw.truncated) for raw in batch] == [
        (b"ok\n", False),
        (b"x" * 16, True),
        (b"next\n", False),
    ]


def test_resume_inside_an_over_long_line_skips_its_rest(tmp_path):
    path = tmp_path / "long.log"
    path.write_bytes(b"ok\n" + b"x" * 100 + b"\nnext\n")
    source = FileSource(path, follow=True, max_line_bytes=16, read_size=8)
    first = source.next_batch(2)
    assert first[-1].truncated
    snapshot = source.snapshot()
    source.close()
    assert drain(FileSource(path, follow=True, resume=snapshot, max_line_bytes=16)) == [b"next\n"]
