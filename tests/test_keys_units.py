"""A key's learner pickles its rolling window only as far as it is filled, and comes back the
same bits: spilled and read back after each record, it stays the learner never spilled."""

from __future__ import annotations

import pickle
import random

from keyed_run import same

from streamlearn.classify.space import ClassSpace
from streamlearn.keys.units import KeyClassifier, KeyRegressor
from streamlearn.models.logistic import LogisticRegression
from streamlearn.models.sgd import SGDRegressor

WINDOW = 1000


def _x(rng: random.Random) -> dict[str, float]:
    return {f"x{j}": rng.gauss(0.0, 1.0) for j in range(3)}


def test_a_regressor_spilled_after_every_record_is_the_one_never_spilled():
    rng = random.Random(3)
    kept = KeyRegressor(SGDRegressor(lr=0.01), rolling_window=8)
    spilled = KeyRegressor(SGDRegressor(lr=0.01), rolling_window=8)
    for _ in range(20):  # past a full window, and round it twice
        x, y = _x(rng), rng.gauss(0.0, 1.0)
        assert kept.step(x, y) == spilled.step(x, y)
        spilled = pickle.loads(pickle.dumps(spilled))
        assert same(spilled, kept)
        assert len(spilled._window_y) == len(spilled._window_yhat) == 8


def test_a_regressor_of_few_records_pickles_a_few_hundred_bytes_not_its_window():
    rng = random.Random(4)
    learner = KeyRegressor(SGDRegressor(lr=0.01), rolling_window=WINDOW)
    whole = len(pickle.dumps(learner))
    for _ in range(5):
        learner.step(_x(rng), rng.gauss(0.0, 1.0))
    small = len(pickle.dumps(learner))
    assert small < 1500 and whole < 1500  # 16 kB with the rings' zero slots
    back = pickle.loads(pickle.dumps(learner))
    assert len(back._window_y) == WINDOW and same(back, learner)


def test_a_classifier_spilled_after_every_record_is_the_one_never_spilled():
    rng = random.Random(5)
    space = ClassSpace(binary=True)
    kept = KeyClassifier(LogisticRegression(lr=0.1), space, rolling_window=8)
    spilled = KeyClassifier(LogisticRegression(lr=0.1), space, rolling_window=8)
    for _ in range(20):
        x, y = _x(rng), float(rng.random() < 0.5)
        assert kept.step(x, y) == spilled.step(x, y)
        spilled = pickle.loads(pickle.dumps(spilled))
        spilled.classes = kept.classes = space  # (a keyed run shares the space by reference)
        for name in ("y", "pred", "loss", "p_pos"):
            assert getattr(spilled.window, name) == getattr(kept.window, name), name
        assert (spilled.window.next, spilled.window.len, spilled.window.right) == (
            kept.window.next,
            kept.window.len,
            kept.window.right,
        )
        assert spilled.summary() == kept.summary()
        assert spilled.rolling_summary() == kept.rolling_summary()
    assert len(kept.window.y) == 8


def test_a_classifier_of_few_records_pickles_small():
    rng = random.Random(6)
    learner = KeyClassifier(
        LogisticRegression(lr=0.1), ClassSpace(binary=True), rolling_window=WINDOW
    )
    for _ in range(5):
        learner.step(_x(rng), float(rng.random() < 0.5))
    assert len(pickle.dumps(learner)) < 4000  # 32 kB with the four rings' zero slots
    back = pickle.loads(pickle.dumps(learner))
    assert len(back.window.p_pos) == WINDOW and back.rolling_summary() == learner.rolling_summary()
