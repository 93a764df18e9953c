"""Keyed ``logistic`` replays on the compiled keyed path (``loop.classkeyblocks``) against the
record path (``STREAMLEARN_FASTPATH=0``) and a numpy loop: every key's learner to the last bit
(weights, class metrics, window, both curves, drift monitor), the whole stream's summary,
predictions and dead letters byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_keyed_run import learners
from test_keys_compiled_run import replay

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
