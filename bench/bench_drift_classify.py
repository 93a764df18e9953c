"""Which ``--drift-detector`` suits a classifier: delays and false alarms on the 0/1 error.

Streams (River's generators): SEA (``noise=0.1``) and Agrawal (``perturbation=0.05``), each
with a concept switch in the middle, abrupt (the second concept's generator from that record
on) or gradual (``ConceptDriftStream`` of width 1000), and the same generator without a
switch (stationary, same length), plus a long stationary run. Models: GaussianNB, a Hoeffding tree (grows: its learning curve has bumps)
and a logistic regression behind a scaler. Each model runs the stream prequentially
(``predict_proba_one``, then ``learn_one``: River's ``progressive_val_score`` order); its
0/1 error stream (``streamlearn.drift.scoring.class_error``) goes to a ``DriftMonitor`` per
detector with the default options (``--drift-warmup 500``, ``--on-drift alert``), through
``observe_errors`` (the same detections as ``observe`` record by record). With ``alert`` the
model never changes, so every detector reads the same error stream.

A switch's *delay* is the records from its start to the first detection after it ("-":
none before the end); a detection before the switch is a *false alarm*; on the stationary
streams every detection is one.

Run: python bench/bench_drift_classify.py [--rows 20000] [--seeds 5] [--long-rows 100000]
     [--long-seeds 2] [--cache /tmp/drift_classify.npz] [--detectors adwin,ddm,...]

The error streams take most of the time (minutes); ``--cache`` keeps them for another run.
KSWIN costs about 1 ms a record.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from streamlearn.classify.space import ClassSpace
from streamlearn.drift.config import DETECTOR_CHOICES, DriftConfig
from streamlearn.drift.monitor import DriftMonitor
from streamlearn.drift.scoring import class_error

DETECTORS = tuple(DETECTOR_CHOICES)
GENERATORS = ("SEA", "Agrawal")
MODELS = ("GaussianNB", "HoeffdingTree", "Logistic")
KINDS = ("abrupt", "gradual", "stationary")


def make_model(name: str) -> Any:
    from river import linear_model, naive_bayes, preprocessing, tree

    if name == "GaussianNB":
        return naive_bayes.GaussianNB()
    if name == "HoeffdingTree":
        return tree.HoeffdingTreeClassifier()
    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


def concept(generator: str, which: int, seed: int) -> Any:
    """The first (``which`` 0) or the second concept of a generator."""
    from river.datasets import synth

    if generator == "SEA":
        return synth.SEA(variant=(0, 3)[which], noise=0.1, seed=seed)
    return synth.Agrawal(classification_function=(0, 2)[which], perturbation=0.05, seed=seed)


def stream(generator: str, kind: str, rows: int, seed: int) -> Iterator[tuple[dict, Any]]:
    from river.datasets import synth

    if kind == "stationary":
        return iter(concept(generator, 0, seed))
    if kind == "abrupt":  # ConceptDriftStream overflows at width 1: switch by hand
        first = itertools.islice(iter(concept(generator, 0, seed)), rows // 2)
        return itertools.chain(first, iter(concept(generator, 1, seed + 1000)))
    drifting = synth.ConceptDriftStream(
        stream=concept(generator, 0, seed),
        drift_stream=concept(generator, 1, seed + 1000),
        position=rows // 2,
        width=1000,
        seed=seed,
    )
    return iter(drifting)


def error_stream(generator: str, kind: str, model_name: str, rows: int, seed: int) -> np.ndarray:
    """The 0/1 errors of a model run prequentially (NaN: not scored, the model could not
    predict yet)."""
    model = make_model(model_name)
    space = ClassSpace(binary=True)  # both generators' labels are a known pair
    errors = np.full(rows, np.nan)
    for index, (x, y) in zip(range(rows), stream(generator, kind, rows, seed), strict=False):
        code = space.encode(str(y))
        assert isinstance(code, float)
        proba = space.proba(model.predict_proba_one(x))
        if proba is not None:
            errors[index] = class_error(code, proba)
        model.learn_one(x, space.model_label(code))
    return errors


def detections(detector: str, errors: np.ndarray) -> tuple[list[int], float]:
    """The records a monitor with ``detector`` flags on an error stream; seconds a record."""
    scored = np.flatnonzero(~np.isnan(errors))
    monitor = DriftMonitor(DriftConfig(detector=detector), classes=ClassSpace(binary=True))
    started = time.perf_counter()
    monitor.observe_errors(scored, errors[scored], host=None)
    seconds = (time.perf_counter() - started) / max(len(scored), 1)
    return [event["record"] for event in monitor.events], seconds


def collect(
    rows: int, seeds: int, long_rows: int, long_seeds: int, cache: str | None
) -> dict[str, np.ndarray]:
    """Every error stream, keyed ``generator/kind/model/seed`` (from ``cache`` if there)."""
    if cache and os.path.exists(cache):
        with np.load(cache) as saved:
            return dict(saved)
    out: dict[str, np.ndarray] = {}
    for generator in GENERATORS:
        for model_name in MODELS:
            for seed in range(seeds):
                for kind in KINDS:
                    key = f"{generator}/{kind}/{model_name}/{seed}"
                    out[key] = error_stream(generator, kind, model_name, rows, seed)
            for seed in range(long_seeds):
                key = f"{generator}/long/{model_name}/{seed}"
                out[key] = error_stream(generator, "stationary", model_name, long_rows, 100 + seed)
    if cache:
        np.savez_compressed(cache, **out)
    return out


def table(
    errors: dict[str, np.ndarray],
    rows: int,
    seeds: int,
    detectors: tuple[str, ...],
    log: Callable[[str], None],
) -> dict[str, dict[str, float]]:
    """Per generator, model and detector: delays, misses and false alarms; totals returned."""
    log(
        "| stream | model | detector | abrupt delay, median (per seed) | gradual delay, median "
        "| missed (of abrupt+gradual) | false alarms before the switch | stationary alarms "
        "| long stationary alarms (rows) | us/record |"
    )
    log("|---|---|---|---|---|---|---|---|---|---|")
    change = rows // 2
    totals: dict[str, dict[str, float]] = {}
    for generator in GENERATORS:
        for model_name in MODELS:
            for detector in detectors:
                total = totals.setdefault(detector, dict.fromkeys(("missed", "false", "long"), 0.0))
                delays: dict[str, list[int | None]] = {"abrupt": [], "gradual": []}
                before = stationary = long_alarms = 0
                spent: list[float] = []
                for seed in range(seeds):
                    for kind in ("abrupt", "gradual"):
                        found, seconds = detections(
                            detector, errors[f"{generator}/{kind}/{model_name}/{seed}"]
                        )
                        spent.append(seconds)
                        after = [d for d in found if d >= change]
                        delays[kind].append(after[0] - change if after else None)
                        before += sum(d < change for d in found)
                    found, _ = detections(
                        detector, errors[f"{generator}/stationary/{model_name}/{seed}"]
                    )
                    stationary += len(found)
                long_total = 0
                for key in [k for k in errors if k.startswith(f"{generator}/long/{model_name}/")]:
                    long_total += len(errors[key])
                    long_alarms += len(detections(detector, errors[key])[0])
                missed = sum(d is None for kind in delays for d in delays[kind])
                total["missed"] += missed
                total["false"] += before + stationary
                total["long"] += long_alarms
                total.setdefault("abrupt", 0.0)
                total["abrupt"] += sum(d for d in delays["abrupt"] if d is not None)
                log(
                    f"| {generator} | {model_name} | {detector} | {_delays(delays['abrupt'])} | "
                    f"{_delays(delays['gradual'])} | {missed} | {before} | {stationary} | "
                    f"{long_alarms} ({long_total}) | {statistics.median(spent) * 1e6:.1f} |"
                )
    return totals


def _delays(delays: list[int | None]) -> str:
    found = [d for d in delays if d is not None]
    median = f"{statistics.median(found):.0f}" if found else "-"
    return f"{median} ({', '.join('-' if d is None else str(d) for d in delays)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--long-rows", type=int, default=100_000)
    parser.add_argument("--long-seeds", type=int, default=2)
    parser.add_argument("--cache", default=None, help="npz of the error streams (kept)")
    parser.add_argument(
        "--detectors", default=",".join(DETECTORS), help="comma-separated --drift-detector choices"
    )
    args = parser.parse_args()
    logging.getLogger("streamlearn").setLevel(logging.ERROR)  # the detections are expected
    print(f"# {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    started = time.perf_counter()
    errors = collect(args.rows, args.seeds, args.long_rows, args.long_seeds, args.cache)
    print(f"error streams: {time.perf_counter() - started:.0f} s")
    detectors = tuple(args.detectors.split(","))
    totals = table(errors, args.rows, args.seeds, detectors, print)
    print()
    print(
        "| detector | missed | false alarms (short runs) | long stationary alarms "
        "| sum of abrupt delays |"
    )
    print("|---|---|---|---|---|")
    for detector, total in totals.items():
        print(
            f"| {detector} | {total['missed']:.0f} | {total['false']:.0f} | "
            f"{total['long']:.0f} | {total['abrupt']:.0f} |"
        )
    print(f"total: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
