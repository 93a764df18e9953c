"""Telemetry: metric values after the loop's calls, the batch histogram against an oracle,
series present from the start, and an exposition that promtool accepts."""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest

from prom_server import require_binary
from streamlearn.drift.monitor import ACTIONS
from streamlearn.observe.histogram import BatchHistogram, one_two_five_buckets
from streamlearn.observe.labels import LEARN_LABELS, PSEUDO_DECISIONS, REJECT_REASONS, STAGES
from streamlearn.observe.telemetry import DEFAULT_ERROR_BUCKETS, DEFAULT_STEP_BUCKETS, Telemetry


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def telemetry(registry: CollectorRegistry) -> Telemetry:
    return Telemetry(
        registry,
        source="kafka",
        model_spec="StandardScaler | LinearRegression(l2=0.1)",
        drift_detectors=["adwin", "page_hinkley"],
    )


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def buckets_of(registry: CollectorRegistry, name: str, **labels: str) -> dict[str, float]:
    """``le -> cumulative count`` of one histogram series."""
    out: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name != f"{name}_bucket":
                continue
            rest = {k: v for k, v in sample.labels.items() if k != "le"}
            if rest == labels:
                out[sample.labels["le"]] = sample.value
    return out


# -- series exist from the start ---------------------------------------------------------


def test_every_fixed_series_is_zero_at_construction(
    telemetry: Telemetry, registry: CollectorRegistry
) -> None:
    assert value(registry, "streamlearn_records_received_total", source="kafka") == 0
    for label in LEARN_LABELS:
        assert value(registry, "streamlearn_records_learned_total", label=label) == 0
    for reason in REJECT_REASONS:
        assert value(registry, "streamlearn_records_rejected_total", reason=reason) == 0
    for decision in PSEUDO_DECISIONS:
        assert value(registry, "streamlearn_pseudo_labels_total", decision=decision) == 0
    for detector in ("adwin", "page_hinkley"):
        assert (
            value(registry, "streamlearn_drift_detections_total", detector=detector, signal="error")
            == 0
        )
        assert value(registry, "streamlearn_last_drift_timestamp_seconds", detector=detector) == 0
    for action in ACTIONS:  # the drift monitor's actions, exported by default
        assert value(registry, "streamlearn_drift_actions_total", action=action) == 0
    for name in (
        "streamlearn_predictions_total",
        "streamlearn_divergence_events_total",
        "streamlearn_duplicates_total",
        "streamlearn_offset_gaps_total",
        "streamlearn_checkpoint_last_success_timestamp_seconds",
        "streamlearn_last_record_timestamp_seconds",
        "streamlearn_prediction_abs_error_count",
        "streamlearn_prediction_abs_error_sum",
    ):
        assert value(registry, name) == 0, name
    assert value(registry, "streamlearn_prediction_abs_error_bucket", le="+Inf") == 0
    for stage in STAGES:
        assert value(registry, "streamlearn_step_seconds_count", stage=stage) == 0
        assert value(registry, "streamlearn_step_seconds_bucket", stage=stage, le="+Inf") == 0
    # Model metrics exist (NaN: no score yet) even before the learner is bound.
    mae = value(registry, "streamlearn_model_metric", metric="mae", window="rolling")
    assert mae is not None and np.isnan(mae)


def test_build_info_and_start_time(telemetry: Telemetry, registry: CollectorRegistry) -> None:
    import river

    import streamlearn

    info = value(
        registry,
        "streamlearn_build_info",
        version=streamlearn.__version__,
        river_version=river.__version__,
        model="StandardScaler | LinearRegression(l2=0.1)",
    )
    assert info == 1
    started = value(registry, "streamlearn_start_time_seconds")
    assert started is not None and abs(started - time.time()) < 60


def test_default_registry_is_fresh_not_global() -> None:
    first, second = Telemetry(), Telemetry()
    first.received(5)
    assert first.registry is not REGISTRY
    assert first.value("streamlearn_records_received_total", source="unknown") == 5
    assert second.value("streamlearn_records_received_total", source="unknown") == 0
    assert REGISTRY.get_sample_value("streamlearn_records_received_total") is None


def test_process_and_gc_metrics_are_on_the_registry(telemetry: Telemetry) -> None:
    # The standard collectors every Prometheus client exports: dashboards for any Python
    # service (memory, CPU, file descriptors, GC) work on the daemon too.
    text = generate_latest(telemetry.registry).decode()
    for name in (
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
        "python_gc_objects_collected_total",
        "python_info",
    ):
        assert f"\n{name}" in text, name


def test_no_created_series(telemetry: Telemetry) -> None:
    telemetry.received(3)
    telemetry.abs_errors(np.array([0.5]))
    telemetry.drift("adwin", "error")
    text = generate_latest(telemetry.registry).decode()
    assert "_created" not in text


# -- the loop's per-batch calls ------------------------------------------------------------


def test_counters_follow_the_calls(telemetry: Telemetry, registry: CollectorRegistry) -> None:
    telemetry.received(1000)
    telemetry.received(24)
    telemetry.learned(900)
    telemetry.learned(30, label="pseudo")
    telemetry.rejected("non_numeric", 60)
    telemetry.rejected("bad_json")
    telemetry.predictions(950)
    telemetry.pseudo("accepted", 30)
    telemetry.pseudo("rejected", 12)
    telemetry.drift_action("reset")
    telemetry.divergence()
    telemetry.duplicates(3)
    telemetry.gaps(7)

    assert value(registry, "streamlearn_records_received_total", source="kafka") == 1024
    assert value(registry, "streamlearn_records_learned_total", label="true") == 900
    assert value(registry, "streamlearn_records_learned_total", label="pseudo") == 30
    assert value(registry, "streamlearn_records_rejected_total", reason="non_numeric") == 60
    assert value(registry, "streamlearn_records_rejected_total", reason="bad_json") == 1
    assert value(registry, "streamlearn_predictions_total") == 950
    assert value(registry, "streamlearn_pseudo_labels_total", decision="accepted") == 30
    assert value(registry, "streamlearn_pseudo_labels_total", decision="rejected") == 12
    assert value(registry, "streamlearn_drift_actions_total", action="reset") == 1
    assert value(registry, "streamlearn_divergence_events_total") == 1
    assert value(registry, "streamlearn_duplicates_total") == 3
    assert value(registry, "streamlearn_offset_gaps_total") == 7


def test_timestamps(telemetry: Telemetry, registry: CollectorRegistry) -> None:
    telemetry.checkpoint_ok(1_700_000_000.5)
    telemetry.last_record(1_700_000_001.0)
    telemetry.drift("adwin", "error", ts=1_700_000_002.0)
    assert value(registry, "streamlearn_checkpoint_last_success_timestamp_seconds") == (
        1_700_000_000.5
    )
    assert value(registry, "streamlearn_last_record_timestamp_seconds") == 1_700_000_001.0
    assert value(registry, "streamlearn_last_drift_timestamp_seconds", detector="adwin") == (
        1_700_000_002.0
    )
    assert (
        value(registry, "streamlearn_drift_detections_total", detector="adwin", signal="error") == 1
    )
    before = time.time()
    telemetry.checkpoint_ok()
    stamped = value(registry, "streamlearn_checkpoint_last_success_timestamp_seconds")
    assert stamped is not None and before <= stamped <= time.time()


def test_unknown_data_labels_are_accepted_but_bounded(registry: CollectorRegistry) -> None:
    telemetry = Telemetry(registry, max_extra_label_values=2)
    telemetry.rejected("schema_v2")
    telemetry.rejected("schema_v3")
    telemetry.rejected("schema_v4")  # third new reason: folded into "other"
    telemetry.rejected("schema_v2")
    assert value(registry, "streamlearn_records_rejected_total", reason="schema_v2") == 2
    assert value(registry, "streamlearn_records_rejected_total", reason="schema_v3") == 1
    assert value(registry, "streamlearn_records_rejected_total", reason="schema_v4") is None
    assert value(registry, "streamlearn_records_rejected_total", reason="other") == 1

    telemetry.drift("kswin", "feature:x1", ts=5.0)
    assert (
        value(registry, "streamlearn_drift_detections_total", detector="kswin", signal="feature:x1")
        == 1
    )
    assert value(registry, "streamlearn_last_drift_timestamp_seconds", detector="kswin") == 5.0


@pytest.mark.parametrize(
    ("call", "args"),
    [("learned", (1, "fake")), ("pseudo", ("maybe", 1)), ("stage_seconds", ("train", 0.1))],
)
def test_labels_that_come_from_code_are_checked(
    telemetry: Telemetry, call: str, args: tuple
) -> None:
    with pytest.raises(ValueError, match="unknown"):
        getattr(telemetry, call)(*args)


# -- scrape-time values ----------------------------------------------------------------------


def test_model_metrics_are_read_at_scrape_time(
    telemetry: Telemetry, registry: CollectorRegistry
) -> None:
    state = {"mae": 1.0}
    calls = []

    def model_metrics() -> dict[tuple[str, str], float]:
        calls.append(1)
        return {
            ("mae", "rolling"): state["mae"],
            ("r2", "cumulative"): 0.5,
            ("mape", "rolling"): 3.0,
        }

    telemetry.model_metrics = model_metrics
    assert calls == []  # binding reads nothing
    assert value(registry, "streamlearn_model_metric", metric="mae", window="rolling") == 1.0
    state["mae"] = 2.0  # the learner moved on; no copy was kept
    assert value(registry, "streamlearn_model_metric", metric="mae", window="rolling") == 2.0
    assert value(registry, "streamlearn_model_metric", metric="r2", window="cumulative") == 0.5
    assert value(registry, "streamlearn_model_metric", metric="mape", window="rolling") == 3.0
    missing = value(registry, "streamlearn_model_metric", metric="rmse", window="rolling")
    assert missing is not None and np.isnan(missing)
    # No baseline model: no baseline series at all.
    assert value(registry, "streamlearn_baseline_metric", metric="mae", window="rolling") is None
    telemetry.baseline_metrics = lambda: {("mae", "rolling"): 1.5}
    assert value(registry, "streamlearn_baseline_metric", metric="mae", window="rolling") == 1.5


def test_lag_and_ready_are_read_at_scrape_time(
    telemetry: Telemetry, registry: CollectorRegistry
) -> None:
    assert (
        value(registry, "streamlearn_kafka_consumer_lag_records", topic="t", partition="0") is None
    )
    assert value(registry, "streamlearn_ready") is None
    lag = {("t", 0): 10, ("t", 1): 0}
    ready = [False]
    telemetry.lag = lambda: lag
    telemetry.ready = lambda: ready[0]
    assert value(registry, "streamlearn_kafka_consumer_lag_records", topic="t", partition="0") == 10
    assert value(registry, "streamlearn_kafka_consumer_lag_records", topic="t", partition="1") == 0
    assert value(registry, "streamlearn_ready") == 0
    lag[("t", 0)] = 3
    ready[0] = True
    assert value(registry, "streamlearn_kafka_consumer_lag_records", topic="t", partition="0") == 3
    assert value(registry, "streamlearn_ready") == 1


def test_a_failing_callable_costs_its_series_not_the_scrape(
    telemetry: Telemetry, registry: CollectorRegistry
) -> None:
    def broken() -> dict[tuple[str, str], float]:
        raise RuntimeError("model is being swapped")

    telemetry.model_metrics = broken
    telemetry.received(3)
    text = generate_latest(registry).decode()
    assert 'streamlearn_records_received_total{source="kafka"} 3.0' in text
    assert "streamlearn_model_metric{" not in text


# -- the batch histogram ---------------------------------------------------------------------


def test_batch_histogram_equals_prometheus_histogram_fed_one_by_one() -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.lognormal(mean=0.0, sigma=3.0, size=5000),  # spans every bucket and beyond
            np.array(DEFAULT_ERROR_BUCKETS),  # exactly on each bound: `le` is inclusive
            np.array([0.0, 1e-9, 5000.0, 1e6]),
        ]
    )
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batch = BatchHistogram("err", "error", DEFAULT_ERROR_BUCKETS, registry=ours)
    oracle = Histogram("err", "error", buckets=DEFAULT_ERROR_BUCKETS, registry=theirs)
    for chunk in np.array_split(values, 7):  # several batches, uneven sizes
        batch.observe_many(chunk)
    for v in values:
        oracle.observe(float(v))

    assert buckets_of(ours, "err") == buckets_of(theirs, "err")
    assert len(buckets_of(ours, "err")) == len(DEFAULT_ERROR_BUCKETS) + 1
    assert ours.get_sample_value("err_count") == theirs.get_sample_value("err_count") == len(values)
    assert ours.get_sample_value("err_sum") == pytest.approx(
        theirs.get_sample_value("err_sum"), rel=1e-12
    )


def test_weighted_stage_seconds_equal_one_observation_per_record(
    telemetry: Telemetry, registry: CollectorRegistry
) -> None:
    theirs = CollectorRegistry()
    oracle = Histogram("s", "s", buckets=DEFAULT_STEP_BUCKETS, registry=theirs)
    batches = [(0.012, 4000), (0.5, 1), (3e-4, 250), (0.0, 0)]  # (batch seconds, records)
    for seconds, n in batches:
        telemetry.stage_seconds("learn", seconds, n)
        for _ in range(n):
            oracle.observe(seconds / n)
    # The array form: several batches at once, binned with numpy.
    telemetry.stage_seconds("decode", np.array([0.01, 0.02]), np.array([100, 400]))
    decode_registry = CollectorRegistry()
    decode_oracle = Histogram("d", "d", buckets=DEFAULT_STEP_BUCKETS, registry=decode_registry)
    for seconds, n in ((0.01, 100), (0.02, 400)):
        for _ in range(n):
            decode_oracle.observe(seconds / n)
    decode_buckets = buckets_of(registry, "streamlearn_step_seconds", stage="decode")
    assert decode_buckets == buckets_of(decode_registry, "d")

    ours = {
        le: v for le, v in buckets_of(registry, "streamlearn_step_seconds", stage="learn").items()
    }
    assert ours == buckets_of(theirs, "s")
    assert value(registry, "streamlearn_step_seconds_count", stage="learn") == 4251
    assert value(registry, "streamlearn_step_seconds_sum", stage="learn") == pytest.approx(0.5123)
    assert value(registry, "streamlearn_step_seconds_count", stage="decode") == 500
    assert value(registry, "streamlearn_step_seconds_sum", stage="decode") == pytest.approx(0.03)
    assert value(registry, "streamlearn_step_seconds_count", stage="predict") == 0


def test_abs_errors_drop_non_finite_values(
    telemetry: Telemetry, registry: CollectorRegistry
) -> None:
    telemetry.abs_errors(np.array([0.5, np.nan, np.inf, 2.0]))
    telemetry.abs_errors([])  # an empty batch is fine
    assert value(registry, "streamlearn_prediction_abs_error_count") == 2
    assert value(registry, "streamlearn_prediction_abs_error_sum") == 2.5
    assert value(registry, "streamlearn_prediction_abs_error_bucket", le="0.5") == 1


def test_batch_histogram_is_fast_enough_for_the_loop() -> None:
    histogram = BatchHistogram("fast", "fast", DEFAULT_ERROR_BUCKETS, registry=CollectorRegistry())
    values = np.random.default_rng(1).exponential(size=1_000_000)
    started = time.perf_counter()
    histogram.observe_many(values)
    # About 50 ms on one core; the per-value Histogram takes seconds for this.
    assert time.perf_counter() - started < 1.0


def test_batch_histogram_rejects_bad_buckets() -> None:
    with pytest.raises(ValueError, match="increasing"):
        BatchHistogram("h", "h", [1.0, 0.5])
    with pytest.raises(ValueError, match="reserved"):
        BatchHistogram("h", "h", [1.0], labelnames=["le"])


def test_one_two_five_buckets() -> None:
    assert DEFAULT_ERROR_BUCKETS[0] == 0.001 and DEFAULT_ERROR_BUCKETS[-1] == 1000.0
    assert one_two_five_buckets(1, 100) == (1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0)
    with pytest.raises(ValueError):
        one_two_five_buckets(0.003, 1)


# -- the exposition --------------------------------------------------------------------------


def test_promtool_accepts_the_exposition(telemetry: Telemetry, registry: CollectorRegistry) -> None:
    promtool = require_binary("promtool")
    telemetry.model_metrics = lambda: {("mae", "rolling"): 0.4, ("r2", "cumulative"): 0.9}
    telemetry.baseline_metrics = lambda: {("mae", "rolling"): 0.6}
    telemetry.lag = lambda: {("prices", 0): 12, ("prices", 1): 0}
    telemetry.ready = lambda: True
    telemetry.received(100)
    telemetry.learned(90)
    telemetry.abs_errors(np.linspace(0, 3, 90))
    telemetry.stage_seconds("learn", 0.002, 90)
    telemetry.stage_seconds("checkpoint", 0.05)
    telemetry.drift("adwin", "error")
    telemetry.rejected("unheard_of_reason", 10)
    exposition = generate_latest(registry)

    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )
    # promtool exits 0 with lint warnings too: any output is a finding.
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == "" and result.stderr.decode().strip() == "", (
        result.stdout.decode() + result.stderr.decode()
    )
