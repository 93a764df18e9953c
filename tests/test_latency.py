"""Learn latency (``streamlearn_learn_latency_seconds``): the batch binning against
prometheus_client's own Histogram, arrival times from files and Kafka, and a daemon whose
histogram counts exactly the records it learned."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from prom_server import require_binary
from streamhelpers import make_regression, write_csv
from streamlearn.csv_schema import parse_csv_header
from streamlearn.json_decoder import JsonDecoder
from streamlearn.learner import Learner
from streamlearn.loop.daemon import Daemon
from streamlearn.models.registry import build_model
from streamlearn.models.sgd import SGDRegressor
from streamlearn.observe.telemetry import DEFAULT_LATENCY_BUCKETS, Telemetry
from streamlearn.records import CsvDecoder
from streamlearn.sources.file import FileSource

NAME = "streamlearn_learn_latency_seconds"


def histogram(registry: CollectorRegistry, name: str = NAME) -> tuple[dict[str, float], float]:
    """``({le: cumulative count}, sum)`` of an unlabelled histogram."""
    buckets: dict[str, float] = {}
    total = None
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                buckets[sample.labels["le"]] = sample.value
            elif sample.name == f"{name}_sum":
                total = sample.value
    assert total is not None, f"no {name}_sum"
    return buckets, total


def assert_consistent(buckets: dict[str, float], count: float) -> None:
    """Cumulative (never decreasing with ``le``), ending at ``+Inf`` == ``_count``."""
    bounds = sorted(buckets, key=float)
    assert bounds[-1] == "+Inf"
    values = [buckets[le] for le in bounds]
    assert values == sorted(values)
    assert values[-1] == count


# -- the binning -------------------------------------------------------------------------------


def test_batch_binning_matches_prometheus_histogram_one_by_one() -> None:
    rng = np.random.default_rng(7)
    latencies = np.concatenate(
        [
            rng.lognormal(mean=-4.0, sigma=2.5, size=5000),  # 0.1 ms to minutes
            np.array(DEFAULT_LATENCY_BUCKETS),  # exactly on every bound: le is "<="
            np.array([0.0, 120.0, 1e-9]),
        ]
    )
    counts = rng.integers(0, 4, size=len(latencies))
    now = 1_800_000_000.0
    arrivals = now - latencies

    registry = CollectorRegistry()
    telemetry = Telemetry(registry)
    assert telemetry.learn_latency(arrivals, now=now) == len(latencies)
    assert telemetry.learn_latency(arrivals, counts, now=now) == counts.sum()
    # One read of a file: a single (arrival, count) pair takes the scalar path.
    assert telemetry.learn_latency(arrivals[:1], np.array([5]), now=now) == 5

    oracle_registry = CollectorRegistry()
    oracle = Histogram(
        "oracle_seconds", "One by one.", buckets=DEFAULT_LATENCY_BUCKETS, registry=oracle_registry
    )
    # The same float64 subtraction the batch does, observed value by value.
    values = (now - arrivals).tolist()
    for value in values:
        oracle.observe(value)
    for value, count in zip(values, counts.tolist(), strict=True):
        for _ in range(count):
            oracle.observe(value)
    for _ in range(5):
        oracle.observe(values[0])

    ours, our_sum = histogram(registry)
    theirs, their_sum = histogram(oracle_registry, "oracle_seconds")
    assert ours == theirs
    assert our_sum == pytest.approx(their_sum, abs=1e-9)
    assert ours["+Inf"] == len(latencies) + counts.sum() + 5


def test_negative_latency_counts_as_zero() -> None:
    # A producer whose clock runs ahead of ours: the record "arrived" after we learned it.
    registry = CollectorRegistry()
    telemetry = Telemetry(registry)
    telemetry.learn_latency([100.25, 99.5], now=100.0)
    buckets, total = histogram(registry)
    assert buckets["0.0005"] == 1 and buckets["+Inf"] == 2
    assert total == 0.5


def test_promtool_accepts_the_latency_histogram() -> None:
    promtool = require_binary("promtool")
    registry = CollectorRegistry()
    telemetry = Telemetry(registry, source="kafka")
    telemetry.learn_latency(np.array([0.0001, 0.002, 0.3, 45.0]), now=50.0)
    exposition = generate_latest(registry)
    assert b'streamlearn_learn_latency_seconds_bucket{le="0.0005"}' in exposition
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )
    # promtool exits 0 with lint warnings too: any output is a finding.
    assert result.returncode == 0, result.stderr.decode()
    assert (result.stdout + result.stderr).decode().strip() == ""


# -- arrival times from a file -------------------------------------------------------------------


def test_file_lines_arrive_with_the_read_that_completes_them(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes(b"x,y\n1,2\n3,")  # the last line is not complete yet
    source = FileSource(path, follow=True)
    source.track_arrivals = True
    before = time.time()
    assert [raw.value for raw in source.next_batch(10)] == [b"x,y\n", b"1,2\n"]
    after = time.time()
    times, counts = source.arrivals()
    assert counts is not None and counts.tolist() == [2]
    assert before <= times[0] <= after

    time.sleep(0.02)
    with path.open("ab") as handle:
        handle.write(b"4\n5,6\n")
    completed = time.time()
    assert [raw.value for raw in source.next_batch(10)] == [b"3,4\n", b"5,6\n"]
    times, counts = source.arrivals()
    # "3," was read at the first call, but the line arrived with the read of its newline.
    assert counts is not None and counts.tolist() == [2]
    assert times[0] >= completed
    source.close()


def test_a_batch_over_several_reads_has_one_arrival_per_read(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    lines = [f"{i},{i}\n".encode() for i in range(40)]
    path.write_bytes(b"".join(lines))
    source = FileSource(path, read_size=16)  # a line or two per read
    source.track_arrivals = True
    # 20 lines take 7 reads: within what one call reads (8 reads, so that an endless line
    # cannot hold the loop away from a signal).
    batch = source.next_batch(20)
    times, counts = source.arrivals()
    assert counts is not None and counts.sum() == len(batch) == 20
    assert len(times) > 5 and np.all(np.diff(times) >= 0) and np.all(counts > 0)

    block = source.next_block(10)
    assert block is not None
    times, counts = source.arrivals()
    assert counts is not None and counts.sum() == block.lines
    source.close()


def test_no_arrival_times_without_telemetry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMLEARN_FASTPATH", "0")  # the per-record path: no kernels to load
    path = tmp_path / "s.csv"
    X, y, _ = make_regression(100)
    write_csv(path, X, y)
    source = FileSource(path)
    daemon = Daemon(source, csv_decoder(path), Learner(SGDRegressor()), model_spec="sgd")
    daemon.run()
    assert source.track_arrivals is False
    assert source.arrivals() is None


# -- a daemon ------------------------------------------------------------------------------------


def csv_decoder(path: Path) -> CsvDecoder:
    with path.open("rb") as handle:
        return CsvDecoder(parse_csv_header(handle.readline()), target="y")


def mixed_csv(path: Path, rows: int) -> int:
    """Labelled rows, some unlabelled, some rejected; returns how many are labelled and good."""
    X, y, _ = make_regression(rows, seed=3)
    unlabeled = set(range(5, rows, 17))
    write_csv(path, X, y, unlabeled=unlabeled)
    lines = path.read_text().splitlines(keepends=True)
    bad = set(range(9, rows, 29)) - unlabeled
    for row in bad:
        lines[row + 1] = "1.0,not-a-number,2.0,3.0\n"
    path.write_text("".join(lines))
    return rows - len(unlabeled) - len(bad)


@pytest.mark.parametrize(
    ("fastpath", "model"),
    [("1", "sgd"), ("0", "sgd"), ("1", "LinearRegression")],
    ids=["compiled-blocks", "per-record", "river-row-blocks"],
)
def test_daemon_histogram_counts_every_record_learned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fastpath: str, model: str
) -> None:
    monkeypatch.setenv("STREAMLEARN_FASTPATH", fastpath)
    path = tmp_path / "s.csv"
    good = mixed_csv(path, 3000)
    registry = CollectorRegistry()
    telemetry = Telemetry(registry, source="file")
    # Small reads: blocks and batches span several reads, each with its own arrival time.
    source = FileSource(path, read_size=8192)
    daemon = Daemon(
        source,
        csv_decoder(path),
        Learner(build_model(model)),
        model_spec=model,
        telemetry=telemetry,
    )
    started = time.time()
    summary = daemon.run()
    wall = time.time() - started

    assert summary["records_learned"] == good
    assert summary["records_rejected"] > 0 and summary["records_unlabeled"] > 0
    count = registry.get_sample_value(f"{NAME}_count")
    assert (
        count
        == good
        == registry.get_sample_value("streamlearn_records_learned_total", {"label": "true"})
    )
    buckets, total = histogram(registry)
    assert_consistent(buckets, count)
    # Every record was read and learned within the run.
    assert 0 < total < wall * count
    within = min(le for le in buckets if le != "+Inf" and float(le) >= wall)
    assert buckets[within] == count


def test_daemon_latency_of_a_live_tail(tmp_path: Path) -> None:
    """Lines appended while the daemon follows the file: counted once each, latencies small."""
    path = tmp_path / "live.csv"
    X, y, _ = make_regression(600, seed=4)
    write_csv(path, X[:1], y[:1])
    rows = [",".join(repr(float(v)) for v in (*X[i], y[i])) + "\n" for i in range(1, 600)]
    registry = CollectorRegistry()
    source = FileSource(path, follow=True)
    daemon = Daemon(
        source,
        csv_decoder(path),
        Learner(SGDRegressor()),
        model_spec="sgd",
        telemetry=Telemetry(registry, source="file"),
    )
    daemon.options.idle_sleep = 0.01
    runner = threading.Thread(target=daemon.run)
    started = time.time()
    runner.start()
    try:
        for start in range(0, len(rows), 50):
            with path.open("a") as handle:
                handle.write("".join(rows[start : start + 50]))
            time.sleep(0.02)
        deadline = time.monotonic() + 30
        while daemon.learner.records_learned < 600 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        daemon.stop()
        runner.join(timeout=30)
    wall = time.time() - started
    assert daemon.learner.records_learned == 600
    buckets, total = histogram(registry)
    assert_consistent(buckets, 600)
    assert 0 < total < wall * 600


# -- Kafka: arrival is the message timestamp ------------------------------------------------------


@pytest.mark.kafka
@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_kafka_latency_counts_from_the_message_timestamp(
    client: str, kafka_bootstrap: str, kafka_topic_factory, kafka_send
) -> None:
    from streamlearn.sources.kafka_config import KafkaSettings

    topic = kafka_topic_factory(2)
    X, y, _ = make_regression(300, seed=5)
    values = []
    for i in range(300):
        row = {f"x{j}": float(v) for j, v in enumerate(X[i])}
        row["y"] = None if i % 10 == 3 else float(y[i])  # 30 unlabelled
        values.append(json.dumps(row).encode() if i % 50 != 7 else b"{broken")  # 6 rejected
    learnable = sum(1 for i in range(300) if i % 10 != 3 and i % 50 != 7)
    first_sent = time.time()
    kafka_send(topic, values)
    sent = time.time()
    # The records wait in the topic before the daemon starts: each one's latency includes that.
    time.sleep(1.0)

    settings = KafkaSettings.build(f"kafka://{kafka_bootstrap}/{topic}")
    if client == "confluent":
        from streamlearn.sources.kafka_confluent import ConfluentKafkaSource

        source = ConfluentKafkaSource(settings, None)
    else:
        from streamlearn.sources.kafka import KafkaSource

        source = KafkaSource(settings, None)
    registry = CollectorRegistry()
    daemon = Daemon(
        source,
        JsonDecoder(target="y", skip_blank=False),
        Learner(SGDRegressor()),
        model_spec="sgd",
        telemetry=Telemetry(registry, source="kafka"),
    )
    runner = threading.Thread(target=daemon.run)
    started = time.time()
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while daemon.learner.records_learned < learnable and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        daemon.stop()
        runner.join(timeout=30)
        source.close()
    finished = time.time()

    assert daemon.learner.records_learned == learnable
    assert daemon.counters.records_rejected == 6 and daemon.counters.records_unlabeled == 30
    buckets, total = histogram(registry)
    assert_consistent(buckets, learnable)
    assert registry.get_sample_value(
        "streamlearn_records_learned_total", {"label": "true"}
    ) == registry.get_sample_value(f"{NAME}_count")
    # From the producer's timestamp (ms, truncated), not from the poll: at least the wait
    # before the daemon started, at most the time since the first send.
    lowest = started - sent - 0.001
    assert buckets["0.5"] == 0
    assert lowest * learnable <= total <= (finished - first_sent + 0.001) * learnable
