"""Replay speed: `streamlearn replay` next to River's loops and Vowpal Wabbit, on the same rows.

Whole processes are timed on the full CSV, on a header-only CSV and on a short
"warm" CSV (its first rows). Two steady-state rates are printed:

- rows / (full - header-only): the issue's definition. Start-up is subtracted, but
  one-time costs that a process pays at its first records (River's metrics import
  scipy.stats, River's drift package imports scikit-learn, numba loads its cached
  kernels) are not.
- (rows - warm rows) / (full - warm): every one-time cost is paid in both runs, so
  only the per-record cost is left.

Then, in one process: where the daemon's time per record goes (read, decode and
validate, learn and score, route, checkpoint), start-up times, and how long a
checkpoint holds up learning (sgd and ARFRegressor), with and without the
background writer. `--readme` writes the tables into bench/README.md
(section "## Replay speed").

Run: python bench/bench_replay.py [--rows 200000] [--features 10] [--repeat 3] [--readme]
"""

from __future__ import annotations

import argparse
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
    # River specs: the daemon (default flags) against the bare River loop with the same
    # model, both on the warm definition: the daemon imports River's metrics at its first
    # record, the loop at start-up, so only full - warm compares the per-record costs.
    for spec, (modules, expression) in SPECS.items():
        rows = args.rows // 2 if "LinearRegression" in spec else args.spec_rows
        warm_rows = max(rows // 20, 1000)
        spec_full, spec_warm = tmp / "spec.csv", tmp / "spec-warm.csv"
        head(full, spec_full, rows + 1)
        head(full, spec_warm, warm_rows + 1)
        loop = RIVER_LOOP.format(modules=modules, model=expression, d=d)
        for name, template in (
            (f"streamlearn replay '{spec}'", streamlearn_cmd(tmp / "s4", "--model", spec)),
            (f"River loop {spec}", [sys.executable, "-c", loop, "{file}"]),
        ):

            def command(path: Path, template: list[str] = template) -> list[str]:
                return [part.replace("{file}", str(path)) for part in template]

            start_up = best_of(command(header), args.repeat)
            warm_s = best_of(command(spec_warm), args.repeat)
            total = best_of(command(spec_full), args.repeat)
            results.append(
                {
                    "name": name,
                    "rows": rows,
                    "start_up": start_up,
                    "warm": warm_s,
                    "total": total,
                    "rate": rows / max(total - start_up, 1e-9),
                    "warm_rate": (rows - warm_rows) / max(total - warm_s, 1e-9),
                }
            )
            print(f"  {name}: {total:.2f} s", flush=True)
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
    from streamlearn import fastpath, service
    from streamlearn.sources import file

    app = _daemon(path, tmp / "warmup")  # imports, numba's cache, River's metrics
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
        _wrap(service.Daemon, "_observe_block", bucket, "drift monitor (per record, Python)"),
        _wrap(service.Daemon, "_settle_block", bucket, "route: counters, sinks, errors"),
        _wrap(service.Daemon, "process", bucket, "per-record path (first records)"),
        _wrap(service.Daemon, "_check_error_explosion", bucket, "divergence guard"),
        _wrap(service.Daemon, "checkpoint", bucket, "checkpoint (loop thread)"),
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


def checkpoint_holdups(path: Path, model: str, tmp: Path, tag: str) -> dict[str, Any]:
    """How long each checkpoint held up the loop (pickling on the loop thread), in ms."""
    from streamlearn import service

    times: dict[str, list[float]] = {}
    undo = _wrap(service.Daemon, "checkpoint", times, "checkpoint")
    app = _daemon(path, tmp / f"ckpt-{tag}", model=model)
    started = time.perf_counter()
    app.daemon.run()
    loop = time.perf_counter() - started
    app.close()
    undo()
    held = np.array(times["checkpoint"][:-1]) * 1e3  # the last one waits for the disk
    return {
        "model": model,
        "n": len(held),
        "p50": float(np.percentile(held, 50)),
        "p99": float(np.percentile(held, 99)),
        "max": float(held.max()),
        "share": float(held.sum() / 1e3 / loop),
        "loop": loop,
    }


class _InlineWriter:
    """Stands in for BackgroundWriter: frames each checkpoint on the loop thread, writes nothing."""

    idle = True

    def __init__(self, store: Any, syncs: tuple[Any, ...] = ()) -> None:
        self.store = store
        self.done: list[Any] = []

    def submit(self, blob: bytes, tag: Any, *, framed: bool = True) -> None:
        from streamlearn.checkpoint import frame

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
    from streamlearn import checkpoint, service

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
                service.BackgroundWriter = _InlineWriter
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
                service.BackgroundWriter = checkpoint.BackgroundWriter
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


def render(
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    breakdown: dict[str, float],
    holdups: list[dict[str, Any]],
    writer: list[tuple[str, float, int]],
    starts: dict[str, float],
) -> str:
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
    by_name = {r["name"]: r for r in results}
    ours, river, vw = (
        by_name["streamlearn replay sgd"],
        by_name["River loop (iter_csv + LinearRegression)"],
        by_name["VW driver (vw --sgd, in-process run_parser)"],
    )
    lines += [
        "",
        "How to read it: *full - header* keeps the one-time costs a process pays at its first "
        "records (River's metrics import scipy.stats, River's drift package imports "
        "scikit-learn, numba loads its cached kernels); *full - warm* pays them in both runs "
        "and leaves the per-record cost. *per-record path* is the same daemon with "
        "`STREAMLEARN_FASTPATH=0`. The default flags include the ADWIN drift monitor, "
        "which sees every record in Python.",
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
    for spec in SPECS:
        daemon, loop = by_name[f"streamlearn replay '{spec}'"], by_name[f"River loop {spec}"]
        lines.append(
            f"- `{spec}` (full - warm): the daemon at "
            f"{daemon['warm_rate'] / loop['warm_rate']:.2f}x the River loop"
        )
    lines += [
        "",
        "Where the daemon's time goes (one process, sgd, default flags, after a warm-up run), "
        "nanoseconds per record:",
        "",
        "| stage | ns/record |",
        "|---|---:|",
    ]
    lines += [f"| {stage} | {ns:,.0f} |" for stage, ns in breakdown.items()]
    lines += [
        "",
        "Checkpoints at the default cadence (1000 records / 5 s): time each one held up the "
        "loop (state snapshot and pickling; checksum and disk on the writer thread):",
        "",
        "| model | checkpoints | p50 ms | p99 ms | max ms | share of loop time |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for h in holdups:
        lines.append(
            f"| `{h['model']}` | {h['n']} | {h['p50']:.2f} | {h['p99']:.2f} | {h['max']:.2f} | "
            f"{100 * h['share']:.1f} % |"
        )
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
    for package in ("river", "numpy", "numba", "vowpalwabbit"):
        try:
            out.append(f"{package} {md.version(package)}")
        except md.PackageNotFoundError:
            out.append(f"{package} missing")
    return ", ".join(out)


def write_readme(table: str) -> None:
    readme = ROOT / "bench" / "README.md"
    text = readme.read_text() if readme.exists() else "# Benchmarks\n"
    section = f"## Replay speed\n\n{table}\n"
    pattern = re.compile(r"## Replay speed\n.*?(?=\n## |\Z)", re.S)
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
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    print("whole processes...", flush=True)
    results = whole_processes(args, tmp)
    full, header = tmp / "full.csv", tmp / "header.csv"
    print("inside one process...", flush=True)
    breakdown = overhead(full, args.rows, tmp)
    arf = tmp / "arf.csv"
    head(full, arf, args.arf_rows + 1)
    holdups = [
        checkpoint_holdups(full, "sgd", tmp, "sgd"),
        checkpoint_holdups(arf, "ARFRegressor(seed=1)", tmp, "arf"),
    ]
    writer = writer_thread_effect(full, tmp, args.repeat)
    starts = start_up(max(args.repeat, 5), header, tmp)
    table = render(args, results, breakdown, holdups, writer, starts)
    print(table)
    if args.readme:
        write_readme(table)


if __name__ == "__main__":
    main()
