"""A real Prometheus scrapes a real MetricsServer: every dashboard query and every rule
returns data. (The lead's end-to-end test does the same against a daemon replaying a stream.)"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from deploy_files import RULES, dashboard_queries, load_dashboard, load_rules, selectors, substitute
from prom_server import PrometheusError, PrometheusServer, require_binary
from streamlearn.observe.http import MetricsServer
from streamlearn.observe.labels import STAGES
from streamlearn.observe.telemetry import Telemetry

pytestmark = pytest.mark.prometheus


class FakeLoop:
    """Calls Telemetry the way the run loop does, a batch every 50 ms, until stopped."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.batches = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-loop", daemon=True)
        self._rng = np.random.default_rng(3)
        telemetry.model_metrics = self.metrics
        telemetry.baseline_metrics = lambda: {("mae", "rolling"): 0.9, ("r2", "rolling"): 0.5}
        telemetry.lag = lambda: {("prices", 0): 120 + self.batches % 7, ("prices", 1): 3}
        telemetry.ready = lambda: True

    def metrics(self) -> dict[tuple[str, str], float]:
        wobble = 0.1 * math.sin(self.batches / 10)
        return {
            ("mae", "cumulative"): 0.8,
            ("mae", "rolling"): 0.8 + wobble,
            ("rmse", "cumulative"): 1.1,
            ("rmse", "rolling"): 1.1 + wobble,
            ("r2", "cumulative"): 0.6,
            ("r2", "rolling"): 0.6 - wobble,
        }

    def _run(self) -> None:
        t = self.telemetry
        while not self._stop.wait(0.05):
            self.batches += 1
            t.received(100)
            t.rejected("non_numeric", 4)
            t.rejected("bad_json", 1)
            t.predictions(95)
            t.abs_errors(self._rng.exponential(0.8, size=90))
            t.learned(90)
            t.learn_latency(time.time() - self._rng.exponential(0.02, size=90))
            t.learned(3, label="pseudo")
            t.pseudo("accepted", 3)
            t.pseudo("rejected", 2)
            for stage in STAGES:
                t.stage_seconds(stage, float(self._rng.uniform(1e-4, 1e-3)), 95)
            t.drift("adwin", "error")
            t.drift_action("reset")
            t.divergence()
            t.duplicates(1)
            t.gaps(1)
            t.last_record()
            t.checkpoint_ok()

    def __enter__(self) -> FakeLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    require_binary("prometheus")
    telemetry = Telemetry(CollectorRegistry(), source="kafka", model_spec="sgd")
    server = MetricsServer("127.0.0.1", 0, telemetry.registry, telemetry=telemetry)
    server.start()
    try:
        with (
            FakeLoop(telemetry),
            PrometheusServer(
                [f"127.0.0.1:{server.port}"], rule_files=[RULES], scrape_interval="1s"
            ) as prom,
        ):
            # rate() needs two samples in its window; three scrapes leave a margin.
            prom.wait_until(
                'count_over_time(up{job="streamlearn"}[1m]) >= 3',
                lambda result: bool(result),
                timeout=30,
            )
            up = prom.query('up{job="streamlearn"}')
            assert [sample["value"][1] for sample in up] == ["1"]
            yield prom
    finally:
        server.stop()


def returns_data(prom: PrometheusServer, expr: str, timeout: float = 10.0) -> str | None:
    """None when ``expr`` gives at least one series, else why not."""
    try:
        prom.wait_until(expr, lambda result: bool(result), timeout=timeout)
    except PrometheusError as exc:
        return str(exc)
    return None


def test_every_dashboard_query_returns_data(prometheus: PrometheusServer) -> None:
    queries = dashboard_queries(load_dashboard())
    assert len(queries) > 20
    failures = {}
    for where, expr in queries:
        problem = returns_data(prometheus, substitute(expr))
        if problem:
            failures[where] = problem
    assert failures == {}


def test_every_recording_rule_is_evaluated(prometheus: PrometheusServer) -> None:
    failures = {}
    for rule in load_rules():
        if "record" in rule:
            problem = returns_data(prometheus, rule["record"])
            if problem:
                failures[rule["record"]] = problem
    assert failures == {}


def test_every_selector_in_every_rule_matches_series(prometheus: PrometheusServer) -> None:
    # An alert's full expression is a condition (empty while all is well); each
    # selector in it must still match something, or the alert could never fire.
    failures = {}
    checked = 0
    for rule in load_rules():
        name = rule.get("alert") or rule.get("record")
        for selector in selectors(rule["expr"]):
            checked += 1
            problem = returns_data(prometheus, selector)
            if problem:
                failures[f"{name}: {selector}"] = problem
    assert checked > 20
    assert failures == {}


def test_rules_loaded_and_healthy(prometheus: PrometheusServer) -> None:
    throughput = prometheus.wait_until(
        "instance:streamlearn_records_learned:rate1m", lambda r: bool(r)
    )
    # Only seconds of data in a 1m window: rate() reads low, but not zero.
    assert float(throughput[0]["value"][1]) > 0
    mean = prometheus.wait_until(
        "instance:streamlearn_prediction_abs_error:mean5m", lambda r: bool(r)
    )
    assert 0.5 < float(mean[0]["value"][1]) < 1.2  # exponential errors with mean 0.8
