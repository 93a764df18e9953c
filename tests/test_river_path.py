"""River models on plain CSV blocks give what the per-record path gives, and what River gives.

A River spec on a file in the plain CSV layout reads blocks: the compiled parser
reads the lines, the model predicts and learns each record from a dict of the
parsed row, and the metrics, window and curve of the whole block are updated at
once by the compiled kernel. Each test runs the same file twice, through blocks
and with ``STREAMLEARN_FASTPATH=0`` (record by record), and compares everything
a user can see: the model (its predictions on held-out rows), metrics, rolling
window and curve, counters, dead letters, predictions, drift events and where
every checkpoint fell; River's ``progressive_val_score`` is the oracle of the metrics.
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from river import evaluate, metrics

from streamlearn.curve import Curve
from streamlearn.drift.monitor import DriftConfig, DriftMonitor
from streamlearn.fast import block as fastpath
from streamlearn.learner import Learner
from streamlearn.loop.blocks import RowsBlockPath
from streamlearn.loop.daemon import Daemon, RunOptions
from streamlearn.models.registry import build_model
from streamlearn.records import CsvDecoder, Record
from streamlearn.sinks.jsonlines import JsonLinesSink
from streamlearn.sources.base import Raw
from streamlearn.sources.file import FileSource
from streamlearn.state import BackgroundWriter, CheckpointStore

compiled = fastpath.compiled_kernels()
KERNELS = [
    pytest.param(
        compiled,
        id="c",
        marks=pytest.mark.skipif(
            compiled is None and os.environ.get("CI") != "true", reason="not built"
        ),
    ),
    pytest.param(fastpath.python_kernels(), id="python"),
]
HEADER = ["x0", "x1", "x2", "x3", "y"]
SPECS = ["StandardScaler | LinearRegression", "HoeffdingAdaptiveTreeRegressor(seed=1)"]
BAD_LINES = [
    b"1.0,2.0,3.0\n", b"1,oops,2,3,4\n", b"nan,1,2,3,4\n", b"1,2,3,4,1e999\n",
    b"1,2,3,4,inf\n", b"\xff\xfe,1,2,3,4\n", b"1,,2,3,4\n", b"x0,x1,x2,x3,y\n", b"\n",
]  # fmt: skip


def bits(values: Any) -> list[str]:
    """Exact float identity (distinguishes -0.0 and every last bit)."""
    return [float(v).hex() for v in values]


class Replayed:
    """A stand-in model whose predictions are given in advance, in order."""

    def __init__(self, predictions: list[float]) -> None:
        self.predictions = iter(predictions)

    def predict_one(self, x: dict[str, float]) -> float:
        return next(self.predictions)

    def learn_one(self, x: dict[str, float], y: float) -> None:
        pass


@pytest.mark.parametrize("kernels", KERNELS)
def test_scoring_a_block_at_once_equals_learner_step_bit_for_bit(kernels):
    """Metrics, window (wrapping around; -0.0 predictions kept) and curve (thinning)."""
    rng = np.random.default_rng(3)
    rows = 3000
    y = rng.normal(size=rows) * 3 + 1
    yhat = y + rng.normal(size=rows)
    yhat[rng.choice(rows, 50, replace=False)] = -0.0
    labeled = rng.random(rows) > 0.1
    yhat[-3:], labeled[-3:] = -0.0, True  # in the window at the end
    values = np.column_stack([rng.normal(size=rows), np.where(labeled, y, np.nan)])
    status = np.where(labeled, fastpath.LABELED, fastpath.UNLABELED).astype(np.int8)
    parsed = fastpath.Parsed(values, status, np.zeros(rows + 1, np.int64), b"", 0, {})

    def fresh() -> Learner:
        learner = Learner(Replayed(yhat[labeled].tolist()), rolling_window=37)
        learner.curve = Curve(max_points=16)
        return learner

    blocks, steps = fresh(), fresh()
    fast = fastpath.BlockLearner(["a"], kernels=kernels)
    bounds = [0, 1, 700, 701, 1900, rows]  # blocks of different sizes, one of a single row
    for start, stop in itertools.pairwise(bounds):
        part = fastpath.Parsed(values[start:stop], status[start:stop], parsed.starts, b"", 0, {})
        fast.score(blocks, part, yhat[start:stop], stop - start)
    for target in y[labeled].tolist():
        steps.step({"a": 0.0}, target)
    for name in ("mae", "rmse", "r2"):
        assert pickle.dumps(blocks.metrics[name]) == pickle.dumps(steps.metrics[name]), name
    assert blocks.records_learned == steps.records_learned == int(labeled.sum())
    assert bits(blocks.recent_y) == bits(steps.recent_y)
    assert bits(blocks.recent_yhat) == bits(steps.recent_yhat)
    assert "-0x0.0p+0" in bits(steps.recent_yhat)  # the window does hold a -0.0 prediction
    assert bits([blocks._recent_abs_sum]) == bits([steps._recent_abs_sum])
    assert (blocks.curve.stride, blocks.curve.points) == (steps.curve.stride, steps.curve.points)
    assert blocks.curve.stride > 64


def write_stream(path: Path, n: int = 3000, seed: int = 11) -> None:
    """Rows whose target changes at the middle (a drift), with unlabeled rows, bad lines,
    CRLF endings and numbers only the decoder reads exactly (17 significant digits)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * [0.1, 1.0, 3.0, 1.0]
    before, after = np.array([1.0, 2.0, -1.0, 0.5]), np.array([-2.0, 1.0, 3.0, -1.5])
    y = np.where(np.arange(n) < n // 2, X @ before, X @ after) + rng.normal(scale=0.3, size=n)
    pick = random.Random(seed)
    with open(path, "wb") as handle:
        handle.write(",".join(HEADER).encode() + b"\n")
        for i in range(n):
            if pick.random() < 0.01:
                handle.write(pick.choice(BAD_LINES))
            if pick.random() < 0.01:
                line = ",".join(repr(float(v)) for v in X[i]) + f",{float(y[i])!r}"
            else:
                line = ",".join(f"{v:.6f}" for v in X[i]) + f",{y[i]:.6f}"
            if pick.random() < 0.05:
                line = line.rsplit(",", 1)[0] + ","
            handle.write(line.encode() + (b"\r\n" if pick.random() < 0.01 else b"\n"))


def replay(
    path: Path, tmp: Path, spec: str, *, fast: bool, monkeypatch: Any, monitor: Any = None
) -> dict[str, Any]:
    """One replay with every due checkpoint taken on time (not deferred to a free writer)."""
    monkeypatch.setenv("STREAMLEARN_FASTPATH", "1" if fast else "0")
    tmp.mkdir()
    dead, predictions = JsonLinesSink(tmp / "dead.jsonl"), JsonLinesSink(tmp / "pred.jsonl")
    store = CheckpointStore(tmp / "state")
    daemon = Daemon(
        FileSource(path),
        CsvDecoder(HEADER),
        Learner(build_model(spec), rolling_window=100),
        model_spec=spec,
        store=store,
        dead_letters=dead,
        predictions=predictions,
        # A count that is no multiple of the batch size, and no checkpoint by the clock.
        options=RunOptions(checkpoint_every=700, checkpoint_interval=3600.0),
        model_factory=lambda: build_model(spec),
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
        patch.setattr(BackgroundWriter, "idle", property(lambda self: True))
        summary = daemon.run()
    for sink in (dead, predictions):
        sink.close()
    state = store.load().state
    store.close()
    for key in ("created", "checkpoint"):
        summary.pop(key, None)
    return {
        "summary": summary,
        "state": state,
        "positions": positions,
        "blocks": daemon.block_learner is not None,
        "dead": (tmp / "dead.jsonl").read_bytes(),
        "predictions": (tmp / "pred.jsonl").read_bytes(),
    }


def held_out() -> list[dict[str, float]]:
    rng = np.random.default_rng(99)
    return [{f"x{j}": float(v) for j, v in enumerate(row)} for row in rng.normal(size=(300, 4))]


def assert_same_predictions(model: Any, reference: Any) -> None:
    rows = held_out()
    ours = [model.predict_one(x) for x in rows]
    theirs = [reference.predict_one(x) for x in rows]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


def assert_same_run(blocks: dict[str, Any], records: dict[str, Any]) -> None:
    assert blocks["blocks"] and not records["blocks"]
    summary = json.dumps(blocks["summary"], sort_keys=True)
    assert summary == json.dumps(records["summary"], sort_keys=True)
    fast, slow = blocks["state"]["learner"], records["state"]["learner"]
    assert_same_predictions(fast.model, slow.model)
    for name in ("mae", "rmse", "r2"):
        assert pickle.dumps(fast.metrics[name]) == pickle.dumps(slow.metrics[name]), name
    assert fast.records_learned == slow.records_learned
    assert bits(fast.recent_y) == bits(slow.recent_y)
    assert bits(fast.recent_yhat) == bits(slow.recent_yhat)
    assert bits([fast._recent_abs_sum]) == bits([slow._recent_abs_sum])
    assert (fast.curve.stride, fast.curve.points) == (slow.curve.stride, slow.curve.points)
    for key in ("counters", "source"):
        assert blocks["state"][key] == records["state"][key], key
    assert blocks["positions"] == records["positions"]  # every checkpoint at the same line
    assert blocks["dead"] == records["dead"]
    assert blocks["predictions"] == records["predictions"]


def labeled_records(path: Path) -> list[tuple[dict[str, float], float]]:
    """The stream as River's own loop sees it: the labeled records the decoder accepts."""
    decoder = CsvDecoder(HEADER)
    out = []
    offset = 0
    with open(path, "rb") as handle:
        for line in handle:
            item = decoder.decode(Raw(line, offset))
            offset += len(line)
            if type(item) is Record and item.y is not None:
                out.append((item.x, item.y))
    return out


@pytest.mark.parametrize("spec", SPECS)
def test_a_river_spec_through_blocks_equals_the_per_record_path_and_river(
    tmp_path, monkeypatch, spec
):
    path = tmp_path / "stream.csv"
    write_stream(path)
    blocks = replay(path, tmp_path / "blocks", spec, fast=True, monkeypatch=monkeypatch,
                    monitor=DriftMonitor())  # fmt: skip
    records = replay(path, tmp_path / "records", spec, fast=False, monkeypatch=monkeypatch,
                     monitor=DriftMonitor())  # fmt: skip
    assert_same_run(blocks, records)
    summary = blocks["summary"]
    assert summary["records_rejected"] > 10 and summary["records_unlabeled"] > 100
    assert summary["drift_events"]  # the monitor flagged the change (and only alerted)
    assert len(blocks["positions"]) > 3

    # River's own prequential loop over the same labeled records: same metrics, same model.
    dataset = labeled_records(path)
    assert summary["records_learned"] == len(dataset)
    metric = metrics.MAE() + metrics.RMSE() + metrics.R2()
    evaluate.progressive_val_score(dataset, build_model(spec), metric)
    for river_metric, name in zip(metric, ("mae", "rmse", "r2"), strict=True):
        expected = river_metric.get()
        assert summary["metrics"][name] == pytest.approx(expected, rel=1e-12, abs=1e-12)
    model = build_model(spec)
    for x, y in dataset:
        model.predict_one(x)
        model.learn_one(x, y)
    assert_same_predictions(blocks["state"]["learner"].model, model)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_a_diverging_river_model_inside_a_block_is_handled_as_record_by_record(
    tmp_path, monkeypatch
):
    path = tmp_path / "wild.csv"
    rng = np.random.default_rng(0)
    with open(path, "w") as handle:
        handle.write(",".join(HEADER) + "\n")
        for i in range(3000):
            scale = 1e150 if 1500 <= i < 1510 else 1.0  # predictions beyond learner.DIVERGED
            row = rng.normal(size=4) * scale
            handle.write(",".join(f"{v:.6e}" for v in row) + f",{rng.normal():.6f}\n")
    spec = "LinearRegression"
    stops = []
    learn_rows = RowsBlockPath._learn_rows

    def noting_stops(self: RowsBlockPath, model: Any, parsed: Any) -> Any:
        yhat = learn_rows(self, model, parsed)
        if len(yhat) < parsed.rows:
            stops.append(len(yhat))
        return yhat

    monkeypatch.setattr(RowsBlockPath, "_learn_rows", noting_stops)
    blocks = replay(path, tmp_path / "blocks", spec, fast=True, monkeypatch=monkeypatch)
    records = replay(path, tmp_path / "records", spec, fast=False, monkeypatch=monkeypatch)
    assert blocks["summary"]["divergence_events"] >= 1
    assert any(stop > 0 for stop in stops)  # a block stopped in its middle, not at its start
    assert_same_run(blocks, records)


def test_a_drift_monitor_that_may_swap_the_model_keeps_river_models_record_by_record(
    tmp_path, monkeypatch
):
    """A reset in the middle of a block would leave its rest learned by the old model."""
    path = tmp_path / "stream.csv"
    write_stream(path, n=2000)
    spec = "StandardScaler | LinearRegression"

    def monitor() -> DriftMonitor:
        return DriftMonitor(DriftConfig(on_drift="reset"))

    fast = replay(path, tmp_path / "fast", spec, fast=True, monkeypatch=monkeypatch,
                  monitor=monitor())  # fmt: skip
    slow = replay(path, tmp_path / "slow", spec, fast=False, monkeypatch=monkeypatch,
                  monitor=monitor())  # fmt: skip
    assert not fast["blocks"]
    assert fast["summary"]["drift"]["actions"]["reset"] >= 1
    assert json.dumps(fast["summary"], sort_keys=True) == json.dumps(
        slow["summary"], sort_keys=True
    )
