"""Keyed ``sgd`` replays on the compiled keyed path (``loop.keyblocks``) against the record
path (``STREAMLEARN_FASTPATH=0``) and numpy: every key's learner to the last bit (weights,
metrics, window, curve, drift monitor), the whole stream's summary, predictions and dead
letters byte for byte."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_keyed_run import learners

from streamhelpers import cli, invoke, kill_at_random_moments, sgd_oracle
from streamlearn.keys import keyids

FEATURES = ("x0", "x1", "x2")


def write(path: Path, count: int, keys: int, seed: int, *, messy: bool, drift: bool = False) -> tuple[list[str], np.ndarray, np.ndarray, set[int]]:  # fmt: skip
    """Rows of ``keys`` keys interleaved at random, the key column second. ``messy``: some
    rows unlabeled, without a key, with a quoted key or a bad target. ``drift``: every
    key's weights change halfway. Returns the keys, X, y and the rows learned."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(keys, 3))
    later = 3 * rng.normal(size=(keys, 3)) if drift else weights
    bias = rng.normal(size=keys)
    which = rng.integers(keys, size=count)
    X = rng.normal(size=(count, 3))
    true = np.where((np.arange(count) >= count // 2)[:, None], later[which], weights[which])
    y = np.einsum("ij,ij->i", X, true) + bias[which] + 0.1 * rng.normal(size=count)
    names = [f"store-{k}" for k in which]
    learned = set()
    with open(path, "w") as handle:
        handle.write("x0,store,x1,x2,y\n")
        for i in range(count):
            key, target = names[i], repr(float(y[i]))
            if messy and i % 37 == 5:
                target = ""
            elif messy and i % 101 == 7:
                key = ""
            elif messy and i % 211 == 11:
                target = "bad"
            else:
                learned.add(i)
            if messy and i % 103 == 9:
                key = f'"{key}"'
            cells = [repr(float(X[i, 0])), key, repr(float(X[i, 1])), repr(float(X[i, 2])), target]
            handle.write(",".join(cells) + "\n")
    return names, X, y, learned


#: The model of these replays, and the line that says the compiled keyed path took the run.
SGD = ("--model", "sgd", "--lr", "0.05")
COMPILED = "compiled keyed path"


def replay(path: Path, folder: Path, name: str, *extra: str, fast: bool,
           model: Sequence[str] = SGD, path_line: str = COMPILED) -> dict[str, Any]:  # fmt: skip
    """A keyed replay of ``model``; ``fast``: ``path_line`` in its log says the block path
    took it, else the record path did (``STREAMLEARN_FASTPATH=0``)."""
    state = folder / name
    result = cli(
        "replay", str(path), "--key-by", "store", "--state-dir", str(state), "--inspect-json",
        "--rolling-window", "50", *model,
        "--predictions", str(folder / f"{name}.predictions"),
        "--dead-letter", str(folder / f"{name}.dead"), *extra,
        env={"STREAMLEARN_FASTPATH": "1" if fast else "0"},
    )  # fmt: skip
    if fast:
        assert path_line in result.stderr, result.stderr
    else:
        assert "record by record (STREAMLEARN_FASTPATH=0)" in result.stderr, result.stderr
        assert path_line not in result.stderr, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def same_learners(one: Path, other: Path) -> dict[str, Any]:
    want, got = learners(one), learners(other)
    assert sorted(want) == sorted(got)
    for key, a in want.items():
        b = got[key]
        assert list(a.model.weights.items()) == list(b.model.weights.items()), key
        assert a.model.intercept == b.model.intercept, key
        assert a.records_learned == b.records_learned, key
        assert a.summary() == b.summary() and a.rolling_summary() == b.rolling_summary(), key
        assert a.recent_y == b.recent_y and a.recent_yhat == b.recent_yhat, key
        assert a.curve.points == b.curve.points and a.curve.stride == b.curve.stride, key
        assert a.drift.summary() == b.drift.summary(), key
    return got


def same_outputs(folder: Path, one: str, other: str) -> None:
    for suffix in ("predictions", "dead"):
        a = (folder / f"{one}.{suffix}").read_bytes()
        assert a == (folder / f"{other}.{suffix}").read_bytes(), suffix


def same_summary(a: dict[str, Any], b: dict[str, Any]) -> None:
    for name in ("metrics", "rolling_metrics", "records_seen", "records_learned", "keys_total",
                 "records_rejected", "rejected_by_reason", "records_unlabeled", "predictions"):  # fmt: skip
        assert a.get(name) == b.get(name), name


@pytest.mark.slow
@pytest.mark.parametrize("bound", [None, "5"], ids=["all-live", "max-live-5"])
def test_keyed_blocks_equal_the_record_path_and_numpy(tmp_path: Path, bound: str | None) -> None:
    path = tmp_path / "keyed.csv"
    names, X, y, learned = write(path, 5000, 50, seed=3, messy=True)
    extra = ("--max-live-keys", bound) if bound else ()
    fast = replay(path, tmp_path, "fast", *extra, fast=True)
    slow = replay(path, tmp_path, "slow", *extra, fast=False)
    same_summary(fast, slow)
    assert fast["records_rejected"] > 50 and fast["records_unlabeled"] > 100
    got = same_learners(tmp_path / "slow", tmp_path / "fast")
    same_outputs(tmp_path, "fast", "slow")
    assert (tmp_path / "fast.dead").read_bytes().count(b"missing_key") > 40
    rows_of: dict[str, list[int]] = {}
    for i in sorted(learned):
        rows_of.setdefault(names[i], []).append(i)
    for key, rows in rows_of.items():
        theta, theta0, _ = sgd_oracle(X[rows], y[rows], lr=0.05)
        weights = got[key].model.weights
        np.testing.assert_allclose([weights[f] for f in FEATURES], theta, rtol=0, atol=1e-12)
        assert abs(got[key].model.intercept - theta0) <= 1e-12
        assert got[key].records_learned == len(rows)


@pytest.mark.slow
@pytest.mark.parametrize("bound", ["5", "100"], ids=["spilling", "all-live"])
def test_the_key_index_cleared_between_blocks_changes_no_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bound: str
) -> None:
    """The key index is cleared once it holds more than ``max_ids`` keys (here 4; 50 keys
    in each block of 8192 lines): keys then get new ids while they hold slots (all live:
    keys new to the run, in no learner yet), and every result is still the record path's."""
    monkeypatch.setattr(keyids, "MIN_IDS", 4)
    monkeypatch.setattr(keyids, "IDS_PER_SLOT", 0)
    sizes: list[int] = []
    cut = keyids.KeyIds.cut

    def cut_seen(self: keyids.KeyIds, *args: Any) -> bytes:
        sizes.append(len(self.index))
        return cut(self, *args)

    monkeypatch.setattr(keyids.KeyIds, "cut", cut_seen)
    path = tmp_path / "keyed.csv"
    write(path, 30000, 50, seed=8, messy=bound == "5")  # all live: no row settles its key
    common = ("--key-by", "store", "--inspect-json", "--rolling-window", "50", "--model", "sgd",
              "--lr", "0.05", "--max-live-keys", bound)  # fmt: skip
    fast = invoke("replay", str(path), "--state-dir", str(tmp_path / "fast"), *common,
                  "--predictions", str(tmp_path / "fast.predictions"),
                  "--dead-letter", str(tmp_path / "fast.dead"))  # fmt: skip
    assert fast.exit_code == 0, fast.output
    assert len(sizes) >= 3 and max(sizes) > 4  # cleared before the blocks after
    slow = replay(path, tmp_path, "slow", "--max-live-keys", bound, fast=False)
    same_summary(json.loads(fast.stdout), slow)
    same_learners(tmp_path / "slow", tmp_path / "fast")
    same_outputs(tmp_path, "fast", "slow")


@pytest.mark.slow
def test_each_keys_drift_events_are_the_record_paths(tmp_path: Path) -> None:
    """ADWIN per key hears of its errors 32 at a time on the compiled path: the same
    detections, at the same records."""
    path = tmp_path / "drift.csv"
    write(path, 12000, 4, seed=5, messy=False, drift=True)
    fast = replay(path, tmp_path, "fast", "--predictions-all", fast=True)
    slow = replay(path, tmp_path, "slow", "--predictions-all", fast=False)
    same_summary(fast, slow)
    got = same_learners(tmp_path / "slow", tmp_path / "fast")
    events = [
        event for learner in got.values() for event in learner.drift.summary()["drift_events"]
    ]
    assert len(events) >= 4, events
    same_outputs(tmp_path, "fast", "slow")
    assert len((tmp_path / "fast.predictions").read_bytes().splitlines()) == 12000


def assert_killed_replays_resume_as_one_pass(
    tmp_path: Path, rows: int, model: Sequence[str], rate: str, path_line: str,
    same: Callable[[Path, Path], dict[str, Any]], writer: Callable[..., Any] = write,
) -> None:  # fmt: skip
    """SIGKILL at random moments (10 or more), keys spilling (``--max-live-keys 7``): every
    key's learner equals (``same``) one uninterrupted pass on the record path, its
    ``records_learned`` its labeled rows; the path of ``path_line`` took the last run.
    ``writer`` writes the stream (``write``'s signature and result)."""
    path = tmp_path / "keyed.csv"
    names, _, _, learned = writer(path, rows, 40, seed=17, messy=True)
    common = ["--key-by", "store", "--rolling-window", "50", *model, "--max-live-keys", "7"]
    one_pass = tmp_path / "one"
    cli("replay", str(path), "--state-dir", str(one_pass), *common,
        env={"STREAMLEARN_FASTPATH": "0"})  # fmt: skip
    state = tmp_path / "killed"
    command = ["replay", str(path), "--state-dir", str(state), *common, "--rate", rate]
    every, within = (700, 300, 2000, 500, 1000, 400, 3000, 600, 800, 1500, 900, 350), 0.5
    # Ten kills need ten runs with rows left: each reads up to its first checkpoint, then up
    # to ``within`` s at ``rate`` before its kill (short of that, the last runs found the
    # file read to its end in a CI run, and 9 were killed).
    assert rows >= sum(every[:10]) + 10 * within * float(rate)
    kills = kill_at_random_moments(command, state, every, random.Random(99), within)
    assert kills >= 10
    result = cli(*command[:-2])  # to the end
    assert path_line in result.stderr
    got = same(one_pass, state)
    for key in set(names):
        rows_of_key = [i for i in learned if names[i] == key]
        assert got[key].records_learned == len(rows_of_key), key


@pytest.mark.slow
def test_sigkill_on_the_compiled_keyed_path_resumes_as_one_pass(tmp_path: Path) -> None:
    assert_killed_replays_resume_as_one_pass(tmp_path, 36000, SGD, "5000", COMPILED, same_learners)


def test_each_keys_river_pipeline_is_a_copy_planned_on_its_own_steps() -> None:
    """Keys copy one River pipeline planned once (its plan is built at first use otherwise):
    each copy's plan must name the copy's own steps, never the template's or a neighbour's."""
    from streamlearn.config import Settings
    from streamlearn.keys.build import fresh_models

    settings = Settings(source="rows.csv", follow=False, model="StandardScaler | LinearRegression")
    fresh = fresh_models(settings, None)
    first, second = fresh(), fresh()
    for model in (first, second):
        assert model._plan is not None
        assert [step for _, step, *_ in model._plan] == list(model.steps.values())
    assert all(a is not b for a, b in zip(first.steps.values(), second.steps.values(), strict=True))
    first.learn_one({"x": 1.0}, 3.0)
    assert second.predict_one({"x": 1.0}) == 0.0  # the second key learned nothing
