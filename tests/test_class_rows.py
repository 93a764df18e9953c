"""A River classifier's rows block scores its rows as ``ClassLearner.step`` does, the same bits.

``classblocks._binary_scores`` chooses the class a block at a time; the answers where that
could differ from River's ``max(answer, key=answer.get)`` (ties in the dict's order, answers
that are not exactly the two classes) are checked here against ``score`` record by record.
"""

from __future__ import annotations

import numpy as np

from streamlearn.classify.metrics import score
from streamlearn.classify.space import ClassSpace
from streamlearn.loop.classblocks import _binary_scores

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
