"""Keyed ``logistic`` replays on the compiled keyed path (``loop.classkeyblocks``) against the
record path (``STREAMLEARN_FASTPATH=0``) and a numpy loop: every key's learner to the last bit
(weights, class metrics, window, both curves, drift monitor), the whole stream's summary,
predictions and dead letters byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_keyed_run import learners
from test_keys_compiled_run import (
    assert_killed_replays_resume_as_one_pass,
    replay,
    same_outputs,
    same_summary,
)

from streamlearn.keys.codec import KEY_CURVE_POINTS

FEATURES = ("x0", "x1", "x2")
LOGISTIC = ("--model", "logistic", "--lr", "0.2")
ON_PATH = "logistic per key on the compiled keyed path"


def write_classes(
    path: Path, count: int, keys: int, seed: int, *, messy: bool, drift: bool = False,
    labels: tuple[str, str] = ("0", "1"),
) -> tuple[list[str], np.ndarray, np.ndarray, set[int]]:  # fmt: skip
    """Rows of ``keys`` keys interleaved at random, the key column second, the class last
    (``labels``: negative, positive). ``messy``: some rows unlabeled, without a key, with a
    quoted key or a third class. ``drift``: every key's weights change halfway. Returns the
    keys, X, the class codes and the rows learned."""
    rng = np.random.default_rng(seed)
    weights = 2.0 * rng.normal(size=(keys, 3))
    later = -weights if drift else weights
    which = rng.integers(keys, size=count)
    X = rng.normal(size=(count, 3))
    true = np.where((np.arange(count) >= count // 2)[:, None], later[which], weights[which])
    margin = np.einsum("ij,ij->i", X, true)
    y = (rng.random(count) < 1.0 / (1.0 + np.exp(-margin))).astype(np.float64)
    names = [f"store-{k}" for k in which]
    learned = set()
    with open(path, "w") as handle:
        handle.write("x0,store,x1,x2,y\n")
        for i in range(count):
            key, target = names[i], labels[int(y[i])]
            if messy and i % 37 == 5:
                target = ""
            elif messy and i % 101 == 7:
                key = ""
            elif messy and i % 211 == 11:
                target = "maybe"
            else:
                learned.add(i)
            if messy and i % 103 == 9:
                key = f'"{key}"'
            cells = [repr(float(X[i, 0])), key, repr(float(X[i, 1])), repr(float(X[i, 2])), target]
            handle.write(",".join(cells) + "\n")
    return names, X, y, learned


def same_class_learners(one: Path, other: Path) -> dict[str, Any]:
    want, got = learners(one), learners(other)
    assert sorted(want) == sorted(got)
    for key, a in want.items():
        b = got[key]
        assert list(a.model.weights.items()) == list(b.model.weights.items()), key
        assert a.model.intercept == b.model.intercept, key
        assert a.records_learned == b.records_learned, key
        assert a.summary() == b.summary() and a.rolling_summary() == b.rolling_summary(), key
        m, n = a.metrics, b.metrics
        assert (m.confusion, m.pos_bins, m.neg_bins) == (n.confusion, n.pos_bins, n.neg_bins)
        assert (m.loss.n, m.loss.get(), m.scored, m.right) == (
            n.loss.n,
            n.loss.get(),
            n.scored,
            n.right,
        )
        v, w = a.window, b.window
        assert (v.y, v.pred, v.loss, v.p_pos) == (w.y, w.pred, w.loss, w.p_pos), key
        assert (v.next, v.len, v.right) == (w.next, w.len, w.right), key
        assert a.curve.points == b.curve.points and a.curve.stride == b.curve.stride, key
        assert a.loss_curve.points == b.loss_curve.points, key
        assert a.loss_curve.stride == b.loss_curve.stride, key
        assert a.drift.summary() == b.drift.summary(), key
    return got


def logistic_oracle(X: np.ndarray, y: np.ndarray, lr: float) -> tuple[np.ndarray, float]:
    """The seed's update with a sigmoid, a numpy loop: theta_j -= lr * (p - y) * x_j."""
    theta, theta0 = np.zeros(X.shape[1]), 0.0
    for x, target in zip(X, y, strict=True):
        p = 1.0 / (1.0 + np.exp(-(theta0 + x @ theta)))
        theta = theta - lr * (p - target) * x
        theta0 -= lr * (p - target)
    return theta, theta0


@pytest.mark.slow
@pytest.mark.parametrize("bound", [None, "5"], ids=["all-live", "max-live-5"])
def test_keyed_logistic_blocks_equal_the_record_path_and_numpy(
    tmp_path: Path, bound: str | None
) -> None:
    path = tmp_path / "keyed.csv"
    names, X, y, learned = write_classes(path, 5000, 50, seed=3, messy=True)
    extra = ("--max-live-keys", bound) if bound else ()
    fast = replay(path, tmp_path, "fast", *extra, fast=True, model=LOGISTIC, path_line=ON_PATH)
    slow = replay(path, tmp_path, "slow", *extra, fast=False, model=LOGISTIC, path_line=ON_PATH)
    same_summary(fast, slow)
    assert fast["task"] == "classification"
    assert fast["records_rejected"] > 50 and fast["records_unlabeled"] > 100
    got = same_class_learners(tmp_path / "slow", tmp_path / "fast")
    same_outputs(tmp_path, "fast", "slow")
    dead = (tmp_path / "fast.dead").read_bytes()
    assert dead.count(b"missing_key") > 40 and dead.count(b"third_class") > 15
    rows_of: dict[str, list[int]] = {}
    for i in sorted(learned):
        rows_of.setdefault(names[i], []).append(i)
    for key, rows in rows_of.items():
        theta, theta0 = logistic_oracle(X[rows], y[rows], lr=0.2)
        weights = got[key].model.weights
        np.testing.assert_allclose([weights[f] for f in FEATURES], theta, rtol=0, atol=1e-12)
        assert abs(got[key].model.intercept - theta0) <= 1e-12
        assert got[key].records_learned == len(rows)


@pytest.mark.slow
def test_text_labels_and_drift_events_are_the_record_paths(tmp_path: Path) -> None:
    """Labels ``no``/``yes`` (every row's class read by the decoder) and ADWIN per key told
    of its 0/1 errors 32 at a time: the same classes, detections and records."""
    path = tmp_path / "drift.csv"
    write_classes(path, 12000, 4, seed=5, messy=False, drift=True, labels=("no", "yes"))
    extra = ("--predictions-all",)
    fast = replay(path, tmp_path, "fast", *extra, fast=True, model=LOGISTIC, path_line=ON_PATH)
    slow = replay(path, tmp_path, "slow", *extra, fast=False, model=LOGISTIC, path_line=ON_PATH)
    same_summary(fast, slow)
    got = same_class_learners(tmp_path / "slow", tmp_path / "fast")
    events = [
        event for learner in got.values() for event in learner.drift.summary()["drift_events"]
    ]
    assert events and all(event["record"] >= 6000 for event in events), events  # the drift
    same_outputs(tmp_path, "fast", "slow")
    lines = (tmp_path / "fast.predictions").read_bytes().splitlines()
    assert len(lines) == 12000 and b'"label":"yes"' in lines[0] + lines[1] + lines[2] + lines[3]


@pytest.mark.slow
def test_sigkill_on_the_keyed_logistic_path_resumes_as_one_pass(tmp_path: Path) -> None:
    assert_killed_replays_resume_as_one_pass(
        tmp_path, 36000, LOGISTIC, "5000", ON_PATH, same_class_learners, writer=write_classes
    )


def test_a_keys_loss_curve_is_as_small_as_its_curve_at_the_same_points(tmp_path: Path) -> None:
    """A key's log-loss curve keeps the points of its accuracy curve (a key's curves stay
    small: ``KEY_CURVE_POINTS``), as a learner of one model keeps them."""
    path = tmp_path / "keyed.csv"
    write_classes(path, 600, 2, seed=4, messy=False)
    replay(path, tmp_path, "slow", fast=False, model=LOGISTIC, path_line=ON_PATH)
    for key, learner in learners(tmp_path / "slow").items():
        assert learner.records_learned > 2 * KEY_CURVE_POINTS, key
        marks = [point[0] for point in learner.curve.points]
        assert [point[0] for point in learner.loss_curve.points] == marks, key
        assert len(marks) <= KEY_CURVE_POINTS
        assert learner.loss_curve.max_points == KEY_CURVE_POINTS
