"""``inspect``'s readable output on real state dirs: the lines an operator looks for."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from streamhelpers import ROOT, cli, make_regression, write_csv


def inspect_text(state: Path) -> dict[str, str]:
    """``inspect STATE``'s lines by name (the first column), and the whole text as ``""``."""
    text = cli("inspect", str(state)).stdout
    lines = {line[:17].strip(): line[17:] for line in text.splitlines() if line[:17].strip()}
    return {**lines, "": text}


@pytest.mark.slow
def test_a_replayed_file_position_in_words_metrics_side_by_side_and_checkpoint_age(tmp_path):
    state = tmp_path / "state"
    cli("replay", "examples/stream.csv", "--state-dir", str(state), cwd=ROOT)
    shown = inspect_text(state)
    # Run from where the daemon ran, the file is found: how much of it was read.
    text = cli("inspect", str(state), cwd=ROOT).stdout
    assert "examples/stream.csv @ byte 75,414 of 75,414 (100%)" in text
    assert shown["model"] == "sgd"
    assert shown["target"] == "y, features x1, x2, x3"
    assert shown["records learned"] == "2000"
    assert shown["records rejected"].startswith("3 (")  # the reasons beside the count
    assert re.fullmatch(r"(\S+ +){2}\S+", shown["cumulative"])  # MAE RMSE R2
    assert re.fullmatch(r"(\S+ +){2}\S+", shown["rolling 1000"])
    assert shown["cumulative"] != shown["rolling 1000"]
    assert re.fullmatch(r"generation 1, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+ s ago\)",
                        shown["checkpoint"])  # fmt: skip
    assert shown["drift"] == "0 event(s), on drift alert"
    assert "tree" not in shown


@pytest.fixture
def model_a(tmp_path) -> Path:
    X, y, _ = make_regression(300, d=3, seed=6)
    source = tmp_path / "source.csv"
    write_csv(source, X, y)
    path = tmp_path / "A"
    cli("replay", str(source), "--state-dir", str(path))
    return path


@pytest.mark.slow
def test_a_warm_start_shows_the_frozen_baseline_and_who_serves(tmp_path, model_a):
    X, y, _ = make_regression(500, d=3, seed=5)
    data = tmp_path / "stream.csv"
    write_csv(data, X, y)
    state = tmp_path / "state"
    cli("replay", str(data), "--warm-start", str(model_a), "--state-dir", str(state))
    shown = inspect_text(state)
    assert shown["model"].startswith("warm-start(finetune, A)")
    assert re.fullmatch(r"(\S+ +){2}\S+", shown["baseline A"])
    assert "served" in shown
    assert re.fullmatch(r"[AB] \(.*\); \d+ switch\(es\), \d+ reset\(s\)", shown["serving"])


def test_drift_events_are_counted_and_the_last_one_named(tmp_path):
    X, y, w = make_regression(4000, d=3, seed=9, noise=0.05)
    y[2000:] = X[2000:] @ (-3 * w) + 10.0  # an abrupt change half way
    data = tmp_path / "stream.csv"
    write_csv(data, X, y)
    state = tmp_path / "state"
    cli("replay", str(data), "--state-dir", str(state), "--on-drift", "reset")
    drift = inspect_text(state)["drift"]
    match = re.fullmatch(
        r"(\d+) event\(s\), on drift reset; last at record (\d+): (\w+) on error, (\w+)", drift
    )
    assert match is not None, drift
    assert int(match.group(1)) >= 1 and int(match.group(2)) >= 2000


def test_pseudo_labels_and_pending_labels_are_summed_up(tmp_path):
    X, y, _ = make_regression(900, d=3, seed=2)
    data = tmp_path / "stream.csv"
    write_csv(data, X, y, unlabeled=set(range(1, 900, 3)))
    state = tmp_path / "state"
    cli("replay", str(data), "--state-dir", str(state), "--pseudo-label")
    shown = inspect_text(state)
    assert re.fullmatch(
        r"committee.*: offered 300, accepted \d+, rejected \d+, queued 0", shown["pseudo-labels"]
    ), shown["pseudo-labels"]
    assert re.fullmatch(r"\d+ waiting, \d+ joined, \d+ expired \(ttl .+\)", shown["pending labels"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spec", "trees"),
    [("HoeffdingTreeRegressor(grace_period=50)", 1), ("ARFRegressor(n_models=3, seed=1)", 3)],
)
def test_a_tree_model_shows_its_size(tmp_path, spec: str, trees: int):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1500, 3))
    y = np.where(X[:, 0] > 0, 5.0, -5.0) + X[:, 1]
    data = tmp_path / "stream.csv"
    write_csv(data, X, y)
    state = tmp_path / "state"
    cli("replay", str(data), "--state-dir", str(state), "--model", spec)
    tree = inspect_text(state)["tree"]
    match = re.fullmatch(r"(\d+) tree\(s\), (\d+) nodes, (\d+) leaves, height (\d+)", tree)
    assert match is not None, tree
    assert int(match.group(1)) == trees
    assert int(match.group(2)) >= int(match.group(3)) >= trees  # it has grown
    assert "weights" not in inspect_text(state)
