"""What each drift detector and action detects: delays and false alarms, measured.

The streams are River's synthetic drift generators (``FriedmanDrift`` with drift types
``gra``, ``gsg`` and ``lea``; ``ConceptDriftStream`` from Friedman's concept to ``gra``'s
drifted one) and a stationary stream of millions of rows, replayed through the daemon's
compiled path. Every run feeds a ``Learner`` and a ``DriftMonitor`` record by record, as the
loop's record path does (``Router.route``): predict, score, learn, then ``observe``.

A change's *delay* is the records from its start to the first detection after it (and
before the next change); a detection before the first change is a *false alarm*, and every
detection after the first one of a change is a *repeat*. Used by ``bench_drift.py``.
"""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from streamlearn.drift.config import DriftConfig
from streamlearn.drift.monitor import DriftMonitor
from streamlearn.learner import Learner
from streamlearn.models.sgd import SGDRegressor
from streamlearn.models.wrappers import FrozenRegressor

SEED = 7
DETECTORS = ("adwin", "page-hinkley", "kswin")


@dataclass(frozen=True)
class DriftStream:
    """A stream with known changes: ``starts`` are the records where each change begins."""

    name: str
    make: Callable[[], Iterator[tuple[dict[str, float], float]]]
    starts: tuple[int, ...]
    rows: int


def drift_streams(scale: int = 5000) -> list[DriftStream]:
    """River's generators with their changes every ``scale`` records."""
    from river.datasets import synth

    def friedman(kind: str, positions: tuple[int, ...], **extra: Any) -> Callable[[], Any]:
        return lambda: iter(synth.FriedmanDrift(kind, position=positions, seed=SEED, **extra))

    width = scale // 5

    def concept() -> Iterator[tuple[dict[str, float], float]]:
        return iter(
            synth.ConceptDriftStream(
                stream=synth.Friedman(seed=SEED),
                # gra's drifted concept from its first record on (its second change never comes)
                drift_stream=synth.FriedmanDrift("gra", position=(1, 10**9), seed=SEED + 1),
                position=scale,
                width=width,
                seed=SEED,
            )
        )

    one, two, three = scale, 2 * scale, 3 * scale
    return [
        DriftStream("FriedmanDrift gra", friedman("gra", (one, two)), (one, two), 3 * scale),
        DriftStream(
            "FriedmanDrift gsg",
            friedman("gsg", (one, two), transition_window=width),
            (one, two),
            3 * scale,
        ),
        DriftStream(
            "FriedmanDrift lea", friedman("lea", (one, two, three)), (one, two, three), 4 * scale
        ),
        # The sigmoid of ConceptDriftStream gives the new concept 12 % of the records a
        # quarter of its width before its position: that is where the change starts here.
        DriftStream("ConceptDriftStream", concept, (scale - width // 4,), 2 * scale),
    ]


def frozen_model(rows: list[tuple[dict[str, float], float]]) -> FrozenRegressor:
    """A linear model fitted on ``rows`` of the first concept, then frozen (it never adapts)."""
    model = SGDRegressor(lr=0.01)
    for _ in range(3):
        for x, y in rows:
            model.learn_one(x, y)
    return FrozenRegressor(model)


def run_stream(
    stream: DriftStream, detector: str, action: str, model: Any
) -> tuple[list[int], float]:
    """Detections (records) of one monitor on one stream; seconds per record."""
    learner = Learner(model)
    host = SimpleNamespace(
        learner=learner,
        telemetry=None,
        model_factory=lambda: SGDRegressor(lr=0.01),
        warm_model_factory=None,
    )
    monitor = DriftMonitor(DriftConfig(detector=detector, on_drift=action))
    started = time.perf_counter()
    for index, (x, y) in zip(range(stream.rows), stream.make(), strict=False):
        yhat = learner.step(x, y)
        monitor.observe(index, x, y, yhat, host)
    seconds = (time.perf_counter() - started) / stream.rows
    return [event["record"] for event in monitor.events], seconds


@dataclass(frozen=True)
class Score:
    delays: tuple[int | None, ...]  # per change; None: missed
    false_alarms: int
    repeats: int


def score(detections: list[int], starts: tuple[int, ...], rows: int) -> Score:
    """Delays, false alarms and repeats of ``detections`` against the changes' ``starts``.

    >>> score([40, 5010, 5030, 10100], (5000, 10000), 15000)
    Score(delays=(10, 100), false_alarms=1, repeats=1)
    """
    bounds = (*starts, rows)
    delays: list[int | None] = []
    repeats = 0
    for start, end in itertools.pairwise(bounds):
        inside = [d for d in detections if start <= d < end]
        delays.append(inside[0] - start if inside else None)
        repeats += max(len(inside) - 1, 0)
    return Score(tuple(delays), sum(d < starts[0] for d in detections), repeats)


def detection_table(scale: int, detectors: tuple[str, ...], log: Callable[[str], None]) -> None:
    """The table of delays and false alarms: every stream, detector, action and model."""
    logging.getLogger("streamlearn").setLevel(logging.ERROR)  # the detections are expected
    log(
        "| stream | model | detector | on-drift | delay per change (records) | missed "
        "| false alarms | repeats | us/record |"
    )
    log("|---|---|---|---|---|---|---|---|---|")
    for stream in drift_streams(scale):
        # The frozen model: fitted on the first half of the first concept, then frozen.
        first = [row for _, row in zip(range(scale // 2), stream.make(), strict=False)]
        frozen = frozen_model(first)
        runs: list[tuple[str, str, Callable[[], Any]]] = [
            ("sgd", action, lambda: SGDRegressor(lr=0.01))
            for action in ("alert", "reset", "background")
        ]
        runs.append(("frozen", "alert", lambda frozen=frozen: frozen))
        for detector in detectors:
            for model_name, action, make in runs:
                found, seconds = run_stream(stream, detector, action, make())
                result = score(found, stream.starts, stream.rows)
                delays = ", ".join("-" if d is None else str(d) for d in result.delays)
                missed = sum(d is None for d in result.delays)
                log(
                    f"| {stream.name} | {model_name} | {detector} | {action} | {delays} | "
                    f"{missed} | {result.false_alarms} | {result.repeats} | "
                    f"{seconds * 1e6:.0f} |"
                )


def growing_tree_table(seeds: range, rows: int, log: Callable[[str], None]) -> None:
    """False alarms of the default monitor on a Hoeffding tree that grows, on stationary
    Friedman streams (FriedmanDrift's records before its first change, one seed each): the
    learning-curve warm-up against the fixed one it replaced."""
    from river import tree
    from river.datasets import synth

    logging.getLogger("streamlearn").setLevel(logging.ERROR)
    log("| model | warm-up | false alarms | streams with one | detections (seed: records) |")
    log("|---|---|---|---|---|")
    for name, make in (
        ("HoeffdingAdaptiveTreeRegressor", lambda: tree.HoeffdingAdaptiveTreeRegressor(seed=1)),
        ("HoeffdingTreeRegressor", tree.HoeffdingTreeRegressor),
    ):
        for converge in (False, True):
            found: dict[int, list[int]] = {}
            for seed in seeds:
                learner = Learner(make())
                host = SimpleNamespace(
                    learner=learner, telemetry=None, model_factory=None, warm_model_factory=None
                )
                monitor = DriftMonitor()
                watch = monitor.error_watch
                watch.converge = converge  # False: the fixed warm-up of earlier versions
                watch.restart(monitor.config.warmup)
                # The stream before FriedmanDrift's first change (River's Friedman function).
                stream = synth.FriedmanDrift("gra", position=(10**8, 2 * 10**8), seed=seed)
                stream = stream.take(rows)
                for index, (x, y) in enumerate(stream):
                    monitor.observe(index, x, y, learner.step(x, y), host)
                found[seed] = [event["record"] for event in monitor.events]
            alarms = sum(len(v) for v in found.values())
            listed = "; ".join(f"{s}: {', '.join(map(str, v))}" for s, v in found.items() if v)
            label = "follows the learning curve" if converge else "fixed 500 (before)"
            with_one = sum(bool(v) for v in found.values())
            log(f"| {name} | {label} | {alarms} | {with_one} of {len(found)} | {listed} |")


def stationary_rows(path: str, rows: int, noise: str, seed: int = 0) -> None:
    """A stationary linear stream (3 features) with Gaussian or Laplace noise, as CSV."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=3)
    with open(path, "w") as out:
        out.write("x0,x1,x2,y\n")
        for start in range(0, rows, 200_000):
            n = min(200_000, rows - start)
            X = rng.normal(size=(n, 3))
            eps = rng.normal(size=n) if noise == "gaussian" else rng.laplace(size=n)
            block = np.column_stack([X, X @ weights + 0.3 * eps])
            np.savetxt(out, block, fmt="%.6f", delimiter=",")


def stationary_table(rows: int, detectors: tuple[str, ...], log: Callable[[str], None]) -> None:
    """False alarms on a stationary stream replayed as ``streamlearn replay`` runs it (sgd on
    a CSV file: the compiled block path, which hands the monitor arrays of errors)."""
    from streamlearn.app import build
    from streamlearn.config import Settings
    from streamlearn.drift.config import DriftSettings

    logging.getLogger("streamlearn").setLevel(logging.ERROR)
    log("| noise | detector | on-drift | rows | detections | seconds (whole replay) |")
    log("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-drift-stationary-") as tmp:
        for noise in ("gaussian", "laplace"):
            path = os.path.join(tmp, f"{noise}.csv")
            stationary_rows(path, rows, noise)
            for detector in detectors:
                for action in ("alert", "reset"):
                    # KSWIN tests every value in Python (about 1 ms each): 1 % of the rows.
                    cut = rows if detector != "kswin" else rows // 100
                    source = path if cut == rows else _head(path, cut, tmp)
                    settings = Settings(
                        source=source,
                        follow=False,
                        state_dir=None,
                        drift=DriftSettings(drift_detector=detector, on_drift=action),
                    )
                    app = build(settings)
                    started = time.perf_counter()
                    summary = app.daemon.run()
                    seconds = time.perf_counter() - started
                    app.close()
                    total = summary["drift"]["events_total"]
                    log(f"| {noise} | {detector} | {action} | {cut} | {total} | {seconds:.1f} |")


def _head(path: str, rows: int, tmp: str) -> str:
    head = os.path.join(tmp, f"head-{rows}-{os.path.basename(path)}")
    with open(path) as source, open(head, "w") as out:
        for index, line in enumerate(source):
            if index > rows:
                break
            out.write(line)
    return head
