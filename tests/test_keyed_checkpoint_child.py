"""A keyed run's checkpoints in the forked child: the keys changed are pickled and written off
the loop, and a SIGKILL at any moment of it resumes to the same models as one pass.

``STREAMLEARN_CHECKPOINT_FORK=always`` makes every checkpoint but the last (which waits, on
the loop) a forked child's: the child writes the keys changed since the last checkpoint into
a segment of its own, the parent points its index there once the checkpoint is durable.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_checkpoint_background import children_of, gone
from test_keyed_run import FEATURES, by_key, keyed_rows, learners

from streamhelpers import cli, kill_at_random_moments, wait_for
from streamlearn.app import build
from streamlearn.config import Settings


def write_stream(path: Path, count: int, seed: int, unlabeled_every: int = 17) -> list[int]:
    """A keyed CSV of ``count`` rows (every ``unlabeled_every``-th unlabeled); the labeled rows."""
    keys, X, y = keyed_rows(count, seed=seed)
    labeled = []
    with open(path, "w") as handle:
        handle.write(",".join(["store", *FEATURES, "y"]) + "\n")
        for i, key in enumerate(keys):
            target = "" if i % unlabeled_every == 5 else repr(float(y[i]))
            if target:
                labeled.append(i)
            handle.write(",".join([key, *(repr(float(v)) for v in X[i]), target]) + "\n")
    return [keys[i] for i in labeled]  # type: ignore[misc]


def assert_same_keys(want: dict[str, Any], got: dict[str, Any], labeled_keys: list[str]) -> None:
    assert sorted(want) == sorted(got)
    for key, rows in by_key(labeled_keys).items():
        assert got[key].records_learned == len(rows), key
        assert got[key].model.weights == want[key].model.weights, key
        assert got[key].model.intercept == want[key].model.intercept, key
        assert got[key].summary() == want[key].summary(), key


def run_keyed(path: Path, state: Path, **extra: Any) -> int:
    """A keyed replay in this process; the keys the forked children wrote."""
    settings = Settings(
        source=str(path), follow=False, target="y", key_by="store", state_dir=str(state),
        rolling_window=50, **extra,
    )  # fmt: skip
    app = build(settings)
    try:
        app.daemon.run()
        return app.daemon.keyed.models.forked.keys
    finally:
        app.close()


@pytest.mark.slow
@pytest.mark.parametrize("max_live", [100, 7])
def test_forked_children_write_the_changed_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_live: int
) -> None:
    """All keys live (the children's keys taken up), or 7 (most evicted, so written by the
    parent, before the child's checkpoint is durable): each key as checkpointed on the loop."""
    path = tmp_path / "keyed.csv"
    labeled = write_stream(path, 3000, seed=5)
    options = {"checkpoint_every": 150, "max_live_keys": max_live}
    monkeypatch.setenv("STREAMLEARN_CHECKPOINT_FORK", "never")
    assert run_keyed(path, tmp_path / "loop", **options) == 0
    monkeypatch.setenv("STREAMLEARN_CHECKPOINT_FORK", "always")
    written = run_keyed(path, tmp_path / "child", **options)
    if max_live == 100:
        assert written > 0  # keys changed since the last checkpoint, written by the children
    assert_same_keys(learners(tmp_path / "loop"), learners(tmp_path / "child"), labeled)
    # The index the children's keys were taken into lists every key, as the loop's does.
    want = cli("inspect", str(tmp_path / "loop"), "--keys", "--json").stdout
    assert cli("inspect", str(tmp_path / "child"), "--keys", "--json").stdout == want


@pytest.mark.slow
def test_sigkill_during_keyed_child_checkpoints_resumes_as_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keyed.csv"
    labeled = write_stream(path, 5000, seed=21)
    common = ["--key-by", "store", "--rolling-window", "50", "--max-live-keys", "7"]
    one_pass = tmp_path / "one"
    cli("replay", str(path), "--state-dir", str(one_pass), *common)
    state = tmp_path / "killed"
    args = ["replay", str(path), "--state-dir", str(state), *common]
    monkeypatch.setenv("STREAMLEARN_CHECKPOINT_FORK", "always")
    # A child stopped halfway through its generation file, its keys' segment written: the
    # daemon is killed then (the child dies with it).
    launcher = [sys.executable, str(Path(__file__).with_name("pausing_checkpoints.py"))]
    proc = subprocess.Popen(
        [*launcher, "60", *args, "--checkpoint-every", "200"], stderr=subprocess.DEVNULL
    )

    # The file and the child together: the daemon also writes such a file itself, briefly.
    def child_writing() -> list[int]:
        writing = list(state.glob(f"next.tmp.{proc.pid}.*"))
        return children_of(proc.pid) if writing else []

    wait_for(child_writing, "a child writing", 60, every=0.02)
    children = children_of(proc.pid)
    assert len(children) == 1
    proc.kill()
    proc.wait()
    wait_for(lambda: gone(children[0]), "the child to end with the daemon", 60, every=0.02)
    assert list((state / "keys").glob("seg-*.keys"))  # the child had written keys
    # Then kills at random moments, each run's checkpoints forked.
    rng = random.Random(77)
    kills = kill_at_random_moments(
        [*args, "--rate", "1500"], state, (97, 1, 300, 13, 250, 3, 40, 500, 9, 150, 60), rng, 0.4
    )
    assert kills >= 10
    cli(*args)  # to the end
    assert_same_keys(learners(one_pass), learners(state), labeled)
    assert os.environ["STREAMLEARN_CHECKPOINT_FORK"] == "always"
