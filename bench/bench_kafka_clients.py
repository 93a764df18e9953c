"""kafka-python beside confluent-kafka, reading the same topics from a local broker, in one run.

A local tansu broker (``streamlearn.broker.LocalBroker``) holds N JSON records of D float features
in a 1-partition and in a 3-partition topic. Contenders, all reading everything from the start:

- ``kafka-python poll()``: a raw ``KafkaConsumer`` (assign + seek_to_beginning, 5000 per poll,
  64 MiB fetches, 8 MiB per partition), values collected into a list;
- ``KafkaSource.next_batch(5000)``: streamlearn's source (kafka-python underneath);
- ``confluent consume()``: a raw ``confluent_kafka.Consumer`` (assign at OFFSET_BEGINNING, no
  auto commit, ``consume(num_messages=5000)``, tuned fetch and queue sizes);
- ``ConfluentKafkaSource.next_batch(5000)``: when ``streamlearn.sources.kafka_confluent`` exists.

Rates are messages / seconds from the first non-empty batch to the last message (the first batch
is not counted), best of ``--repeat``; contenders alternate within each repeat, so a noisy
neighbour hurts them alike. Then, per client, the consumed values are decoded and learned
(``orjson.loads`` + ``SGDRegressor.predict_learn_one``), measured two ways: learning alone on the
collected values, and consume+decode+learn in one loop (the end-to-end ceiling on one core).

Run: python bench/bench_kafka_clients.py [--rows 300000] [--features 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable
from importlib.metadata import version
from typing import Any, cast

import numpy as np
import orjson
from optional import require

from streamlearn.broker import LocalBroker
from streamlearn.models.sgd import SGDRegressor
from streamlearn.sources.kafka import KafkaSource
from streamlearn.sources.kafka_config import KafkaSettings

BATCH = 5000
#: kafka-python consumer tuning (the same values as ``streamlearn.sources.kafka.CONSUMER_TUNING``).
KP_TUNING: dict[str, Any] = {
    "max_poll_records": BATCH,
    "fetch_max_bytes": 64 * 1024 * 1024,
    "max_partition_fetch_bytes": 8 * 1024 * 1024,
    "fetch_max_wait_ms": 100,
}
#: librdkafka consumer tuning.
CK_TUNING: dict[str, Any] = {
    "fetch.max.bytes": 64 * 1024 * 1024,
    "max.partition.fetch.bytes": 8 * 1024 * 1024,
    "queued.max.messages.kbytes": 256 * 1024,
    "queued.min.messages": 500_000,
    "fetch.wait.max.ms": 100,
}

Consume = Callable[[str, str, int, Callable[[list[bytes]], None] | None], float]


def make_rows(n: int, features: int) -> list[bytes]:
    """N JSON records ``{"x0": .., ..., "y": ..}`` of a linear target."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, features))
    y = X @ rng.normal(size=features)
    return [
        orjson.dumps({**{f"x{j}": float(v) for j, v in enumerate(r)}, "y": float(t)})
        for r, t in zip(X, y, strict=True)
    ]


def fill(bootstrap: str, topic: str, partitions: int, rows: list[bytes]) -> None:
    """Create ``topic`` and send ``rows`` round-robin over its partitions."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, partitions, 1)])
    deadline = time.monotonic() + 10
    while len((admin.describe_topics([topic]) or [{}])[0].get("partitions", [])) < partitions:
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} did not appear")
        time.sleep(0.05)
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=1 << 20)
    for i, row in enumerate(rows):
        producer.send(topic, row, partition=i % partitions)
    producer.flush()
    producer.close()


class _Clock:
    """Counts messages; remembers when the first non-empty batch arrived."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.got = 0
        self.first_n = 0
        self.first_at = 0.0

    def add(self, count: int) -> bool:
        """Record a batch; True once all ``n`` messages are in."""
        if count and not self.got:
            self.first_at = time.perf_counter()
            self.first_n = count
        self.got += count
        return self.got >= self.n

    def rate(self) -> float:
        return (self.got - self.first_n) / (time.perf_counter() - self.first_at)


def kp_raw(
    bootstrap: str, topic: str, n: int, sink: Callable[[list[bytes]], None] | None = None
) -> float:
    """kafka-python ``KafkaConsumer.poll()`` loop."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **KP_TUNING
    )
    parts = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    clock = _Clock(n)
    try:
        while True:
            polled = consumer.poll(timeout_ms=200, max_records=BATCH)
            values = [r.value for records in polled.values() for r in records]
            if sink is not None:
                sink(values)
            if clock.add(len(values)):
                return clock.rate()
    finally:
        consumer.close(autocommit=False)


def kp_source(
    bootstrap: str, topic: str, n: int, sink: Callable[[list[bytes]], None] | None = None
) -> float:
    """``streamlearn.sources.kafka.KafkaSource.next_batch(5000)`` loop."""
    source = KafkaSource(KafkaSettings.build(f"kafka://{bootstrap}/{topic}"), None)
    return _source_loop(source, n, sink)


def ck_source(
    bootstrap: str, topic: str, n: int, sink: Callable[[list[bytes]], None] | None = None
) -> float:
    """``streamlearn.sources.kafka_confluent.ConfluentKafkaSource.next_batch(5000)`` loop."""
    from streamlearn.sources.kafka_confluent import ConfluentKafkaSource

    source = ConfluentKafkaSource(KafkaSettings.build(f"kafka://{bootstrap}/{topic}"), None)
    return _source_loop(source, n, sink)


def _source_loop(source: Any, n: int, sink: Callable[[list[bytes]], None] | None) -> float:
    try:
        if not source.wait_until_ready(30):
            raise TimeoutError("the source never positioned its partitions")
        clock = _Clock(n)
        while True:
            items = source.next_batch(BATCH)
            if sink is not None:
                sink([item.value for item in items])
            if clock.add(len(items)):
                return clock.rate()
    finally:
        source.close()


def ck_raw(
    bootstrap: str, topic: str, n: int, sink: Callable[[list[bytes]], None] | None = None
) -> float:
    """confluent-kafka ``Consumer.consume(num_messages=5000)`` loop."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",  # assign() never joins it
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            **CK_TUNING,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10)
        parts = sorted(meta.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        clock = _Clock(n)
        while True:
            msgs = consumer.consume(num_messages=BATCH, timeout=0.2)
            values = cast("list[bytes]", [m.value() for m in msgs if m.error() is None])
            if sink is not None:
                sink(values)
            if clock.add(len(values)):
                return clock.rate()
    finally:
        consumer.close()


def learner() -> tuple[SGDRegressor, Callable[[list[bytes]], None]]:
    """An sgd model and a sink that decodes and learns every value it is given."""
    model = SGDRegressor()
    loads = orjson.loads
    step = model.predict_learn_one

    def sink(values: list[bytes]) -> None:
        for value in values:
            x = loads(value)
            y = x.pop("y")
            step(x, y)

    return model, sink


def learn_only(values: list[bytes]) -> float:
    """Records/s of orjson.loads + predict_learn_one alone over ``values``."""
    _, sink = learner()
    started = time.perf_counter()
    sink(values)
    return len(values) / (time.perf_counter() - started)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.node()}, {cpu}, {os.cpu_count()} cpus, load {load:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--partitions", type=int, nargs="+", default=[1, 3])
    args = parser.parse_args()
    require("confluent_kafka")

    import confluent_kafka
    import kafka

    contenders: dict[str, Consume] = {
        "kafka-python poll()": kp_raw,
        "KafkaSource.next_batch": kp_source,
        "confluent consume()": ck_raw,
    }
    try:
        import streamlearn.sources.kafka_confluent  # noqa: F401

        contenders["ConfluentKafkaSource.next_batch"] = ck_source
    except ImportError:
        pass
    ends = {"kafka-python poll()": kp_raw, "confluent consume()": ck_raw}

    rows = make_rows(args.rows, args.features)
    size = sum(map(len, rows)) / len(rows)
    learn = max(learn_only(rows) for _ in range(args.repeat))
    results: dict[tuple[int, str], float] = {}
    load_before = machine()
    with LocalBroker() as broker:
        topics = {}
        for parts in args.partitions:
            topics[parts] = f"bench-{parts}p"
            fill(broker.bootstrap, topics[parts], parts, rows)
        for _ in range(args.repeat):
            for parts, topic in topics.items():
                for name, run in contenders.items():
                    rate = run(broker.bootstrap, topic, args.rows, None)
                    results[parts, name] = max(results.get((parts, name), 0.0), rate)
                for name, run in ends.items():
                    _, sink = learner()
                    rate = run(broker.bootstrap, topic, args.rows, sink)
                    key = (parts, f"{name} + orjson + sgd")
                    results[key] = max(results.get(key, 0.0), rate)
        load_after = machine()

    print(f"# command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"# date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"# machine (before): {load_before}")
    print(f"# machine (after):  {load_after}")
    print(
        f"# python {platform.python_version()}, kafka-python {kafka.__version__}, "
        f"confluent-kafka {version('confluent-kafka')} (librdkafka "
        f"{confluent_kafka.libversion()[0]}), {args.rows} records x {args.features} features "
        f"(~{size:.0f} B), best of {args.repeat}"
    )
    print()
    print(f"orjson.loads + SGDRegressor.predict_learn_one alone: {learn:,.0f} records/s")
    print()
    names = [*contenders, *(f"{name} + orjson + sgd" for name in ends)]
    header = "| contender | " + " | ".join(f"{p} partition(s) msg/s" for p in topics) + " |"
    print(header)
    print("|---|" + "---:|" * len(topics))
    for name in names:
        cells = " | ".join(f"{results[p, name]:,.0f}" for p in topics)
        print(f"| {name} | {cells} |")
    for name in ends:
        cells = " | ".join(f"{1 / (1 / results[p, name] + 1 / learn):,.0f}" for p in topics)
        print(f"| serial ceiling: 1/(1/{name} + 1/learn) | {cells} |")
    print()
    for p in topics:
        raw = results[p, "confluent consume()"] / results[p, "kafka-python poll()"]
        src = results[p, "confluent consume()"] / results[p, "KafkaSource.next_batch"]
        e2e = (
            results[p, "confluent consume() + orjson + sgd"]
            / results[p, "kafka-python poll() + orjson + sgd"]
        )
        line = (
            f"{p} partition(s): confluent/kafka-python raw {raw:.2f}x, "
            f"confluent raw/KafkaSource {src:.2f}x, end-to-end with sgd {e2e:.2f}x"
        )
        if (p, "ConfluentKafkaSource.next_batch") in results:
            sources = (
                results[p, "ConfluentKafkaSource.next_batch"] / results[p, "KafkaSource.next_batch"]
            )
            line += f", ConfluentKafkaSource/KafkaSource {sources:.2f}x"
        print(line)


if __name__ == "__main__":
    main()
