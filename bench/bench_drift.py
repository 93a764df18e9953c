"""Per-record cost of the drift monitor: ADWIN alone, the monitor's two hooks, and the whole loop.

1. ADWIN alone, ns per value: River's ``drift.ADWIN`` (Rust, one Python call a value)
   against ours (``streamlearn.drift.adwin``): ``update`` per value, ``update_many`` on the
   whole array (compiled), and ``update_many`` as plain Python (``compiled=False``, on
   fewer values).
2. ``DriftMonitor.observe_errors`` (the fast path's hook, blocks of 1000 errors) and
   ``observe`` (the per-record hook), ns per record after warm-up, with River's ADWIN
   inside (how the monitor ran before ``streamlearn.drift.adwin``) and with ours (now); plus
   ``observe`` with the other detectors and with two watched features.
3. ``Daemon.run`` with the sgd model on a CSV file (the compiled fast path, which hands
   the monitor blocks of errors) and on in-memory rows (the per-record path): no monitor,
   the default one, and (file) the default one with River's ADWIN inside.

4. What each detector detects (``drift_detection.py``): for every detector and
   ``--on-drift`` action, the detection delay of each change, the false alarms before the
   first and the repeats after each, on River's FriedmanDrift (gra, gsg, lea) and
   ConceptDriftStream, with a learning sgd and with a frozen model that never adapts; the
   false alarms of a growing Hoeffding tree with the fixed and the learning-curve warm-up;
   and the detections on a stationary stream of ``--stationary-rows`` rows (2,000,000:
   minutes, through the compiled path), Gaussian and heavy-tailed (Laplace) noise.

Contenders alternate within each repeat; each figure is the best of ``--repeat``.
Run: python bench/bench_drift.py [--rows 200000] [--repeat 3] [--section all|cost|detection]
     [--scale 5000] [--stationary-rows 2000000]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
from drift_detection import DETECTORS, detection_table, growing_tree_table, stationary_table

from streamlearn.drift import detectors as drift
from streamlearn.drift.adwin import ADWIN
from streamlearn.drift.config import DriftConfig, DriftSettings
from streamlearn.drift.monitor import DriftMonitor
from streamlearn.learner import Learner
from streamlearn.loop.daemon import Daemon
from streamlearn.models.sgd import SGDRegressor
from streamlearn.records import CsvDecoder
from streamlearn.testing import ListSource

BLOCK = 1000  # errors per observe_errors call (the fast path's default checkpoint block)


def stream(rows: int, features: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features))
    y = X @ rng.normal(size=features) + 0.1 * rng.normal(size=rows)
    return X, y


def errors_with_changes(rows: int, seed: int = 1) -> np.ndarray:
    """Absolute errors whose scale steps every 50,000 records (so ADWIN detects and resets)."""
    rng = np.random.default_rng(seed)
    scale = np.repeat(rng.uniform(0.1, 2.0, rows // 50_000 + 1), 50_000)[:rows]
    return np.abs(rng.normal(size=rows)) * scale


def river_adwin_monitor(config: DriftConfig) -> DriftMonitor:
    """A monitor whose watches build River's ADWIN, as ``make_detector`` did before."""
    from river import drift as river_drift

    def make(name: str, *, rising: bool) -> Any:
        if name == "adwin":
            return river_drift.ADWIN(delta=0.002)
        return original(name, rising=rising)

    original = drift.make_detector
    monitor = DriftMonitor(config)
    # The detector is built when the reference block completes: prime the watches here.
    drift.make_detector = make
    try:
        for watch in (monitor.error_watch, *monitor.feature_watches):
            watch.warmup_left = 0
            for _ in range(drift.REFERENCE_RECORDS):
                watch.update(1.0)
    finally:
        drift.make_detector = original
    return monitor


def ours_monitor(config: DriftConfig) -> DriftMonitor:
    monitor = DriftMonitor(config)
    for watch in (monitor.error_watch, *monitor.feature_watches):
        watch.warmup_left = 0
        for _ in range(drift.REFERENCE_RECORDS):
            watch.update(1.0)
    return monitor


def best_of(repeat: int, contenders: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Run the contenders in turn ``repeat`` times; each one's best figure."""
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(repeat):
        for name, run in contenders.items():
            best[name] = min(best[name], run())
    return best


def adwin_contenders(
    values: np.ndarray, python_values: np.ndarray
) -> dict[str, Callable[[], float]]:
    as_list = values.tolist()

    def river() -> float:
        from river import drift as river_drift

        update = river_drift.ADWIN().update
        started = time.perf_counter()
        for x in as_list:
            update(x)
        return (time.perf_counter() - started) / len(as_list)

    def per_value() -> float:
        update = ADWIN().update
        started = time.perf_counter()
        for x in as_list:
            update(x)
        return (time.perf_counter() - started) / len(as_list)

    def many(detector: ADWIN, data: np.ndarray) -> float:
        started = time.perf_counter()
        done = 0
        while done < len(data):
            hit = detector.update_many(data[done:])
            done = len(data) if hit < 0 else done + hit + 1
        return (time.perf_counter() - started) / len(data)

    return {
        "River drift.ADWIN, update per value": river,
        "ours, update per value": per_value,
        "ours, update_many (compiled)": lambda: many(ADWIN(), values),
        "ours, update_many (plain Python)": lambda: many(ADWIN(compiled=False), python_values),
    }


def monitor_contenders(errors: np.ndarray) -> dict[str, Callable[[], float]]:
    config = DriftConfig(warmup=0)
    daemon = SimpleNamespace(telemetry=None, warm_model_factory=None, model_factory=None)
    indices = np.arange(len(errors))
    as_list = errors.tolist()

    def bulk(build: Callable[[DriftConfig], DriftMonitor]) -> float:
        monitor = build(config)
        started = time.perf_counter()
        for start in range(0, len(errors), BLOCK):
            done = start
            stop = min(start + BLOCK, len(errors))
            while done < stop:
                done += monitor.observe_errors(indices[done:stop], errors[done:stop], daemon)
        return (time.perf_counter() - started) / len(errors)

    def per_record(build: Callable[[DriftConfig], DriftMonitor]) -> float:
        monitor = build(config)
        observe = monitor.observe
        started = time.perf_counter()
        for index, error in enumerate(as_list):
            observe(index, {}, error, 0.0, daemon)
        return (time.perf_counter() - started) / len(as_list)

    return {
        "observe_errors, River's ADWIN (before)": lambda: bulk(river_adwin_monitor),
        "observe_errors, ours (now)": lambda: bulk(ours_monitor),
        "observe, River's ADWIN (before)": lambda: per_record(river_adwin_monitor),
        "observe, ours (now)": lambda: per_record(ours_monitor),
    }


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


def time_loop(rows_bytes: list[bytes], monitor: Any) -> float:
    daemon = Daemon(
        ListSource(rows_bytes),
        CsvDecoder(["x0", "x1", "x2", "y"]),
        Learner(SGDRegressor(lr=0.01)),
        model_spec="sgd",
        monitor=monitor() if monitor is not None else None,
    )
    started = time.perf_counter()
    daemon.run()
    return (time.perf_counter() - started) / len(rows_bytes)


def time_file(path: str, state: str, extra: dict[str, Any], old: bool) -> float:
    """Seconds per row of ``Daemon.run`` on a CSV file, as ``streamlearn replay`` builds it."""
    from streamlearn.app import build
    from streamlearn.config import Settings

    drift_settings = DriftSettings(**extra)
    settings = Settings(
        source=path, follow=False, state_dir=state, reset=True, drift=drift_settings
    )
    original = drift.make_detector
    if old:
        from river import drift as river_drift

        def make(name: str, *, rising: bool) -> Any:
            if name == "adwin":
                return river_drift.ADWIN(delta=0.002)
            return original(name, rising=rising)

        drift.make_detector = make
    try:
        app = build(settings)
        started = time.perf_counter()
        summary = app.daemon.run()
        seconds = time.perf_counter() - started
        app.close()
    finally:
        drift.make_detector = original
    return seconds / max(int(summary.get("records_seen", 0)), 1)


def main() -> None:
    logging.getLogger("streamlearn").setLevel(logging.ERROR)  # the detections are expected
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--section", choices=("all", "cost", "detection"), default="all")
    parser.add_argument("--scale", type=int, default=5000, help="records between changes")
    parser.add_argument("--stationary-rows", type=int, default=2_000_000)
    args = parser.parse_args()
    print(f"command: python bench/bench_drift.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores")
    if args.section in ("all", "cost"):
        cost_sections(args)
    if args.section in ("all", "detection"):
        detection_sections(args)


def detection_sections(args: argparse.Namespace) -> None:
    """Section 4: delays and false alarms (``drift_detection.py``)."""
    started = time.perf_counter()
    print(f"\nDelays and false alarms, changes every {args.scale} records:\n")
    detection_table(args.scale, DETECTORS, lambda line: print(line, flush=True))
    print(
        "\nA growing Hoeffding tree on stationary Friedman streams (8000 records, seeds 40-49):\n"
    )
    growing_tree_table(range(40, 50), 8000, lambda line: print(line, flush=True))
    print(f"\nA stationary stream, {args.stationary_rows} rows, replayed (sgd, compiled path):\n")
    stationary_table(args.stationary_rows, DETECTORS, lambda line: print(line, flush=True))
    print(f"\nsection 4 took {time.perf_counter() - started:.0f} s")


def cost_sections(args: argparse.Namespace) -> None:
    """Sections 1-3: what the monitor costs per record."""
    errors = errors_with_changes(args.rows)
    # Load River and the compiled kernels before any clock runs.
    warm = adwin_contenders(errors[:2000], errors[:2000])
    for run in warm.values():
        run()

    python_rows = min(args.rows, 20_000)
    print(f"\nADWIN alone, ns per value ({args.rows} values; plain Python: {python_rows}):")
    adwin = best_of(args.repeat, adwin_contenders(errors, errors[:python_rows]))
    river = adwin["River drift.ADWIN, update per value"]
    for name, seconds in adwin.items():
        print(f"  {name:<40} {seconds * 1e9:9.0f} ns  ({river / seconds:5.2f}x River's speed)")

    print(f"\nDriftMonitor, error only, ns per record ({args.rows} records, after warm-up):")
    hooks = best_of(args.repeat, monitor_contenders(errors))
    for name, seconds in hooks.items():
        print(f"  {name:<40} {seconds * 1e9:9.0f} ns")
    before, now = (
        hooks["observe_errors, River's ADWIN (before)"],
        hooks["observe_errors, ours (now)"],
    )
    print(f"  observe_errors: {before / now:.1f}x faster")

    print(f"\nobserve() per record, {args.rows} records, best of {args.repeat}:")
    for detector, rows in (("page-hinkley", args.rows), ("kswin", 3000)):
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
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        path = os.path.join(tmp, "rows.csv")
        with open(path, "w") as out:  # %.6f, as bench_replay.py: numbers the parser reads
            out.write("x0,x1,x2,y\n")
            out.writelines(
                ",".join(f"{v:.6f}" for v in (*X[i], y[i])) + "\n" for i in range(len(y))
            )
        state = os.path.join(tmp, "state")
        time_file(path, state, {}, old=False)  # kernels, River's metrics: loaded
        files = best_of(
            args.repeat,
            {
                "no monitor": lambda: time_file(path, state, {"drift_detector": "none"}, False),
                "default monitor (ours)": lambda: time_file(path, state, {}, False),
                "default, River's ADWIN (before)": lambda: time_file(path, state, {}, True),
            },
        )
    bare = files["no monitor"]
    print(f"\nDaemon.run per row (sgd, CSV file: the compiled fast path, {args.rows} rows):")
    for name, seconds in files.items():
        extra = f"  (+{(seconds - bare) * 1e6:.2f} us)" if seconds is not bare else ""
        print(f"  {name:<33} {seconds * 1e6:8.2f} us{extra}")

    loop = best_of(
        args.repeat,
        {"bare": lambda: time_loop(lines, None), "watched": lambda: time_loop(lines, DriftMonitor)},
    )
    bare, watched = loop["bare"], loop["watched"]
    print(f"\nDaemon.run per record (sgd, in-memory CSV, {args.rows} rows, per-record path):")
    print(f"  no monitor        {bare * 1e6:8.2f} us")
    print(f"  default monitor   {watched * 1e6:8.2f} us  (+{(watched - bare) * 1e6:.2f} us)")


if __name__ == "__main__":
    main()
