"""A key's learner pickles its rolling window only as far as it is filled, and comes back the
same bits: spilled and read back after each record, it stays the learner never spilled."""

from __future__ import annotations

import importlib.util
import pickle
import random
from pathlib import Path

import pytest
from keyed_run import same

from streamlearn.classify.space import ClassSpace
from streamlearn.keys.units import KeyClassifier, KeyRegressor
from streamlearn.models.logistic import LogisticRegression
from streamlearn.models.sgd import SGDRegressor

WINDOW = 1000
#: A key's learners pickled by 1a95f81, when units.py packed the rings by attribute name.
OLD = Path(__file__).parent / "fixtures" / "keys_units_1a95f81"


def _x(rng: random.Random) -> dict[str, float]:
    return {f"x{j}": rng.gauss(0.0, 1.0) for j in range(3)}


def _assert_same_classifier(got: KeyClassifier, want: KeyClassifier) -> None:
    """The same rolling window (its four rings and where it stands) and the same metrics."""
    for name in ("y", "pred", "loss", "p_pos"):
        assert getattr(got.window, name) == getattr(want.window, name), name
    where = (got.window.next, got.window.len, got.window.right)
    assert where == (want.window.next, want.window.len, want.window.right)
    assert got.summary() == want.summary()
    assert got.rolling_summary() == want.rolling_summary()


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
        _assert_same_classifier(spilled, kept)
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


def _replayed() -> dict[str, KeyRegressor | KeyClassifier]:
    """The learners of ``OLD/make.py``, made again by this code: its very steps."""
    spec = importlib.util.spec_from_file_location("keys_units_1a95f81_make", OLD / "make.py")
    assert spec is not None and spec.loader is not None
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    learners: dict[str, KeyRegressor | KeyClassifier] = make.learners()
    return learners


@pytest.mark.parametrize("records", [3, 11])
def test_learners_pickled_by_the_old_units_load_as_the_same_learners(records):
    # 3 records: the rings were pickled as bytes; 11: a full window, gone round.
    fresh = _replayed()
    regressor = pickle.loads((OLD / f"regressor_{records}.pickle").read_bytes())
    assert isinstance(regressor, KeyRegressor)
    assert len(regressor._window_y) == len(regressor._window_yhat) == 8
    assert same(regressor, fresh[f"regressor_{records}"])
    assert regressor.rolling_summary() == fresh[f"regressor_{records}"].rolling_summary()
    classifier = pickle.loads((OLD / f"classifier_{records}.pickle").read_bytes())
    kept = fresh[f"classifier_{records}"]
    assert isinstance(classifier, KeyClassifier)
    _assert_same_classifier(classifier, kept)
    # and pickled again by this code, they come back the same
    again = pickle.loads(pickle.dumps(regressor))
    assert same(again, fresh[f"regressor_{records}"])
    assert pickle.loads(pickle.dumps(classifier)).rolling_summary() == kept.rolling_summary()
