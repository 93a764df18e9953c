"""A real Prometheus scrapes real MetricsServers, a keyed regressor's (the active instance of a
--standby group), a classifier's, a keyed group member's and a standby's: every
dashboard query and every rule returns data. (The end-to-end tests do the same against a
daemon: test_observability_e2e.py a regressor's, test_class_observability.py a classifier's.)"""

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
from streamlearn.classify.metrics import BINARY_METRICS
from streamlearn.keys import KeyedModels, LearnerCodec
from streamlearn.learner import Learner
from streamlearn.models.sgd import SGDRegressor
from streamlearn.observe.class_counts import ClassTally, class_tallies
from streamlearn.observe.http import MetricsServer
from streamlearn.observe.keys import KeyTelemetry
from streamlearn.observe.labels import STAGES
from streamlearn.observe.telemetry import Telemetry
from streamlearn.scaleout.member import MemberStats, Restore
from streamlearn.scaleout.telemetry import member_registry
from streamlearn.standby.role import Role

pytestmark = pytest.mark.prometheus


#: A classifier's classes, awkward on purpose: the exposition must escape them.
CLASSES = ["no", 'dog "big"', "eel\\x", "line\nbreak", "café"]


class FakeLoop:
    """Calls Telemetry the way the run loop does, a batch every 50 ms, until stopped; with
    ``classifier``, as a classifier's loop (its confusion matrix grows by class)."""

    def __init__(
        self,
        telemetry: Telemetry,
        classifier: bool = False,
        keys: KeyTelemetry | None = None,
        member: MemberStats | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.keys = keys
        self.member = member
        self.classifier = classifier
        self.batches = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-loop", daemon=True)
        self._rng = np.random.default_rng(3)
        self.confusion = [[0] * len(CLASSES) for _ in CLASSES]
        self._lock = threading.Lock()
        telemetry.model_metrics = self.metrics
        telemetry.baseline_metrics = lambda: {("mae", "rolling"): 0.9, ("r2", "rolling"): 0.5}
        if classifier:
            telemetry.baseline_metrics = lambda: {("accuracy", "cumulative"): 0.8}
            telemetry.class_counts = self.class_counts
        telemetry.lag = lambda: {("prices", 0): 120 + self.batches % 7, ("prices", 1): 3}
        telemetry.ready = lambda: True

    def class_counts(self) -> list[ClassTally]:
        with self._lock:
            return class_tallies(CLASSES, self.confusion)

    def metrics(self) -> dict[tuple[str, str], float]:
        wobble = 0.1 * math.sin(self.batches / 10)
        if self.classifier:
            return {
                ("accuracy", "cumulative"): 0.85,
                ("accuracy", "rolling"): 0.85 + wobble,
                ("log_loss", "cumulative"): 0.4,
                ("log_loss", "rolling"): 0.4 - wobble,
                ("f1", "rolling"): 0.8,
                ("roc_auc", "rolling"): 0.9,
            }
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
            if self.classifier:
                true = self._rng.integers(0, len(CLASSES), size=90)
                right = self._rng.random(90) < 0.85
                predicted = np.where(right, true, (true + 1) % len(CLASSES))
                with self._lock:
                    for y, yhat in zip(true.tolist(), predicted.tolist(), strict=True):
                        self.confusion[y][yhat] += 1
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
            if self.member is not None:  # a group member's: a rebalance every 20 batches
                self.member.lag = {0: 120 + self.batches % 7, 1: 3}
                if self.batches % 20 == 0:
                    self.member.rebalances += 1
                    self.member.last_rebalance_seconds = float(self._rng.uniform(0.1, 2))
                    self.member.rebalance_seconds += self.member.last_rebalance_seconds
                    self.member.restore_seconds += 0.05
                    self.member.fencing_refusals += 1
            if self.keys is not None:
                self.keys.spilled(float(self._rng.exponential(1e-4)))
                self.keys.loaded(float(self._rng.exponential(1e-4)))

    def __enter__(self) -> FakeLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def keyed_store(registry: CollectorRegistry) -> tuple[KeyedModels[Learner], KeyTelemetry]:
    """A keyed regressor's store with its series on ``registry``: five keys, two in memory,
    each stepped 40 times (so each was spilled, loaded and scored)."""
    models = KeyedModels(LearnerCodec(lambda: Learner(SGDRegressor())), max_live=2)
    models.events = keys = KeyTelemetry(registry, top_keys=3, held=models)
    rng = np.random.default_rng(5)
    for _ in range(40):
        for slope, key in enumerate("abcde"):
            x = float(rng.normal())
            models.get(key).step({"x": x}, slope * x)
    return models, keys


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    require_binary("prometheus")
    telemetry = Telemetry(CollectorRegistry(), source="kafka", model_spec="sgd")
    # Keyed (--key-by): the per-key row reads these; the store is not stepped while scraped.
    models, keys = keyed_store(telemetry.registry)
    # The active instance of a --standby group: its telemetry's registry says the role.
    active = Role()
    active.register(telemetry.registry)
    active.takeovers = 1
    active.become("active")
    server = MetricsServer("127.0.0.1", 0, telemetry.registry, telemetry=telemetry)
    # Its standby serves the role alone; a keyed group member serves its MemberStats.
    standby = Role()
    standby_registry = CollectorRegistry()
    standby.register(standby_registry)
    standby_server = MetricsServer("127.0.0.1", 0, standby_registry)
    restored = {0: Restore(0.0, 4096, 0.05), 1: Restore(0.0, 81920, 0.4)}
    stats = MemberStats(topic="prices", owned=2, restores=restored)
    member_server = MetricsServer("127.0.0.1", 0, member_registry(stats))  # type: ignore[arg-type]
    # A classifier's telemetry, as observe.face builds it: its own grid, no error histogram.
    classes = Telemetry(
        CollectorRegistry(),
        source="kafka",
        model_spec="logistic",
        model_metric_names=BINARY_METRICS,
        error_buckets=None,
    )
    class_server = MetricsServer("127.0.0.1", 0, classes.registry, telemetry=classes)
    servers = [server, class_server, standby_server, member_server]
    for each in servers:
        each.start()
    try:
        with (
            FakeLoop(telemetry, keys=keys, member=stats),
            FakeLoop(classes, classifier=True),
            PrometheusServer(
                [f"127.0.0.1:{each.port}" for each in servers],
                rule_files=[RULES],
                scrape_interval="1s",
            ) as prom,
        ):
            # rate() needs two samples in its window; three scrapes leave a margin.
            prom.wait_until(
                'min(count_over_time(up{job="streamlearn"}[1m])) >= 3',
                lambda result: bool(result),
                timeout=30,
            )
            up = prom.query('up{job="streamlearn"}')
            assert [sample["value"][1] for sample in up] == ["1"] * len(servers)
            yield prom
    finally:
        for each in servers:
            each.stop()
        models.close()


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
        "instance:streamlearn_records_learned:rate1m", lambda r: len(r) == 2
    )
    # Only seconds of data in a 1m window: rate() reads low, but not zero.
    assert all(float(sample["value"][1]) > 0 for sample in throughput)
    mean = prometheus.wait_until(
        "instance:streamlearn_prediction_abs_error:mean5m", lambda r: bool(r)
    )
    assert 0.5 < float(mean[0]["value"][1]) < 1.2  # exponential errors with mean 0.8
    assert len(mean) == 1  # the regressor's only: a classifier has no error histogram
    accuracy = prometheus.wait_until("instance:streamlearn_class_accuracy:ratio5m", bool)
    assert len(accuracy) == 1 and 0.75 < float(accuracy[0]["value"][1]) < 0.95  # 85% right


def test_class_labels_arrive_as_they_were_written(prometheus: PrometheusServer) -> None:
    # Quotes, a backslash, a newline and UTF-8 in a class survive the exposition's escaping.
    counts = prometheus.wait_until(
        "streamlearn_class_labels_total", lambda r: len(r) == len(CLASSES)
    )
    assert sorted(sample["metric"]["class"] for sample in counts) == sorted(CLASSES)
    recall = prometheus.query(
        "sum by (class) (rate(streamlearn_class_correct_total[1m]))"
        " / sum by (class) (rate(streamlearn_class_labels_total[1m]))"
    )
    assert len(recall) == len(CLASSES)


def test_the_job_and_instance_variables_list_every_target(prometheus: PrometheusServer) -> None:
    # A group member and a standby export no build info: they must still be listed, or the
    # Scale-out and Standby rows show nothing for them under "All".
    targets = {sample["metric"]["instance"] for sample in prometheus.query("up")}
    assert len(targets) == 4
    variables = dict(dashboard_queries(load_dashboard()))
    listed = prometheus.query(substitute(variables["variable 'instance'"]))
    assert {sample["metric"]["instance"] for sample in listed} == targets
    jobs = prometheus.query(substitute(variables["variable 'job'"]))
    assert {sample["metric"]["job"] for sample in jobs} == {"streamlearn"}
