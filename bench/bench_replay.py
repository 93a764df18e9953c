"""Replay speed: `streamlearn replay` next to River's loops and Vowpal Wabbit, on the same rows.

Whole processes are timed on the full CSV, on a header-only CSV and on a short
"warm" CSV (its first rows). Two steady-state rates are printed:

- rows / (full - header-only): the issue's definition. Start-up is subtracted, but
  one-time costs that a process pays at its first records (numpy's import, buffers
  sized, River's model modules for a River spec) are not.
- (rows - warm rows) / (full - warm): every one-time cost is paid in both runs, so
  only the per-record cost is left.

Then, in one process: where the daemon's time per record goes (read, decode and
validate, learn and score, route, checkpoint), start-up times, and how long a
checkpoint holds up learning (sgd and ARFRegressor), with and without the
background writer, and where the time of a River spec's replay goes (blocks of
plain CSV, and record by record). `--readme` writes the tables into
bench/README.md (section "## Replay speed"); `--river-only` runs the River specs
alone (whole processes and their time per stage) and only prints.

Run: python bench/bench_replay.py [--rows 200000] [--features 10] [--repeat 3] [--readme]
     [--river-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from contenders import Contender, race
from optional import require

ROOT = Path(__file__).resolve().parent.parent

RIVER_LOOP = """
import sys
from river import {modules}, metrics, stream
model = {model}
metric = metrics.MAE()
converters = {{**{{f"x{{j}}": float for j in range({d})}}, "y": float}}
for x, y in stream.iter_csv(sys.argv[1], target="y", converters=converters):
    metric.update(y, model.predict_one(x))
    model.learn_one(x, y)
"""

RIVER_EVALUATE = """
import sys
from river import evaluate, linear_model, metrics, stream
converters = {{**{{f"x{{j}}": float for j in range({d})}}, "y": float}}
dataset = stream.iter_csv(sys.argv[1], target="y", converters=converters)
evaluate.progressive_val_score(dataset, linear_model.LinearRegression(), metrics.MAE())
"""

VW_DRIVER = """
import sys
from vowpalwabbit import pyvw
workspace = pyvw.Workspace(f"-d {sys.argv[1]} --sgd --quiet --no_stdin")
workspace.run_parser()  # VW's own C++ driver: parse and learn the file
workspace.finish()
"""

#: ``streamlearn`` as it ran River specs before the collector was paused while a block
#: is learned and before a new model's first checkpoint could fork (``--before``).
BEFORE_DRIVER = """
import gc, runpy, sys
from streamlearn import state as checkpoint
from streamlearn.loop.blocks import RowsBlockPath

learn_rows = RowsBlockPath._learn_rows

def collecting(self, model, parsed):  # the collector stays on while the block is learned
    disable, gc.disable = gc.disable, lambda: None
    try:
        return learn_rows(self, model, parsed)
    finally:
        gc.disable = disable

init = checkpoint.BackgroundWriter.__init__

def measured(self, *args, **kwargs):  # no guess: a new model's first checkpoint on the loop
    init(self, *args, **kwargs)
    self._pickle_measured = True

RowsBlockPath._learn_rows = collecting
checkpoint.BackgroundWriter.__init__ = measured
sys.argv[0] = "streamlearn"
runpy.run_module("streamlearn.cli", run_name="__main__")
"""

SPECS = {
    "StandardScaler | LinearRegression": (
        "preprocessing, linear_model",
        "preprocessing.StandardScaler() | linear_model.LinearRegression()",
    ),
    # seeded: the adaptive tree draws random numbers, and both sides must grow the same tree
    "HoeffdingAdaptiveTreeRegressor(seed=1)": (
        "tree",
        "tree.HoeffdingAdaptiveTreeRegressor(seed=1)",
    ),
}


def make_csv(path: Path, rows: int, features: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features))
    y = X @ rng.normal(size=features) + 0.1 * rng.normal(size=rows)
    header = ",".join([*(f"x{j}" for j in range(features)), "y"])
    data = np.column_stack([X, y])
    np.savetxt(path, data, delimiter=",", header=header, comments="", fmt="%.6f")


def head(source: Path, target: Path, lines: int) -> None:
    with open(source, "rb") as handle, open(target, "wb") as out:
        for _ in range(lines):
            line = handle.readline()
            if not line:
                break
            out.write(line)


def to_vw(source: Path, target: Path) -> None:
    """The same rows in VW's text format: ``y | x0:v x1:v ...``."""
    with open(source) as handle, open(target, "w") as out:
        names = handle.readline().strip().split(",")[:-1]
        for line in handle:
            *values, label = line.rstrip("\n").split(",")
            features = " ".join(f"{n}:{v}" for n, v in zip(names, values, strict=True))
            out.write(f"{label} | {features}\n")


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(
        cmd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    return time.perf_counter() - started


def best_of(cmd: list[str], repeat: int, env: dict[str, str] | None = None) -> float:
    return min(timed(cmd, env) for _ in range(repeat))


def streamlearn_cmd(state: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlearn.cli",
        "--log-level",
        "warning",
        "replay",
        "{file}",
        "--state-dir",
        str(state),
        "--reset",
        *extra,
    ]


def replay_has_option(option: str) -> bool:
    cmd = [sys.executable, "-m", "streamlearn.cli", "replay", "--help"]
    return option in subprocess.run(cmd, capture_output=True, text=True).stdout


# -- whole processes ---------------------------------------------------------------


def whole_processes(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    full, header, warm = tmp / "full.csv", tmp / "header.csv", tmp / "warm.csv"
    make_csv(full, args.rows, args.features)
    head(full, header, 1)
    head(full, warm, args.warm_rows + 1)
    vw_full, vw_header, vw_warm = tmp / "full.vw", tmp / "header.vw", tmp / "warm.vw"
    for csv_file, vw_file in ((full, vw_full), (header, vw_header), (warm, vw_warm)):
        to_vw(csv_file, vw_file)
    files = {"csv": (full, header, warm), "vw": (vw_full, vw_header, vw_warm)}
    d = args.features
    no_drift = ("--drift-detector", "none") if replay_has_option("--drift-detector") else ()
    contenders: list[tuple[str, list[str], dict[str, str] | None, str]] = [
        ("streamlearn replay sgd", streamlearn_cmd(tmp / "s1"), None, "csv"),
        (
            "streamlearn replay sgd, per-record path",
            streamlearn_cmd(tmp / "s2"),
            {"STREAMLEARN_FASTPATH": "0"},
            "csv",
        ),
    ]
    if no_drift:
        contenders.append(
            (
                "streamlearn replay sgd, no drift monitor",
                streamlearn_cmd(tmp / "s3", *no_drift),
                None,
                "csv",
            )
        )
    contenders += [
        (
            "River loop (iter_csv + LinearRegression)",
            [
                sys.executable,
                "-c",
                RIVER_LOOP.format(
                    modules="linear_model", model="linear_model.LinearRegression()", d=d
                ),
                "{file}",
            ],
            None,
            "csv",
        ),
        (
            "River progressive_val_score (LinearRegression)",
            [sys.executable, "-c", RIVER_EVALUATE.format(d=d), "{file}"],
            None,
            "csv",
        ),
        (
            "VW driver (vw --sgd, in-process run_parser)",
            [sys.executable, "-c", VW_DRIVER, "{file}"],
            None,
            "vw",
        ),
    ]
    results = []
    for name, template, env, kind in contenders:
        full_path, header_path, warm_path = files[kind]

        def command(path: Path, template: list[str] = template) -> list[str]:
            return [part.replace("{file}", str(path)) for part in template]

        start_up = best_of(command(header_path), args.repeat, env)
        warm_s = best_of(command(warm_path), args.repeat, env)
        total = best_of(command(full_path), args.repeat, env)
        results.append(
            {
                "name": name,
                "rows": args.rows,
                "start_up": start_up,
                "warm": warm_s,
                "total": total,
                "rate": args.rows / max(total - start_up, 1e-9),
                "warm_rate": (args.rows - args.warm_rows) / max(total - warm_s, 1e-9),
            }
        )
        print(f"  {name}: {total:.2f} s", flush=True)
    return results + river_specs(args, tmp, full, header)


def river_specs(
    args: argparse.Namespace, tmp: Path, full: Path, header: Path
) -> list[dict[str, Any]]:
    """River specs: the daemon (default flags; and record by record) beside the bare River loop.

    Compared on the warm definition: the daemon imports River's metrics at its first
    record, the loop at start-up, so only full - warm compares the per-record costs.
    The contenders of a spec alternate run by run (best of ``repeat``): the machine's
    load moves all of them alike.
    """
    results = []
    for spec, (modules, expression) in SPECS.items():
        rows = args.rows // 2 if "LinearRegression" in spec else args.spec_rows
        warm_rows = max(rows // 20, 1000)
        spec_full, spec_warm = tmp / "spec.csv", tmp / "spec-warm.csv"
        head(full, spec_full, rows + 1)
        head(full, spec_warm, warm_rows + 1)
        loop = RIVER_LOOP.format(modules=modules, model=expression, d=args.features)
        contenders: list[tuple[str, list[str], dict[str, str] | None]] = [
            (f"streamlearn replay '{spec}'", streamlearn_cmd(tmp / "s4", "--model", spec), None),
            (
                f"streamlearn replay '{spec}', per-record path",
                streamlearn_cmd(tmp / "s5", "--model", spec),
                {"STREAMLEARN_FASTPATH": "0"},
            ),
            (f"River loop {spec}", [sys.executable, "-c", loop, "{file}"], None),
        ]
        if getattr(args, "before", False):
            before = streamlearn_cmd(tmp / "s6", "--model", spec)
            before[1:3] = ["-c", BEFORE_DRIVER]
            contenders.insert(1, (f"streamlearn replay '{spec}', before", before, None))
        files = (header, spec_warm, spec_full)
        race_of = [Contender(*c, files, rows, warm_rows) for c in contenders]
        results += race(race_of, args.repeat)
    return results


# -- inside one process --------------------------------------------------------------


def _wrap(owner: Any, name: str, bucket: dict[str, list[float]], key: str) -> Callable[[], None]:
    original = getattr(owner, name)

    def timed_call(*a: Any, **k: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            bucket.setdefault(key, []).append(time.perf_counter() - started)

    setattr(owner, name, timed_call)
    return lambda: setattr(owner, name, original)


def _daemon(path: Path, state: Path, model: str = "sgd", store: bool = True) -> Any:
    from streamlearn.app import build
    from streamlearn.config import Settings

    settings = Settings(
        source=str(path), follow=False, state_dir=state if store else None, reset=True, model=model
    )
    return build(settings)


def overhead(path: Path, rows: int, tmp: Path) -> dict[str, float]:
    """Nanoseconds per record of each stage of the daemon's loop (sgd, default flags)."""
    from streamlearn.fast import block as fastpath
    from streamlearn.loop import blocks, guard, router
    from streamlearn.loop.daemon import Daemon
    from streamlearn.sources import file

    app = _daemon(path, tmp / "warmup")  # imports, River's metrics
    app.daemon.run()
    app.close()
    bucket: dict[str, list[float]] = {}
    undo = [
        _wrap(file.FileSource, "next_block", bucket, "read lines"),
        _wrap(file.FileSource, "next_batch", bucket, "read lines"),
        _wrap(fastpath.BlockLearner, "parse", bucket, "decode + validate (compiled parse)"),
        _wrap(
            fastpath.BlockLearner, "learn", bucket, "predict + learn + metrics + window (kernel)"
        ),
        _wrap(blocks.BlockPath, "_observe", bucket, "drift monitor (compiled ADWIN, whole blocks)"),
        _wrap(blocks.BlockPath, "_settle", bucket, "route: counters, sinks, errors"),
        _wrap(router.Router, "process", bucket, "per-record path (first records)"),
        _wrap(guard.DivergenceGuard, "check_batch", bucket, "divergence guard"),
        _wrap(Daemon, "checkpoint", bucket, "checkpoint (loop thread)"),
    ]
    app = _daemon(path, tmp / "overhead")
    started = time.perf_counter()
    app.daemon.run()
    total = time.perf_counter() - started
    app.close()
    for restore in undo:
        restore()
    out = {key: sum(times) / rows * 1e9 for key, times in bucket.items()}
    out["other (loop, progress, pacing)"] = total / rows * 1e9 - sum(out.values())
    out["total"] = total / rows * 1e9
    return out


class _StageTimers:
    """Exclusive seconds per stage: a timed call's time less that of the timed calls inside it.

    Each timed call costs about 0.2 us of timer work, part of which lands in its caller's stage.
    """

    def __init__(self) -> None:
        self.own: dict[str, float] = {}
        self._inner: list[float] = []  # per open call: seconds spent in timed calls inside it
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name)
        inner, own = self._inner, self.own
        own.setdefault(stage, 0.0)

        def timed_call(*a: Any, **k: Any) -> Any:
            inner.append(0.0)
            started = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                elapsed = time.perf_counter() - started
                own[stage] += elapsed - inner.pop()
                if inner:
                    inner[-1] += elapsed

        had = name in vars(owner)
        setattr(owner, name, timed_call)
        self._undo.append(
            (lambda: setattr(owner, name, original)) if had else (lambda: delattr(owner, name))
        )

    def restore(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


RIVER_STAGES = (
    "read lines",
    "decode + validate",
    "records to dicts, loop (blocks)",
    "metrics + window + curve",
    "drift monitor",
    "route: counters, sinks, errors",
    "divergence guard",
    "checkpoint (loop thread)",
    "other (loop, telemetry)",
)


def river_overhead(path: Path, spec: str, tmp: Path, *, blocks: bool) -> dict[str, float]:
    """Nanoseconds per record of each stage of a River spec's replay (default flags).

    ``blocks``: the default path (plain CSV parsed a block at a time); else record by
    record (``STREAMLEARN_FASTPATH=0``). The model's own ``predict_one`` and ``learn_one``
    are a stage of their own; ``daemon overhead`` is everything else.
    """
    from streamlearn import learner, records
    from streamlearn.drift import monitor as drift
    from streamlearn.fast import block as fastpath
    from streamlearn.loop import blocks, guard, router
    from streamlearn.loop.daemon import Daemon
    from streamlearn.sources import file

    os.environ["STREAMLEARN_FASTPATH"] = "1" if blocks else "0"
    try:
        app = _daemon(path, tmp / "river-overhead", model=spec)
        model_class = type(app.daemon.learner.model)
        timers = _StageTimers()
        for owner, name, stage in (
            (file.FileSource, "next_block", "read lines"),
            (file.FileSource, "next_batch", "read lines"),
            (fastpath.BlockLearner, "parse", "decode + validate"),
            (records.CsvDecoder, "decode_batch", "decode + validate"),
            (model_class, "predict_one", "model: predict_one + learn_one"),
            (model_class, "learn_one", "model: predict_one + learn_one"),
            (blocks.RowsBlockPath, "_learn_rows", "records to dicts, loop (blocks)"),
            (fastpath.BlockLearner, "score", "metrics + window + curve"),
            (learner.Learner, "step", "metrics + window + curve"),
            (blocks.BlockPath, "_observe", "drift monitor"),
            (drift.DriftMonitor, "observe", "drift monitor"),
            (router.Router, "process", "route: counters, sinks, errors"),
            (blocks.RowsBlockPath, "process_block", "route: counters, sinks, errors"),
            (router.Router, "route", "route: counters, sinks, errors"),
            (blocks.BlockPath, "_settle", "route: counters, sinks, errors"),
            (guard.DivergenceGuard, "check_batch", "divergence guard"),
            (Daemon, "checkpoint", "checkpoint (loop thread)"),
        ):
            timers.wrap(owner, name, stage)
        rows = path.read_bytes().count(b"\n") - 1  # less the header
        collector = _CollectorTimer()
        started = time.perf_counter()
        try:
            with collector:
                app.daemon.run()
        finally:
            timers.restore()
        total = time.perf_counter() - started
        app.close()
    finally:
        os.environ.pop("STREAMLEARN_FASTPATH", None)
    out = {stage: timers.own.get(stage, 0.0) / rows * 1e9 for stage in RIVER_STAGES[:-1]}
    out["other (loop, telemetry)"] = total / rows * 1e9 - sum(timers.own.values()) / rows * 1e9
    model = timers.own["model: predict_one + learn_one"] / rows * 1e9
    out["daemon overhead (all but the model)"] = total / rows * 1e9 - model
    out["model: predict_one + learn_one"] = model
    out["total"] = total / rows * 1e9
    out["of which the garbage collector (inside the stages)"] = collector.seconds / rows * 1e9
    return out


class _CollectorTimer:
    """Seconds the cyclic garbage collector ran (``gc.callbacks``), while in the block."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def _note(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started

    def __enter__(self) -> _CollectorTimer:
        import gc

        gc.callbacks.append(self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        import gc

        gc.callbacks.remove(self._note)


def river_overheads(
    args: argparse.Namespace, tmp: Path, full: Path
) -> dict[str, dict[str, dict[str, float]]]:
    """``river_overhead`` of every spec, both paths, alternating; the fastest run of each."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for spec in SPECS:
        rows = args.rows // 2 if "LinearRegression" in spec else args.spec_rows
        spec_full = tmp / f"overhead-{len(out)}.csv"
        head(full, spec_full, rows + 1)
        river_overhead(spec_full, spec, tmp, blocks=True)  # imports, metrics
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.repeat):
            for label, blocks in (("blocks", True), ("per-record", False)):
                result = river_overhead(spec_full, spec, tmp, blocks=blocks)
                if label not in best or result["total"] < best[label]["total"]:
                    best[label] = result
        out[spec] = best
        print(f"  overhead per record, {spec}: done", flush=True)
    return out


def render_river(
    results: list[dict[str, Any]], overheads: dict[str, dict[str, dict[str, float]]]
) -> list[str]:
    """Ratios of the River specs and the table of where their time goes."""
    by_name = {r["name"]: r for r in results}
    lines = [
        "",
        "River specs, full - warm, the daemon (default flags) against the bare River loop, on "
        "wall-clock time and on CPU time (user + system of all threads: it moves far less with "
        "the machine's load, and counts the checkpoint writer's thread against the daemon):",
        "",
    ]
    for spec in SPECS:
        loop = by_name[f"River loop {spec}"]
        daemon = by_name[f"streamlearn replay '{spec}'"]
        per_record = by_name[f"streamlearn replay '{spec}', per-record path"]
        ratios = [
            f"{ours[key] / loop[key]:.2f}x"
            for key in ("warm_rate", "warm_cpu_rate")
            for ours in (daemon, per_record)
        ]
        before = by_name.get(f"streamlearn replay '{spec}', before")
        was = (
            [f"{before[key] / loop[key]:.2f}x" for key in ("warm_rate", "warm_cpu_rate")]
            if before
            else None
        )
        lines.append(
            f"- `{spec}`: wall clock {ratios[0]} (record by record: {ratios[1]}"
            + (f"; before: {was[0]}" if was else "")
            + f"); CPU {ratios[2]} (record by record: {ratios[3]}"
            + (f"; before: {was[1]}" if was else "")
            + ")"
        )
    if not overheads:
        return lines
    specs = list(overheads)
    lines += [
        "",
        "Where a River spec's replay spends its time (one process, default flags, after a "
        "warm-up run; fastest of the runs), nanoseconds per record. *blocks*: the default "
        "path for plain CSV (compiled parse, the model fed dicts of the parsed rows, metrics "
        "by the compiled kernel once per block); *per-record*: `STREAMLEARN_FASTPATH=0`. "
        "Each timed call adds about 0.2 us of timer work.",
        "",
        "| stage | "
        + " | ".join(
            f"`{s}` {p}".replace("|", "\\|") for s in specs for p in ("blocks", "per-record")
        )
        + " |",
        "|---|" + "---:|" * (2 * len(specs)),
    ]
    stages = next(iter(overheads[specs[0]].values())).keys()
    for stage in stages:
        cells = [f"{overheads[s][p][stage]:,.0f}" for s in specs for p in ("blocks", "per-record")]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return lines


#: How checkpoints are pickled, as compared: the code before the forked child (pickling
#: on the loop thread with the garbage collector on), the same with it paused, and the
#: ``STREAMLEARN_CHECKPOINT_FORK`` modes (``auto`` is the default).
CHECKPOINT_MODES = {
    "before": "on the loop, gc on (before)",
    "never": "on the loop, gc paused",
    "auto": "auto: forked child when pickling costs more than a fork (default)",
    "always": "always a forked child",
}


def checkpoint_holdups(
    path: Path, model: str, tmp: Path, tag: str, mode: str = "auto"
) -> dict[str, Any]:
    """How long each checkpoint held up the loop, in ms, with checkpoints pickled as ``mode``."""
    import contextlib

    from streamlearn import state as checkpoint
    from streamlearn.loop.daemon import Daemon
    from streamlearn.state import format as checkpoint_format

    times: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    real_close, real_pause = checkpoint.BackgroundWriter.close, checkpoint_format._gc_paused

    def close(writer: Any) -> None:  # how many were forked, before the writer is dropped
        counts.update(forked=writer.forked, pickled=writer.pickled)
        real_close(writer)

    undo = _wrap(Daemon, "checkpoint", times, "checkpoint")
    checkpoint.BackgroundWriter.close = close  # type: ignore[method-assign]
    if mode == "before":
        checkpoint_format._gc_paused = contextlib.nullcontext  # type: ignore[assignment]
    os.environ["STREAMLEARN_CHECKPOINT_FORK"] = "never" if mode == "before" else mode
    try:
        app = _daemon(path, tmp / f"ckpt-{tag}-{mode}", model=model)
        started = time.perf_counter()
        app.daemon.run()
        loop = time.perf_counter() - started
        app.close()
    finally:
        undo()
        checkpoint.BackgroundWriter.close = real_close  # type: ignore[method-assign]
        checkpoint_format._gc_paused = real_pause
        del os.environ["STREAMLEARN_CHECKPOINT_FORK"]
    held = times["checkpoint"][:-1]  # the last one waits for the disk
    return _holdup_row(model, mode, [held], [loop], counts.get("forked", 0))


def _holdup_row(
    model: str, mode: str, held: list[list[float]], loops: list[float], forked: int
) -> dict[str, Any]:
    """Percentiles of every run's checkpoints pooled; share of all the loops' time; best loop."""
    pooled = np.array([t for run in held for t in run] or [math.nan]) * 1e3
    return {
        "model": model,
        "mode": mode,
        "held": held,
        "loops": loops,
        "n": sum(len(run) for run in held),
        "forked": forked,
        "p50": float(np.percentile(pooled, 50)),
        "p99": float(np.percentile(pooled, 99)),
        "max": float(pooled.max()),
        "share": float(np.nansum(pooled) / 1e3 / sum(loops)),
        "loop": min(loops),
    }


def checkpoint_comparison(
    args: argparse.Namespace, tmp: Path, full: Path, arf: Path
) -> list[dict[str, Any]]:
    """Every mode side by side in one process, after a warm-up run of each model: sgd runs
    interleaved ``--repeat`` times (checkpoints pooled), then the ARF runs (minutes each)."""
    rows: list[dict[str, Any]] = []
    warm = tmp / "ckpt-warm.csv"
    head(full, warm, 3001)
    cases = [("sgd", full, "sgd", args.repeat, list(CHECKPOINT_MODES))]
    cases.append(("ARFRegressor(seed=1)", arf, "arf", 1, args.arf_modes.split(",")))
    for model, path, tag, repeat, modes in cases:
        checkpoint_holdups(warm, model, tmp / "warm", tag)  # imports
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for i in range(repeat):
            for mode in modes:
                print(f"checkpoints: {model}, {mode} ({i + 1}/{repeat})...", flush=True)
                runs[mode].append(checkpoint_holdups(path, model, tmp / f"r{i}", tag, mode))
        for mode, done in runs.items():
            held = [run for r in done for run in r["held"]]
            loops = [loop for r in done for loop in r["loops"]]
            rows.append(_holdup_row(model, mode, held, loops, sum(r["forked"] for r in done)))
        saved = tmp / "checkpoint-holdups.json"  # a long run's numbers, should rendering fail
        saved.write_text(json.dumps(rows))
        print(f"checkpoints: rows so far in {saved}", flush=True)
    return rows


def render_holdups(holdups: list[dict[str, Any]]) -> list[str]:
    from streamlearn.config import Settings

    defaults = {field.name: field.default for field in dataclasses.fields(Settings)}
    every, interval = defaults["checkpoint_every"], defaults["checkpoint_interval"]
    lines = [
        f"Checkpoints at the default cadence ({every:,} records / {interval:g} s, a new one once "
        "the writer is free): time each one held up the loop (state snapshot, then pickling or fork; "
        "checksum and disk off the loop). *forked*: how many were pickled by a forked child. "
        "Several runs of a row: checkpoints pooled, share of their total time, best loop time. "
        "The loop time includes what a child costs the loop indirectly (copy-on-write page "
        "faults, a shared CPU).",
        "",
        "| model | pickled | checkpoints | forked | p50 ms | p99 ms | max ms "
        "| share of loop time | loop s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for h in holdups:
        lines.append(
            f"| `{h['model']}` | {CHECKPOINT_MODES[h.get('mode', 'auto')]} | {h['n']} | "
            f"{h.get('forked', 0)} | {h['p50']:.2f} | {h['p99']:.2f} | {h['max']:.2f} | "
            f"{100 * h['share']:.1f} % | {h['loop']:.1f} |"
        )
    return lines


class _InlineWriter:
    """Stands in for BackgroundWriter: frames each checkpoint on the loop thread, writes nothing."""

    idle = True

    def __init__(self, store: Any, syncs: tuple[Any, ...] = ()) -> None:
        self.store = store
        self.done: list[Any] = []

    def snapshot(self, state: dict[str, Any], tag: Any, *, hold: Any = ()) -> str:
        from streamlearn.state import dump

        self.submit(dump(state), tag, framed=False)
        return "inline"

    def submit(self, blob: bytes, tag: Any, *, framed: bool = True) -> None:
        from streamlearn.state import frame

        if not framed:
            frame(blob)
        self.store.generation += 1
        self.done.append((self.store.generation, tag))

    def durable(self) -> list[Any]:
        done, self.done = self.done, []
        return done

    def wait(self) -> None:
        return None

    def close(self) -> None:
        return None


def writer_thread_effect(path: Path, tmp: Path, repeat: int) -> list[tuple[str, float, int]]:
    """Loop time of an sgd replay (default flags): what a checkpoint costs, part by part.

    No checkpoints; snapshots pickled on the loop but neither threaded nor written; the
    writer thread doing no I/O; the real writer (with switch intervals). Interleaved
    runs, best of ``repeat``; also how many checkpoints each wrote.
    """
    from streamlearn import state as checkpoint
    from streamlearn.loop import checkpointing

    original = sys.getswitchinterval()
    real_write = checkpoint.CheckpointStore.write

    def no_io(self: Any, blob: bytes) -> int:
        self.generation += 1
        return int(self.generation)

    settings: list[tuple[str, bool, float, str]] = [
        ("no state dir (no checkpoints)", False, original, ""),
        ("snapshot + pickle on the loop, no thread, no disk", True, original, "inline"),
        ("background writer thread, no disk writes", True, original, "no-io"),
        ("background writer (default 5 ms switch interval)", True, original, ""),
        ("background writer, switch interval 0.5 ms", True, 0.0005, ""),
        ("background writer, switch interval 50 ms", True, 0.05, ""),
    ]
    best: dict[str, tuple[float, int]] = {}
    for i in range(repeat):
        for label, store, interval, variant in settings:
            if variant == "inline":
                checkpointing.BackgroundWriter = _InlineWriter
            elif variant == "no-io":
                checkpoint.CheckpointStore.write = no_io
            sys.setswitchinterval(interval)
            try:
                app = _daemon(path, tmp / f"writer-{i}-{len(best)}", store=store)
                started = time.perf_counter()
                app.daemon.run()
                seconds = time.perf_counter() - started
                written = app.daemon.checkpoint_generation
                app.close()
            finally:
                sys.setswitchinterval(original)
                checkpointing.BackgroundWriter = checkpoint.BackgroundWriter
                checkpoint.CheckpointStore.write = real_write
            if label not in best or seconds < best[label][0]:
                best[label] = (seconds, written)
    return [(label, seconds, written) for label, (seconds, written) in best.items()]


def start_up(repeat: int, header: Path, tmp: Path) -> dict[str, float]:
    base = [sys.executable, "-m", "streamlearn.cli"]
    return {
        "streamlearn --help": best_of([*base, "--help"], repeat),
        "streamlearn replay header-only.csv (sgd)": best_of(
            [*base, "replay", str(header), "--state-dir", str(tmp / "hdr"), "--reset"], repeat
        ),
    }


# -- report ------------------------------------------------------------------------------


def _contenders_table(args: argparse.Namespace, results: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"Command: `python {' '.join(sys.argv)}`",
        "",
        f"{time.strftime('%Y-%m-%d')}, {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs "
        f"(shared: other test runs were going on; compare ratios within one run), Python "
        f"{platform.python_version()}, {_versions()}. {args.rows} rows x {args.features} features "
        f"(`%.6f`), warm file {args.warm_rows} rows (River specs: 1/20 of theirs); "
        f"best of {args.repeat}.",
        "",
        "| contender | rows | start-up s | total s | rows/s (full - header) | rows/s (full - warm) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        warm = f"{r['warm_rate']:,.0f}" if r["warm_rate"] else "-"
        name = r["name"].replace("|", "\\|")  # a pipeline's bar is not a column
        lines.append(
            f"| {name} | {r['rows']:,} | {r['start_up']:.2f} | {r['total']:.2f} | "
            f"{r['rate']:,.0f} | {warm} |"
        )
    return lines


def render(
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    breakdown: dict[str, float],
    holdups: list[dict[str, Any]],
    writer: list[tuple[str, float, int]],
    starts: dict[str, float],
    overheads: dict[str, dict[str, dict[str, float]]],
) -> str:
    lines = _contenders_table(args, results)
    by_name = {r["name"]: r for r in results}
    ours, river, vw = (
        by_name["streamlearn replay sgd"],
        by_name["River loop (iter_csv + LinearRegression)"],
        by_name["VW driver (vw --sgd, in-process run_parser)"],
    )
    lines += [
        "",
        "How to read it: *full - header* keeps the one-time costs a process pays at its first "
        "records (numpy's import, buffers sized, River's model modules for a River spec); "
        "*full - warm* pays them in both runs "
        "and leaves the per-record cost. *per-record path* is the same daemon with "
        "`STREAMLEARN_FASTPATH=0`. The default flags include the ADWIN drift monitor "
        "(compiled, fed the block's errors).",
    ]
    lines += ["", "Ratios (streamlearn replay sgd, default flags):", ""]
    for label, key in (("full - header", "rate"), ("full - warm", "warm_rate")):
        lines.append(
            f"- {label}: {ours[key] / river[key]:.1f}x the River loop, "
            f"{ours[key] / vw[key]:.2f}x the VW driver"
        )
    nodrift = by_name.get("streamlearn replay sgd, no drift monitor")
    if nodrift:
        lines.append(
            f"- no drift monitor, full - warm: {nodrift['warm_rate'] / river['warm_rate']:.1f}x "
            f"the River loop, {nodrift['warm_rate'] / vw['warm_rate']:.2f}x the VW driver"
        )
    lines += render_river(results, overheads)
    lines += [
        "",
        "Where the daemon's time goes (one process, sgd, default flags, after a warm-up run), "
        "nanoseconds per record:",
        "",
        "| stage | ns/record |",
        "|---|---:|",
    ]
    lines += [f"| {stage} | {ns:,.0f} |" for stage, ns in breakdown.items()]
    lines += ["", *render_holdups(holdups)]
    lines += [
        "",
        "What a checkpoint costs the loop, part by part (sgd replay, default flags, one "
        "process, interleaved runs, best of them):",
        "",
        "| setting | loop s | checkpoints written |",
        "|---|---:|---:|",
    ]
    lines += [f"| {label} | {seconds:.3f} | {written} |" for label, seconds, written in writer]
    lines += ["", "Start-up (whole process, best of runs):", "", "| command | s |", "|---|---:|"]
    lines += [f"| `{cmd}` | {seconds:.2f} |" for cmd, seconds in starts.items()]
    return "\n".join(lines)


def _versions() -> str:
    import importlib.metadata as md

    out = []
    for package in ("river", "numpy", "vowpalwabbit"):
        try:
            out.append(f"{package} {md.version(package)}")
        except md.PackageNotFoundError:
            out.append(f"{package} missing")
    return ", ".join(out)


def write_readme(table: str, title: str = "Replay speed") -> None:
    readme = ROOT / "bench" / "README.md"
    text = readme.read_text() if readme.exists() else "# Benchmarks\n"
    section = f"## {title}\n\n{table}\n"
    pattern = re.compile(rf"## {re.escape(title)}\n.*?(?=\n## |\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n"), text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    readme.write_text(text if text.endswith("\n") else text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warm-rows", type=int, default=5_000)
    parser.add_argument("--spec-rows", type=int, default=20_000)
    parser.add_argument("--arf-rows", type=int, default=20_000)
    parser.add_argument("--readme", action="store_true", help="write bench/README.md")
    parser.add_argument(
        "--checkpoint-only",
        action="store_true",
        help="only the checkpoint hold-up table (every pickling mode side by side)",
    )
    parser.add_argument(
        "--arf-modes",
        default="before,never,auto",
        help="checkpoint modes the ARF rows run (minutes each): " + ", ".join(CHECKPOINT_MODES),
    )
    parser.add_argument(
        "--river-only",
        action="store_true",
        help="only the River specs: whole processes and the daemon's overhead per record",
    )
    parser.add_argument(
        "--before",
        action="store_true",
        help="River specs: also the daemon as it was before the collector pause and the "
        "first checkpoint's fork guess (monkeypatched), side by side",
    )
    parser.add_argument(
        "--processes-only",
        action="store_true",
        help="only the whole-process table (sgd, River loops, VW, River specs)",
    )
    parser.add_argument(
        "--stages-only",
        action="store_true",
        help="only where the daemon's time per record goes (sgd, default flags, one process)",
    )
    args = parser.parse_args()
    if not (args.stages_only or args.checkpoint_only or args.river_only):
        require("vowpalwabbit")  # the VW row of the whole-process table
    tmp = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    if args.stages_only:
        full = tmp / "full.csv"
        make_csv(full, args.rows, args.features)
        best: dict[str, float] = {}
        for _ in range(args.repeat):  # the least time per stage over the runs
            for stage, ns in overhead(full, args.rows, tmp).items():
                best[stage] = min(best.get(stage, ns), ns)
        print(f"Command: `python {' '.join(sys.argv)}` (ns/record, least of {args.repeat})")
        print("\n| stage | ns/record |\n|---|---:|")
        print("\n".join(f"| {stage} | {ns:,.0f} |" for stage, ns in best.items()))
        return
    if args.processes_only:
        print("whole processes...", flush=True)
        print("\n".join(_contenders_table(args, whole_processes(args, tmp))))
        return
    if args.checkpoint_only:
        full, arf = tmp / "full.csv", tmp / "arf.csv"
        make_csv(full, args.rows, args.features)
        head(full, arf, args.arf_rows + 1)
        table = "\n".join(
            [
                f"Command: `python {' '.join(sys.argv)}`",
                "",
                f"{time.strftime('%Y-%m-%d')}, {platform.node()} {platform.machine()}, "
                f"{os.cpu_count()} CPUs (shared with other jobs: compare within one run), "
                f"Python {platform.python_version()}. sgd on {args.rows} rows, "
                f"ARFRegressor on {args.arf_rows}, {args.features} features.",
                "",
                *render_holdups(checkpoint_comparison(args, tmp, full, arf)),
            ]
        )
        print(table)
        if args.readme:
            write_readme(table, "Checkpoint hold-up")
        return
    if args.river_only:
        full, header = tmp / "full.csv", tmp / "header.csv"
        make_csv(full, args.rows, args.features)
        head(full, header, 1)
        print("whole processes...", flush=True)
        results = river_specs(args, tmp, full, header)
        print("inside one process...", flush=True)
        overheads = river_overheads(args, tmp, full)
        print("\n".join(_contenders_table(args, results) + render_river(results, overheads)))
        return
    print("whole processes...", flush=True)
    results = whole_processes(args, tmp)
    full, header = tmp / "full.csv", tmp / "header.csv"
    print("inside one process...", flush=True)
    breakdown = overhead(full, args.rows, tmp)
    arf = tmp / "arf.csv"
    head(full, arf, args.arf_rows + 1)
    holdups = checkpoint_comparison(args, tmp, full, arf)
    writer = writer_thread_effect(full, tmp, args.repeat)
    starts = start_up(max(args.repeat, 5), header, tmp)
    overheads = river_overheads(args, tmp, full)
    table = render(args, results, breakdown, holdups, writer, starts, overheads)
    print(table)
    if args.readme:
        write_readme(table)


if __name__ == "__main__":
    main()
