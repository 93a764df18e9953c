"""The shared store's partition subtrees: epochs made by take-over, state carried, fencing,
and the usage errors of a keyed run in a group (no broker needed)."""

from __future__ import annotations

import os
from pathlib import Path

from streamhelpers import cli
from streamlearn.scaleout.partitions import (
    epochs,
    newer_epoch,
    partition_root,
    read_owner,
    take_over,
)


def test_take_over_makes_the_next_epoch_and_carries_the_state(tmp_path: Path) -> None:
    epoch, first = take_over(tmp_path, "t", 3, "a")
    assert (epoch, first) == (1, partition_root(tmp_path, "t", 3) / "epoch-00000001")
    (first / "gen-0000000001.ckpt").write_bytes(b"generation")
    (first / "lock").write_text("123")
    (first / "keys").mkdir()
    (first / "keys" / "seg-0000000001.keys").write_bytes(b"frames")
    assert newer_epoch(first) is None

    epoch, second = take_over(tmp_path, "t", 3, "b", address="http://b:9100")
    assert epoch == 2 and newer_epoch(first) == 2 and newer_epoch(second) is None
    assert (second / "gen-0000000001.ckpt").read_bytes() == b"generation"
    assert not (second / "lock").exists()  # the new owner's learner takes its own lock
    assert (
        os.stat(second / "keys" / "seg-0000000001.keys").st_ino
        == os.stat(first / "keys" / "seg-0000000001.keys").st_ino
    )  # segments are append-only and never reopened: linked, not copied
    owner = read_owner(second)
    assert owner is not None and owner["instance"] == "b" and owner["epoch"] == 2
    assert owner["address"] == "http://b:9100"

    # A stale owner writing on in its old epoch changes nothing the new one reads.
    (first / "gen-0000000001.ckpt").write_bytes(b"stale")
    assert (second / "gen-0000000001.ckpt").read_bytes() == b"generation"

    take_over(tmp_path, "t", 3, "c")
    assert epochs(partition_root(tmp_path, "t", 3)) == [2, 3]  # the two newest are kept


def test_a_keyed_group_run_needs_a_shared_state_dir() -> None:
    result = cli("run", "kafka://127.0.0.1:1/t?group=g", "--key-by", ":key", check=False)
    assert result.returncode == 2
    assert "--state-dir" in result.stderr and "Traceback" not in result.stderr


def test_a_keyed_group_run_refuses_file_sinks(tmp_path: Path) -> None:
    result = cli(
        "run", "kafka://127.0.0.1:1/t?group=g", "--key-by", ":key",
        "--state-dir", str(tmp_path / "s"), "--dead-letter", str(tmp_path / "dead.jsonl"),
        check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "kafka://" in result.stderr and "Traceback" not in result.stderr
