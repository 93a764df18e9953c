"""A River classifier's rows block scores its rows as ``ClassLearner.step`` does, the same bits.

``classblocks._binary_scores`` chooses the class a block at a time; the answers where that
could differ from River's ``max(answer, key=answer.get)`` (ties in the dict's order, answers
that are not exactly the two classes) are checked here against ``score`` record by record.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamlearn.classify.metrics import score
from streamlearn.classify.space import ClassSpace
from streamlearn.loop.classblocks import _binary_scores, _class_scores

ANSWERS = [
    {False: 0.3, True: 0.7},
    {True: 0.5, False: 0.5},  # a tie: the first key in the dict's order
    {False: 0.5, True: 0.5},
    {True: 1.0},  # one class only (a young tree)
    {True: -0.5, "other": -1.0},  # a key of no class, the class's value below 0
    {False: 1e-20, True: 1.0 - 1e-20},  # clamped as River clamps
    {0: 0.6, 1: 0.4},  # integer keys name the classes too
]


def test_binary_scores_equal_the_record_by_record_scores():
    space = ClassSpace(binary=True)
    space.encode("1")
    y = np.array([1, 0, 1, 1, 0, 1, 0], dtype=np.int64)
    proba = np.array([space.proba(answer) for answer in ANSWERS], dtype=np.float64)
    pred, loss, p_pos = _binary_scores(space, ANSWERS, y, proba)
    expected = []
    for code, answer in zip(y.tolist(), ANSWERS, strict=True):
        choice = space.code_of(max(answer, key=answer.__getitem__))
        expected.append(score(code, space.proba(answer), binary=True, choice=choice))
    assert list(zip(y.tolist(), pred.tolist(), loss.tolist(), p_pos.tolist(), strict=True)) == [
        (a, b, c, d) for a, b, c, d in expected
    ]
    assert pred.tolist() == [1, 1, 0, 1, 1, 1, 0]


MULTICLASS = [
    {"a": 0.2, "b": 0.5, "c": 0.3},
    {"c": 0.3, "b": 0.2, "a": 0.5},  # another order, one most probable
    {"b": 0.4, "a": 0.4, "c": 0.2},  # a tie: the first key in the dict's order
    {"a": 0.4, "b": 0.4, "c": 0.2},
    {"b": 0.9, "c": 0.1},  # a class left out: its loss is 0, as River's
    {"a": 0.3, "b": 0.3, "c": 0.3, "z": 0.1},  # a key of no class
    {"a": 1e-20, "b": 1.0 - 1e-20, "c": 0.0},  # clamped as River clamps
    {"a": 0.0, "b": 0.0, "c": 0.0},  # all tied at 0
]


def test_multiclass_scores_equal_the_record_by_record_scores():
    space = ClassSpace(binary=False)
    for label in ("a", "b", "c"):
        space.encode(label)
    y = np.array([0, 1, 2, 0, 0, 1, 0, 2], dtype=np.int64)
    proba = np.array([space.proba(answer) for answer in MULTICLASS], dtype=np.float64)
    pred, loss = _class_scores(space, MULTICLASS, y, proba)
    expected = []
    for code, answer in zip(y.tolist(), MULTICLASS, strict=True):
        choice = space.code_of(max(answer, key=answer.__getitem__))
        scored = score(
            code,
            space.proba(answer),
            binary=False,
            choice=choice,
            listed=space.labels[code] in answer,
        )
        expected.append(scored[:3])
    assert list(zip(y.tolist(), pred.tolist(), loss.tolist(), strict=True)) == expected
    assert pred.tolist() == [1, 0, 1, 0, 1, 0, 1, 0]


@pytest.mark.slow
def test_the_collector_waits_for_the_whole_block(tmp_path, monkeypatch):
    """The block's scoring and output run with the collector paused too, and it is on again
    after the block (``ClassRowsBlockPath.process_block``)."""
    import gc

    from test_class_kernels import run_class_daemon, write_class_stream

    from streamlearn.fast.classblock import ClassBlockLearner
    from streamlearn.models.registry import build_model

    seen: list[bool] = []
    score = ClassBlockLearner.score

    def scoring(self, *args):
        seen.append(gc.isenabled())
        return score(self, *args)

    monkeypatch.setattr(ClassBlockLearner, "score", scoring)
    path = tmp_path / "stream.csv"
    write_class_stream(path, 1500, seed=7, binary=True)
    was = gc.isenabled()
    summary = run_class_daemon(
        path,
        tmp_path / "run",
        fast=True,
        binary=True,
        monkeypatch=monkeypatch,
        make=lambda: build_model("LogisticRegression(optimizer=SGD(lr=0.05))"),
    )[0]
    assert summary["records_learned"] > 1200
    assert seen and not any(seen)
    assert gc.isenabled() == was


@pytest.mark.slow
def test_a_two_class_multiclass_tree_through_rows_blocks_equals_record_by_record(
    tmp_path, monkeypatch
):
    """Labels ``a``/``b`` without a positive class: a multiclass space of two classes, whose
    answers the rows block reads without a loop (and the unlabeled rows are predicted)."""
    from test_class_kernels import assert_same_class_run, run_class_daemon

    from streamlearn.models.registry import build_model

    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 4))
    y = X @ [1.0, -2.0, 0.5, 0.0] + rng.normal(size=3000) > 0
    path = tmp_path / "stream.csv"
    with open(path, "w") as handle:
        handle.write("x0,x1,x2,x3,y\n")
        for i, (row, label) in enumerate(zip(X.tolist(), y.tolist(), strict=True)):
            target = "" if i % 50 == 49 else ("a" if label else "b")
            handle.write(",".join(f"{v:.6f}" for v in row) + f",{target}\n")
    runs = [
        run_class_daemon(
            path,
            tmp_path / name,
            fast=fast,
            binary=False,
            monkeypatch=monkeypatch,
            make=lambda: build_model("HoeffdingTreeClassifier(grace_period=50)"),
        )
        for name, fast in (("fast", True), ("slow", False))
    ]
    assert_same_class_run(*runs, path="class-rows-block")
    assert runs[0][0]["records_learned"] == 2940
    assert (tmp_path / "fast" / "pred.jsonl").read_text().count("\n") == 60
