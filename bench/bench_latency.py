"""Learn latency: from a record's arrival to the model having learned it, at half the top rate.

Issue 7, item 4. For a Kafka topic (``streamlearn run kafka://... --kafka-client confluent``) and
for a file followed live (``streamlearn run file.csv``), each a real daemon process:

1. Top rate: the daemon learns a backlog (``--rows`` records in Kafka, ``--file-backlog`` times
   as many in a file, which goes faster); records/s from the batch where 10 % were learned to
   the last batch (start-up and the loading of the compiled kernels are left out).
2. Latency: a fresh topic (one partition) or file and a new daemon, primed with ``--prime``
   records written at once and learned (the consumer is fetching, the compiled kernels are
   loaded); then the bench writes records at half the top rate for ``--warmup`` + ``--seconds``
   seconds, in a burst every millisecond. The primer and the warm-up are left out.

What is measured, per learned record, exactly (not from histogram buckets):

- ``metric``: what ``streamlearn_learn_latency_seconds`` observes: the end of the batch that
  learned the record minus its arrival, i.e. the Kafka message timestamp (CreateTime, set by the
  producer at ``produce()``, whole milliseconds, so up to 1 ms high) or the time the file source
  read the line. The daemon process runs with ``Telemetry.learn_latency`` wrapped to also keep
  the values it is given (the daemon's own code path is unchanged; the wrapper lives only in
  this script's ``_daemon`` entry point, which then calls ``streamlearn.cli:main``).
- ``writer``: the same end of batch minus the bench's own clock when it sent the message or wrote
  the line (one partition and one file, so the n-th record learned is the n-th written). For a
  file it includes the time before the daemon's tail poll saw the line (the loop sleeps 50 ms
  when idle), which the metric does not count.
- ``histogram``: p50/p99 as ``histogram_quantile`` gives them from the daemon's /metrics (the
  buckets at the end less those after the primer: the operator's view; the warm-up is in it).

Also: what the metric costs, best of ``--repeat``. ``Telemetry.learn_latency`` per record
against ``prometheus_client.Histogram.observe`` one by one, and what a Kafka source adds to its
per-message loop to note arrival times, timed on the backlog's real messages.

Run: python bench/bench_latency.py [--rows 200000] [--seconds 25] [--warmup 3] [--skip-file]
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from optional import require

from streamlearn.broker import LocalBroker, free_port
from streamlearn.observe.telemetry import DEFAULT_LATENCY_BUCKETS

HERE = Path(__file__).resolve()
LEARNED = "streamlearn_records_learned_total"


# -- the daemon process --------------------------------------------------------------------------


def daemon_entry(log_path: str, args: list[str]) -> None:
    """``streamlearn`` with ``Telemetry.learn_latency`` also keeping every value, saved at exit."""
    from streamlearn.cli import main
    from streamlearn.observe import telemetry

    ends: list[float] = []
    counts: list[int] = []
    values: list[np.ndarray] = []
    original = telemetry.Telemetry.learn_latency

    def learn_latency(
        self: Any, arrivals: Any, weights: Any = None, now: float | None = None
    ) -> int:
        end = time.time() if now is None else now
        times = np.asarray(arrivals, dtype=np.float64)
        if weights is not None:
            times = np.repeat(times, weights)
        ends.append(end)
        counts.append(len(times))
        values.append(end - times)
        return original(self, arrivals, weights, end)

    def save() -> None:
        latencies = np.concatenate(values) if values else np.empty(0)
        np.savez(log_path, ends=np.array(ends), counts=np.array(counts), latencies=latencies)

    telemetry.Telemetry.learn_latency = learn_latency  # type: ignore[method-assign]
    atexit.register(save)
    main(args=args, prog_name="streamlearn")


class Daemon:
    """A ``streamlearn`` process (through ``daemon_entry``) with its /metrics on a free port."""

    def __init__(self, workdir: Path, name: str, *args: str) -> None:
        self.port = free_port()
        self.log = workdir / f"{name}.npz"
        self.args = [*args, "--metrics-port", str(self.port), "--state-dir", str(workdir / name)]
        self.command = "streamlearn " + " ".join(self.args)
        with open(workdir / f"{name}.log", "w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, str(HERE), "_daemon", str(self.log), *self.args], stderr=stderr
            )

    def get(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the daemon exited with {self.process.returncode}")
            try:
                self.get("/readyz")
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise TimeoutError("the daemon never became ready")

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        from prometheus_client.parser import text_string_to_metric_families

        out = {}
        for family in text_string_to_metric_families(self.get("/metrics")):
            for sample in family.samples:
                out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
        return out

    def learned(self) -> float:
        try:
            return self.samples().get((LEARNED, (("label", "true"),)), 0.0)
        except (urllib.error.URLError, OSError):
            return 0.0

    def wait_learned(self, n: int, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while self.learned() < n:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise TimeoutError(f"learned {self.learned():.0f} of {n}")
            time.sleep(0.25)  # a scrape takes the model's lock for a moment: not too often

    def buckets(self) -> np.ndarray:
        """The cumulative counts of the latency histogram's buckets, in ``le`` order."""
        samples = self.samples()
        name = "streamlearn_learn_latency_seconds_bucket"
        pairs = sorted(
            (float(dict(labels)["le"]), value)
            for (n, labels), value in samples.items()
            if n == name
        )
        return np.array([value for _, value in pairs])

    def stop(self) -> dict[str, np.ndarray]:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)
        with np.load(self.log) as data:
            return {key: data[key] for key in data.files}


def histogram_quantile(q: float, cumulative_counts: np.ndarray) -> float:
    """Prometheus' ``histogram_quantile`` over our buckets: linear within the rank's bucket."""
    buckets = zip((*DEFAULT_LATENCY_BUCKETS, float("inf")), cumulative_counts.tolist(), strict=True)
    rank = q * cumulative_counts[-1]
    lower, below = 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank:
            if bound == float("inf"):
                return lower  # Prometheus answers the highest finite bound
            return lower + (bound - lower) * (rank - below) / max(cumulative - below, 1e-300)
        lower, below = bound, cumulative
    return lower


def top_rate(log: dict[str, np.ndarray]) -> float:
    """Records/s from the batch that reached 10 % of the records to the last batch."""
    done = np.cumsum(log["counts"])
    start = int(np.searchsorted(done, 0.1 * done[-1]))
    return float((done[-1] - done[start]) / (log["ends"][-1] - log["ends"][start]))


# -- writing at a steady rate ----------------------------------------------------------------------


def paced(rate: float, total: int, write: Any) -> np.ndarray:
    """Call ``write(start, stop)`` for the records due by now, every ~1 ms; when each went out."""
    written = np.empty(total)
    began = time.time()
    sent = 0
    while sent < total:
        due = min(total, int((time.time() - began) * rate) + 1)
        if due > sent:
            write(sent, due)
            written[sent:due] = time.time()
            sent = due
        time.sleep(0.001)
    return written


def json_rows(n: int, features: int) -> list[bytes]:
    import orjson

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, features))
    y = X @ rng.normal(size=features)
    names = [f"x{j}" for j in range(features)]
    return [
        orjson.dumps({**dict(zip(names, map(float, r), strict=True)), "y": float(t)})
        for r, t in zip(X, y, strict=True)
    ]


def csv_rows(n: int, features: int) -> tuple[bytes, list[bytes]]:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, features))
    y = X @ rng.normal(size=features)
    header = (",".join([*(f"x{j}" for j in range(features)), "y"]) + "\n").encode()
    lines = [
        (",".join(f"{v:.6f}" for v in (*r, t)) + "\n").encode() for r, t in zip(X, y, strict=True)
    ]
    return header, lines


def producer(bootstrap: str) -> Any:
    from confluent_kafka import Producer

    # librdkafka's defaults (linger 5 ms): the message timestamp is taken at produce().
    return Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log.connection.close": False})


def create_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    deadline = time.monotonic() + 30
    while topic not in admin.list_topics(timeout=10).topics:
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} did not appear")
        time.sleep(0.05)


def produce_all(bootstrap: str, topic: str, rows: list[bytes]) -> None:
    out = producer(bootstrap)
    for row in rows:
        while True:
            try:
                out.produce(topic, row, partition=0)
                break
            except BufferError:
                out.poll(0.05)
        out.poll(0)
    out.flush(60)


# -- the two sources ---------------------------------------------------------------------------------


def latencies(
    log: dict[str, np.ndarray], written: np.ndarray, skip: int
) -> tuple[np.ndarray, np.ndarray]:
    """(metric, writer) latencies of the records after the first ``skip``."""
    learned_at = np.repeat(log["ends"], log["counts"])
    n = len(written)
    assert len(learned_at) == n, f"{len(learned_at)} learned, {n} written"
    return log["latencies"][skip:], learned_at[skip:] - written[skip:]


def kafka_run(args: argparse.Namespace, workdir: Path, broker: LocalBroker) -> dict[str, Any]:
    bootstrap = broker.bootstrap
    rows = json_rows(args.rows, args.features)
    backlog = f"latency-backlog-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, backlog)
    produce_all(bootstrap, backlog, rows)
    noting = noting_cost(bootstrap, backlog, len(rows), args.repeat)
    flags = ["--kafka-client", "confluent"]

    daemon = Daemon(workdir, "kafka-top", "run", f"kafka://{bootstrap}/{backlog}", *flags)
    daemon.wait_learned(len(rows))
    rate = top_rate(daemon.stop())

    steady = f"latency-steady-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, steady)
    daemon = Daemon(workdir, "kafka-steady", "run", f"kafka://{bootstrap}/{steady}", *flags)
    daemon.wait_ready()
    produce_all(bootstrap, steady, rows[: args.prime])
    primed_at = time.time()
    daemon.wait_learned(args.prime)
    before = daemon.buckets()
    out = producer(bootstrap)
    target = rate * args.fraction
    total = int(target * (args.warmup + args.seconds))

    def send(start: int, stop: int) -> None:
        for i in range(start, stop):
            out.produce(steady, rows[i % len(rows)], partition=0)
        out.poll(0)

    began = time.time()
    written = paced(target, total, send)
    out.flush(60)
    achieved = total / (written[-1] - began)
    daemon.wait_learned(args.prime + total)
    paced_only = daemon.buckets() - before
    quantiles = [histogram_quantile(q, paced_only) for q in (0.5, 0.99)]
    log = daemon.stop()
    written = np.concatenate([np.full(args.prime, primed_at), written])
    metric, writer = latencies(log, written, args.prime + int(target * args.warmup))
    return {
        "source": "Kafka, 1 partition, JSON",
        "command": daemon.command,
        "top": rate,
        "target": target,
        "achieved": achieved,
        "metric": metric,
        "writer": writer,
        "histogram": quantiles,
        "batch": float(np.mean(log["counts"])),
        "noting": noting,
    }


def file_run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    header, lines = csv_rows(args.rows, args.features)
    backlog = workdir / "backlog.csv"
    with open(backlog, "wb") as handle:  # a longer backlog: the file's top rate is far higher
        handle.write(header)
        for _ in range(args.file_backlog):
            handle.write(b"".join(lines))
    daemon = Daemon(workdir, "file-top", "run", str(backlog))
    daemon.wait_learned(len(lines) * args.file_backlog)
    rate = top_rate(daemon.stop())

    live = workdir / "live.csv"
    live.write_bytes(header)
    daemon = Daemon(workdir, "file-steady", "run", str(live))
    daemon.wait_ready()
    # The first block loads the compiled kernels (seconds): the primer pays for that.
    prime = args.prime
    with open(live, "ab") as handle:
        handle.write(b"".join(lines[i % len(lines)] for i in range(prime)))
    primed_at = time.time()
    daemon.wait_learned(prime)
    before = daemon.buckets()
    target = rate * args.fraction
    total = int(target * (args.warmup + args.seconds))

    with open(live, "ab", buffering=0) as handle:

        def write(start: int, stop: int) -> None:
            handle.write(b"".join(lines[i % len(lines)] for i in range(start, stop)))

        began = time.time()
        written = paced(target, total, write)
    achieved = total / (written[-1] - began)
    daemon.wait_learned(prime + total)
    paced_only = daemon.buckets() - before
    quantiles = [histogram_quantile(q, paced_only) for q in (0.5, 0.99)]
    log = daemon.stop()
    written = np.concatenate([np.full(prime, primed_at), written])
    metric, writer = latencies(log, written, prime + int(target * args.warmup))
    return {
        "source": "file followed (tail), CSV",
        "command": daemon.command,
        "top": rate,
        "target": target,
        "achieved": achieved,
        "metric": metric,
        "writer": writer,
        "histogram": quantiles,
        "batch": float(np.mean(log["counts"])),
    }


# -- what the metric costs --------------------------------------------------------------------------


def binning_cost(repeat: int) -> tuple[float, float]:
    """ns per record: ``Telemetry.learn_latency`` on 1000-record batches, ``Histogram.observe``."""
    from prometheus_client import CollectorRegistry, Histogram

    from streamlearn.observe.telemetry import Telemetry

    rng = np.random.default_rng(2)
    now = time.time()
    arrivals = now - rng.lognormal(-4.0, 1.5, size=1000)
    telemetry = Telemetry(CollectorRegistry())
    histogram = Histogram("h_seconds", "h", buckets=DEFAULT_LATENCY_BUCKETS, registry=None)
    values = (now - arrivals).tolist()
    ours, theirs = [], []
    for _ in range(repeat * 3):
        started = time.perf_counter()
        for _ in range(200):
            telemetry.learn_latency(arrivals, now=now)
        ours.append((time.perf_counter() - started) / 200_000 * 1e9)
        started = time.perf_counter()
        for value in values:
            histogram.observe(value)
        theirs.append((time.perf_counter() - started) / 1000 * 1e9)
    return min(ours), min(theirs)


def noting_cost(bootstrap: str, topic: str, n: int, repeat: int) -> float:
    """ns per record of what a Kafka source adds to note arrivals, on real messages.

    ``stamps.append(message.timestamp()[1])`` in its loop, then ``arrivals_from_timestamps``
    per batch of 1000, timed over the topic's messages held in memory (best of ``repeat``).
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from streamlearn.sources.base import arrivals_from_timestamps

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})
    messages: list[Any] = []
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        while len(messages) < n:
            messages.extend(m for m in consumer.consume(10_000, timeout=1.0) if m.error() is None)
    finally:
        consumer.close()
    batches = [messages[i : i + 1000] for i in range(0, len(messages), 1000)]
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for batch in batches:
            stamps: list[int] = []
            for message in batch:
                stamps.append(message.timestamp()[1])
            arrivals_from_timestamps(stamps, time.time())
        best = min(best, (time.perf_counter() - started) / len(messages) * 1e9)
    return best


# -- the report ---------------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0]
    return f"{platform.node()}, {cpu}, {os.cpu_count()} CPUs, load {load:.1f}"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def report(results: list[dict[str, Any]], args: argparse.Namespace, before: str) -> None:
    import confluent_kafka

    print(f"# command: python bench/bench_latency.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"# date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"# machine: {before} (before), load {os.getloadavg()[0]:.1f} (after)")
    print(
        f"# python {platform.python_version()}, numpy {np.__version__}, confluent-kafka "
        f"{version('confluent-kafka')} (librdkafka {confluent_kafka.libversion()[0]}), "
        f"{args.features} features, default daemon flags, {args.seconds} s measured after "
        f"{args.warmup} s of warm-up and {args.prime} primer records"
    )
    print()
    for result in results:
        print(f"- {result['source']}: `{result['command']}`")
    print()
    print(
        "| source | top rate rec/s | steady rate rec/s (target) | records | mean batch "
        "| view | p50 ms | p99 ms | max ms |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---:|---:|")
    for r in results:
        for view in ("metric", "writer"):
            values = r[view]
            p50, p99 = np.percentile(values, [50, 99])
            print(
                f"| {r['source']} | {r['top']:,.0f} | {r['achieved']:,.0f} ({r['target']:,.0f}) "
                f"| {len(values):,} | {r['batch']:,.0f} | {view} | {ms(p50)} | {ms(p99)} "
                f"| {ms(values.max())} |"
            )
        p50, p99 = r["histogram"]
        print(
            f"| {r['source']} | | | | | histogram_quantile (paced, warm-up in) | {ms(p50)} | {ms(p99)} | |"
        )
    print()
    ours, theirs = binning_cost(args.repeat)
    print(
        f"Binning: Telemetry.learn_latency {ours:.1f} ns/record (1000-record batches) against "
        f"prometheus_client Histogram.observe {theirs:.0f} ns/record ({theirs / ours:.0f}x)."
    )
    for r in results:
        if "noting" in r:
            print(
                f"Kafka source, noting arrival times: {r['noting']:.0f} ns/record (message."
                f"timestamp() in its loop, then one array per batch); the daemon spends "
                f"{1e9 / r['top']:,.0f} ns/record at its top rate."
            )


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_daemon":
        daemon_entry(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="backlog for the top rate")
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=25.0, help="measured, at half rate")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds left out first")
    parser.add_argument(
        "--file-backlog", type=int, default=5, help="the file's backlog: this many times --rows"
    )
    parser.add_argument("--prime", type=int, default=10_000, help="records learned before timing")
    parser.add_argument("--repeat", type=int, default=3, help="best of, for the cost figures")
    parser.add_argument(
        "--fraction",
        type=float,
        default=0.5,
        help="steady rate as a fraction of the top rate (the issue's: half)",
    )
    parser.add_argument("--skip-file", action="store_true", help="Kafka only")
    parser.add_argument("--skip-kafka", action="store_true", help="file only")
    args = parser.parse_args()
    require("confluent_kafka")  # the Kafka runs, and the report names its version

    before = machine()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        workdir = Path(tmp)
        if not args.skip_kafka:
            with LocalBroker() as broker:
                results.append(kafka_run(args, workdir, broker))
        if not args.skip_file:
            results.append(file_run(args, workdir))
    report(results, args, before)


if __name__ == "__main__":
    main()
