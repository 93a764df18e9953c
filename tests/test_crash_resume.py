"""SIGKILL at random moments, then resume: nothing lost, nothing learned twice."""

from __future__ import annotations

import json
import random

import pytest

from streamhelpers import (
    assert_learned_once,
    cli,
    kill_at_random_moments,
    make_regression,
    state_and_sinks,
    write_csv,
)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_one_pass(tmp_path):
    X, y, _ = make_regression(1500, d=3, seed=21)
    unlabeled = set(range(7, 1500, 10))
    path = tmp_path / "replay.csv"
    write_csv(path, X, y, unlabeled=unlabeled)
    with open(path, "a") as handle:  # bad rows at the end: each must be dead-lettered once
        handle.write("1,2\nx,y,z,w\n")
    state, dead, predictions = tmp_path / "state", tmp_path / "dead.jsonl", tmp_path / "pred.jsonl"
    replay = ["replay", str(path), *state_and_sinks(state, dead, predictions)]
    rng = random.Random(1234)
    kills = kill_at_random_moments([*replay, "--rate", "400"], state, (50, 1, 13, 200), rng, 0.8)
    assert kills >= 3
    cli(*replay)
    assert_learned_once(state, X, y, unlabeled, predictions)
    # Sinks are cut back to the checkpoint on resume: every entry exactly once.
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [entry["reason"] for entry in letters] == ["field_count", "non_numeric"]
