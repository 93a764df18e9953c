"""streamlearn.metrics: River's MAE, RMSE and R2 restated, equal to River's to the last bit."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import metrics as river_metrics

from streamlearn import metrics
from streamlearn.learner import Learner
from streamlearn.models.sgd import SGDRegressor

NAMES = ("MAE", "RMSE", "R2")

finite = st.floats(min_value=-1e100, max_value=1e100, allow_nan=False)


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(finite, finite, st.sampled_from([1.0, 0.5, 2.0])), max_size=60))
def test_every_value_equals_rivers_after_every_update(pairs):
    ours = [getattr(metrics, name)() for name in NAMES]
    theirs = [getattr(river_metrics, name)() for name in NAMES]
    for y, yhat, w in pairs:
        for mine, river in zip(ours, theirs, strict=True):
            mine.update(y, yhat, w)
            river.update(y, yhat, w)
            assert _same(mine.get(), river.get()), (type(mine).__name__, mine.get(), river.get())


def test_equal_on_a_long_stream_of_every_scale():
    rng = np.random.default_rng(3)
    for scale in (1e-9, 1.0, 1e9):
        y = rng.normal(size=20_000) * scale + scale
        yhat = y + rng.standard_t(3, size=20_000) * scale
        ours = [getattr(metrics, name)() for name in NAMES]
        theirs = [getattr(river_metrics, name)() for name in NAMES]
        for a, b in zip(y.tolist(), yhat.tolist(), strict=True):
            for mine, river in zip(ours, theirs, strict=True):
                mine.update(a, b)
                river.update(a, b)
        assert [m.get() for m in ours] == [m.get() for m in theirs]


def test_pickled_mid_stream_goes_on_identically():
    pairs = [(float(i % 7), float(i % 5) * 1.3) for i in range(100)]
    ours = [getattr(metrics, name)() for name in NAMES]
    for y, yhat in pairs[:50]:
        for m in ours:
            m.update(y, yhat)
    copy = pickle.loads(pickle.dumps(ours))
    for y, yhat in pairs[50:]:
        for m in (*ours, *copy):
            m.update(y, yhat)
    assert [m.get() for m in copy] == [m.get() for m in ours]


def test_a_learner_pickled_with_rivers_objects_loads_adopts_and_goes_on():
    """A checkpoint from before streamlearn.metrics holds River's objects in the learner."""
    old, reference = Learner(SGDRegressor(lr=0.05)), Learner(SGDRegressor(lr=0.05))
    rows = [({"a": float(i % 3), "b": float(i % 4)}, float(i % 5)) for i in range(40)]
    rivers = {name.lower(): getattr(river_metrics, name)() for name in NAMES}
    for x, y in rows[:20]:
        yhat = old.step(x, y)
        assert reference.step(x, y) == yhat
        for metric in rivers.values():
            metric.update(y, yhat)
    old.metrics  # noqa: B018  (the metrics at rest: an older learner had no other place)
    old._metrics = rivers  # what an older learner held
    loaded = pickle.loads(pickle.dumps(old))
    assert all(type(m).__module__ == metrics.__name__ for m in loaded.metrics.values())
    assert loaded.summary() == reference.summary()
    for x, y in rows[20:]:
        loaded.step(x, y)
        reference.step(x, y)
    assert loaded.summary() == reference.summary()


def test_a_replay_never_imports_river_metrics(tmp_path):
    """The point of the module: scoring records costs no import of river.metrics, which
    imports every metric River has and scipy.stats."""
    data = tmp_path / "s.csv"
    data.write_text("a,b,y\n" + "".join(f"{i % 3},{i % 4},{i % 5}\n" for i in range(300)))
    code = (
        "import sys\n"
        "from streamlearn.cli import main\n"
        "try:\n"
        f"    main(['replay', {str(data)!r}, '--state-dir', {str(tmp_path / 'st')!r}, "
        "'--drift-detector', 'none'])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print('river.metrics' in sys.modules, 'scipy.stats' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "False False"


@pytest.mark.parametrize("name", NAMES)
def test_adopt_keeps_the_value(name):
    river = getattr(river_metrics, name)()
    for y, yhat in [(1.0, 2.0), (3.0, 1.5), (-2.0, 0.25)]:
        river.update(y, yhat)
    assert metrics.adopt(river).get() == river.get()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-1e6, 1e6, allow_nan=False), st.floats(-1e6, 1e6, allow_nan=False)),
        max_size=40,
    )
)
def test_update_all_is_each_metrics_update_to_the_bit(pairs):
    one, each = metrics.new_metrics(), metrics.new_metrics()
    rivers = {name: getattr(river_metrics, name.upper())() for name in metrics.METRICS}
    for y, yhat in pairs:
        metrics.update_all(one, y, yhat)
        for name, metric in each.items():
            metric.update(y, yhat)
            rivers[name].update(y, yhat)
    assert metrics.export_fields(one) == metrics.export_fields(each)
    assert [m.get() for m in one.values()] == [r.get() for r in rivers.values()]
