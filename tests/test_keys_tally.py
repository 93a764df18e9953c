"""The whole stream's tally of a keyed run scores a batch's predictions at once (the
compiled kernel) with the bits of scoring them one by one."""

from __future__ import annotations

import pickle
import random

import pytest

from streamlearn.keys.tally import RegressionTally


@pytest.mark.parametrize("batch", [1, 15, 16, 17, 250])
def test_settled_batches_score_as_pair_by_pair(batch: int) -> None:
    rng = random.Random(batch)
    pairs = [(rng.gauss(0.0, 3.0), rng.gauss(0.0, 3.0)) for _ in range(700)]
    pairs[5] = (1.0, -0.0)  # a -0.0 prediction enters the window as it is
    one, later = RegressionTally(rolling_window=100), RegressionTally(rolling_window=100)
    for at in range(0, len(pairs), batch):
        for y, yhat in pairs[at : at + batch]:
            one.step_with_prediction({}, y, yhat)
            later.later(y, yhat)
        later.settle()
        a, b = one.export_prequential(), later.export_prequential()
        assert a.metrics == b.metrics and a.abs_sum == b.abs_sum
        assert a.window_y.tobytes() == b.window_y.tobytes()
        assert a.window_yhat.tobytes() == b.window_yhat.tobytes()
        assert (a.records_learned, a.window_next, a.window_len) == (
            b.records_learned,
            b.window_next,
            b.window_len,
        )
        assert one.curve.points == later.curve.points
    assert one.summary() == later.summary() and one.rolling_summary() == later.rolling_summary()


def test_a_pickled_tally_holds_what_waited() -> None:
    tally = RegressionTally(rolling_window=10)
    for y in range(40):
        tally.later(float(y), 0.5)
    back = pickle.loads(pickle.dumps(tally))  # (a checkpoint comes between batches)
    assert back.records_scored == tally.records_scored == 40
    back.later(1.0, 2.0)
    back.settle()
    assert back.records_scored == 41
