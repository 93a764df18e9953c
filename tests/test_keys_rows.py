"""Keyed replays of a River spec on the keyed rows path (``loop.keyrows``: lines parsed a
block at a time, each row stepped in its key) against the record path
(``STREAMLEARN_FASTPATH=0``): every key's learner (model, metrics, window, curve, drift
monitor), the whole stream's summary, predictions and dead letters byte for byte; and each
key's metrics against River's ``progressive_val_score``."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from river import evaluate, metrics
from test_keyed_run import learners
from test_keys_compiled_run import (
    assert_killed_replays_resume_as_one_pass,
    same_outputs,
    same_summary,
    write,
)
from test_keys_compiled_run import replay as keyed_replay

from streamlearn.models.registry import build_model

FEATURES = ("x0", "x1", "x2")
SPEC = "StandardScaler | LinearRegression"
#: The line that says the keyed rows path took a run.
ROWS_PATH = "learns parsed rows a block at a time"


def replay(path: Path, folder: Path, name: str, *extra: str, fast: bool) -> dict[str, Any]:
    return keyed_replay(
        path, folder, name, *extra, fast=fast, model=("--model", SPEC), path_line=ROWS_PATH
    )


def same_learners(one: Path, other: Path) -> dict[str, Any]:
    want, got = learners(one), learners(other)
    assert sorted(want) == sorted(got)
    for key, a in want.items():
        b = got[key]
        assert pickle.dumps(a.model) == pickle.dumps(b.model), key
        assert a.records_learned == b.records_learned, key
        assert a.summary() == b.summary() and a.rolling_summary() == b.rolling_summary(), key
        assert a.recent_y == b.recent_y and a.recent_yhat == b.recent_yhat, key
        assert a.curve.points == b.curve.points and a.curve.stride == b.curve.stride, key
        assert a.drift.summary() == b.drift.summary(), key
    return got


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [(), ("--max-live-keys", "5", "--predictions-all")],
    ids=["all-live", "max-live-5-predictions-all"],
)
def test_keyed_rows_equal_the_record_path_and_river(tmp_path: Path, extra: tuple[str]) -> None:
    path = tmp_path / "keyed.csv"
    names, X, y, learned = write(path, 3000, 40, seed=4, messy=True)
    with open(path, "a") as handle:  # a blank line, a header row again, rows after it
        handle.write("\nx0,store,x1,x2,y\n")
        handle.write("0.5,store-1,0.25,-1.0,2.0\n1.5,store-2,-0.5,0.0,\n")
    fast = replay(path, tmp_path, "fast", *extra, fast=True)
    slow = replay(path, tmp_path, "slow", *extra, fast=False)
    same_summary(fast, slow)
    assert fast["records_rejected"] > 30 and fast["records_unlabeled"] > 80
    got = same_learners(tmp_path / "slow", tmp_path / "fast")
    same_outputs(tmp_path, "fast", "slow")
    assert (tmp_path / "fast.dead").read_bytes().count(b"missing_key") > 25
    rows_of: dict[str, list[int]] = {}
    for i in sorted(learned):
        rows_of.setdefault(names[i], []).append(i)
    rows_of["store-1"].append(len(names))  # the row after the header
    X = [*X.tolist(), [0.5, 0.25, -1.0]]
    y = [*y.tolist(), 2.0]
    for key, rows in rows_of.items():
        stream = [(dict(zip(FEATURES, X[i], strict=True)), y[i]) for i in rows]
        mae, rmse = metrics.MAE(), metrics.RMSE()
        evaluate.progressive_val_score(stream, build_model(SPEC, lr=0.01), mae + rmse)
        summary = got[key].summary()
        assert abs(summary["mae"] - mae.get()) <= 1e-9, key
        assert abs(summary["rmse"] - rmse.get()) <= 1e-9, key
        assert got[key].records_learned == len(rows)


@pytest.mark.slow
def test_keyed_rows_drift_resets_as_the_record_path(tmp_path: Path) -> None:
    """A key's monitor that resets its model halfway through a block: the rest of the block
    is learned by the new model, as record by record."""
    path = tmp_path / "drift.csv"
    write(path, 6000, 3, seed=5, messy=False, drift=True)
    extra = ("--on-drift", "reset", "--predictions-all")
    fast = replay(path, tmp_path, "fast", *extra, fast=True)
    slow = replay(path, tmp_path, "slow", *extra, fast=False)
    same_summary(fast, slow)
    got = same_learners(tmp_path / "slow", tmp_path / "fast")
    events = [
        event for learner in got.values() for event in learner.drift.summary()["drift_events"]
    ]
    assert [event["action"] for event in events] == ["reset"], events
    same_outputs(tmp_path, "fast", "slow")


@pytest.mark.slow
def test_sigkill_on_the_keyed_rows_path_resumes_as_one_pass(tmp_path: Path) -> None:
    assert_killed_replays_resume_as_one_pass(
        tmp_path, 32000, ("--model", SPEC), "4000", ROWS_PATH, same_learners
    )


@pytest.mark.parametrize("width", [1, 5, 256, 300])
def test_a_rows_dict_is_zips_to_the_bit(width: int) -> None:
    from streamlearn.loop.keyrows import row_dict

    # names a display would have to quote, and a name repeated (the later value wins)
    names = [f"f{i}" for i in range(width)]
    names[0] = 'it\'s "x"\n\u00e9'
    if width > 2:
        names[2] = names[1]
    numbers = [float(i) / 7 for i in range(width)] + [99.0]  # the target last
    made = row_dict(names)(numbers)
    want = dict(zip(names, numbers, strict=False))
    assert list(made.items()) == list(want.items())
    assert all(made[name] is want[name] for name in want)  # the row's own float objects
