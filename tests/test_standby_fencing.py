"""Fencing of a shared state dir: an instance whose model was taken over cannot write.

Two stores on one directory stand for two instances of one group (``run --standby``): the
second takes the model over (raises the epoch); every install of the first is refused
after that, on the loop and through the forked background writer, and its half-written
file is removed, so the directory holds only the new owner's generations.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlearn.state import BackgroundWriter, CheckpointError, CheckpointStore, StateLocked
from streamlearn.state.epoch import Fence, Fenced, fenced_cause, read_epoch


def _instance(directory: Path) -> CheckpointStore:
    store = CheckpointStore(directory, shared=True)
    store.fence = Fence(store.directory)
    return store


def test_a_taken_over_store_cannot_install(tmp_path: Path) -> None:
    old, new = _instance(tmp_path), _instance(tmp_path)
    try:
        assert old.fence is not None and new.fence is not None
        assert old.fence.take_over() == 1
        assert old.save({"learned": 1}) == 1
        assert new.fence.take_over() == 2
        loaded = new.load()
        assert loaded is not None and loaded.state == {"learned": 1}
        with pytest.raises(Fenced) as refused:
            old.save({"learned": 2})
        assert (refused.value.mine, refused.value.current) == (1, 2)
        assert old.fence.refusals == 1
        assert new.save({"learned": 3}) == 2  # numbered after what the old owner wrote
        assert new.generations() == [1, 2]
        loaded = new.load()
        assert loaded is not None and loaded.state == {"learned": 3}
        assert not [p for p in tmp_path.iterdir() if ".tmp." in p.name]  # refused file removed
        assert read_epoch(tmp_path) == 2
    finally:
        old.close()
        new.close()


def test_the_forked_writer_of_a_taken_over_store_is_refused(tmp_path: Path) -> None:
    old, new = _instance(tmp_path), _instance(tmp_path)
    writer = BackgroundWriter(old, fork="always")
    try:
        assert old.fence is not None and new.fence is not None
        old.fence.take_over()
        assert writer.snapshot({"learned": 1}, tag="a") == "fork"
        writer.wait()
        new.fence.take_over()
        assert writer.snapshot({"learned": 2}, tag="b") == "fork"
        with pytest.raises(CheckpointError) as failed:
            writer.wait()
        assert fenced_cause(failed.value) is not None
        assert old.fence.refusals == 1
        assert new.generations() == [1]
        assert not [p for p in tmp_path.iterdir() if ".tmp." in p.name]
    finally:
        writer.close()
        old.close()
        new.close()


def test_the_start_state_is_fenced_too(tmp_path: Path) -> None:
    old, new = _instance(tmp_path), _instance(tmp_path)
    try:
        assert old.fence is not None and new.fence is not None
        old.fence.take_over()
        new.fence.take_over()
        with pytest.raises(Fenced):
            old.write_start(old.encode({"learned": 0}))
        assert not (tmp_path / "start.ckpt").exists()
    finally:
        old.close()
        new.close()


def test_a_shared_dir_refuses_a_plain_run_and_the_reverse(tmp_path: Path) -> None:
    shared = CheckpointStore(tmp_path / "group", shared=True)
    try:
        with pytest.raises(StateLocked):
            CheckpointStore(tmp_path / "group")
    finally:
        shared.close()
    plain = CheckpointStore(tmp_path / "plain")
    try:
        with pytest.raises(StateLocked):
            CheckpointStore(tmp_path / "plain", shared=True)
    finally:
        plain.close()


def test_a_shared_store_leaves_other_instances_temporaries(tmp_path: Path) -> None:
    first = CheckpointStore(tmp_path, shared=True)
    try:
        writing = first.temporary()
        writing.write_bytes(b"half")
        second = CheckpointStore(tmp_path, shared=True)
        second.close()
        assert writing.exists()
    finally:
        first.close()


def test_a_takeover_removes_the_files_earlier_owners_were_writing(tmp_path: Path) -> None:
    old, new = _instance(tmp_path), _instance(tmp_path)
    try:
        assert old.fence is not None
        old.fence.take_over()
        writing = old.temporary()
        writing.write_bytes(b"half a checkpoint")
        new.take_over()
        assert not writing.exists()
        with pytest.raises(Fenced):  # its install is refused, the missing file no matter
            old.install(writing)
    finally:
        old.close()
        new.close()


def test_a_key_being_written_by_another_instance_is_waited_for(tmp_path: Path) -> None:
    # Two instances of a group start at once: one has just created the key file (O_EXCL)
    # and not yet written it when the other reads it.
    import threading

    from streamlearn.state import KEY_NAME, StateKey, state_key
    from streamlearn.state.key import write_key

    secret = bytes(range(32))
    (tmp_path / KEY_NAME).touch(mode=0o600)

    def finish() -> None:
        (tmp_path / KEY_NAME).unlink()
        write_key(tmp_path, secret)

    writer = threading.Timer(0.3, finish)
    writer.start()
    try:
        key = state_key(tmp_path, create=True)
    finally:
        writer.join()
    assert key is not None and key.mac(b"x") == StateKey(secret).mac(b"x")


def test_a_takeover_does_not_wait_for_the_old_owners_directory_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An owner paused (SIGSTOP, a VM freeze) in the fsync after its rename must not hold the
    fence: the standby taking the model over would wait until it resumes. The check and the
    rename are what the fence guards."""
    import threading

    from streamlearn.state import store as store_module

    old, new = _instance(tmp_path), _instance(tmp_path)
    syncing, resume = threading.Event(), threading.Event()
    real_fsync_dir = store_module.fsync_dir

    def paused_fsync_dir(path: Path) -> None:
        if threading.current_thread() is installer:
            syncing.set()
            resume.wait(30)
        real_fsync_dir(path)

    monkeypatch.setattr(store_module, "fsync_dir", paused_fsync_dir)
    installer = threading.Thread(target=old.save, args=({"learned": 1},))
    try:
        assert old.fence is not None and new.fence is not None
        old.fence.take_over()
        installer.start()
        assert syncing.wait(30)
        took_over = threading.Thread(target=new.fence.take_over, daemon=True)
        took_over.start()
        took_over.join(5)
        assert not took_over.is_alive(), "the takeover waited for the old owner's fsync"
        assert read_epoch(tmp_path) == 2
    finally:
        resume.set()
        installer.join(30)
        old.close()
        new.close()
    assert new.fence.epoch == 2
    loaded = CheckpointStore(tmp_path, shared=True)
    try:
        got = loaded.load()
        assert got is not None and got.state == {"learned": 1}  # installed before the raise
    finally:
        loaded.close()


def test_a_takeover_waiting_for_the_fence_says_so_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An instance paused while it holds the fence (in its rename) makes the takeover wait:
    the log says what it waits for, and the takeover completes once the fence is free."""
    import fcntl
    import logging
    import os
    import threading
    import time

    from streamlearn.state.epoch import FENCE_NAME

    new = Fence(tmp_path)
    held = os.open(tmp_path / FENCE_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(held, fcntl.LOCK_EX)  # the paused instance's
    caplog.set_level(logging.WARNING, logger="streamlearn.state.epoch")
    took_over = threading.Thread(target=new.take_over, daemon=True)
    try:
        took_over.start()
        deadline = time.monotonic() + 10
        while "waiting for" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
        assert f"waiting for {tmp_path / FENCE_NAME}" in caplog.text
        assert took_over.is_alive() and read_epoch(tmp_path) == 0
    finally:
        os.close(held)  # it resumes and releases the fence
    took_over.join(10)
    assert not took_over.is_alive()
    assert (new.epoch, read_epoch(tmp_path)) == (1, 1)
