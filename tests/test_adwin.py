"""Our compiled ADWIN against River's ``drift.ADWIN`` (the oracle), on many random streams.

Every comparison is exact: the detections at the same values, and width, total, variance,
estimation and n_detections equal to the last bit, because the kernel keeps River's order
of floating-point operations (and both use the C library's ``log``).
"""

from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from river import drift

from streamlearn.drift import adwin as adwin_module
from streamlearn.drift.adwin import ADWIN

# pip builds the extension: only a source tree never installed lacks it, never CI.
needs_kernels = pytest.mark.skipif(
    adwin_module.compiled_kernel() is None and os.environ.get("CI") != "true",
    reason="streamlearn.fast._kernels is not built",
)


def observed(detector: Any) -> tuple[Any, ...]:
    """What River's ADWIN exposes."""
    return (
        detector.drift_detected,
        detector.width,
        detector.total,
        detector.variance,
        detector.estimation,
        detector.n_detections,
    )


def stream(kind: str, n: int, seed: int) -> np.ndarray:
    """Streams that drift in different ways, or not at all."""
    rng = np.random.default_rng(seed)
    half = n // 2
    if kind == "gaussian":
        return rng.normal(1.0, 0.5, n)
    if kind == "laplace":
        return np.abs(rng.laplace(0.0, 1.0, n))
    if kind == "abrupt":
        means = np.repeat(rng.normal(0.0, 2.0, 5), -(-n // 5))[:n]
        return means + rng.normal(0.0, 1.0, n)
    if kind == "gradual":
        ramp = np.clip((np.arange(n) - half) / max(n // 4, 1), 0.0, 1.0)
        return 3.0 * ramp + rng.normal(0.0, 1.0, n)
    if kind == "constant":
        return np.full(n, 0.1)
    if kind == "integers":
        return rng.integers(0, 2, n).astype(float) + (np.arange(n) >= half) * 3
    if kind == "heavy":
        return np.abs(rng.standard_t(1.5, n)) * 1e3  # infinite variance, large values
    if kind == "offset":  # far from 0: the variance updates cancel
        return 1e6 + rng.normal(0.0, 0.2, n) + (np.arange(n) >= half) * 0.3
    raise ValueError(kind)


KINDS = ("gaussian", "laplace", "abrupt", "gradual", "constant", "integers", "heavy", "offset")
SETTINGS: list[dict[str, Any]] = [
    {},
    {"delta": 0.05},
    {"delta": 1e-5, "clock": 1},
    {"clock": 7, "min_window_length": 0, "grace_period": 0},
    {"clock": 100, "min_window_length": 20, "grace_period": 200},
    {"max_buckets": 3, "clock": 3},
    {"max_buckets": 2, "clock": 16, "min_window_length": 2},
    {"max_buckets": 9, "delta": 0.3, "grace_period": 50},
]


def river_run(values: np.ndarray, settings: dict[str, Any]) -> tuple[list[int], list[Any]]:
    """River's detections and what it exposes after every update."""
    river = drift.ADWIN(**settings)
    hits, states = [], []
    for i, x in enumerate(values.tolist()):
        river.update(x)
        if river.drift_detected:
            hits.append(i)
        states.append(observed(river))
    return hits, states


@pytest.mark.parametrize(
    "settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "default"
)
@pytest.mark.parametrize("kind", KINDS)
def test_every_update_equals_rivers(kind: str, settings: dict[str, Any]) -> None:
    values = stream(kind, 3000, seed=len(kind) + len(settings))
    expected_hits, expected_states = river_run(values, settings)
    ours = ADWIN(**settings)
    hits = []
    for i, x in enumerate(values.tolist()):
        if ours.update(x):
            hits.append(i)
        assert observed(ours) == expected_states[i], f"value {i}"
    assert hits == expected_hits
    if kind in {"abrupt", "integers"} and settings.get("delta", 0.002) >= 0.002:
        assert hits  # the oracle is not trivially "no detection"


@pytest.mark.parametrize(
    ("kind", "n", "settings"),
    [
        ("abrupt", 100_000, {}),
        ("gaussian", 100_000, {}),
        ("heavy", 100_000, {"delta": 0.01}),
        ("gradual", 60_000, {"clock": 1, "max_buckets": 3}),
        ("laplace", 60_000, {"clock": 5, "min_window_length": 10, "grace_period": 1000}),
    ],
)
def test_long_streams_equal_rivers_at_checkpoints(
    kind: str, n: int, settings: dict[str, Any]
) -> None:
    values = stream(kind, n, seed=7)
    river, ours = drift.ADWIN(**settings), ADWIN(**settings)
    river_hits, hits = [], []
    for i, x in enumerate(values.tolist()):
        river.update(x)
        if river.drift_detected:
            river_hits.append(i)
        if ours.update(x):
            hits.append(i)
        if i % 997 == 0 or river.drift_detected:
            assert observed(ours) == observed(river), f"value {i}"
    assert hits == river_hits
    assert observed(ours) == observed(river)


def feed_in_chunks(ours: ADWIN, values: np.ndarray, rng: np.random.Generator) -> list[int]:
    """``update_many`` over random chunks, going on after each detection; the detections."""
    hits, done = [], 0
    while done < len(values):
        chunk = values[done : done + int(rng.integers(1, 3000))]
        hit = ours.update_many(chunk)
        if hit < 0:
            done += len(chunk)
        else:
            hits.append(done + hit)
            done += hit + 1
            assert ours.drift_detected
    return hits


@pytest.mark.parametrize("settings", SETTINGS[:6], ids=str)
@pytest.mark.parametrize("kind", ["abrupt", "integers", "heavy", "gradual"])
def test_update_many_equals_update_value_by_value(kind: str, settings: dict[str, Any]) -> None:
    values = stream(kind, 20_000, seed=3)
    one = ADWIN(**settings)
    expected = [i for i, x in enumerate(values.tolist()) if one.update(x)]
    many = ADWIN(**settings)
    assert feed_in_chunks(many, values, np.random.default_rng(1)) == expected
    assert observed(many) == observed(one)
    river = drift.ADWIN(**settings)
    for x in values.tolist():
        river.update(x)
    assert observed(many) == observed(river)


def test_update_many_stops_right_after_a_detection() -> None:
    values = stream("integers", 4000, seed=0)
    ours = ADWIN()
    hit = ours.update_many(values)
    river = drift.ADWIN()
    for x in values[: hit + 1].tolist():
        river.update(x)
    assert hit > 2000 and river.drift_detected
    assert observed(ours) == observed(river)  # nothing after the detection was fed
    # Mixed calls: values waiting in ``update`` go first, then the array.
    for x in values[hit + 1 : hit + 11].tolist():
        river.update(x)
        ours.update(x)
    ours.update_many(values[hit + 11 :])
    for x in values[hit + 11 :].tolist():
        river.update(x)
    assert observed(ours) == observed(river)


@needs_kernels
@pytest.mark.parametrize(
    "settings", [{}, {"clock": 1, "max_buckets": 2}, {"clock": 7, "delta": 0.1}], ids=str
)
@pytest.mark.parametrize("kind", ["abrupt", "heavy", "constant", "offset"])
def test_compiled_equals_plain_python(kind: str, settings: dict[str, Any]) -> None:
    values = stream(kind, 6000, seed=11)
    compiled = ADWIN(**settings, compiled=True)
    python = ADWIN(**settings, compiled=False)
    assert compiled.compiled and not python.compiled
    rng = np.random.default_rng(2)
    assert feed_in_chunks(compiled, values, rng) == feed_in_chunks(
        python, values, np.random.default_rng(2)
    )
    assert observed(compiled) == observed(python)
    assert [python.update(x) for x in values[:500].tolist()] == [
        compiled.update(x) for x in values[:500].tolist()
    ]
    assert compiled.seen == python.seen and compiled.seen_total == python.seen_total
    assert observed(compiled) == observed(python)


def test_plain_python_when_the_fast_path_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMLEARN_FASTPATH", "0")
    assert not ADWIN().compiled
    values = stream("abrupt", 3000, seed=4)
    expected, _ = river_run(values, {})
    assert feed_in_chunks(ADWIN(), values, np.random.default_rng(0)) == expected


@pytest.mark.parametrize("cut", [1, 31, 32, 33, 500, 2047])
def test_a_pickled_detector_continues_identically(cut: int) -> None:
    values = stream("abrupt", 12_000, seed=9)
    whole = ADWIN()
    expected = [i for i, x in enumerate(values.tolist()) if whole.update(x)]
    first = ADWIN()
    hits = [i for i, x in enumerate(values[:cut].tolist()) if first.update(x)]  # values wait
    data = pickle.dumps(first)
    assert len(data) < 2000
    second = pickle.loads(data)
    assert observed(second) == observed(first)
    hits += [cut + i for i, x in enumerate(values[cut:].tolist()) if second.update(x)]
    assert hits == expected
    assert observed(second) == observed(whole)


def test_a_pickle_taken_right_after_a_detection_resets_on_the_next_update() -> None:
    values = stream("integers", 5000, seed=1)
    ours, river = ADWIN(), drift.ADWIN()
    hit = ours.update_many(values)
    for x in values[: hit + 1].tolist():
        river.update(x)
    restored = pickle.loads(pickle.dumps(ours))
    assert restored.drift_detected and restored.n_detections == 1
    for x in values[hit + 1 :].tolist():
        restored.update(x)
        river.update(x)
        assert observed(restored) == observed(river)


@pytest.mark.parametrize(
    "settings", [{}, {"max_buckets": 2, "clock": 3}, {"max_buckets": 7}], ids=str
)
@pytest.mark.parametrize("cut", [0, 5, 700, 2999, 6100])
def test_rivers_detector_converts_exactly_mid_stream(settings: dict[str, Any], cut: int) -> None:
    values = stream("abrupt", 9000, seed=5)
    river = drift.ADWIN(**settings)
    hits = []
    for i, x in enumerate(values[:cut].tolist()):
        river.update(x)
        if river.drift_detected:
            hits.append(i)
    ours = ADWIN.from_river(pickle.loads(pickle.dumps(river)), seen=(cut, 1.5))
    assert ours is not None
    assert observed(ours) == observed(river)
    assert (ours.seen, ours.seen_total) == (cut, 1.5)
    river_hits, our_hits = [], []
    for i, x in enumerate(values[cut:].tolist(), cut):
        river.update(x)
        if river.drift_detected:
            river_hits.append(i)
        if ours.update(x):
            our_hits.append(i)
    assert our_hits == river_hits
    assert observed(ours) == observed(river)
    assert hits + river_hits  # the stream drifts: detections before or after the cut


def test_a_river_state_that_does_not_read_back_is_not_converted() -> None:
    river = drift.ADWIN()
    for x in stream("gaussian", 100, seed=0).tolist():
        river.update(x)

    class Broken:
        delta, clock, max_buckets, min_window_length, grace_period = 0.002, 32, 5, 5, 10
        drift_detected = False
        width, total, variance, n_detections = river.width, river.total + 1.0, 0.0, 0

        class _helper:  # stands in for River's attribute
            @staticmethod
            def __getstate__() -> bytes:
                return river._helper.__getstate__()

    assert ADWIN.from_river(Broken()) is None  # reads, but not what it reports
    Broken._helper.__getstate__ = staticmethod(lambda: b"\x00" * 10)  # type: ignore[method-assign]
    assert ADWIN.from_river(Broken()) is None  # a layout it does not know


def test_ticks_wrap_like_rivers_i32() -> None:
    # River counts ticks in an i32; with a clock that does not divide 2**32 the tested
    # values move at the wrap. Start both just before it (River's state edited in place).
    river = drift.ADWIN(clock=7)
    values = stream("abrupt", 800, seed=2)
    for x in values[:100].tolist():
        river.update(x)
    state = bytearray(river._helper.__getstate__())
    tick_at = 8 + 4 + 8 + 8 + 8 + 4 * 8 + 2 * 4  # after the parameters, scalars and 2 counts
    (tick,) = struct.unpack_from("<i", state, tick_at)
    assert tick == 100
    struct.pack_into("<i", state, tick_at, 2**31 - 1 - 20)
    river._helper.__setstate__(bytes(state))
    ours = ADWIN.from_river(river)
    assert ours is not None
    river_hits, hits = [], []
    for i, x in enumerate(values[100:].tolist()):
        river.update(x)
        if river.drift_detected:
            river_hits.append(i)
        if ours.update(x):
            hits.append(i)
        assert observed(ours) == observed(river)
    assert river_hits and hits == river_hits
    assert river_hits[0] > 20  # the first detection came after the wrap


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delta": 0.0}, "delta must be between 0 and 1"),
        ({"delta": 1.5}, "delta must be between 0 and 1"),
        ({"clock": 0}, "clock must be a whole number >= 1"),
        ({"max_buckets": 1}, "max_buckets must be a whole number >= 2"),
        ({"min_window_length": -1}, "min_window_length must be a whole number >= 0"),
        ({"grace_period": 2.5}, "grace_period must be a whole number"),
    ],
)
def test_parameters_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ADWIN(**kwargs)


def test_update_many_takes_lists_and_refuses_2d() -> None:
    ours = ADWIN()
    assert ours.update_many([0.0, 1.0, 2.0]) == -1
    assert ours.width == 3.0 and ours.total == 3.0
    with pytest.raises(ValueError, match="1-d array"):
        ours.update_many(np.zeros((2, 2)))


FEEDERS: dict[str, Callable[[ADWIN, np.ndarray], list[int]]] = {
    "update": lambda d, v: [i for i, x in enumerate(v.tolist()) if d.update(x)],
    "update_many": lambda d, v: feed_in_chunks(d, v, np.random.default_rng(3)),
}


@pytest.mark.parametrize("feeder", FEEDERS)
def test_a_nan_in_the_stream_behaves_as_rivers(feeder: str) -> None:
    values = stream("gaussian", 2000, seed=0)
    values[700] = np.nan
    river = drift.ADWIN()
    expected = []
    for i, x in enumerate(values.tolist()):
        river.update(x)
        if river.drift_detected:
            expected.append(i)
    ours = ADWIN()
    assert FEEDERS[feeder](ours, values) == expected
    assert np.isnan(ours.total) == np.isnan(river.total)
    assert ours.width == river.width
