"""The compiled fast path (plain CSV + sgd) gives what the per-record path gives, bit for bit.

Each property is checked for the compiled kernels (``streamlearn.fast._kernels``, C) and
for the same kernels run as plain Python: parsed numbers against ``float()``, learning against the
per-record ``Learner`` and the numpy oracle, metrics against River, and whole
runs (dead letters, predictions, checkpoints and their byte offsets, a SIGKILL
mid-block) against the same run with the fast path off.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
from river import evaluate, metrics

from streamhelpers import (
    STREAMLEARN,
    cli,
    inspect_json,
    kill_at_random_moments,
    sgd_oracle,
    state_and_sinks,
)
from streamlearn.curve import Curve
from streamlearn.fast import block as fastpath
from streamlearn.learner import DIVERGED, Learner
from streamlearn.loop.daemon import Daemon, RunOptions
from streamlearn.models.sgd import SGDRegressor
from streamlearn.records import CsvDecoder, Record, Rejected
from streamlearn.sinks.jsonlines import JsonLinesSink
from streamlearn.sources.base import Raw
from streamlearn.sources.file import FileSource
from streamlearn.state import BackgroundWriter, CheckpointStore

compiled = fastpath.compiled_kernels()
# pip builds the extension: only a source tree never installed lacks it, never CI.
_NOT_BUILT = compiled is None and os.environ.get("CI") != "true"
KERNELS = [
    pytest.param(compiled, id="c", marks=pytest.mark.skipif(_NOT_BUILT, reason="not built")),
    pytest.param(fastpath.python_kernels(), id="python"),
]


def bits(values) -> list[str]:
    """Exact float identity (distinguishes -0.0 and every last bit)."""
    return [float(v).hex() for v in values]


def make_rows(
    n: int, d: int, seed: int, scales: tuple[float, ...] = (0.01, 1.0, 100.0)
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.choice(scales, size=d)
    y = X @ rng.normal(size=d) + 1.5 + rng.normal(scale=0.1, size=n)
    # Round-trip through the text format, so the oracle sees what the file says.
    X = np.array([[float(f"{v:.6f}") for v in row] for row in X])
    y = np.array([float(f"{v:.6f}") for v in y])
    return X, y


# -- the parser --------------------------------------------------------------------

NUMBER_CORPUS = [
    "0", "-0", "+0", "0.0", "-0.000000", "1", "-1", "+1.5", ".5", "5.", "-.25", "00012",
    "3.14159", "1e5", "1E5", "1e+05", "2.5e-3", "-7.25E-10", "123456789012345", "0.000000001",
    "9007199254740993", "1.7976931348623157e308", "1e23", "1e-23", "4.9e-324", "1e999",
    "1e150", "-1e150", "9.999999999999998e149", "-1e200", "1e300",
    "12345678901234567890", "0.1", "0.30000000000000004", "2.2250738585072014e-308",
    "nan", "inf", "-inf", "1_0", " 1", "1 ", "1e", "e5", ".", "-", "1..2", "0x10", "1,5",
    '"1"', "",
]  # fmt: skip


def line_corpus() -> list[bytes]:
    rng = random.Random(5)
    lines = [b"a,b,y\n", b"\n", b"\r\n", b" a , b , y \n"]
    for text in NUMBER_CORPUS:
        lines.append(f"{text},1,2\n".encode())
        lines.append(f"1,{text},2\n".encode())
        lines.append(f"1,2,{text}\n".encode())
    for _ in range(300):
        values = [rng.uniform(-1e4, 1e4) * 10 ** rng.randint(-12, 12) for _ in range(3)]
        fmt = rng.choice(["%.6f", "%.15g", "%.17g", "%r", "%.3e", "%.0f"])
        text = ",".join(fmt % v if fmt != "%r" else repr(v) for v in values)
        lines.append(text.encode() + rng.choice([b"\n", b"\r\n"]))
    lines += [
        b"1,2,\n",
        b"1,2,\r\n",
        b"1,2, \n",
        b"1,2,null\n",
        b"1,2\n",
        b"1,2,3,4\n",
        b"\xff,1,2\n",
    ]
    return lines


@pytest.mark.parametrize("kernels", KERNELS)
def test_parser_reads_numbers_exactly_like_the_decoder(kernels):
    decoder = CsvDecoder(["a", "b", "y"])
    lines = line_corpus()
    data = b"".join(lines)
    parsed = fastpath.BlockLearner(["a", "b"], kernels=kernels).parse_lines(data, 1000, decoder)
    assert parsed.rows == len(lines)
    offset = 1000
    for row, line in enumerate(lines):
        expected = decoder.decode(Raw(line, offset))
        assert parsed.raw(row).value == line and parsed.raw(row).offset == offset
        offset += len(line)
        kind = int(parsed.status[row])
        if expected is None:
            assert kind == fastpath.NOTHING, line
        elif type(expected) is Rejected:
            assert kind == fastpath.REJECTED, line
            assert parsed.judged[row].reason == expected.reason
        else:
            assert type(expected) is Record
            assert kind == (fastpath.UNLABELED if expected.y is None else fastpath.LABELED), line
            assert bits(parsed.values[row, :2]) == bits(expected.x.values()), line
            if expected.y is not None:
                assert bits([parsed.values[row, 2]]) == bits([expected.y]), line


@pytest.mark.parametrize("kernels", KERNELS)
def test_parser_needs_the_decoder_only_for_lines_it_cannot_read_exactly(kernels):
    X, y = make_rows(500, 4, seed=1)
    data = b"".join(
        (",".join(f"{v:.6f}" for v in row) + f",{t:.6f}\n").encode()
        for row, t in zip(X, y, strict=True)
    )
    parsed = fastpath.BlockLearner(["a", "b", "c", "d"], kernels=kernels).parse_lines(data, 0, None)
    assert not parsed.judged  # no line went to the decoder (None would have failed)
    assert bits(parsed.values[:, :4].ravel()) == bits(X.ravel())
    assert bits(parsed.values[:, 4]) == bits(y)


# -- the learning kernel -----------------------------------------------------------


def learn_both(kernels, X, y, labeled, *, lr=0.01, window=50, curve_points=16):
    """The same rows through the kernel and through Learner.step / Learner.predict."""
    features = [f"x{j}" for j in range(X.shape[1])]
    start = {name: 0.0 for name in features}

    def fresh() -> Learner:
        learner = Learner(SGDRegressor(lr=lr, initial_weights=start), rolling_window=window)
        learner.curve = Curve(max_points=curve_points)
        return learner

    fast, slow = fresh(), fresh()
    values = np.column_stack([X, np.where(labeled, y, np.nan)])
    status = np.where(labeled, fastpath.LABELED, fastpath.UNLABELED).astype(np.int8)
    parsed = fastpath.Parsed(values, status, np.zeros(len(y) + 1, np.int64), b"", 0, {})
    block = fastpath.BlockLearner(features, kernels=kernels)
    done = 0
    for chunk in np.array_split(np.arange(len(y)), 7):  # blocks of different sizes
        done = block.learn(fast, fast.model, parsed, int(chunk[0]), int(chunk[-1]) + 1)
    assert done == len(y)
    fast_yhat = block.yhat[: len(y)].tolist()
    slow_yhat = []
    for row, target, is_labeled in zip(X, y, labeled, strict=True):
        x = dict(zip(features, row.tolist(), strict=True))
        slow_yhat.append(slow.step(x, float(target)) if is_labeled else slow.predict(x))
    return fast, slow, fast_yhat, slow_yhat


def assert_same_learner(fast: Learner, slow: Learner) -> None:
    assert bits(fast.model.weights.values()) == bits(slow.model.weights.values())
    assert list(fast.model.weights) == list(slow.model.weights)
    assert bits([fast.model.intercept]) == bits([slow.model.intercept])
    for name in fast.metrics:
        assert pickle.dumps(fast.metrics[name]) == pickle.dumps(slow.metrics[name]), name
    assert fast.records_learned == slow.records_learned
    assert bits(fast.recent_y) == bits(slow.recent_y)
    assert bits(fast.recent_yhat) == bits(slow.recent_yhat)
    assert bits([fast.export_prequential().abs_sum]) == bits([slow.export_prequential().abs_sum])
    assert fast.curve.stride == slow.curve.stride
    assert fast.curve.points == slow.curve.points
    assert fast.rolling_summary() == slow.rolling_summary()
    assert fast.summary() == slow.summary()


@pytest.mark.parametrize("kernels", KERNELS)
def test_kernel_equals_the_per_record_learner_bit_for_bit(kernels):
    X, y = make_rows(3000, 5, seed=2)
    labeled = np.random.default_rng(3).random(len(y)) > 0.1
    # A small window and curve: ring wrap-around, re-sums and curve thinning inside blocks.
    fast, slow, fast_yhat, slow_yhat = learn_both(kernels, X, y, labeled, window=37)
    assert bits(fast_yhat) == bits(slow_yhat)
    assert_same_learner(fast, slow)
    assert fast.curve.stride > 64  # it thinned several times


@pytest.mark.parametrize("kernels", KERNELS)
def test_kernel_equals_the_numpy_oracle_and_rivers_progressive_val_score(kernels):
    X, y = make_rows(4000, 10, seed=4, scales=(1.0,))
    labeled = np.ones(len(y), dtype=bool)
    fast, _, fast_yhat, _ = learn_both(kernels, X, y, labeled)
    theta, theta0, predictions = sgd_oracle(X, y, 0.01)
    np.testing.assert_allclose(list(fast.model.weights.values()), theta, rtol=0, atol=1e-12)
    assert abs(fast.model.intercept - theta0) < 1e-12
    np.testing.assert_allclose(fast_yhat, predictions, rtol=0, atol=1e-12)
    metric = metrics.MAE() + metrics.RMSE() + metrics.R2()
    dataset = [
        ({f"x{j}": v for j, v in enumerate(row.tolist())}, t) for row, t in zip(X, y, strict=True)
    ]
    model = SGDRegressor(lr=0.01, initial_weights={f"x{j}": 0.0 for j in range(10)})
    evaluate.progressive_val_score(dataset, model, metric)
    for river_metric, name in zip(metric, ("mae", "rmse", "r2"), strict=True):
        assert fast.metrics[name].get() == pytest.approx(river_metric.get(), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("kernels", KERNELS)
def test_kernel_metrics_match_river_bit_for_bit_on_this_install(kernels):
    """The kernel restates River's metric formulas: River's own objects, fed the same
    pairs one by one, must hold the same values to the last bit."""
    rng = np.random.default_rng(7)
    rows = 500
    values = np.column_stack([rng.normal(size=(rows, 2)), rng.normal(size=rows) * 3 + 1])
    learner = Learner(SGDRegressor(lr=0.05), rolling_window=8)
    learner.model.learn_one({"a": 0.0, "b": 0.0}, 0.0)  # all weights present
    parsed = fastpath.Parsed(
        values, np.zeros(rows, dtype=np.int8), np.zeros(rows + 1, np.int64), b"", 0, {}
    )
    fast = fastpath.BlockLearner(["a", "b"], kernels=kernels)
    assert fast.learn(learner, learner.model, parsed, 0, rows) == rows
    reference = {"mae": metrics.MAE(), "rmse": metrics.RMSE(), "r2": metrics.R2()}
    for y, yhat in zip(values[:, 2].tolist(), fast.yhat[:rows].tolist(), strict=True):
        for metric in reference.values():
            metric.update(y, yhat)
    assert {name: m.get() for name, m in reference.items()} == {
        name: m.get() for name, m in learner.metrics.items()
    }


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize("kernels", KERNELS)
def test_kernel_stops_before_a_non_finite_prediction(kernels):
    features = ["a"]
    learner = Learner(SGDRegressor(lr=0.1, initial_weights={"a": 0.0}))
    values = np.array([[1.0, 2.0], [1e308, 1.0], [1e308, 1.0], [1.0, 1.0]])
    status = np.zeros(4, dtype=np.int8)
    parsed = fastpath.Parsed(values, status, np.zeros(5, np.int64), b"", 0, {})
    block = fastpath.BlockLearner(features, kernels=kernels)
    stop = block.learn(learner, learner.model, parsed, 0, 4)
    # Row 1 predicts 2e307: beyond learner.DIVERGED, the per-record path's divergence rule.
    assert stop == 1 and learner.records_learned == 1
    assert block.yhat[1] > DIVERGED
    values[1, 0] = 1e149  # a large but sane prediction is learned, then row 2 overflows
    learner = Learner(SGDRegressor(lr=0.1, initial_weights={"a": 0.0}))
    stop = block.learn(learner, learner.model, parsed, 0, 4)
    assert stop == 2 and learner.records_learned == 2


def test_a_prequential_snapshot_imported_back_restores_the_learner():
    """``export_prequential(copy=True)`` then ``import_prequential``: the learner is as it was,
    record for record, after learning more in between (ring wrap-around and curve thinning)."""
    X, y = make_rows(400, 3, seed=5, scales=(1.0,))
    pairs = zip(X, y, strict=True)
    rows = [(dict(zip("abc", row.tolist(), strict=True)), float(t)) for row, t in pairs]

    def fresh() -> Learner:
        learner = Learner(SGDRegressor(lr=0.01), rolling_window=23)
        learner.curve = Curve(max_points=8)
        return learner

    learner, reference = fresh(), fresh()
    for x, target in rows[:150]:
        learner.step(x, target)
        reference.step(x, target)
    snapshot, model = learner.export_prequential(copy=True), copy.deepcopy(learner.model)
    for x, target in rows[150:]:
        assert not math.isnan(learner.step(x, target))
    assert learner.records_learned == 400 and learner.curve.stride > 16
    learner.import_prequential(snapshot)
    learner.model = model
    assert_same_learner(learner, reference)
    for x, target in rows[150:200]:
        learner.step(x, target)
    learner.import_prequential(snapshot)  # a snapshot can be imported again
    learner.model = copy.deepcopy(reference.model)
    assert_same_learner(learner, reference)
    for x, target in rows[150:]:
        learner.step(x, target)
        reference.step(x, target)
    assert_same_learner(learner, reference)


def test_a_learner_pickled_before_the_ring_buffer_loads_the_same(tmp_path):
    # Checkpoints written by the previous streamlearn hold deques, eager metrics and a
    # dataclass curve of tuples; they must load into the ring and the array curve.
    from collections import deque

    X, y = make_rows(300, 3, seed=9)
    learner = Learner(SGDRegressor(lr=0.01), rolling_window=100)
    for row, target in zip(X, y, strict=True):
        learner.step(dict(zip("abc", row.tolist(), strict=True)), float(target))
    old = dict(learner.__getstate__())
    old["metrics"] = old.pop("_metrics")
    old["recent_y"] = deque(learner.recent_y, maxlen=100)
    old["recent_yhat"] = deque(learner.recent_yhat, maxlen=100)
    for key in ("_window_y", "_window_yhat", "_window_next", "_window_len"):
        del old[key]
    curve = Curve.__new__(Curve)
    curve.__setstate__({"max_points": 4096, "stride": 1, "points": learner.curve.points})
    old["curve"] = curve
    loaded = Learner.__new__(Learner)
    loaded.__setstate__(old)
    assert_same_learner(loaded, learner)
    assert_same_learner(pickle.loads(pickle.dumps(loaded)), learner)


# -- whole runs: fast path against the per-record path ------------------------------


def write_stream(path: Path, n: int = 6000, seed: int = 11) -> tuple[np.ndarray, np.ndarray, set]:
    """A CSV with unlabeled rows and, scattered through it, every kind of bad line."""
    X, y = make_rows(n, 4, seed=seed, scales=(0.1, 1.0, 3.0))
    rng = random.Random(seed)
    unlabeled = set(rng.sample(range(n), n // 20))
    bad = [
        b"1.0,2.0,3.0\n", b"1,oops,2,3,4\n", b"nan,1,2,3,4\n", b"1,2,3,4,1e999\n",
        b"1,2,3,4,inf\n", b"\xff\xfe,1,2,3,4\n", b"1,,2,3,4\n", b"x0,x1,x2,x3,y\n", b"\n",
    ]  # fmt: skip
    with open(path, "wb") as handle:
        handle.write(b"x0,x1,x2,x3,y\n")
        for i in range(n):
            if rng.random() < 0.01:
                handle.write(rng.choice(bad))
            if rng.random() < 0.01:  # exact but not in the parser's subset: the decoder reads it
                line = ",".join(repr(float(v)) for v in X[i]) + f",{float(y[i])!r}"
            else:
                line = ",".join(f"{v:.6f}" for v in X[i]) + f",{y[i]:.6f}"
            if i in unlabeled:
                line = line.rsplit(",", 1)[0] + ","
            handle.write(line.encode() + (b"\r\n" if rng.random() < 0.01 else b"\n"))
    return X, y, unlabeled


def run_daemon(
    path: Path, tmp: Path, *, fast: bool, monkeypatch, monitor=None, every=1000, on_time=True
):
    """One replay; ``on_time``: every due checkpoint is taken (not deferred to a free writer).

    The loop defers a checkpoint while the writer is busy, which makes where they
    fall depend on the disk; comparing two runs checkpoint by checkpoint needs them on time.
    """
    monkeypatch.setenv("STREAMLEARN_FASTPATH", "1" if fast else "0")
    tmp.mkdir()
    dead, predictions = JsonLinesSink(tmp / "dead.jsonl"), JsonLinesSink(tmp / "pred.jsonl")
    store = CheckpointStore(tmp / "state")
    daemon = Daemon(
        FileSource(path),
        CsvDecoder(["x0", "x1", "x2", "x3", "y"]),
        Learner(SGDRegressor(lr=0.01), rolling_window=100),
        model_spec="sgd",
        store=store,
        dead_letters=dead,
        predictions=predictions,
        options=RunOptions(checkpoint_every=every),
        model_factory=lambda: SGDRegressor(lr=0.01),
        monitor=monitor,
        divergence_factor=100.0,
    )
    positions = []
    checkpoint = daemon.checkpoint

    def recording_checkpoint(*, wait: bool = False) -> None:
        positions.append((daemon.source.snapshot()["offset"], daemon.counters.records_seen))
        checkpoint(wait=wait)

    daemon.checkpoint = recording_checkpoint  # type: ignore[method-assign]
    with pytest.MonkeyPatch.context() as patch:
        if on_time:
            patch.setattr(BackgroundWriter, "idle", property(lambda self: True))
        summary = daemon.run()
    used_blocks = daemon.block_learner is not None
    for sink in (dead, predictions):
        sink.close()
    state = store.load().state
    store.close()
    return summary, state, positions, used_blocks, tmp


def assert_same_run(fast, slow) -> None:
    fast_summary, fast_state, fast_positions, fast_used, fast_dir = fast
    slow_summary, slow_state, slow_positions, slow_used, slow_dir = slow
    assert fast_used and not slow_used
    for key in ("created", "checkpoint"):
        fast_summary.pop(key, None), slow_summary.pop(key, None)
    assert json.dumps(fast_summary, sort_keys=True) == json.dumps(slow_summary, sort_keys=True)
    assert_same_learner(fast_state["learner"], slow_state["learner"])
    assert fast_state["counters"] == slow_state["counters"]
    assert fast_state["source"] == slow_state["source"]
    assert fast_positions == slow_positions  # every checkpoint at the same line and byte
    for name in ("dead.jsonl", "pred.jsonl"):
        assert (fast_dir / name).read_bytes() == (slow_dir / name).read_bytes(), name


def test_a_replay_through_blocks_equals_the_per_record_replay(tmp_path, monkeypatch):
    path = tmp_path / "stream.csv"
    X, y, unlabeled = write_stream(path)
    fast = run_daemon(path, tmp_path / "fast", fast=True, monkeypatch=monkeypatch)
    slow = run_daemon(path, tmp_path / "slow", fast=False, monkeypatch=monkeypatch)
    assert_same_run(fast, slow)
    summary = fast[0]
    assert summary["records_learned"] == len(y) - len(unlabeled)
    assert summary["records_unlabeled"] == len(unlabeled)
    assert summary["records_rejected"] > 20
    letters = (tmp_path / "fast" / "dead.jsonl").read_text().splitlines()
    offsets = [json.loads(line)["position"]["offset"] for line in letters]
    assert offsets == sorted(set(offsets))  # in stream order, each once
    labeled = np.array([i not in unlabeled for i in range(len(y))])
    theta, theta0, _ = sgd_oracle(X, y, 0.01, labeled=labeled)
    weights = [summary["weights"][f"x{j}"] for j in range(4)]
    np.testing.assert_allclose(weights, theta, rtol=0, atol=1e-12)
    assert abs(summary["intercept"] - theta0) < 1e-12


def test_checkpoints_between_blocks_land_on_line_boundaries(tmp_path, monkeypatch):
    path = tmp_path / "stream.csv"
    write_stream(path, n=3000)
    data = path.read_bytes()
    for on_time in (True, False):
        _, _, positions, used, _ = run_daemon(
            path, tmp_path / f"fast{on_time}", fast=True, monkeypatch=monkeypatch, every=137,
            on_time=on_time,
        )  # fmt: skip
        assert used and len(positions) > (20 if on_time else 1)
        for offset, _ in positions:
            assert offset == len(data) or data[offset - 1 : offset] == b"\n"


def test_kernels_missing_means_the_per_record_path_with_the_same_results(tmp_path, monkeypatch):
    path = tmp_path / "stream.csv"
    write_stream(path, n=2000)
    monkeypatch.setattr(fastpath, "compiled_kernels", lambda: None)
    without = run_daemon(path, tmp_path / "without", fast=True, monkeypatch=monkeypatch)
    slow = run_daemon(path, tmp_path / "slow", fast=False, monkeypatch=monkeypatch)
    assert not without[3]
    assert without[0]["weights"] == slow[0]["weights"]
    assert without[2] == slow[2]


@pytest.mark.parametrize("rows", [0, 3000], ids=["header-only", "blocks"])
def test_a_replay_imports_neither_numba_nor_scipy_nor_river_metrics(tmp_path, rows):
    path = tmp_path / "stream.csv"
    path.write_text("a,b,y\n" + "".join(f"{i % 7},{i % 5}.5,{i % 3}\n" for i in range(rows)))
    code = (
        "import sys\n"
        "from streamlearn.cli import main\n"
        f"main(['replay', {str(path)!r}], standalone_mode=False)\n"
        "print(sorted(m for m in ('numba', 'scipy', 'river.metrics') if m in sys.modules))\n"
        "print('streamlearn.fast._kernels' in sys.modules)\n"
        "print('numpy' in sys.modules)\n"
    )
    result = subprocess.run(
        [STREAMLEARN[0], "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    *_, imported, kernels, numpy = result.stdout.strip().splitlines()
    assert imported == "[]"
    assert kernels == str(rows > 0)  # the blocks ran on the compiled kernels
    assert numpy == str(rows > 0)  # a header-only file (start-up) never pays for numpy


def test_divergence_inside_a_block_is_handled_as_record_by_record(tmp_path, monkeypatch):
    path = tmp_path / "wild.csv"
    rng = np.random.default_rng(0)
    with open(path, "w") as handle:
        handle.write("x0,x1,x2,x3,y\n")
        for i in range(3000):
            scale = 1e150 if 1500 <= i < 1510 else 1.0  # the update overflows here
            row = rng.normal(size=4) * scale
            handle.write(",".join(f"{v:.6e}" for v in row) + f",{rng.normal():.6f}\n")
    fast = run_daemon(path, tmp_path / "fast", fast=True, monkeypatch=monkeypatch)
    slow = run_daemon(path, tmp_path / "slow", fast=False, monkeypatch=monkeypatch)
    assert fast[0]["divergence_events"] >= 1
    assert_same_run(fast, slow)


def test_a_drift_monitor_that_resets_the_model_mid_block(tmp_path, monkeypatch):
    from streamlearn.drift.monitor import DriftConfig, DriftMonitor

    path = tmp_path / "drift.csv"
    rng = np.random.default_rng(1)
    X = rng.normal(size=(4000, 4))
    before, after = np.array([1.0, 2.0, -1.0, 0.5]), np.array([-2.0, 1.0, 3.0, -1.5])
    y = np.where(np.arange(4000) < 2000, X @ before, X @ after) + rng.normal(scale=0.3, size=4000)
    with open(path, "w") as handle:
        handle.write("x0,x1,x2,x3,y\n")
        for row, target in zip(X, y, strict=True):
            handle.write(",".join(f"{v:.6f}" for v in row) + f",{target:.6f}\n")

    def monitor():
        return DriftMonitor(DriftConfig(on_drift="reset", features=("x0",)))

    restores = []
    restore = fastpath.BlockLearner.restore

    def counting_restore(self, *args):
        restores.append(1)
        return restore(self, *args)

    monkeypatch.setattr(fastpath.BlockLearner, "restore", counting_restore)

    fast = run_daemon(
        path, tmp_path / "fast", fast=True, monkeypatch=monkeypatch, monitor=monitor()
    )
    slow = run_daemon(
        path, tmp_path / "slow", fast=False, monkeypatch=monkeypatch, monitor=monitor()
    )
    assert fast[0]["drift"]["actions"]["reset"] >= 1
    assert restores  # the reset came in the middle of a block: learned again up to it
    assert fast[0]["drift_events"] == slow[0]["drift_events"]
    assert_same_run(fast, slow)


# -- the file source's blocks --------------------------------------------------------


@pytest.mark.parametrize("read_size", [7, 64, 4096, 1 << 20])
def test_blocks_hand_out_exactly_the_lines_next_batch_does(tmp_path, read_size):
    rng = random.Random(read_size)
    lines = [(f"{i}," + "x" * rng.randint(0, 60) + "\n").encode() for i in range(3000)]
    lines[1234] = b"y" * 500 + b"\n"  # over the line limit: next_batch deals with it
    path = tmp_path / "lines.csv"
    path.write_bytes(b"".join(lines) + b"tail-without-newline")
    reference = FileSource(path, max_line_bytes=300, read_size=read_size)
    expected = []
    # An empty batch means "nothing complete yet" (a call reads a bounded amount, so a line
    # longer than that comes in several calls); the end is the source's `exhausted`.
    while (batch := reference.next_batch(rng.randint(1, 500))) or not reference.exhausted:
        expected += [(raw.value, raw.offset, raw.truncated) for raw in batch]
    source = FileSource(path, max_line_bytes=300, read_size=read_size)
    got, offsets = [], []
    while True:
        want = rng.randint(1, 500)
        block = source.next_block(want)
        if block is not None:
            assert 1 <= block.lines <= want and block.data.endswith(b"\n")
            got += [(raw.value, raw.offset, raw.truncated) for raw in block.raws()]
        else:
            batch = source.next_batch(want)
            if not batch and source.exhausted:
                break
            got += [(raw.value, raw.offset, raw.truncated) for raw in batch]
        offsets.append(source.snapshot()["offset"])
        resumed = FileSource(path, resume=source.snapshot(), max_line_bytes=300)
        assert resumed.snapshot()["offset"] == offsets[-1]
        resumed.close()
    assert got == expected
    assert offsets == sorted(offsets)


# -- SIGKILL in the middle of a compiled replay, then resume ---------------------------


@pytest.mark.slow
def test_sigkill_during_a_block_replay_then_resume_equals_one_pass(tmp_path):
    path = tmp_path / "replay.csv"
    _, y, unlabeled = write_stream(path, n=8000, seed=21)
    cli("replay", str(path), "--state-dir", str(tmp_path / "warm"))  # files in the page cache
    state, dead, predictions = tmp_path / "state", tmp_path / "dead.jsonl", tmp_path / "pred.jsonl"
    replay = ["replay", str(path), *state_and_sinks(state, dead, predictions)]
    # --rate 6000: batches of 300 lines, blocks for the kernels, cut at checkpoints.
    paced = [*replay, "--rate", "6000"]
    kills = kill_at_random_moments(paced, state, (500, 137, 1000, 64), random.Random(77), 0.5)
    assert kills >= 3
    cli(*replay)
    summary = inspect_json(state)
    # The same run in one pass, without kills and with the fast path off:
    one = tmp_path / "one"
    one_pass = state_and_sinks(one / "state", one / "dead.jsonl", one / "pred.jsonl")
    cli("replay", str(path), *one_pass, env={"STREAMLEARN_FASTPATH": "0"})
    reference = inspect_json(one / "state")
    assert summary["records_learned"] == reference["records_learned"] == len(y) - len(unlabeled)
    assert bits(summary["weights"].values()) == bits(reference["weights"].values())
    assert bits([summary["intercept"]]) == bits([reference["intercept"]])
    assert summary["metrics"] == reference["metrics"]
    assert dead.read_bytes() == (one / "dead.jsonl").read_bytes()
    assert predictions.read_bytes() == (one / "pred.jsonl").read_bytes()
