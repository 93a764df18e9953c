"""VW's habits: ``--predictions-all`` (like ``vw -p``) and ``--no-learn`` (like ``vw -t``).

Every record's prediction is written, a labeled one's made before it was learned and with its
label, in stream order; the compiled block paths write the same bytes as the record path.
``--no-learn`` scores a stream with a checkpoint's model and leaves the state dir as it was.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_fastpath import write_stream

from streamhelpers import cli, inspect_json, make_regression, sgd_oracle, write_csv
from streamlearn.app import build
from streamlearn.config import Settings


def replay(source: Path, out: Path, *, fast: bool, monkeypatch, **settings: Any) -> tuple:
    """An in-process replay of ``source`` with every prediction written to ``out``.

    Returns its summary and whether a compiled block path learned (the block learner was
    built)."""
    monkeypatch.setenv("STREAMLEARN_FASTPATH", "1" if fast else "0")
    app = build(
        Settings(
            source=str(source),
            follow=False,
            predictions=str(out),
            predictions_all=True,
            **settings,
        )
    )
    try:
        summary = app.daemon.run()
        used_blocks = app.daemon.block_learner is not None
    finally:
        app.close()
    return summary, used_blocks


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- --predictions-all -----------------------------------------------------------------------


def test_every_prediction_in_stream_order_the_same_bytes_from_blocks_and_records(
    tmp_path, monkeypatch
):
    path = tmp_path / "stream.csv"
    X, y, unlabeled = write_stream(path)  # unlabeled rows and bad lines scattered through
    fast, fast_used = replay(path, tmp_path / "fast.jsonl", fast=True, monkeypatch=monkeypatch)
    slow, slow_used = replay(path, tmp_path / "slow.jsonl", fast=False, monkeypatch=monkeypatch)
    assert fast_used and not slow_used
    assert (tmp_path / "fast.jsonl").read_bytes() == (tmp_path / "slow.jsonl").read_bytes()
    assert fast["metrics"] == slow["metrics"]

    written = lines(tmp_path / "fast.jsonl")
    assert len(written) == len(y) == fast["records_learned"] + fast["records_unlabeled"]
    offsets = [line["position"]["offset"] for line in written]
    assert offsets == sorted(offsets)  # stream order
    labeled = [line for line in written if "label" in line]
    assert len(labeled) == fast["records_learned"] == len(y) - len(unlabeled)
    keep = np.array([i not in unlabeled for i in range(len(y))])
    _, _, oracle = sgd_oracle(X, y, 0.01, labeled=keep)
    # Each labeled record's prediction was made before it was learned: the oracle's.
    np.testing.assert_allclose([line["prediction"] for line in labeled], oracle, atol=1e-9)
    np.testing.assert_array_equal([line["label"] for line in labeled], y[keep])
    assert fast["predictions"] == len(unlabeled)  # the counter still counts served ones


def test_a_river_model_on_rows_blocks_writes_what_the_record_path_writes(tmp_path, monkeypatch):
    path = tmp_path / "stream.csv"
    write_stream(path, n=3000, seed=4)
    model = "StandardScaler | LinearRegression(l2=0.01)"
    fast, fast_used = replay(
        path, tmp_path / "fast.jsonl", fast=True, monkeypatch=monkeypatch, model=model
    )
    slow, slow_used = replay(
        path, tmp_path / "slow.jsonl", fast=False, monkeypatch=monkeypatch, model=model
    )
    assert fast_used and not slow_used
    assert (tmp_path / "fast.jsonl").read_bytes() == (tmp_path / "slow.jsonl").read_bytes()
    assert fast["metrics"] == slow["metrics"]
    assert (
        sum("label" in line for line in lines(tmp_path / "fast.jsonl")) == fast["records_learned"]
    )


def test_json_values_on_json_blocks_write_what_the_record_path_writes(tmp_path, monkeypatch):
    X, y, _ = make_regression(4000, d=3, seed=8)
    path = tmp_path / "stream.jsonl"
    with open(path, "w") as handle:
        for i in range(len(y)):
            target = None if i % 37 == 5 else round(float(y[i]), 6)
            record = {f"x{j}": round(float(X[i, j]), 6) for j in range(3)}
            handle.write(json.dumps({**record, "y": target}) + "\n")
            if i % 501 == 100:
                handle.write("not json\n")
    fast, fast_used = replay(path, tmp_path / "fast.jsonl", fast=True, monkeypatch=monkeypatch)
    slow, slow_used = replay(path, tmp_path / "slow.jsonl", fast=False, monkeypatch=monkeypatch)
    assert fast_used and not slow_used
    assert (tmp_path / "fast.jsonl").read_bytes() == (tmp_path / "slow.jsonl").read_bytes()
    assert fast["metrics"] == slow["metrics"]
    written = lines(tmp_path / "fast.jsonl")
    assert len(written) == fast["records_learned"] + fast["records_unlabeled"] == len(y)


def test_without_the_flag_only_unlabeled_records_get_predictions(tmp_path):
    X, y, _ = make_regression(200, d=2, seed=3)
    data = tmp_path / "d.csv"
    write_csv(data, X, y, unlabeled={7, 90})
    out = tmp_path / "p.jsonl"
    cli("replay", str(data), "--predictions", str(out))
    assert [line["position"]["offset"] > 0 and "label" not in line for line in lines(out)] == [
        True,
        True,
    ]
    cli("replay", str(data), "--predictions", str(out), "--predictions-all")
    assert len(lines(out)) == 2 + 200  # appended: every record this time


# -- --no-learn ------------------------------------------------------------------------------


def tree(state: Path) -> dict[str, str]:
    """Every file of a state dir with the hash of its bytes."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(state.iterdir())
        if path.is_file()
    }


@pytest.fixture
def trained(tmp_path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """A state trained on 3000 rows, and 1000 held-out rows of the same process."""
    X, y, _ = make_regression(4000, d=3, seed=21)
    train, held_out = tmp_path / "train.csv", tmp_path / "held_out.csv"
    write_csv(train, X[:3000], y[:3000])
    write_csv(held_out, X[3000:], y[3000:])
    state = tmp_path / "state"
    cli("replay", str(train), "--state-dir", str(state))
    return state, held_out, X[3000:], y[3000:]


@pytest.mark.slow
def test_no_learn_scores_held_out_data_and_leaves_the_state_as_it_was(trained, tmp_path):
    state, held_out, X, y = trained
    before, model = tree(state), inspect_json(state)
    out = tmp_path / "scored.jsonl"

    result = cli(
        "replay", str(held_out), "--state-dir", str(state), "--no-learn", "--inspect-json",
        "--predictions", str(out), "--predictions-all",
    )  # fmt: skip

    summary = json.loads(result.stdout)
    assert summary["records_scored"] == 1000 and summary["records_learned"] == 0
    # The model of the checkpoint predicted every record: its weights never moved.
    weights = np.array([model["weights"][f"x{j}"] for j in range(3)])
    expected = X @ weights + model["intercept"]
    predicted = np.array([line["prediction"] for line in lines(out)])
    np.testing.assert_allclose(predicted, expected, rtol=0, atol=1e-12)
    assert summary["weights"] == model["weights"]
    mae = float(np.mean(np.abs(y - predicted)))
    assert summary["metrics"]["mae"] == pytest.approx(mae, rel=1e-12)  # held-out scores only
    # No checkpoint: the state dir holds the same files, byte for byte.
    assert tree(state) == before
    assert inspect_json(state) == model
    again = cli("replay", str(held_out), "--state-dir", str(state), "--no-learn")
    assert "scored 1000 records without learning (seen 1000, rejected 0)" in again.stderr
    assert tree(state) == before


@pytest.mark.slow
def test_no_learn_leaves_a_river_models_bytes_unchanged(tmp_path, monkeypatch):
    X, y, _ = make_regression(1500, d=3, seed=5)
    train, held_out = tmp_path / "train.csv", tmp_path / "held_out.csv"
    write_csv(train, X[:1000], y[:1000])
    write_csv(held_out, X[1000:], y[1000:])
    state = tmp_path / "state"
    spec = "StandardScaler | LinearRegression(l2=0.01)"
    cli("replay", str(train), "--state-dir", str(state), "--model", spec)
    app = build(Settings(source=str(held_out), follow=False, state_dir=state, no_learn=True))
    try:
        model = app.daemon.learner.model
        before = pickle.dumps(model)
        summary = app.daemon.run()
        assert pickle.dumps(app.daemon.learner.model) == before
        assert app.daemon.learner.model is model
    finally:
        app.close()
    assert summary["records_scored"] == 500
    assert summary["model"] == spec


def test_no_learn_refuses_what_would_change_the_state(trained, tmp_path):
    state, held_out, _, _ = trained
    reset = cli("replay", str(held_out), "--state-dir", str(state), "--no-learn", "--reset",
                check=False)  # fmt: skip
    assert reset.returncode == 2 and "drop --reset" in reset.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = cli("replay", str(held_out), "--state-dir", str(empty), "--no-learn", check=False)
    assert nothing.returncode == 1 and "no checkpoint in" in nothing.stderr
