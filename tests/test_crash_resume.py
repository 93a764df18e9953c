"""SIGKILL at random moments, then resume: nothing lost, nothing learned twice."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time

import numpy as np
import pytest

from streamhelpers import STREAMLEARN, cli, inspect_json, make_regression, sgd_oracle, write_csv


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_one_pass(tmp_path):
    X, y, _ = make_regression(1500, d=3, seed=21)
    unlabeled = set(range(7, 1500, 10))
    path = tmp_path / "replay.csv"
    write_csv(path, X, y, unlabeled=unlabeled)
    with open(path, "a") as handle:  # bad rows at the end: each must be dead-lettered once
        handle.write("1,2\nx,y,z,w\n")
    state, dead, predictions = tmp_path / "state", tmp_path / "dead.jsonl", tmp_path / "pred.jsonl"
    args = [
        *STREAMLEARN,
        "replay",
        str(path),
        "--state-dir",
        str(state),
        "--dead-letter",
        str(dead),
        "--predictions",
        str(predictions),
        "--rate",
        "400",
    ]
    rng = random.Random(1234)
    kills = 0
    for every in ("50", "1", "13", "200"):
        before = sorted(state.glob("gen-*.ckpt"))
        proc = subprocess.Popen([*args, "--checkpoint-every", every], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        # Wait for this run's first checkpoint, so the kill lands mid-replay.
        while sorted(state.glob("gen-*.ckpt")) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.8))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 3
    cli(
        "replay",
        str(path),
        "--state-dir",
        str(state),
        "--dead-letter",
        str(dead),
        "--predictions",
        str(predictions),
    )
    summary = inspect_json(state)
    labeled = np.array([i not in unlabeled for i in range(len(y))])
    assert summary["records_learned"] == int(labeled.sum())
    theta, theta0, _ = sgd_oracle(X, y, 0.01, labeled=labeled)
    np.testing.assert_allclose(
        [summary["weights"][f"x{j}"] for j in range(3)], theta, rtol=0, atol=1e-12
    )
    assert abs(summary["intercept"] - theta0) < 1e-12
    # Sinks are cut back to the checkpoint on resume: every entry exactly once.
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [entry["reason"] for entry in letters] == ["field_count", "non_numeric"]
    ids = [json.loads(line)["position"]["offset"] for line in predictions.read_text().splitlines()]
    assert len(ids) == len(unlabeled) == len(set(ids))
