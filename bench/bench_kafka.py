"""The daemon itself, end to end: ``streamlearn run kafka://...`` into sgd, with both Kafka clients.

A local tansu broker holds a backlog of N records of D features in two topics, produced
beforehand with confluent-kafka's producer: ``json`` (flat JSON objects, what the daemon decodes
from Kafka by default) and ``csv`` (the same rows as CSV values, read with ``--format csv
--features ...``: the compiled fast path then learns each fetch as one block). Each contender is
the real command line in a subprocess, with its defaults (drift monitor, metrics) unless
``--extra`` adds flags; the same rows from a file run beside them, as the reference:

- ``streamlearn run kafka://HOST:PORT/json --kafka-client confluent`` (and ``kafka-python``)
- ``streamlearn run rows.jsonl``
- ``streamlearn run kafka://HOST:PORT/csv --format csv --features x0,... --kafka-client confluent``
  (and ``kafka-python``)
- ``streamlearn run rows.csv``
- the two JSON contenders again with ``STREAMLEARN_FASTPATH=0``: record by record, as before
  the JSON block path (``streamlearn.fast.jsonblock``)

The bench polls the daemon's ``/metrics`` (``streamlearn_records_learned_total``) every 10 ms.
rows/s = (N - learned at the first poll that saw any) / (time of the poll that saw all N - time
of that first poll): start-up (imports, connecting, the first fetch) is not counted. The CPU
columns divide the same records by the CPU seconds the daemon used meanwhile (``/proc``): of the
whole process, and of its main thread, the loop (librdkafka fetches and decompresses on threads
of its own). Then the daemon gets SIGTERM (it checkpoints and exits 0). Contenders alternate,
best of --repeat by rows/s.

Run: python bench/bench_kafka.py [--rows 500000] [--features 10] [--partitions 1] [--repeat 3]
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from optional import require

from streamlearn.broker import LocalBroker, free_port

_LEARNED = re.compile(rb"^streamlearn_records_learned_total(?:\{[^}]*\})? ([0-9.e+]+)$", re.M)
STREAMLEARN = Path(sys.executable).with_name("streamlearn")


def make_rows(n: int, features: int) -> tuple[list[bytes], list[bytes]]:
    """Noisy linear rows (features x0.., target y, 6 decimals): flat JSON objects, CSV values."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, features)).round(6)
    y = (X @ rng.normal(size=features) + rng.normal(scale=0.1, size=n)).round(6)
    as_json = [
        json.dumps({**{f"x{j}": float(v) for j, v in enumerate(row)}, "y": float(t)}).encode()
        for row, t in zip(X, y, strict=True)
    ]
    as_csv = [
        ",".join(map(repr, [*row.tolist(), float(t)])).encode() for row, t in zip(X, y, strict=True)
    ]
    return as_json, as_csv


def fill(bootstrap: str, topic: str, partitions: int, rows: list[bytes]) -> float:
    """Create ``topic`` and produce ``rows`` round-robin over its partitions; returns seconds."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(30)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.size": 1 << 20,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1 << 20,
        }
    )
    started = time.perf_counter()
    for i, row in enumerate(rows):
        producer.produce(topic, row, partition=i % partitions)
        if i % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"{left} records were not delivered")
    return time.perf_counter() - started


def learned(port: int) -> int | None:
    """``streamlearn_records_learned_total`` (summed over labels), or None while not serving."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            text = answer.read()
    except OSError:
        return None
    return int(sum(float(value) for value in _LEARNED.findall(text)))


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) so far of process ``pid``: all its threads, its main thread."""
    tick = os.sysconf("SC_CLK_TCK")

    def read(path: str) -> float:
        with open(path) as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime, stime

    return read(f"/proc/{pid}/stat"), read(f"/proc/{pid}/task/{pid}/stat")


@dataclass
class Timing:
    """One daemon's run: rows/s (wall clock), rows per CPU second of the whole process and of
    its main thread (the loop: what one core must do; librdkafka's threads run beside it), and
    the start-up seconds (launch to the first record learned)."""

    rate: float
    per_process_cpu: float
    per_loop_cpu: float
    startup: float


def time_daemon(args: list[str], n: int, state: Path, env: dict[str, str] | None = None) -> Timing:
    """Run ``streamlearn ARGS`` (``env`` added) until it learned ``n`` records, then SIGTERM it."""
    shutil.rmtree(state, ignore_errors=True)
    port = free_port()
    command = [str(STREAMLEARN), *args, "--state-dir", str(state), "--reset"]
    command += ["--metrics-port", str(port)]
    launched = time.perf_counter()
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        first: tuple[float, int, tuple[float, float]] | None = None
        deadline = launched + 600
        while True:
            count = learned(port) or 0
            now = time.perf_counter()
            if count and first is None:
                first = (now, count, cpu_seconds(process.pid))
            if count >= n:
                cpu = cpu_seconds(process.pid)
                break
            if process.poll() is not None or now > deadline:
                process.kill()
                _, errors = process.communicate()
                raise RuntimeError(
                    f"{' '.join(command)} stopped after {count} records "
                    f"(exit {process.returncode}): {errors.decode()[-2000:]}"
                )
            time.sleep(0.01)
        assert first is not None
        first_at, first_n, first_cpu = first
        records = n - first_n
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
        if code != 0:
            raise RuntimeError(f"{' '.join(command)} exited with {code} after SIGTERM")
        return Timing(
            records / (now - first_at),
            records / (cpu[0] - first_cpu[0]),
            records / (cpu[1] - first_cpu[1]),
            first_at - launched,
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--extra", default="", help="more flags for every daemon, e.g. '--drift-detector none'"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated contender numbers to run (1-based)"
    )
    args = parser.parse_args()
    require("confluent_kafka")  # fills the topics and is one of the clients measured
    extra = args.extra.split()
    as_json, as_csv = make_rows(args.rows, args.features)
    features = ",".join(f"x{j}" for j in range(args.features))
    tmp = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
    jsonl, csv = tmp / "rows.jsonl", tmp / "rows.csv"
    jsonl.write_bytes(b"\n".join([*as_json, b""]))
    csv.write_bytes(b"\n".join([f"{features},y".encode(), *as_csv, b""]))
    sizes = [sum(map(len, rows)) / len(rows) for rows in (as_json, as_csv)]
    results: dict[str, Timing] = {}
    try:
        with LocalBroker() as broker:
            produce_s = fill(broker.bootstrap, "json", args.partitions, as_json)
            produce_s += fill(broker.bootstrap, "csv", args.partitions, as_csv)
            url = f"kafka://{broker.bootstrap}"
            csv_flags = ["--format", "csv", "--features", features]
            confluent = ["--kafka-client", "confluent"]
            contenders = [
                ("run kafka://.../json --kafka-client confluent", [f"{url}/json", *confluent]),
                ("run kafka://.../json --kafka-client kafka-python", [f"{url}/json"]),
                ("run rows.jsonl", [str(jsonl)]),
                (
                    "run kafka://.../csv --format csv --kafka-client confluent",
                    [f"{url}/csv", *csv_flags, *confluent],
                ),
                (
                    "run kafka://.../csv --format csv --kafka-client kafka-python",
                    [f"{url}/csv", *csv_flags],
                ),
                ("run rows.csv", [str(csv)]),
                # JSON record by record, as before the JSON block path (streamlearn.fast.jsonblock).
                (
                    "run kafka://.../json --kafka-client confluent, per-record path",
                    [f"{url}/json", *confluent],
                ),
                (
                    "run kafka://.../json --kafka-client kafka-python, per-record path",
                    [f"{url}/json"],
                ),
            ]
            if args.only:
                chosen = {int(k) - 1 for k in args.only.split(",")}
                contenders = [c for i, c in enumerate(contenders) if i in chosen]
            for _ in range(args.repeat):
                for name, command in contenders:
                    env = (
                        {"STREAMLEARN_FASTPATH": "0"} if name.endswith("per-record path") else None
                    )
                    timing = time_daemon(["run", *command, *extra], args.rows, tmp / "state", env)
                    best = results.get(name)
                    if best is None or timing.rate > best.rate:
                        results[name] = timing
                    print(f"  {name}: {timing}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"Command: `python {' '.join(sys.argv)}`")
    print()
    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.node()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs (shared), python {platform.python_version()}, load average "
        f"{os.getloadavg()[0]:.1f}. {args.rows:,} records x {args.features} features "
        f"(JSON ~{sizes[0]:.0f} B, CSV ~{sizes[1]:.0f} B), {args.partitions} partition(s), "
        f"both topics produced in {produce_s:.1f} s; "
        f"best of {args.repeat} by rows/s; flags: {' '.join(extra) or '(defaults)'}."
    )
    print()
    print(
        "| daemon | rows/s | rows per CPU-s (process) | rows per CPU-s (loop thread) | start-up s |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, t in results.items():
        print(
            f"| `streamlearn {name}` | {t.rate:,.0f} | {t.per_process_cpu:,.0f} | "
            f"{t.per_loop_cpu:,.0f} | {t.startup:.2f} |"
        )


if __name__ == "__main__":
    main()
