"""The error-explosion guard (``--divergence-factor``) compares a batch with the level before it.

It restored the model whenever a batch's MAE was 100 times the rolling MAE read *after* the
batch. A block of 8192 records fills the 1000-record window by itself, so a stream that
converges within a block (a target without noise) compared the block's early errors with
its own converged tail: "exploded", the initial model restored, converged again, block
after block, and the weights never matched one pass of the update. Whole processes here,
both paths (blocks and record by record), against the numpy oracle.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamhelpers import cli, sgd_oracle

PATHS = [pytest.param({}, id="blocks"), pytest.param({"STREAMLEARN_FASTPATH": "0"}, id="records")]


def write_csv(path, X: np.ndarray, y: np.ndarray) -> None:
    """Numbers as ``repr`` writes them (17 digits), as pandas' to_csv does."""
    header = ",".join([*(f"x{j}" for j in range(X.shape[1])), "y"])
    rows = (",".join(map(repr, [*r, t])) for r, t in zip(X.tolist(), y.tolist(), strict=True))
    path.write_text(header + "\n" + "\n".join(rows) + "\n")


def replay(path, tmp_path, env) -> tuple[dict, str]:
    result = cli(
        "replay", str(path), "--state-dir", str(tmp_path / "state"), "--inspect-json", env=env
    )
    return json.loads(result.stdout), result.stderr


@pytest.mark.parametrize("env", PATHS)
def test_a_noise_free_stream_converges_without_a_false_explosion(tmp_path, env):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30_000, 4))
    y = X @ np.array([1.5, -2.0, 0.5, 3.0]) + 0.25  # no noise: errors fall to ~1e-15
    path = tmp_path / "exact.csv"
    write_csv(path, X, y)
    summary, stderr = replay(path, tmp_path, env)
    assert summary["divergence_events"] == 0, stderr
    assert "exploded" not in stderr
    theta, theta0, _ = sgd_oracle(X, y, 0.01)
    weights = summary["weights"]
    assert [weights[f"x{j}"] for j in range(4)] == pytest.approx(theta.tolist(), abs=1e-12)
    assert summary["intercept"] == pytest.approx(theta0, abs=1e-12)
    assert summary["records_learned"] == 30_000


@pytest.mark.parametrize("env", PATHS)
@pytest.mark.slow
def test_a_batch_far_above_the_level_before_it_still_restores(tmp_path, env):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30_000, 4))
    y = X @ np.array([1.5, -2.0, 0.5, 3.0]) + rng.normal(scale=0.1, size=30_000)
    y[20_000:] *= 10_000.0  # the model's error jumps some 10,000-fold
    path = tmp_path / "jump.csv"
    write_csv(path, X, y)
    summary, stderr = replay(path, tmp_path, env)
    assert summary["divergence_events"] >= 1
    assert "prequential error exploded" in stderr
    assert summary["records_learned"] == 30_000
