"""Classification speed and memory: `streamlearn replay` of classifiers next to Vowpal Wabbit and
River's loops, on the same rows, in one run.

Three sections (``--sections speed,river,rss``):

- ``speed``: ``--model logistic`` replaying a binary CSV (``--rows`` rows, ``--features``
  features, labels 1/0) with default flags (metrics, drift monitor, checkpoints), and record by
  record (``STREAMLEARN_FASTPATH=0``); the VW driver with ``--loss_function logistic`` on the
  same rows (labels -1/1), with ``--sgd`` (the seed's plain update) and with VW's default
  update (adaptive, normalized, invariant); and the River loop a user would write
  (``iter_csv`` + ``predict_proba_one`` + ``LogLoss`` + ``learn_one`` with
  ``LogisticRegression(optimizer=SGD(lr), intercept_lr=lr)``) on the first ``--river-rows``
  rows (the loop's rate per row does not depend on how many rows it runs).
- ``river``: River classifier specs through the daemon (default flags: metrics and drift
  monitor; once without ``--state-dir``, the bare loop's work, once with it, checkpoints on;
  with ``--record-path`` also record by record) next to the bare River loop on the same rows;
  with ``--instructions`` also the instructions a row of both under callgrind, a count the
  machine's load does not move (the CPU time of a tree's run moves by 15-30% between runs
  on a shared machine); with ``--abreast ROUNDS`` also the daemon and the loop run at the
  same moment, one a core, so that the load of the moment falls on both alike.
- ``rss``: resident memory of ``--model logistic`` (metrics, drift monitor, checkpoints,
  dead letters and predictions on) over ``--rss-records`` rows of a file written on disk,
  sampled every ``--interval`` seconds (``bench_memory.measure``).

Rates: rows / (full - header-only) (the issue's definition: start-up subtracted) and
(rows - warm rows) / (full - warm) (every one-time cost paid in both runs). Each contender
runs ``--repeat`` times, alternating, best time kept.

Run: python bench/bench_classify.py [--rows 1000000] [--repeat 3] [--sections speed,river,rss]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_memory import measure
from contenders import Contender, abreast, ratio
from contenders import race as contenders_race
from optional import require

ROOT = Path(__file__).resolve().parent.parent
STREAMLEARN = ROOT / ".venv" / "bin" / "streamlearn"
PYTHON = ROOT / ".venv" / "bin" / "python"
LR = 0.01
CHUNK = 1_000_000

VW_DRIVER = """
import sys
from vowpalwabbit import pyvw
workspace = pyvw.Workspace(f"-d {sys.argv[1]} {sys.argv[2]} --quiet --no_stdin")
workspace.run_parser()  # VW's own C++ driver: parse and learn the file
workspace.finish()
"""

RIVER_LOOP = """
import sys
from river import {modules}, metrics, stream
model = {model}
metric = metrics.LogLoss()
converters = {{**{{f"x{{j}}": float for j in range({d})}}, "y": lambda label: label == "1"}}
for x, y in stream.iter_csv(sys.argv[1], target="y", converters=converters):
    metric.update(y, model.predict_proba_one(x))
    model.learn_one(x, y)
"""

#: River classifier specs: (daemon spec, River modules, River expression, rows divisor).
SPECS = (
    (
        f"LogisticRegression(optimizer=SGD(lr={LR}), intercept_lr={LR})",
        "linear_model, optim",
        f"linear_model.LogisticRegression(optimizer=optim.SGD({LR}), intercept_lr={LR})",
        1,
    ),
    (
        "StandardScaler | LogisticRegression",
        "linear_model, preprocessing",
        "preprocessing.StandardScaler() | linear_model.LogisticRegression()",
        1,
    ),
    ("GaussianNB", "naive_bayes", "naive_bayes.GaussianNB()", 5),
    ("HoeffdingTreeClassifier", "tree", "tree.HoeffdingTreeClassifier()", 5),
    (
        "HoeffdingAdaptiveTreeClassifier(seed=1)",
        "tree",
        "tree.HoeffdingAdaptiveTreeClassifier(seed=1)",
        5,
    ),
    ("ARFClassifier(seed=1)", "forest", "forest.ARFClassifier(seed=1)", 50),
)


# -- data ------------------------------------------------------------------------------


def _cells(values: np.ndarray, sep: int) -> tuple[np.ndarray, np.ndarray]:
    """``%.6f`` text of ``values`` (|v| < 10) and a separator, as a fixed (n, 10) byte matrix
    and the mask of its bytes to keep (a positive number has no sign byte)."""
    q = np.rint(np.clip(np.abs(values), 0, 9.999999) * 1_000_000).astype(np.int64)
    out = np.empty((len(values), 10), dtype=np.uint8)
    out[:, 0] = ord("-")
    out[:, 1] = 48 + q // 1_000_000
    out[:, 2] = ord(".")
    for k in range(6):
        out[:, 3 + k] = 48 + (q // 10 ** (5 - k)) % 10
    out[:, 9] = sep
    keep = np.ones(out.shape, dtype=bool)
    keep[:, 0] = (values < 0) & (q > 0)
    return out, keep


def _rows(rng: np.random.Generator, n: int, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, len(weights)))
    y = (X @ weights + 0.5 * rng.normal(size=n) > 0).astype(np.int64)
    return X, y


def write_files(
    csv: Path, vw: Path | None, rows: int, features: int, seed: int = 0, unlabeled: int = 0
) -> None:
    """A binary CSV (``x0..``, ``y`` in 1/0) and, if ``vw``, the same rows in VW's format.

    ``unlabeled``: every such row (``unlabeled``-th) has an empty target (CSV only).
    """
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=features)
    names = [f"x{j}" for j in range(features)]
    with open(csv, "wb") as out_csv, open(vw or os.devnull, "wb") as out_vw:
        out_csv.write((",".join([*names, "y"]) + "\n").encode())
        for start in range(0, rows, CHUNK):
            X, y = _rows(rng, min(CHUNK, rows - start), weights)
            cells = [_cells(X[:, j], ord(",")) for j in range(features)]
            label = np.column_stack([48 + y, np.full(len(y), 10)]).astype(np.uint8)
            matrix = np.hstack([c for c, _ in cells] + [label])
            keep = np.hstack([k for _, k in cells] + [np.ones(label.shape, dtype=bool)])
            if unlabeled:
                keep[(start + np.arange(len(y))) % unlabeled == unlabeled - 1, -2] = False
            out_csv.write(matrix[keep].tobytes())
            if vw is None:
                continue
            # "1 | x0:0.123456 x1:-1.5 ..." with -1 for the negative class.
            head = np.frombuffer(b"-1 | ", dtype=np.uint8)
            parts = [np.tile(head, (len(y), 1))]
            head_keep = np.ones((len(y), 5), dtype=bool)
            head_keep[:, 0] = y == 0
            keeps = [head_keep]
            for j, (cell, cell_keep) in enumerate(cells):
                name = np.frombuffer(f"x{j}:".encode(), dtype=np.uint8)
                cell = cell.copy()
                cell[:, 9] = ord(" ") if j < features - 1 else 10
                parts += [np.tile(name, (len(y), 1)), cell]
                keeps += [np.ones((len(y), len(name)), dtype=bool), cell_keep]
            out_vw.write(np.hstack(parts)[np.hstack(keeps)].tobytes())


def head(source: Path, target: Path, lines: int) -> None:
    with open(source, "rb") as handle, open(target, "wb") as out:
        for _ in range(lines):
            line = handle.readline()
            if not line:
                break
            out.write(line)


# -- whole processes -------------------------------------------------------------------


def replay_cmd(*extra: str) -> list[str]:
    """``streamlearn replay {file}`` without a state directory: no checkpoint is written."""
    return [str(STREAMLEARN), "--log-level", "warning", "replay", "{file}", "--no-progress", *extra]


def streamlearn_cmd(state: Path, *extra: str) -> list[str]:
    return replay_cmd("--state-dir", str(state), "--reset", *extra)


def shown(template: list[str], env: dict[str, str] | None) -> str:
    """A command as the report shows it: the inline scripts by name."""
    parts = list(template)
    if "-c" in parts:
        at = parts.index("-c") + 1
        script = parts[at]
        if script == VW_DRIVER:
            parts[at] = "VW_DRIVER"
        else:
            model = next(line for line in script.splitlines() if line.startswith("model = "))
            parts[at] = f"RIVER_LOOP({model.removeprefix('model = ')})"
    parts = [part if " " not in part or part.startswith("RIVER") else repr(part) for part in parts]
    prefix = " ".join(f"{key}={value}" for key, value in (env or {}).items())
    return (prefix + " " if prefix else "") + " ".join(parts)


def race(contenders: list[Contender], repeat: int) -> list[dict[str, Any]]:
    """``contenders.race``, the commands shown as the report shows them."""
    return contenders_race(contenders, repeat, shown)


def speed(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    full, header, warm = tmp / "full.csv", tmp / "header.csv", tmp / "warm.csv"
    full_vw, header_vw, warm_vw = tmp / "full.vw", tmp / "header.vw", tmp / "warm.vw"
    write_files(full, full_vw, args.rows, args.features)
    head(full, header, 1)
    head(full, warm, args.warm_rows + 1)
    header_vw.write_bytes(b"")
    head(full_vw, warm_vw, args.warm_rows)
    river_rows = min(args.river_rows, args.rows)
    river_full, river_warm = tmp / "river.csv", tmp / "river-warm.csv"
    head(full, river_full, river_rows + 1)
    river_warm_rows = max(river_rows // 20, 1000)
    head(full, river_warm, river_warm_rows + 1)
    record_rows = min(args.record_rows, args.rows)
    record_full = tmp / "record.csv"
    head(full, record_full, record_rows + 1)
    csv_files = (header, warm, full)
    vw_files = (header_vw, warm_vw, full_vw)
    logistic = ("--model", "logistic", "--lr", str(LR))
    river = RIVER_LOOP.format(
        modules="linear_model, optim",
        model=f"linear_model.LogisticRegression(optimizer=optim.SGD({LR}), intercept_lr={LR})",
        d=args.features,
    )
    vw = [sys.executable, "-c", VW_DRIVER, "{file}"]
    contenders: list[Contender] = [
        Contender(
            "streamlearn replay logistic",
            streamlearn_cmd(tmp / "s1", *logistic),
            None,
            csv_files,
            args.rows,
            args.warm_rows,
        ),
        Contender(
            "streamlearn replay logistic, no drift monitor",
            streamlearn_cmd(tmp / "s2", *logistic, "--drift-detector", "none"),
            None,
            csv_files,
            args.rows,
            args.warm_rows,
        ),
        Contender(
            "streamlearn replay logistic, per-record path",
            streamlearn_cmd(tmp / "s3", *logistic),
            {"STREAMLEARN_FASTPATH": "0"},
            (header, warm, record_full),
            record_rows,
            args.warm_rows,
        ),
        Contender(
            "VW driver (--sgd --loss_function logistic)",
            [*vw, f"--sgd --loss_function logistic -l {LR}"],
            None,
            vw_files,
            args.rows,
            args.warm_rows,
        ),
        Contender(
            "VW driver (--loss_function logistic, VW's default update)",
            [*vw, "--loss_function logistic"],
            None,
            vw_files,
            args.rows,
            args.warm_rows,
        ),
        Contender(
            "River loop (iter_csv + LogisticRegression)",
            [sys.executable, "-c", river, "{file}"],
            None,
            (header, river_warm, river_full),
            river_rows,
            river_warm_rows,
        ),
    ]
    return race(contenders, args.repeat)


def river_specs(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    """River classifier specs: the daemon (default flags) beside the bare River loop."""
    full, header = tmp / "spec-source.csv", tmp / "spec-header.csv"
    write_files(full, None, args.spec_rows, args.features, seed=1)
    head(full, header, 1)
    results = []
    for spec, modules, expression, divisor in SPECS:
        if args.specs and not any(part in spec for part in args.specs.split(",")):
            continue
        rows = args.spec_rows // divisor
        warm_rows = max(rows // 20, 500)
        spec_full, spec_warm = tmp / "spec.csv", tmp / "spec-warm.csv"
        head(full, spec_full, rows + 1)
        head(full, spec_warm, warm_rows + 1)
        files = (header, spec_warm, spec_full)
        loop = RIVER_LOOP.format(modules=modules, model=expression, d=args.features)
        # The bare loop's work: predict, score, learn (metrics and drift monitor on); without
        # --state-dir the daemon keeps nothing on disk, as the loop keeps nothing.
        daemon = replay_cmd("--model", spec)
        # As a service runs it: checkpoints every 5 s of wall time (a fork and a pickle of the
        # model each), so their count, and their share of the CPU, grows with the load.
        kept = streamlearn_cmd(tmp / "s4", "--model", spec)
        contenders = [
            Contender(f"streamlearn replay '{spec}'", daemon, None, files, rows, warm_rows),
            Contender(
                f"streamlearn replay '{spec}', --state-dir (checkpoints)",
                kept,
                None,
                files,
                rows,
                warm_rows,
            ),
            Contender(
                f"River loop {expression}",
                [sys.executable, "-c", loop, "{file}"],
                None,
                files,
                rows,
                warm_rows,
            ),
        ]
        if args.record_path:  # ``ClassRouter`` and ``ClassLearner.step``, record by record
            name = f"streamlearn replay '{spec}', per-record path"
            record = Contender(name, daemon, {"STREAMLEARN_FASTPATH": "0"}, files, rows, warm_rows)
            contenders.insert(2, record)
        results += race(contenders, args.repeat)
        if args.abreast:
            results[-1]["abreast"] = abreast(contenders[0], contenders[-1], args.abreast)
        if args.instructions:
            counted = instructions(tmp, full, max(rows // 5, 3000), loop, spec)
            results[-1]["instructions"] = counted  # the loop's, beside the daemon's
    return results


def callgrind(cmd: list[str]) -> subprocess.Popen[str]:
    """``cmd`` under callgrind, started: its count of executed instructions is the same run
    after run, whatever the load (``--instructions``)."""
    grind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    return subprocess.Popen(
        [*grind, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def collected(process: subprocess.Popen[str]) -> int:
    _, err = process.communicate()
    found = re.search(r"Collected : (\d+)", err)
    if process.returncode or found is None:
        raise SystemExit(f"callgrind failed (exit {process.returncode}):\n{err[-600:]}")
    return int(found.group(1))


def instructions(tmp: Path, full: Path, rows: int, loop: str, spec: str) -> dict[str, float]:
    """Instructions a row of the daemon (no ``--state-dir``) and of the bare River loop,
    (full - warm) / (rows - warm rows) under callgrind, on the first ``rows`` rows (a
    quarter of them warm, at least 1,500: past the first block, which the daemon learns
    record by record while the model cannot predict yet); the daemon's and the loop's run
    side by side."""
    warm_rows = max(rows // 4, 1500)
    counts: dict[str, list[int]] = {"daemon": [], "loop": []}
    for lines in (warm_rows, rows):
        data = tmp / f"grind-{lines}.csv"
        head(full, data, lines + 1)
        daemon = [str(PYTHON), *(part.replace("{file}", str(data)) for part in replay_cmd())]
        running = {
            "daemon": callgrind([*daemon, "--model", spec]),
            "loop": callgrind([str(PYTHON), "-c", loop, str(data)]),
        }
        for name, process in running.items():
            counts[name].append(collected(process))
        print(f"  callgrind {spec}, {lines} rows: {counts}", flush=True)
    per_row = {
        name: (full_count - warm_count) / (rows - warm_rows)
        for name, (warm_count, full_count) in counts.items()
    }
    return {"rows": rows, **per_row}


def rss(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """RSS of ``--model logistic`` over ``--rss-records`` rows, flags on, sampled."""
    data = tmp / "rss.csv"
    # Every 100th row unlabeled: the size of the predictions file tells how far the stream is.
    write_files(data, None, args.rss_records, args.features, seed=2, unlabeled=100)
    predictions = tmp / "rss-pred.jsonl"
    command = [
        str(STREAMLEARN),
        "replay",
        str(data),
        "--model",
        "logistic",
        "--state-dir",
        str(tmp / "rss-state"),
        "--reset",
        "--dead-letter",
        str(tmp / "rss-dead.jsonl"),
        "--predictions",
        str(predictions),
        "--no-progress",
    ]
    result = measure(
        "logistic", command, data, predictions, args.rss_records, interval=args.interval
    )
    return {
        "command": " ".join(command),
        "seconds": result.seconds,
        "records": args.rss_records,
        "at": {point: result.at(point) for point in (0.1, 0.5, 1.0)},
        "growth": result.growth,
        "slope": result.slope,
        "peak": result.peak_kib / 1024,
        "summary": result.summary,
    }


# -- the report ----------------------------------------------------------------------------


def _versions() -> str:
    import importlib.metadata as md

    out = []
    for package in ("river", "numpy", "vowpalwabbit"):
        try:
            out.append(f"{package} {md.version(package)}")
        except md.PackageNotFoundError:
            out.append(f"{package} missing")
    return ", ".join(out)


def table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| contender | rows | start-up s | total s | rows/s (full - header) "
        "| rows/s (full - warm) | rows/s CPU (full - warm) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        name = r["name"].replace("|", "\\|")
        lines.append(
            f"| {name} | {r['rows']:,} | {r['start_up']:.2f} | {r['total']:.2f} | "
            f"{r['rate']:,.0f} | {r['warm_rate']:,.0f} | {r['warm_cpu_rate']:,.0f} |"
        )
    return lines


def _ratio_text(ours: dict[str, Any], theirs: dict[str, Any]) -> str:
    """Our rates over theirs: best times' ratio, and the median of the rounds' ratios."""
    parts = []
    for key, label in (
        ("rate", "full - header"),
        ("warm_rate", "full - warm"),
        ("warm_cpu_rate", "CPU, full - warm"),
    ):
        best, median = ratio(ours, theirs, key)
        parts.append(f"{best:.2f}x best / {median:.2f}x median ({label})")
    return ", ".join(parts)


def ratios(results: list[dict[str, Any]]) -> list[str]:
    by = {r["name"]: r for r in results}
    ours = by.get("streamlearn replay logistic")
    lines = []
    if ours is not None:
        for other in (
            "VW driver (--sgd --loss_function logistic)",
            "VW driver (--loss_function logistic, VW's default update)",
            "River loop (iter_csv + LogisticRegression)",
            "streamlearn replay logistic, per-record path",
        ):
            if other in by:
                lines.append(f"- logistic / {other}: {_ratio_text(ours, by[other])}")
    daemons: list[dict[str, Any]] = []  # a spec's daemon runs, before its River loop
    for r in results:
        if r["name"].startswith("streamlearn replay '"):
            daemons.append(r)
        elif r["name"].startswith("River loop ") and daemons:
            for ours in daemons:
                spec = ours["name"].removeprefix("streamlearn replay ")
                lines.append(f"- {spec} / bare River loop: {_ratio_text(ours, r)}")
            daemons = []
            at_once = r.get("abreast")
            if at_once is not None:
                lines.append(
                    f"- {r['name'].removeprefix('River loop ')}: daemon (default flags) / bare loop, "
                    "CPU (full - warm), the two run "
                    f"at the same moment, {len(at_once)} rounds: median "
                    f"{statistics.median(at_once):.3f}x, min {min(at_once):.3f}x, max "
                    f"{max(at_once):.3f}x"
                )
            counted = r.get("instructions")
            if counted is not None:
                lines.append(
                    f"- {r['name']}, instructions a row (callgrind, full - warm, "
                    f"{counted['rows']:,} rows): daemon {counted['daemon']:,.0f}, bare loop "
                    f"{counted['loop']:,.0f}, loop / daemon {counted['loop'] / counted['daemon']:.3f}x"
                )
    return lines


def report(
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    memory: dict[str, Any] | None,
    load: tuple[str, str],
) -> str:
    lines = [
        f"Command: `python {' '.join(sys.argv)}`",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs; load average before {load[0]}, after "
        f"{load[1]}; Python {platform.python_version()}, {_versions()}. Binary rows of "
        f"{args.features} features (`%.6f`), labels 1/0 (VW: 1/-1); best of {args.repeat}.",
    ]
    if results:
        lines += ["", *table(results), "", "Ratios:", "", *ratios(results)]
        lines += ["", "Commands (`{file}`: the full, warm or header-only file):", ""]
        lines += [f"- {r['name']}: `{r['command']}`" for r in results]
        lines += ["", "RIVER_LOOP(model), the loop a River user writes:", "", "```python"]
        lines += [RIVER_LOOP.format(modules="...", model="model", d=args.features).strip()]
        lines += ["```", "", "VW_DRIVER:", "", "```python", VW_DRIVER.strip(), "```"]
    if memory is not None:
        at = memory["at"]
        lines += [
            "",
            f"RSS of `{memory['command']}` over {memory['records']:,} records "
            f"({memory['seconds']:.0f} s), MiB (least / median / most over a tenth of the "
            "stream): "
            + "; ".join(
                f"{int(point * 100)}%: {low:.0f} / {mid:.0f} / {high:.0f}"
                for point, (low, mid, high) in at.items()
            )
            + f"; growth of the median 10% -> 100%: {memory['growth']:+.1f}%; slope "
            f"{memory['slope']:+.2f} MiB per million records; peak {memory['peak']:.0f} MiB.",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warm-rows", type=int, default=5_000)
    parser.add_argument("--river-rows", type=int, default=500_000)
    parser.add_argument("--record-rows", type=int, default=300_000)
    parser.add_argument("--spec-rows", type=int, default=200_000)
    parser.add_argument("--rss-records", type=int, default=10_000_000)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--sections", default="speed,river,rss")
    parser.add_argument(
        "--specs", default="", help="river section: only the specs containing one of these (a,b)"
    )
    parser.add_argument(
        "--record-path",
        action="store_true",
        help="river section: also each spec record by record (STREAMLEARN_FASTPATH=0)",
    )
    parser.add_argument(
        "--abreast",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="river section: also ROUNDS rounds of each spec's daemon (default flags) and bare "
        "loop run at the same moment, one a core: the load falls on both alike",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="river section: also count each spec's instructions a row under callgrind "
        "(daemon and bare loop; slow: 50x, on a fifth of a spec's rows)",
    )
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if "speed" in sections:
        require("vowpalwabbit")
    load_before = " ".join(f"{v:.2f}" for v in os.getloadavg())
    tmp = Path(tempfile.mkdtemp(prefix="bench-classify-"))
    results: list[dict[str, Any]] = []
    memory = None
    if "speed" in sections:
        print("logistic, VW, River...", flush=True)
        results += speed(args, tmp)
        print("\n".join(table(results)), flush=True)  # each section as soon as it is done
    if "river" in sections:
        print("River specs...", flush=True)
        results += river_specs(args, tmp)
        print("\n".join(table(results)), flush=True)
    if "rss" in sections:
        print("RSS...", flush=True)
        memory = rss(args, tmp)
    load_after = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(report(args, results, memory, (load_before, load_after)))


if __name__ == "__main__":
    main()
