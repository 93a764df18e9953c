"""Checkpoints pickled in a forked child: the same bytes, the same model, the same guarantees.

A checkpoint that takes long to pickle is pickled by a forked child while the loop
learns on (``BackgroundWriter``). These tests hold it to what the loop-thread path
promises: the file restores exactly the model, counters and positions of the moment
it was taken; a SIGKILL at any moment loses nothing and learns nothing twice; a
failed child is reported, never silent, and the next checkpoint still gets written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from river import forest

from streamhelpers import (
    assert_learned_once,
    cli,
    make_regression,
    wait_for,
    write_csv,
)
from streamlearn.learner import Learner
from streamlearn.loop.daemon import Daemon, RunOptions
from streamlearn.models.sgd import SGDRegressor
from streamlearn.records import CsvDecoder
from streamlearn.sources.file import FileSource
from streamlearn.state import (
    BackgroundWriter,
    CheckpointError,
    CheckpointStore,
    decode,
    dump,
    fork_mode,
)
from streamlearn.state.child import CHILD_SHA256

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")


def assert_reaped(pid: int) -> None:
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # not our child any more: reaped, no zombie


class FailsInChild:
    """Pickles in the process that made it; in any other (a forked child) it fails."""

    def __init__(self, how: str = "raise", gate: Path | None = None) -> None:
        self.owner = os.getpid()
        self.how = how
        self.gate = gate  # the child fails only once this file exists

    def __reduce__(self):
        if os.getpid() != self.owner:
            while self.gate is not None and not self.gate.exists():
                time.sleep(0.01)
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
            raise RuntimeError("cannot pickle in a child")
        return (FailsInChild, (self.how,))


def test_a_forked_checkpoint_is_byte_for_byte_the_loop_thread_one(tmp_path, forks):
    X, y, _ = make_regression(300, d=3, seed=5)
    model = forest.ARFRegressor(n_models=3, seed=1)
    for i in range(len(y)):
        model.learn_one({f"x{j}": float(X[i, j]) for j in range(3)}, float(y[i]))
    state = {"learner": Learner(model), "source": {"kind": "list", "index": 300}}
    store = CheckpointStore(tmp_path)
    writer = BackgroundWriter(store, fork="always")
    assert writer.snapshot(state, tag="t1") == "fork"
    writer.wait()
    assert writer.durable() == [(1, "t1")]
    writer.close()
    assert store.path(1).read_bytes() == store.encode(state)  # CPython's SHA-256 = OpenSSL's
    assert not list(tmp_path.glob("*.tmp.*"))
    assert len(forks) == 1
    assert_reaped(forks[0])
    store.close()


def replay(path: Path, store: CheckpointStore, model, every: int) -> tuple[Daemon, list[dict]]:
    """A replay whose checkpoints are all forked; what the loop held at each one."""
    features = ["x0", "x1", "x2"]
    daemon = Daemon(
        FileSource(path),
        CsvDecoder([*features, "y"]),
        Learner(model, rolling_window=50),
        model_spec="ARFRegressor(n_models=3, seed=1)",
        store=store,
        options=RunOptions(checkpoint_every=every, batch_size=every),
    )
    held_out, _, _ = make_regression(40, d=3, seed=99)
    rows = [{name: float(v) for name, v in zip(features, row, strict=True)} for row in held_out]
    seen: list[dict] = []
    take = daemon.checkpoint

    def checkpoint_and_remember(*, wait: bool = False) -> None:
        learner = daemon.learner
        seen.append(
            {
                "source": daemon.source.snapshot(),
                "counters": daemon.counters.as_dict(),
                "records_learned": learner.records_learned,
                "metrics": learner.summary(),
                "rolling": learner.rolling_summary(),
                "predictions": [learner.predict(x) for x in rows],
            }
        )
        take(wait=wait)

    daemon.checkpoint = checkpoint_and_remember  # type: ignore[method-assign]
    daemon.held_out = rows  # type: ignore[attr-defined]
    return daemon, seen


def test_every_forked_checkpoint_restores_the_model_of_its_moment(tmp_path, forks, monkeypatch):
    monkeypatch.setenv("STREAMLEARN_CHECKPOINT_FORK", "always")
    X, y, _ = make_regression(600, d=3, seed=8)
    path = tmp_path / "rows.csv"
    write_csv(path, X, y, unlabeled={17, 230, 231})
    store = CheckpointStore(tmp_path / "state", keep=1000)
    # The loop only checkpoints when the writer is free: take every due one, so that
    # the model keeps changing while each child pickles.
    monkeypatch.setattr(BackgroundWriter, "idle", property(lambda self: True))
    daemon, seen = replay(path, store, forest.ARFRegressor(n_models=3, seed=1), every=60)
    daemon.run()
    assert len(forks) >= 8  # every checkpoint but the last (on the loop, at the end)
    by_position = {json.dumps(s["source"], sort_keys=True): s for s in seen}
    assert len(by_position) == len(seen)
    generations = store.generations()
    assert len(generations) == len(seen)
    for generation in generations:
        state = decode(store.path(generation).read_bytes(), store.key)
        expected = by_position[json.dumps(state["source"], sort_keys=True)]
        learner = state["learner"]
        assert [learner.predict(x) for x in daemon.held_out] == expected["predictions"]
        assert state["counters"] == expected["counters"]
        assert learner.records_learned == expected["records_learned"]
        assert learner.summary() == expected["metrics"]
        assert learner.rolling_summary() == expected["rolling"]
    assert seen[-1]["counters"]["records_seen"] == 600
    for pid in forks:
        assert_reaped(pid)
    assert not list((tmp_path / "state").glob("*.tmp.*"))
    store.close()


def test_auto_forks_only_when_pickling_costs_more_than_a_fork(tmp_path, forks):
    store = CheckpointStore(tmp_path)
    writer = BackgroundWriter(store, fork="auto")
    assert writer.snapshot({"n": 1}, tag=1) == "inline"  # a new, small state
    writer.wait()
    writer.pickle_seconds = 10.0  # as if that one had held the loop up for 10 s
    assert writer.snapshot({"n": 2}, tag=2) == "fork"
    writer.wait()
    # The child reported how long it pickled, far less than its fork: back on the loop.
    assert writer.pickle_seconds < min(writer.fork_seconds)
    assert writer.snapshot({"n": 3}, tag=3) == "inline"
    writer.close()
    assert writer.durable() == [(1, 1), (2, 2), (3, 3)]
    assert store.load().state == {"n": 3}
    assert (writer.forked, writer.pickled, len(forks)) == (1, 2, 1)
    store.close()


def test_auto_starts_from_the_time_the_restored_state_took_to_load(tmp_path, forks):
    store = CheckpointStore(tmp_path)
    store.save({"n": 1})
    store.close()
    store = CheckpointStore(tmp_path)
    assert store.load_seconds is None
    assert store.load().state == {"n": 1}
    assert 0 < store.load_seconds < 10
    writer = BackgroundWriter(store, fork="auto")
    assert writer.pickle_seconds == store.load_seconds
    writer.close()
    store.load_seconds = 10.0  # a big model took 10 s to load: its first checkpoint forks
    writer = BackgroundWriter(store, fork="auto")
    assert writer.snapshot({"n": 2}, tag=2) == "fork"
    writer.close()
    assert writer.durable() == [(2, 2)] and len(forks) == 1
    store.close()


@pytest.mark.parametrize(
    ("how", "reason"),
    [("raise", "RuntimeError: cannot pickle in a child"), ("kill", "killed by SIGKILL")],
)
def test_a_failed_child_is_reported_and_the_next_checkpoint_is_written(
    tmp_path, forks, how, reason
):
    store = CheckpointStore(tmp_path)
    writer = BackgroundWriter(store, fork="always")
    assert writer.snapshot({"n": 1, "part": FailsInChild(how)}, tag=1) == "fork"
    with pytest.raises(CheckpointError, match=reason):
        writer.wait()
    assert store.generations() == [] and not list(tmp_path.glob("*.tmp.*"))
    assert_reaped(forks[0])
    # After a failed child the next checkpoint is pickled on the loop, then forks again.
    assert writer.snapshot({"n": 2, "part": FailsInChild(how)}, tag=2) == "inline"
    writer.wait()
    assert writer.snapshot({"n": 3}, tag=3) == "fork"
    writer.close()
    assert writer.durable() == [(1, 2), (2, 3)]
    assert store.load().state == {"n": 3}
    store.close()


def test_wait_reports_a_failure_only_once_everything_queued_is_written(tmp_path, forks):
    store = CheckpointStore(tmp_path)
    writer = BackgroundWriter(store, fork="always")
    gate = tmp_path / "fail now"
    writer.snapshot({"part": FailsInChild(gate=gate)}, tag="child")
    writer.submit(store.encode({"n": 2}), tag="after")  # queued while the child still runs
    gate.touch()
    with pytest.raises(CheckpointError, match="cannot pickle in a child"):
        writer.wait()
    # The shutdown checkpoint is written next, by the loop: nothing may still be in flight.
    assert writer.idle and store.generations() == [1]
    assert writer.durable() == [(1, "after")]
    writer.close()
    store.close()


def test_the_daemon_reports_a_failed_child_loudly_and_keeps_checkpointing(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("STREAMLEARN_CHECKPOINT_FORK", "always")
    X, y, _ = make_regression(1000, d=3, seed=2)
    path = tmp_path / "rows.csv"
    write_csv(path, X, y)
    store = CheckpointStore(tmp_path / "state", keep=1000)
    daemon, _ = replay(path, store, SGDRegressor(lr=0.01), every=50)
    daemon.extensions["fragile"] = FailsInChild()
    monkeypatch.setattr(BackgroundWriter, "idle", property(lambda self: True))
    with caplog.at_level(logging.ERROR):
        daemon.run()
    # Forks fail, the checkpoint after each is pickled on the loop and written: of 20,
    # at least one in three fails (a failure is reported at the next checkpoint or batch).
    assert daemon.checkpoint_failures >= 6
    assert "checkpoint failed, will retry" in caplog.text
    assert "cannot pickle in a child" in caplog.text
    assert len(store.generations()) >= 3
    final = store.load().state
    assert final["counters"]["records_seen"] == 1000
    assert isinstance(final["extensions"]["fragile"], FailsInChild)
    store.close()


def test_the_fork_mode_setting_is_read_once_and_a_bad_one_named(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path)
    monkeypatch.setenv("STREAMLEARN_CHECKPOINT_FORK", " Always ")
    assert fork_mode() == "always"
    monkeypatch.setenv("STREAMLEARN_CHECKPOINT_FORK", "sometimes")
    allowed = "STREAMLEARN_CHECKPOINT_FORK='sometimes': use one of auto, always, never"
    with pytest.raises(ValueError, match=f"^{allowed}$"):
        BackgroundWriter(store)
    writer = BackgroundWriter(store, fork="never")  # an explicit mode does not read it
    assert writer.snapshot({"n": 1}, tag=1) == "inline"
    writer.close()
    assert store.load().state == {"n": 1}
    store.close()


def test_fork_failure_falls_back_to_the_loop(tmp_path, monkeypatch, caplog):
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    store = CheckpointStore(tmp_path)
    writer = BackgroundWriter(store, fork="always")
    with caplog.at_level(logging.WARNING):
        assert writer.snapshot({"n": 1}, tag=1) == "inline"
    writer.close()
    assert "cannot fork for a checkpoint" in caplog.text
    assert writer.durable() == [(1, 1)] and store.load().state == {"n": 1}
    assert not list(tmp_path.glob("*.tmp.*"))
    store.close()


class Guarded:
    """A part another thread changes under a lock, as the pseudo-label side loop does."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.a = self.b = 0

    def snapshot_locks(self) -> tuple[threading.Lock]:
        return (self.lock,)

    def __getstate__(self) -> dict[str, int]:
        with self.lock:
            return {"a": self.a, "b": self.b}

    def __setstate__(self, state: dict[str, int]) -> None:
        self.lock = threading.Lock()
        self.a, self.b = state["a"], state["b"]


def change_under_lock(part: Guarded, holding: threading.Event, go_on: threading.Event) -> None:
    with part.lock:
        part.a += 1
        holding.set()
        go_on.wait()
        part.b += 1


@pytest.mark.parametrize("hold", [True, False])
def test_locks_other_threads_change_parts_under_are_held_across_the_fork(tmp_path, forks, hold):
    part = Guarded()
    holding, go_on = threading.Event(), threading.Event()
    thread = threading.Thread(target=change_under_lock, args=(part, holding, go_on))
    thread.start()
    holding.wait()  # the thread is halfway through a change, holding the lock
    store = CheckpointStore(tmp_path)
    writer = BackgroundWriter(store, fork="always", child_timeout=1.0)
    if hold:
        # The fork waits for the change to finish: the child sees a whole change.
        threading.Timer(0.2, go_on.set).start()
        writer.snapshot({"part": part}, tag=1, hold=part.snapshot_locks())
        writer.wait()
        restored = store.load().state["part"]
        assert (restored.a, restored.b) == (1, 1)
    else:
        # Without it the child's copy of the lock stays taken for ever: the child hangs,
        # is killed after child_timeout, and that is reported.
        writer.snapshot({"part": part}, tag=1)
        go_on.set()
        with pytest.raises(CheckpointError, match="no sign of life in 1 s and was killed"):
            writer.wait()
        assert store.generations() == []
    thread.join()
    writer.close()
    assert_reaped(forks[0])
    store.close()


def test_the_child_holds_no_inherited_descriptor(tmp_path, forks, monkeypatch):
    store = CheckpointStore(tmp_path / "state")
    writer = BackgroundWriter(store, fork="always")
    writer.child_pause = 1.0
    writer.snapshot({"n": 1, "pad": b"x" * 100_000}, tag=1)
    deadline = time.monotonic() + 20
    while not list((tmp_path / "state").glob("next.tmp.*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    targets = []
    for fd in os.listdir(f"/proc/{forks[0]}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{forks[0]}/fd/{fd}"))
        except FileNotFoundError:
            continue
    writer.close()
    assert not any(target.endswith("/lock") for target in targets), targets
    assert any("next.tmp." in target for target in targets), targets
    assert store.load().state["n"] == 1
    store.close()


def test_the_lock_free_sha256_is_sha256():
    blob = os.urandom(100_000)
    assert CHILD_SHA256(blob).digest() == hashlib.sha256(blob).digest()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # dead, waiting for init to reap it


@pytest.mark.slow
def test_sigkill_during_a_forked_checkpoint_keeps_the_previous_one_and_resumes_exactly(
    tmp_path,
):
    X, y, _ = make_regression(1200, d=3, seed=31)
    unlabeled = set(range(5, 1200, 9))
    path = tmp_path / "replay.csv"
    write_csv(path, X, y, unlabeled=unlabeled)
    state, predictions = tmp_path / "state", tmp_path / "pred.jsonl"
    args = [
        "replay",
        str(path),
        "--state-dir",
        str(state),
        "--predictions",
        str(predictions),
        "--checkpoint-every",
        "40",
        "--rate",
        "400",
    ]
    env = {**os.environ, "STREAMLEARN_CHECKPOINT_FORK": "always"}

    def start(pause: float) -> subprocess.Popen:
        launcher = [sys.executable, str(Path(__file__).with_name("pausing_checkpoints.py"))]
        return subprocess.Popen([*launcher, str(pause), *args], env=env, stderr=subprocess.DEVNULL)

    # A first run writes some generations and is killed.
    proc = start(0.0)
    wait_for(lambda: len(list(state.glob("gen-*.ckpt"))) >= 2, "a checkpoint", 60, every=0.02)
    proc.kill()
    proc.wait()
    before = {p.name: p.read_bytes() for p in state.glob("gen-*.ckpt")}
    # The second run's first child stops halfway through its file: kill the daemon then.
    proc = start(60.0)
    wait_for(lambda: list(state.glob(f"next.tmp.{proc.pid}.*")), "a child writing", 60, every=0.02)
    children = children_of(proc.pid)
    assert len(children) == 1
    proc.kill()
    proc.wait()
    wait_for(lambda: gone(children[0]), "the child to end with the daemon", 60, every=0.02)
    assert {p.name: p.read_bytes() for p in state.glob("gen-*.ckpt")} == before
    assert list(state.glob(f"next.tmp.{proc.pid}.*"))  # half-written: never a generation
    # Resume to the end: the lock is free, the torn file is swept, every record once.
    cli("replay", str(path), "--state-dir", str(state), "--predictions", str(predictions))
    assert not list(state.glob("*.tmp.*"))
    assert_learned_once(state, X, y, unlabeled, predictions)


def test_pickling_leaves_the_garbage_collector_as_it_found_it():
    # It is paused while a state is pickled (its collections would walk every object
    # of a big model); the speed-up is measured in bench/bench_replay.py.
    import gc

    assert gc.isenabled()
    dump({"n": 1})
    assert gc.isenabled()
    gc.disable()
    try:
        dump({"n": 1})
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert pickle.loads(dump({"n": 2})) == {"n": 2}


def test_a_divergence_after_a_failed_background_write_restores_the_last_good_model(tmp_path):
    """The divergence guard waits for the writer before it loads the newest checkpoint; a
    write that failed meanwhile is counted and reported, and the generation before it is
    restored, rather than the error escaping from the loop."""
    from streamlearn.app import build
    from streamlearn.config import Settings

    data = tmp_path / "s.csv"
    data.write_text("a,y\n" + "".join(f"{i % 5},{2 * (i % 5) + 1}\n" for i in range(200)))
    app = build(Settings(source=str(data), follow=False, state_dir=tmp_path / "st", reset=True))
    try:
        daemon = app.daemon
        daemon.run()  # ends with a durable checkpoint
        good = dict(daemon.learner.model.weights)

        class FailedWriter:
            def wait(self) -> None:
                raise CheckpointError("disk full")

        daemon.writer = FailedWriter()
        daemon.learner.model.weights["a"] = float("nan")
        daemon.guard.restore({}, float("nan"))
        assert daemon.checkpoint_failures == 1
        assert daemon.counters.divergence_events == 1
        assert daemon.learner.model.weights == good
    finally:
        app.daemon.writer = None
        app.close()
