"""The keyed model store: spilled keys come back the same bits, checkpoints resume every key,
the spill directory goes at exit, and every size a stream controls is bounded."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from keyed_run import KEYS, Run, codec, new_learner, reference, rows, same

from streamlearn.keys import KeyedModels, KeyRejected, LearnerCodec
from streamlearn.keys.segments import segment_number
from streamlearn.keys.tempdir import PREFIX, SpillDir
from streamlearn.learner import Learner
from streamlearn.models.sgd import SGDRegressor
from streamlearn.state import CheckpointError, CheckpointStore

HERE = Path(__file__).resolve().parent


def learn_all(models: KeyedModels[Learner], records) -> None:
    for key, x, y in records:
        models.get(key).step(x, y)


def assert_same_as(models: KeyedModels[Learner], expected: dict[str, Learner]) -> None:
    assert len(models) == len(expected)
    for key, learner in expected.items():
        got = models.peek(key)
        assert got is not None, key
        assert same(got, learner), key


def segment_files(directory: Path) -> list[int]:
    return sorted(n for n in (segment_number(p.name) for p in directory.iterdir()) if n is not None)


# -- spilling ---------------------------------------------------------------------------------


def test_max_live_5_over_50_keys_gives_the_unbounded_learners_bit_for_bit():
    records = rows()
    bounded = KeyedModels(codec(), max_live=5, segment_bytes=16384)
    unbounded = KeyedModels(codec(), max_live=1000)
    try:
        learn_all(bounded, records)
        learn_all(unbounded, records)
        assert bounded.spills > 1000 and bounded.loads > 1000  # it did spill, again and again
        assert unbounded.spills == 0 and bounded.live == 5 and unbounded.live == KEYS
        # What was written over and over is collected as it goes: the disk holds about the
        # keys' latest states, not every spill.
        log = bounded.log
        on_disk = sum(log.size(n) for n in segment_files(bounded.directory))
        assert log.bytes_written > 20 * on_disk and on_disk < 3 * sum(log.live.values()) + 32768
        expected = reference(records)
        assert_same_as(bounded, expected)
        assert_same_as(unbounded, expected)
        weights = {k: bounded.peek(k).model.weights for k in expected}
        assert weights == {k: unbounded.peek(k).model.weights for k in expected}
    finally:
        bounded.close()
        unbounded.close()


def test_a_spilled_key_keeps_its_place_in_its_stream():
    # Learned 3 records, spilled, read back, learned 1 more: as 4 records in one go.
    models = KeyedModels(codec(), max_live=1)
    try:
        for i in range(4):
            models.get("a").step({"x0": float(i)}, 2.0 * i)
            models.get("b").step({"x0": 1.0}, 1.0)  # pushes "a" out every time
        single = new_learner()
        for i in range(4):
            single.step({"x0": float(i)}, 2.0 * i)
        assert same(models.peek("a"), single)
        assert models.peek("a").records_learned == 4
    finally:
        models.close()


def test_predicting_does_not_rewrite_a_key_and_an_unknown_key_is_none():
    models = KeyedModels(codec(), max_live=1)
    try:
        models.get("a").step({"x0": 1.0}, 1.0)
        models.get("b").step({"x0": 1.0}, 1.0)  # "a" spilled (it changed)
        assert models.spills == 1
        assert models.peek("a") is not None  # read back to predict, "b" spilled
        assert models.peek("b") is not None  # "a" unchanged since read: dropped, not written
        assert (models.spills, models.dropped) == (2, 1)
        assert models.peek("never") is None and "never" not in models and len(models) == 2
    finally:
        models.close()


def test_shared_objects_are_not_copied_into_every_key():
    frozen = SGDRegressor(lr=0.1)
    frozen.weights.update({f"x{j}": 1.0 for j in range(200)})
    plain = LearnerCodec(lambda: Learner(SGDRegressor(lr=0.1), baseline=frozen))
    shared = LearnerCodec(
        lambda: Learner(SGDRegressor(lr=0.1), baseline=frozen), shared={"baseline": frozen}
    )
    learner = plain.fresh("a")
    assert len(shared.dump(learner)) < len(plain.dump(learner)) - 200 * 8
    assert shared.load(shared.dump(learner)).baseline is frozen
    assert plain.load(plain.dump(learner)).baseline is not frozen


def test_many_keys_split_the_index_and_come_back(tmp_path):
    store = CheckpointStore(tmp_path)
    models = KeyedModels(
        LearnerCodec(lambda: Learner(SGDRegressor(lr=0.1), rolling_window=4)),
        directory=tmp_path / "keys",
        key=store.signing_key,
        max_live=10,
    )
    models.index.cache_shards = 4  # the index mostly on disk
    for i in range(3000):
        models.get(f"user-{i}").step({"x0": 1.0}, float(i))
    manifest = models.checkpoint()
    assert models.index.shards > 40 and models.index.shard_reads > 100
    models.close()
    again = KeyedModels(
        codec(), directory=tmp_path / "keys", key=store.signing_key, manifest=manifest
    )
    assert len(again) == 3000 and manifest.table.count == 3000
    for i in (0, 17, 1500, 2999):
        learner = again.peek(f"user-{i}")
        assert learner.records_learned == 1 and learner.summary()["mae"] == float(i)
    listed = {key: (records, score) for key, records, score in again.entries()}
    assert len(listed) == 3000 and listed["user-42"] == (1, 42.0)
    again.close()
    store.close()


# -- bounds -----------------------------------------------------------------------------------


def test_a_spill_that_fails_loses_no_learner(monkeypatch):
    models = KeyedModels(codec(), max_live=1)
    try:
        models.get("a").step({"x0": 1.0}, 1.0)

        def full(*args, **kwargs):
            raise OSError(28, "No space left on device")

        with monkeypatch.context() as patch:
            patch.setattr(models.log, "append", full)
            with pytest.raises(OSError):
                models.get("b")
        learner = models.peek("a")
        assert learner is not None and learner.records_learned == 1
        models.get("b").step({"x0": 1.0}, 1.0)
        models.get("c")  # space again: "a" and "b" go to disk, one learner stays
        assert (models.spills, models.live) == (2, 1)
        assert models.peek("a").records_learned == 1 and models.peek("b").records_learned == 1
    finally:
        models.close()


def test_keys_are_bounded():
    models = KeyedModels(codec(), max_live=2, max_keys=3)
    try:
        with pytest.raises(KeyRejected) as long:
            models.get("k" * 257)
        assert long.value.reason == "key_too_long"
        models.get("k" * 256)
        with pytest.raises(KeyRejected) as empty:
            models.get("")
        assert empty.value.reason == "missing_key"
        models.get("b"), models.get("c")
        with pytest.raises(KeyRejected) as many:
            models.get("d")
        assert many.value.reason == "too_many_keys"
        models.get("b")  # a key held is still served
        assert len(models) == 3
    finally:
        models.close()
    with pytest.raises(ValueError, match="max_live"):
        KeyedModels(codec(), max_live=0)


def test_a_state_read_for_the_wrong_key_is_refused(tmp_path):
    store = CheckpointStore(tmp_path)
    models = KeyedModels(codec(), directory=tmp_path / "keys", key=store.signing_key, max_live=1)
    models.get("a").step({"x0": 1.0}, 1.0)
    models.get("b").step({"x0": 1.0}, 2.0)
    models.get("c")  # "b" spilled
    a, b = models.index.get("a"), models.index.get("b")
    models.index.put("a", b._replace(records=a.records))  # an index that points elsewhere
    with pytest.raises(CheckpointError, match="key 'b'"):
        models.peek("a")
    models.close()
    store.close()


# -- checkpoints ------------------------------------------------------------------------------


def test_checkpoints_resume_every_key_and_old_segments_go(tmp_path):
    records = rows()
    run = Run(tmp_path)
    for stop in range(150, len(records) + 1, 150):
        run.learn(records, stop)
        run.checkpoint()
    segments = segment_files(tmp_path / "keys")
    total = sum((tmp_path / "keys" / f"seg-{n:010d}.keys").stat().st_size for n in segments)
    assert run.keys.log.bytes_written > 5 * total  # written many times over, collected
    run.close()
    again = Run(tmp_path)
    assert again.position == len(records)
    assert_same_as(again.keys, reference(records))
    again.close()


def test_a_checkpoint_writes_the_keys_changed_not_the_keys_held(tmp_path):
    store = CheckpointStore(tmp_path)
    models = KeyedModels(codec(), directory=tmp_path / "keys", key=store.signing_key)
    for i in range(2000):
        models.get(f"k{i}").step({"x0": 1.0}, 1.0)
    models.checkpoint()
    blob = len(models.codec.dump(models.peek("k1")))
    before = models.log.bytes_written
    models.get("k7").step({"x0": 1.0}, 2.0)
    manifest = models.checkpoint()
    written = models.log.bytes_written - before
    assert blob < written < blob + 10_000  # one key and one shard of about 64 entries
    assert len(store.encode({"keys": manifest})) < 2000 * 10  # the table, not the models
    models.close()
    store.close()


def crash(state_dir: Path, kill_at: int, stage: str, every: int = 150) -> None:
    """Run tests/keyed_run.py on ``state_dir`` until it kills itself at ``kill_at``."""
    command = [sys.executable, str(HERE / "keyed_run.py"), str(state_dir)]
    command += ["--kill-at", str(kill_at), "--stage", stage, "--every", str(every)]
    child = subprocess.run(command, capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()


@pytest.mark.parametrize("stage", ["spill", "manifest", "synced", "generation"])
def test_a_crash_at_any_stage_loses_nothing(tmp_path, stage):
    records = rows()
    kill_at = 1000 + 37
    crash(tmp_path, kill_at, stage)
    run = Run(tmp_path)
    checkpointed = kill_at if stage == "generation" else 900  # every 150
    assert run.position == checkpointed
    # The position and the keys agree: each key is its records before the position.
    assert_same_as(run.keys, reference(records[:checkpointed]))
    run.learn(records, len(records))
    assert_same_as(run.keys, reference(records))
    run.close()


@pytest.mark.slow
def test_ten_kills_at_random_moments_then_the_end_equals_one_pass(tmp_path):
    records = rows()
    chooser = random.Random(11)
    kill_at = 0
    for _ in range(10):
        kill_at += chooser.randrange(50, 280)
        stage = chooser.choice(["spill", "manifest", "synced", "generation"])
        crash(tmp_path, kill_at, stage, every=97)
    run = Run(tmp_path)
    assert_same_as(run.keys, reference(records[: run.position]))
    run.learn(records, len(records))
    for _ in range(3):  # compaction, then two durable checkpoints that no longer need the old
        run.checkpoint()
    assert_same_as(run.keys, reference(records))
    on_disk = sum(run.keys.log.size(n) for n in segment_files(tmp_path / "keys"))
    assert on_disk < 2 * sum(run.keys.log.live.values()) + 64 * 1024
    run.close()


# -- the temporary spill directory -------------------------------------------------------------

_SPILL_AND_EXIT = """
import os, signal, sys
from keyed_run import codec, rows
from streamlearn.keys import KeyedModels
models = KeyedModels(codec(), max_live=3)
for key, x, y in rows(200):
    models.get(key).step(x, y)
print(models.directory, flush=True)
assert models.spills and any(models.directory.glob("seg-*"))
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_spill_dir_is_removed_at_exit_without_a_state_dir(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(HERE)}
    done = subprocess.run(
        [sys.executable, "-c", _SPILL_AND_EXIT, "exit"], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    spill = Path(done.stdout.decode().strip())
    assert spill.parent == tmp_path and spill.name.startswith(PREFIX)
    assert not spill.exists()
    # Killed, it cannot clean up: the next run that spills removes what it left.
    killed = subprocess.run(
        [sys.executable, "-c", _SPILL_AND_EXIT, "kill"], env=env, capture_output=True, timeout=60
    )
    assert killed.returncode == -signal.SIGKILL
    left = Path(killed.stdout.decode().strip())
    assert left.exists()
    held = SpillDir(tmp_path)
    try:
        assert not left.exists() and held.path.exists()
        assert SpillDir(tmp_path).path.exists() and held.path.exists()  # a live one stays
    finally:
        held.close()


def test_a_reader_sees_the_last_checkpoint_while_the_run_goes_on(tmp_path):
    records = rows()
    run = Run(tmp_path)
    run.learn(records, 1200)
    run.checkpoint()
    manifest = run.store.load().state["keys"]
    run.learn(records, 2000)  # spills after the checkpoint: the reader does not see them
    reader = KeyedModels(
        codec(),
        directory=tmp_path / "keys",
        key=run.store.signing_key,
        manifest=manifest,
        read_only=True,
    )
    expected = reference(records[:1200])
    assert_same_as(reader, expected)
    listed = {key: (count, score) for key, count, score in reader.entries()}
    assert {key: count for key, (count, _) in listed.items()} == {
        key: learner.records_learned for key, learner in expected.items()
    }
    # Every key counts once in the restored histogram of scores.
    assert reader.scores.cumulative()[-1] + reader.scores.unscored == len(expected)
    with pytest.raises(CheckpointError, match="read-only"):
        reader.get("a new key")
    reader.close()
    run.close()
