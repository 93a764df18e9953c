"""Per-record cost of the drift monitor: ``observe`` alone, and the whole loop with and without it.

``observe`` is timed on precomputed errors (a stand-in daemon, no model), once per detector;
then ``Daemon.run`` on the same in-memory CSV rows with the sgd model, with no monitor
and with the default one (ADWIN on the error, alert). Best of ``--repeat`` runs.
Run: python bench/bench_drift.py [--rows 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

from streamlearn.drift import DriftConfig, DriftMonitor
from streamlearn.learner import Learner
from streamlearn.models.sgd import SGDRegressor
from streamlearn.records import CsvDecoder
from streamlearn.service import Daemon
from streamlearn.testing import ListSource


def stream(rows: int, features: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features))
    y = X @ rng.normal(size=features) + 0.1 * rng.normal(size=rows)
    return X, y


def time_observe(config: DriftConfig, rows: int, repeat: int) -> float:
    """Seconds per ``observe`` call in the monitoring phase (warm-up excluded)."""
    rng = np.random.default_rng(1)
    ys = rng.normal(size=rows).tolist()
    yhats = (np.array(ys) + rng.normal(scale=0.1, size=rows)).tolist()
    xs = [{"a": float(v), "b": float(-v)} for v in rng.normal(size=rows)]
    daemon = SimpleNamespace(telemetry=None, warm_model_factory=None, model_factory=None)
    best = float("inf")
    for _ in range(repeat):
        monitor = DriftMonitor(config)
        observe = monitor.observe
        for i in range(config.warmup + 100):  # past warm-up and the reference block
            observe(i, xs[i], ys[i], yhats[i], daemon)
        start = config.warmup + 100
        started = time.perf_counter()
        for i in range(start, rows):
            observe(i, xs[i], ys[i], yhats[i], daemon)
        best = min(best, (time.perf_counter() - started) / (rows - start))
    return best


def time_loop(rows_bytes: list[bytes], monitor: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        daemon = Daemon(
            ListSource(rows_bytes),
            CsvDecoder(["x0", "x1", "x2", "y"]),
            Learner(SGDRegressor(lr=0.01)),
            model_spec="sgd",
            monitor=monitor() if monitor is not None else None,
        )
        started = time.perf_counter()
        daemon.run()
        best = min(best, (time.perf_counter() - started) / len(rows_bytes))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"observe() per record, {args.rows} records, best of {args.repeat}:")
    for detector, rows in (("adwin", args.rows), ("page-hinkley", args.rows), ("kswin", 3000)):
        seconds = time_observe(DriftConfig(detector=detector, warmup=0), rows, args.repeat)
        print(f"  {detector:<13} error only     {seconds * 1e6:8.2f} us")
    features = DriftConfig(features=("a", "b"), warmup=0)
    seconds = time_observe(features, args.rows, args.repeat)
    print(f"  {'adwin':<13} error + 2 feat {seconds * 1e6:8.2f} us")

    X, y = stream(args.rows)
    lines = [
        (",".join(repr(float(v)) for v in X[i]) + "," + repr(float(y[i]))).encode()
        for i in range(args.rows)
    ]
    bare = time_loop(lines, None, args.repeat)
    watched = time_loop(lines, DriftMonitor, args.repeat)
    print(f"Daemon.run per record (sgd, in-memory CSV, {args.rows} rows):")
    print(f"  no monitor        {bare * 1e6:8.2f} us")
    print(f"  default monitor   {watched * 1e6:8.2f} us  (+{(watched - bare) * 1e6:.2f} us)")


if __name__ == "__main__":
    main()
