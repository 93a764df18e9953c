"""The daemon against an earlier version of itself, side by side in one run.

A change that should not move the figures (a restructure) is checked here: the same commands
run with this tree's package and with another tree's (``--before DIR``: a directory that holds
a built ``streamlearn`` package, put first on ``PYTHONPATH``), alternating, best of
``--repeat``. Contenders, each a whole ``streamlearn`` process on the same generated rows:

- ``replay rows.csv`` (sgd, the compiled CSV block path): steady rate = rows / (full - header-only)
- ``replay rows.jsonl`` (sgd, the compiled JSON block path), same definition
- ``replay rows.csv`` with ``STREAMLEARN_FASTPATH=0`` (sgd record by record)
- ``replay rows.csv --model "StandardScaler | LinearRegression"`` (River rows blocks)
- ``replay rows.csv --model "HoeffdingAdaptiveTreeRegressor(seed=1)"``
- ``run kafka://.../json --kafka-client confluent`` (a local broker; rate between the first and
  the last ``/metrics`` poll, as bench_kafka.py measures it)

To make a "before" tree of commit REV::

    git worktree add /tmp/before/tree REV
    (cd /tmp/before/tree && python setup.py build_ext --inplace)
    mkdir -p /tmp/before/path && ln -s /tmp/before/tree/daemon /tmp/before/path/streamlearn

Run: python bench/bench_before_after.py --before /tmp/before/path [--rows 1000000]
     [--river-rows 100000] [--kafka-rows 200000] [--repeat 3] [--after /tmp/after/path]
     [--only kafka]

``--after DIR`` (made the same way from another REV, e.g. HEAD) pins the "after" side to a
commit; without it the "after" side is this venv's installed package, that is the working tree
as it is while the bench runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
from optional import require

_LEARNED = re.compile(rb"^streamlearn_records_learned_total(?:\{[^}]*\})? ([0-9.e+]+)$", re.M)


def make_rows(directory: Path, rows: int, features: int) -> tuple[Path, Path, list[bytes]]:
    """Noisy linear rows as a CSV, as JSON Lines, and as JSON message values."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, features)).round(6)
    y = (X @ rng.normal(size=features) + rng.normal(scale=0.1, size=rows)).round(6)
    names = [f"x{j}" for j in range(features)]
    csv, jsonl = directory / "rows.csv", directory / "rows.jsonl"
    np.savetxt(
        csv,
        np.column_stack([X, y]),
        delimiter=",",
        header=",".join([*names, "y"]),
        comments="",
        fmt="%.6f",
    )
    values = [
        json.dumps({**dict(zip(names, map(float, row), strict=True)), "y": float(t)}).encode()
        for row, t in zip(X, y, strict=True)
    ]
    jsonl.write_bytes(b"\n".join([*values, b""]))
    return csv, jsonl, values


def head(source: Path, target: Path, lines: int) -> Path:
    with open(source, "rb") as handle, open(target, "wb") as out:
        for _ in range(lines):
            out.write(handle.readline())
    return target


def env_for(tree: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **(extra or {})}
    env.pop("PYTHONPATH", None)
    if tree is not None:
        env["PYTHONPATH"] = tree
    return env


def replay_seconds(file: Path, state: Path, env: dict[str, str], *flags: str) -> float:
    command = [
        sys.executable,
        "-m",
        "streamlearn.cli",
        "--log-level",
        "warning",
        "replay",
        str(file),
        "--state-dir",
        str(state),
        "--reset",
        *flags,
    ]
    shutil.rmtree(state, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    return time.perf_counter() - started


def learned(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as answer:
            found = _LEARNED.findall(answer.read())
    except OSError:
        return None
    return int(sum(float(value) for value in found)) if found else None


def kafka_rate(url: str, rows: int, state: Path, env: dict[str, str]) -> float:
    """rows/s of ``streamlearn run URL`` between its first and its last /metrics poll."""
    from streamlearn.broker import free_port

    shutil.rmtree(state, ignore_errors=True)
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("streamlearn")),
        "run",
        url,
        "--kafka-client",
        "confluent",
        "--state-dir",
        str(state),
        "--reset",
        "--metrics-port",
        str(port),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        first: tuple[float, int] | None = None
        deadline = time.perf_counter() + 600
        while True:
            count = learned(port) or 0
            now = time.perf_counter()
            if count and first is None:
                first = (now, count)
            if count >= rows:
                break
            if process.poll() is not None or now > deadline:
                raise RuntimeError(
                    f"{command} stopped at {count}: {process.stderr.read()[-2000:]!r}"
                )
            time.sleep(0.01)
        assert first is not None
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        return (rows - first[1]) / (now - first[0])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def fill(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Create a one-partition ``topic`` and produce ``values`` into it."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(30)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.size": 1 << 20,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    for i, value in enumerate(values):
        producer.produce(topic, value)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("some records were not delivered")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, help="PYTHONPATH dir holding the old package")
    parser.add_argument("--after", help="PYTHONPATH dir of the new package (default: installed)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--river-rows", type=int, default=100_000)
    parser.add_argument("--kafka-rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-kafka", action="store_true")
    parser.add_argument("--only", help="run only the contenders whose name holds this text")
    args = parser.parse_args()
    if not args.no_kafka:
        require("confluent_kafka")  # fills the topic of the Kafka row
    tmp = Path(tempfile.mkdtemp(prefix="bench-before-after-"))
    try:
        csv, jsonl, values = make_rows(tmp, args.rows, args.features)
        header = head(csv, tmp / "header.csv", 1)
        small = head(csv, tmp / "small.csv", args.river_rows + 1)
        hatr = head(csv, tmp / "hatr.csv", args.river_rows // 2 + 1)
        state = tmp / "state"

        def steady(
            file: Path, rows: int, *flags: str, extra: dict[str, str] | None = None
        ) -> Callable[[str | None], float]:
            def measure(tree: str | None) -> float:
                env = env_for(tree, extra)
                full = replay_seconds(file, state, env, *flags)
                bare = replay_seconds(header, state, env, *flags)
                return rows / (full - bare)

            return measure

        contenders: list[tuple[str, Callable[[str | None], float]]] = [
            (f"replay rows.csv (sgd, CSV blocks), {args.rows:,} rows", steady(csv, args.rows)),
            (f"replay rows.jsonl (sgd, JSON blocks), {args.rows:,} rows", steady(jsonl, args.rows)),
            (
                f"replay, sgd record by record (STREAMLEARN_FASTPATH=0), {args.river_rows:,} rows",
                steady(small, args.river_rows, extra={"STREAMLEARN_FASTPATH": "0"}),
            ),
            (
                f"replay --model 'StandardScaler | LinearRegression', {args.river_rows:,} rows",
                steady(small, args.river_rows, "--model", "StandardScaler | LinearRegression"),
            ),
            (
                f"replay --model 'HoeffdingAdaptiveTreeRegressor(seed=1)', "
                f"{args.river_rows // 2:,} rows",
                steady(
                    hatr, args.river_rows // 2, "--model", "HoeffdingAdaptiveTreeRegressor(seed=1)"
                ),
            ),
        ]
        broker = None
        if not args.no_kafka:
            from streamlearn.broker import LocalBroker

            broker = LocalBroker()
            broker.__enter__()
            fill(broker.bootstrap, "json", values[: args.kafka_rows])
            url = f"kafka://{broker.bootstrap}/json"
            contenders.append(
                (
                    f"run kafka://.../json --kafka-client confluent, {args.kafka_rows:,} records",
                    lambda tree: kafka_rate(url, args.kafka_rows, state, env_for(tree)),
                )
            )
        if args.only:
            contenders = [(name, measure) for name, measure in contenders if args.only in name]
        results: dict[tuple[str, str], float] = {}
        try:
            for _ in range(args.repeat):
                for name, measure in contenders:
                    for side, tree in (("before", args.before), ("after", args.after)):
                        rate = measure(tree)
                        results[name, side] = max(rate, results.get((name, side), 0.0))
                        print(f"  {side:6s} {name}: {rate:,.0f}/s", file=sys.stderr, flush=True)
        finally:
            if broker is not None:
                broker.__exit__(None, None, None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"Command: `python {' '.join(sys.argv)}`\n")
    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} CPUs (shared), "
        f"python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}; "
        f"best of {args.repeat}, before and after alternating.\n"
    )
    print("| contender | before rows/s | after rows/s | after / before |")
    print("|---|---:|---:|---:|")
    for name, _ in contenders:
        before, after = results[name, "before"], results[name, "after"]
        ratio = f"{after / before:.2f}" if before > 0 else "-"
        print(f"| {name} | {before:,.0f} | {after:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
