"""The state directory deleted under a running daemon: said once, recreated, locked again,
and the checkpoint written there (real processes)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamhelpers import STREAMLEARN, cli, inspect_json, records_learned, sigterm, wait_for


def _delete_under(state: Path) -> None:
    """Delete a state dir a running daemon uses, as `rm -rf` would, but gone at once.

    The daemon notices a missing lock file within a second and recreates the directory: a
    plain rmtree could meet the new files halfway ("Directory not empty"). Renamed first, the
    path vanishes in one step, and the old tree is removed out of the daemon's way.
    """
    gone = state.with_name(state.name + ".deleted")
    state.rename(gone)
    shutil.rmtree(gone)


def _rows(start: int, stop: int) -> str:
    return "".join(f"{i % 10},{(i * 7) % 11 / 10},{i % 5}\n" for i in range(start, stop))


@pytest.mark.slow
def test_state_dir_deleted_while_running_is_recreated_locked_and_checkpointed(tmp_path):
    path, state = tmp_path / "events.csv", tmp_path / "state"
    path.write_text("a,b,y\n" + _rows(0, 300))
    args = [*STREAMLEARN, "run", str(path), "--state-dir", str(state)]
    first = subprocess.Popen(
        [*args, "--checkpoint-interval", "0.3"], stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: records_learned(state) == 300, "300 records checkpointed", 15)
        _delete_under(state)
        # Noticed within a few seconds, without a checkpoint being due in between.
        wait_for(lambda: (state / "lock").exists(), "the state dir recreated", 5, every=0.02)
        second = cli(*args[3:], timeout=20, check=False)
        assert second.returncode == 1 and "in use by another streamlearn" in second.stderr
        with open(path, "a") as handle:
            handle.write(_rows(300, 400))
        wait_for(lambda: records_learned(state) == 400, "400 records checkpointed", 15)
    finally:
        stderr = sigterm(first, timeout=20)
    assert first.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert stderr.count("was deleted") == 1, stderr
    assert inspect_json(state)["records_learned"] == 400


def test_sigterm_right_after_the_state_dir_was_deleted_writes_the_checkpoint(tmp_path):
    path, state = tmp_path / "events.csv", tmp_path / "state"
    path.write_text("a,b,y\n" + _rows(0, 200))
    proc = subprocess.Popen(
        [*STREAMLEARN, "run", str(path), "--state-dir", str(state), "--checkpoint-interval", "60"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: (state / "start.ckpt").exists(), "the run to start", 15, every=0.02)
        time.sleep(0.5)  # the 200 rows learned
        _delete_under(state)
    finally:
        stderr = sigterm(proc, timeout=20)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "FileNotFoundError" not in stderr
    assert inspect_json(state)["records_learned"] == 200


def test_a_store_whose_deleted_dir_another_process_locked_is_lost(tmp_path):
    # The process that locks the recreated directory first owns the model; the other stops.
    import pytest

    from streamlearn.state import CheckpointError, CheckpointStore

    state = tmp_path / "state"
    first = CheckpointStore(state)
    first.save({"records_learned": 1})
    shutil.rmtree(state)
    second = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from streamlearn.state import CheckpointStore; "
            f"store = CheckpointStore({str(state)!r}); print('locked', flush=True); "
            "time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert second.stdout is not None and second.stdout.readline() == "locked\n"
        with pytest.raises(CheckpointError, match=f"another streamlearn \\(pid {second.pid}\\)"):
            first.save({"records_learned": 2})
        assert not list(state.glob("gen-*.ckpt"))
    finally:
        second.kill()
        second.wait()
        first.close()
