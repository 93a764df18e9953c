"""A River model's block path: the collector paused while it learns, and its first checkpoint.

``Daemon._learn_rows`` turns the cyclic garbage collector off while the model learns a
block (a tree's many long-lived nodes made every young collection age them towards the
costly full ones) and must leave it as it found it, also when the model raises. A new
model's first checkpoint forks when the process grew by enough objects that pickling it
would stall the loop (``BackgroundWriter.pickle_guess``); that checkpoint must restore the
model of its moment.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from river import linear_model, tree

from streamlearn.learner import Learner
from streamlearn.loop.daemon import Daemon, RunOptions
from streamlearn.records import CsvDecoder
from streamlearn.sources.file import FileSource
from streamlearn.state import (
    FORK_GUESS_SECONDS,
    BackgroundWriter,
    CheckpointStore,
    decode,
)
from streamlearn.state import writer as writer_module

HEADER = ["x0", "x1", "x2", "x3", "y"]


@pytest.fixture
def collector():
    """The collector as the test found it, whatever the test did to it."""
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def write_rows(path: Path, n: int, seed: int = 3) -> list[tuple[dict[str, float], float]]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + rng.normal(scale=0.1, size=n)
    rows = []
    with open(path, "w") as handle:
        handle.write(",".join(HEADER) + "\n")
        for features, target in zip(X, y, strict=True):
            handle.write(",".join(f"{v:.6f}" for v in features) + f",{target:.6f}\n")
            x = {name: float(f"{v:.6f}") for name, v in zip(HEADER, features, strict=False)}
            rows.append((x, float(f"{target:.6f}")))
    return rows


def daemon_for(path: Path, model: Any, store: CheckpointStore | None = None, **options) -> Daemon:
    return Daemon(
        FileSource(path),
        CsvDecoder(HEADER),
        Learner(model),
        model_spec="test",
        store=store,
        options=RunOptions(**options),
    )


class Watching(linear_model.LinearRegression):
    """Notes whether the collector ran at each record it learns; may fail at one."""

    collecting: ClassVar[list[bool]] = []
    fail_at = 0

    def learn_one(self, x: dict[str, float], y: float, **kwargs: Any) -> None:
        Watching.collecting.append(gc.isenabled())
        if len(Watching.collecting) == Watching.fail_at:
            raise RuntimeError("the model failed")
        super().learn_one(x, y, **kwargs)


@pytest.fixture
def watching(monkeypatch):
    monkeypatch.setattr(Watching, "collecting", [])
    monkeypatch.setattr(Watching, "fail_at", 0)
    monkeypatch.setenv("STREAMLEARN_FASTPATH", "1")
    return Watching


def test_the_collector_is_off_while_a_block_is_learned_and_on_again_after(
    tmp_path, watching, collector
):
    path = tmp_path / "rows.csv"
    write_rows(path, 2999)  # with the header, three blocks of 1000 lines: none line by line
    gc.enable()
    daemon = daemon_for(path, watching())
    daemon.run()
    assert daemon.block_learner is not None  # the River block path learned it
    assert len(watching.collecting) == 2999
    assert not any(watching.collecting)
    assert gc.isenabled()


def test_a_model_that_raises_in_a_block_leaves_the_collector_on(tmp_path, watching, collector):
    path = tmp_path / "rows.csv"
    write_rows(path, 3000)
    watching.fail_at = 1500
    gc.enable()
    daemon = daemon_for(path, watching())
    with pytest.raises(RuntimeError, match="the model failed"):
        daemon.run()
    assert gc.isenabled()


def test_a_collector_turned_off_before_stays_off(tmp_path, watching, collector):
    path = tmp_path / "rows.csv"
    write_rows(path, 999)
    gc.disable()
    daemon_for(path, watching()).run()
    assert not gc.isenabled()
    assert len(watching.collecting) == 999


def test_auto_forks_a_new_models_first_checkpoint_once_the_process_grew_enough(tmp_path, forks):
    store = CheckpointStore(tmp_path)
    writer = BackgroundWriter(store, fork="auto")
    assert writer.pickle_guess() < FORK_GUESS_SECONDS  # nothing grew yet: on the loop
    grown = [[i] for i in range(200_000)]  # 200,000 small objects and more: a big model
    assert writer.pickle_guess() > FORK_GUESS_SECONDS
    assert writer.snapshot({"n": len(grown)}, tag=1) == "fork"
    writer.wait()
    # The child reported what pickling took: that, no longer the guess, decides.
    assert writer.pickle_guess() == writer.pickle_seconds < min(writer.fork_seconds)
    assert writer.snapshot({"n": 2}, tag=2) == "inline"
    writer.close()
    assert writer.durable() == [(1, 1), (2, 2)] and len(forks) == 1
    store.close()


def test_a_restored_models_first_checkpoint_goes_by_its_load_time_not_the_guess(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save({"n": 1})
    store.close()
    store = CheckpointStore(tmp_path)
    store.load()
    writer = BackgroundWriter(store, fork="auto")
    grown = [[i] for i in range(200_000)]
    assert writer.pickle_guess() == store.load_seconds < FORK_GUESS_SECONDS
    assert writer.snapshot({"n": len(grown)}, tag=2) == "inline"
    writer.close()
    store.close()


def test_a_grown_trees_first_checkpoint_is_forked_and_restores_the_tree_of_its_moment(
    tmp_path, monkeypatch, forks
):
    monkeypatch.setenv("STREAMLEARN_FASTPATH", "1")
    monkeypatch.setenv("STREAMLEARN_CHECKPOINT_FORK", "auto")
    # Whatever this test process grew by, the guess says: fork.
    monkeypatch.setattr(writer_module, "PICKLE_GUESS_SECONDS_PER_BLOCK", 1.0)
    path = tmp_path / "rows.csv"
    rows = write_rows(path, 2500)
    store = CheckpointStore(tmp_path / "state")
    daemon = daemon_for(
        path,
        tree.HoeffdingAdaptiveTreeRegressor(seed=1),
        store,
        checkpoint_every=1500,
        checkpoint_interval=3600.0,
    )
    daemon.run()
    assert daemon.block_learner is not None
    assert len(forks) == 1  # the checkpoint at line 1500; the final one is pickled on the loop
    assert store.generations() == [1, 2]
    forked = decode(store.path(1).read_bytes(), store.signing_key)
    early = forked["learner"].records_learned
    assert early == 1499  # 1500 lines: the header, then 1499 records
    final = store.load()
    assert final is not None and final.generation == 2
    assert final.state["learner"].records_learned == 2500
    store.close()

    held_out = [x for x, _ in write_rows(tmp_path / "held-out.csv", 200, seed=9)]
    for state, learned in ((forked, early), (final.state, 2500)):
        reference = tree.HoeffdingAdaptiveTreeRegressor(seed=1)
        for x, y in rows[:learned]:
            reference.predict_one(x)
            reference.learn_one(x, y)
        restored = state["learner"].model
        assert [restored.predict_one(x) for x in held_out] == [
            reference.predict_one(x) for x in held_out
        ]
    live = daemon.learner.model
    assert [live.predict_one(x) for x in held_out] == [
        final.state["learner"].model.predict_one(x) for x in held_out
    ]
