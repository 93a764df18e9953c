"""End to end: a real daemon learns from a real Kafka topic while a real Prometheus scrapes it.

Every expression of every dashboard panel and every recording rule is queried through
Prometheus's HTTP API and must return data; every selector of every alert must match series:
all but the classification row and rules, a classifier's (test_class_observability.py), and
the per-key row, a keyed run's, and those of several instances (test_prometheus_live.py,
test_scaleout_prometheus.py, test_standby_prometheus.py).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest

from deploy_files import (
    CLASSIFICATION_GROUP,
    CLASSIFICATION_ROW,
    INSTANCES_GROUP,
    INSTANCES_ROWS,
    KEYS_ROW,
    RULES,
    dashboard_queries,
    load_dashboard,
    load_rules,
    selectors,
    substitute,
)
from prom_server import PrometheusError, PrometheusServer, free_port, require_binary
from streamhelpers import STREAMLEARN

pytestmark = [pytest.mark.prometheus, pytest.mark.kafka, pytest.mark.slow]


def _feed(bootstrap: str, topic: str, stop: threading.Event, change: threading.Event) -> None:
    """A steady stream: labeled rows, some unlabeled, a few malformed, until stopped."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    rng = np.random.default_rng(7)
    i = 0
    while not stop.is_set():
        for _ in range(50):
            a, b = rng.normal(size=2)
            # An abrupt change once Prometheus watches, so drift is detected and acted on
            # while it scrapes (a counter born before the first scrape shows no increase).
            target = -3 * a + 2 * b + 5 if change.is_set() else 2 * a - b + 1
            row: dict = {"id": i, "a": a, "b": b, "y": target + 0.05 * rng.normal()}
            if i % 10 == 3:
                row.pop("y")
            value = json.dumps(row).encode()
            if i % 97 == 5:
                value = b"{not json"
            producer.send(topic, value=value)
            i += 1
        producer.flush()
        stop.wait(0.1)
    producer.close()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def live(kafka_bootstrap, tmp_path_factory) -> Iterator[tuple[PrometheusServer, int]]:
    require_binary("prometheus")
    from conftest import create_topic

    topic = create_topic(kafka_bootstrap, f"e2e-{time.time_ns()}", partitions=2)
    stop, change = threading.Event(), threading.Event()
    feeder = threading.Thread(
        target=_feed, args=(kafka_bootstrap, topic, stop, change), daemon=True
    )
    feeder.start()
    work = tmp_path_factory.mktemp("e2e")
    state = work / "state"
    # A batch model A of the first regime: the frozen baseline the dashboard compares with.
    source = work / "source.csv"
    X = np.random.default_rng(1).normal(size=(500, 2))
    source.write_text("a,b,y\n" + "".join(f"{a},{b},{2 * a - b + 1}\n" for a, b in X.tolist()))
    subprocess.run(
        [
            *STREAMLEARN,
            "pretrain",
            str(source),
            "--kind",
            "linear",
            "--out",
            str(work / "A.skops"),
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    log = open(work / "daemon.log", "w")  # noqa: SIM115 - the child writes it
    daemon = subprocess.Popen(
        [
            *STREAMLEARN,
            "run",
            f"kafka://{kafka_bootstrap}/{topic}?group=e2e",
            "--state-dir",
            str(state),
            "--metrics-port",
            str(port),
            "--checkpoint-interval",
            "0.5",
            "--dead-letter",
            str(work / "dead.jsonl"),
            "--warm-start",
            str(work / "A.skops"),
            "--features",
            "a,b",
            "--on-drift",
            "reset",
            "--drift-warmup",
            "200",
        ],
        stderr=log,
        text=True,
    )
    log.close()
    try:
        deadline = time.monotonic() + 60
        while _get_or_none(f"http://127.0.0.1:{port}/readyz") != 200:
            assert daemon.poll() is None, (work / "daemon.log").read_text()
            assert time.monotonic() < deadline, "the daemon never became ready"
            time.sleep(0.2)
        with PrometheusServer(
            [f"127.0.0.1:{port}"], rule_files=[RULES], scrape_interval="1s"
        ) as prom:
            prom.wait_until(
                'count_over_time(up{job="streamlearn"}[1m]) >= 4',
                lambda result: bool(result),
                timeout=40,
            )
            change.set()
            # The change must be detected, acted on and scraped before the queries run.
            prom.wait_until(
                'increase(streamlearn_drift_actions_total{action="reset"}[2m]) > 0',
                lambda result: bool(result),
                timeout=60,
            )
            yield prom, port
    finally:
        stop.set()
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        finally:
            daemon.kill()
        feeder.join(timeout=10)


def _get_or_none(url: str) -> int | None:
    try:
        return _get(url)[0]
    except OSError:
        return None


def returns_data(prom: PrometheusServer, expr: str, timeout: float = 15.0) -> str | None:
    try:
        prom.wait_until(expr, lambda result: bool(result), timeout=timeout)
    except PrometheusError as exc:
        return str(exc)
    return None


def test_the_daemon_is_scraped_and_learning(live):
    prom, port = live
    learned = prom.query('streamlearn_records_learned_total{label="true"}')
    assert learned and float(learned[0]["value"][1]) > 0
    rejected = prom.query('streamlearn_records_rejected_total{reason="bad_json"}')
    assert rejected and float(rejected[0]["value"][1]) > 0
    lag = prom.query("streamlearn_kafka_consumer_lag_records")
    assert {sample["metric"]["partition"] for sample in lag} == {"0", "1"}
    status, body = _get(f"http://127.0.0.1:{port}/model")
    assert status == 200 and json.loads(body)["records_learned"] > 0


def test_every_dashboard_query_returns_data(live):
    prom, _ = live
    failures = {}
    dashboard = load_dashboard()
    # The per-key row is a keyed run's (test_prometheus_live.py queries a keyed store's).
    rows = (KEYS_ROW, *INSTANCES_ROWS)
    others = {q for row in rows for q in dashboard_queries(dashboard, row=row)}
    for where, expr in dashboard_queries(dashboard, except_row=CLASSIFICATION_ROW):
        if (where, expr) in others:
            continue
        problem = returns_data(prom, substitute(expr))
        if problem:
            failures[where] = problem
    assert failures == {}, "\n".join(f"{k}: {v}" for k, v in failures.items())


def test_every_rule_returns_data_or_matches_series(live):
    prom, _ = live
    failures = {}
    others = load_rules(group=INSTANCES_GROUP)
    for rule in load_rules(except_group=CLASSIFICATION_GROUP):
        if rule in others:
            continue
        if "record" in rule:
            problem = returns_data(prom, rule["record"])
            if problem:
                failures[rule["record"]] = problem
        for selector in selectors(rule["expr"]):
            problem = returns_data(prom, selector)
            if problem:
                failures[f"{rule.get('alert') or rule.get('record')}: {selector}"] = problem
    assert failures == {}


def test_predict_serves_while_learning(live):
    _, port = live
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/predict",
        data=json.dumps({"a": 1.0, "b": 0.5}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    versions = []
    for _ in range(5):
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = json.loads(response.read())
        assert np.isfinite(answer["prediction"])
        versions.append(answer["model_version"])
        time.sleep(0.3)
    assert versions == sorted(versions) and versions[-1] > versions[0]
    bad = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=b"{nope", method="POST")
    assert _get_status(bad) == 400


def _get_status(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
