"""Prometheus metrics of the daemon, on an injected registry, cheap enough to update per batch.

The run loop calls :class:`Telemetry` once per *batch* (never per record). Values that
live in River objects (rolling MAE, Kafka lag) are read at scrape time by collectors
built on callables, not copied on every record. High-rate distributions go through
:class:`~streamlearn.observe.histogram.BatchHistogram`, which bins a whole numpy array in
one call.

Units: seconds for durations, Unix seconds for timestamps, target units for errors,
records for counts. Every fixed label combination is exported (at 0) from construction
on, so dashboards and ``rate()`` have data before the first event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from streamlearn.observe.class_counts import ClassCounts
from streamlearn.observe.drift_metrics import DriftMetrics
from streamlearn.observe.histogram import BatchHistogram, one_two_five_buckets
from streamlearn.observe.labels import (
    LEARN_LABELS,
    PREDICT_OUTCOMES,
    PSEUDO_DECISIONS,
    REJECT_REASONS,
    STAGES,
    BoundedLabel,
    check_choice,
    labelled,
)
from streamlearn.observe.scrape import MODEL_METRICS, LagReader, ModelMetrics, ScrapeTimeReaders

__all__ = [
    "DEFAULT_ERROR_BUCKETS",
    "DEFAULT_LATENCY_BUCKETS",
    "DEFAULT_STEP_BUCKETS",
    "Telemetry",
]

log = logging.getLogger(__name__)

# No ``*_created`` series: one more series per counter and histogram that nothing here reads
# (rate() and increase() do without it). prometheus_client's switch is process-wide.
disable_created_metrics()

#: Absolute prediction error, in target units: 0.001 to 1000.
DEFAULT_ERROR_BUCKETS: tuple[float, ...] = one_two_five_buckets(0.001, 1000.0)
#: Seconds per record and stage: 100 ns (one learn_one of a linear model) to 10 s.
DEFAULT_STEP_BUCKETS: tuple[float, ...] = one_two_five_buckets(1e-7, 10.0)
#: Seconds from a record's arrival to the end of the batch that learned it: 0.5 ms (a
#: small batch on a quiet loop) to 30 s (a backlog being caught up).
DEFAULT_LATENCY_BUCKETS: tuple[float, ...] = (0.0005, *one_two_five_buckets(0.001, 10.0), 30.0)


class Telemetry(ScrapeTimeReaders):
    """Every ``streamlearn_*`` metric of one daemon, on one registry, beside the process,
    platform and GC metrics every Prometheus client exports (``process_*``, ``python_*``).

    Parameters
    ----------
    registry
        Where the metrics live; a new ``CollectorRegistry`` when omitted (never the
        process-global one, so two daemons or two tests never share counters).
    source
        Kind of source, the ``source`` label of ``streamlearn_records_received_total``
        (``"kafka"``, ``"file"``...).
    model_spec, version, river_version
        Exported by ``streamlearn_build_info``.
    model_metrics, baseline_metrics
        Read at every scrape: ``{(metric, window): value}`` with metric in
        ``model_metric_names`` and window in ``cumulative|rolling``. Missing keys export NaN;
        keys outside the grid are exported too. ``baseline_metrics`` is the frozen
        warm-start model; ``streamlearn_baseline_metric`` exists only when it is given.
    model_metric_names
        The metric grid: ``mae|rmse|r2``; a classifier's are its own (``accuracy``...).
    class_counts
        A classifier's: read at every scrape, the ``streamlearn_class_*_total{class}``
        counters (``streamlearn.observe.class_counts``).
    lag
        Read at every scrape: ``{(topic, partition): records behind the end}``.
    ready
        Read at every scrape: exported as ``streamlearn_ready`` (1 or 0); absent
        while no callable is bound.
    drift_detectors, drift_signals, drift_actions
        Label values exported at 0 from the start: pass the ones the drift monitor is
        configured with (its ``telemetry_labels()``); by default every detector name and
        action the drift monitor knows, and the signal ``error``. Other values are
        accepted (up to ``max_extra_label_values`` new ones per label, then ``"other"``),
        and so are rejection reasons not in ``REJECT_REASONS``; but a series born at 1
        has no earlier sample, so ``increase()`` and the drift alert miss its first event.
    error_buckets, step_buckets, latency_buckets
        Upper bounds of ``streamlearn_prediction_abs_error`` (target units; None: no such
        histogram, a classifier's, whose 0/1 errors the class counters hold), of
        ``streamlearn_step_seconds`` (seconds per record) and of
        ``streamlearn_learn_latency_seconds``.

    The callables may also be set later as attributes (``model_metrics``,
    ``baseline_metrics``, ``class_counts``, ``lag``, ``ready``), e.g. once the learner exists.
    They run on the HTTP server's thread, so they must only read state safe to read there.

    Labels that come from code (``label``, ``decision``, ``stage``) are checked: an
    unknown value raises ``ValueError``, because it is a bug, not data.

    Examples
    --------
    >>> telemetry = Telemetry(source="file", model_spec="sgd")
    >>> telemetry.received(500)
    >>> telemetry.learned(480)
    >>> telemetry.rejected("non_numeric", 20)
    >>> telemetry.abs_errors(np.array([0.5, 1.5, 2.0]))
    >>> telemetry.value("streamlearn_records_learned_total", label="true")
    480.0
    >>> telemetry.value("streamlearn_records_rejected_total", reason="non_numeric")
    20.0
    >>> telemetry.value("streamlearn_prediction_abs_error_count")
    3.0
    >>> telemetry.model_metrics = lambda: {("mae", "rolling"): 1.25}
    >>> telemetry.value("streamlearn_model_metric", metric="mae", window="rolling")
    1.25
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        source: str = "unknown",
        model_spec: str = "",
        version: str | None = None,
        river_version: str | None = None,
        model_metrics: ModelMetrics | None = None,
        baseline_metrics: ModelMetrics | None = None,
        lag: LagReader | None = None,
        ready: Callable[[], bool] | None = None,
        paused: Callable[[], str | None] | None = None,
        drift_detectors: Sequence[str] | None = None,
        drift_signals: Sequence[str] = ("error",),
        drift_actions: Sequence[str] | None = None,
        model_metric_names: Sequence[str] = MODEL_METRICS,
        class_counts: ClassCounts | None = None,
        error_buckets: Sequence[float] | None = DEFAULT_ERROR_BUCKETS,
        step_buckets: Sequence[float] = DEFAULT_STEP_BUCKETS,
        latency_buckets: Sequence[float] = DEFAULT_LATENCY_BUCKETS,
        max_extra_label_values: int = 16,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.model_metrics = model_metrics
        self.baseline_metrics = baseline_metrics
        self.model_metric_names = tuple(model_metric_names)
        self.class_counts = class_counts
        self.lag = lag
        self.ready = ready
        #: Why learning is paused (a full disk), or None: ``streamlearn_paused``.
        self.paused = paused
        self.started_at = time.time()
        # The metrics are declared group by group, in the order /metrics lists them.
        self._declare_build(self.registry, model_spec, version, river_version)
        self._declare_records(self.registry, str(source), max_extra_label_values)
        self._declare_histograms(self.registry, error_buckets, step_buckets, latency_buckets)
        self._drift = DriftMetrics(
            self.registry, drift_detectors, drift_signals, drift_actions, max_extra_label_values
        )
        self._declare_events(self.registry)
        # What every Prometheus client exports: memory, CPU, file descriptors, GC, version.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._register_readers(self.registry)

    # -- the metrics, declared --------------------------------------------------------------

    def _declare_build(
        self,
        registry: CollectorRegistry,
        model_spec: str,
        version: str | None,
        river_version: str | None,
    ) -> None:
        """``streamlearn_build_info`` and ``streamlearn_start_time_seconds``."""
        if version is None:
            from streamlearn import __version__

            version = __version__
        if river_version is None:
            import river

            river_version = str(river.__version__)
        self._build_info = Info(
            "streamlearn_build",
            "Version of the daemon and of River, and the model spec it runs (value is 1).",
            registry=registry,
        )
        self._build_info.info(
            {"version": str(version), "river_version": river_version, "model": model_spec}
        )
        self._start_time = Gauge(
            "streamlearn_start_time_seconds",
            "Unix time this process started, the origin of ages before any checkpoint.",
            registry=registry,
        )
        self._start_time.set(self.started_at)

    def _declare_records(self, registry: CollectorRegistry, source: str, max_extra: int) -> None:
        """Records received, learned, rejected, and predictions made."""
        self._source = source
        self._received_family, self._received = labelled(
            Counter,
            "streamlearn_records_received",
            "Raw records read from the source, before decoding.",
            "source",
            [self._source],
            registry,
        )
        self._source_label = BoundedLabel([self._source], max_extra)

        learned = Counter(
            "streamlearn_records_learned",
            "Records the model learned from: label=true for a real target, pseudo for "
            "an accepted pseudo-label.",
            ["label"],
            registry=registry,
        )
        self._learned = {label: learned.labels(label) for label in LEARN_LABELS}

        self._reason = BoundedLabel(REJECT_REASONS, max_extra)
        self._rejected_family, self._rejected = labelled(
            Counter,
            "streamlearn_records_rejected",
            "Records sent to the dead-letter sink, by reason.",
            "reason",
            self._reason.known,
            registry,
        )

        self._predictions = Counter(
            "streamlearn_predictions",
            "Predictions the model made on stream records (labelled ones before learning "
            "and unlabelled ones sent to the predictions sink).",
            registry=registry,
        )

    def _declare_histograms(
        self,
        registry: CollectorRegistry,
        error_buckets: Sequence[float] | None,
        step_buckets: Sequence[float],
        latency_buckets: Sequence[float],
    ) -> None:
        """Prediction errors, seconds per stage, and learn latency."""
        self._abs_error = (
            BatchHistogram(
                "streamlearn_prediction_abs_error",
                "Absolute error |y - yhat| of each prequential prediction, in target units.",
                error_buckets,
                registry=registry,
            )
            if error_buckets is not None
            else None
        )
        self._steps = BatchHistogram(
            "streamlearn_step_seconds",
            "Seconds per record spent in each stage of the loop; a batch timed as a whole "
            "counts as n records of (batch seconds / n), so _sum is the total time in the "
            "stage and _count the records (for stage=checkpoint: checkpoints) through it.",
            step_buckets,
            labelnames=["stage"],
            registry=registry,
        )
        self._stage_children = {stage: self._steps.labels(stage) for stage in STAGES}
        self._latency = BatchHistogram(
            "streamlearn_learn_latency_seconds",
            "Seconds from a record's arrival to the end of the batch that learned it (true "
            "labels). Arrival: the Kafka message timestamp (producer CreateTime in whole ms, "
            "or LogAppendTime); for a file line, when the daemon read it (the time before its "
            "tail poll saw the line is not counted).",
            latency_buckets,
            registry=registry,
        )
        self._latency_child = self._latency.labels()

    def _declare_events(self, registry: CollectorRegistry) -> None:
        """Pseudo-labels, checkpoints, last record, divergences, Kafka offsets, /predict."""
        pseudo = Counter(
            "streamlearn_pseudo_labels",
            "Pseudo-label candidates, by the side loop's decision.",
            ["decision"],
            registry=registry,
        )
        self._pseudo = {d: pseudo.labels(d) for d in PSEUDO_DECISIONS}

        self._checkpoint_ok = Gauge(
            "streamlearn_checkpoint_last_success_timestamp_seconds",
            "Unix time of the last checkpoint written and synced (0: none by this process).",
            registry=registry,
        )
        self._last_record = Gauge(
            "streamlearn_last_record_timestamp_seconds",
            "Unix (wall-clock) time the loop last processed a record (0: none yet).",
            registry=registry,
        )
        self._divergence = Counter(
            "streamlearn_divergence_events",
            "Times the model produced a non-finite prediction or weight and was restored.",
            registry=registry,
        )
        self._duplicates = Counter(
            "streamlearn_duplicates",
            "Kafka messages skipped because their offset was already learned.",
            registry=registry,
        )
        self._gaps = Counter(
            "streamlearn_offset_gaps",
            "Kafka offsets missing between consecutive messages (compaction, deletion).",
            registry=registry,
        )
        http_predict = Counter(
            "streamlearn_http_predict_requests",
            "POST /predict requests, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self._http_predict = {o: http_predict.labels(o) for o in PREDICT_OUTCOMES}

    # -- per-batch API of the run loop -------------------------------------------------

    def received(self, n: int, source: str | None = None) -> None:
        """Count ``n`` raw records read (``source`` defaults to the constructor's)."""
        kind = self._source if source is None else source
        child = self._received.get(kind)
        if child is None:
            kind = self._source_label(kind)
            child = self._received.setdefault(kind, self._received_family.labels(kind))
        child.inc(n)

    def learned(self, n: int, label: str = "true") -> None:
        """Count ``n`` records learned; ``label`` is ``"true"`` or ``"pseudo"``."""
        child = self._learned.get(label)
        if child is None:
            check_choice(label, LEARN_LABELS, "learned label")
        else:
            child.inc(n)

    def rejected(self, reason: str, n: int = 1) -> None:
        """Count ``n`` dead-lettered records; unknown reasons are accepted (bounded)."""
        child = self._rejected.get(reason)
        if child is None:
            bounded = self._reason(reason)
            child = self._rejected.setdefault(bounded, self._rejected_family.labels(bounded))
        child.inc(n)

    def predictions(self, n: int) -> None:
        """Count ``n`` predictions made on stream records."""
        self._predictions.inc(n)

    def abs_errors(self, errors: ArrayLike) -> None:
        """Observe the absolute prequential errors of one batch (target units); a
        classifier's 0/1 errors are counted by class from its confusion matrix instead."""
        if self._abs_error is not None:
            self._abs_error.observe_many(errors)

    def stage_seconds(self, stage: str, seconds: float | ArrayLike, n: int | ArrayLike = 1) -> None:
        """Record ``seconds`` spent in ``stage`` on ``n`` records.

        ``seconds`` is the wall time of a whole batch (or an array of batch times) and
        ``n`` the records in it (or an array, one per batch). Each batch adds ``n``
        observations of ``seconds / n``: buckets read as seconds per record, ``_sum``
        is the total time in the stage. Batches with ``n == 0`` are ignored. For the
        ``checkpoint`` stage pass ``n=1`` (one checkpoint).
        """
        child = self._stage_children.get(stage)
        if child is None:
            check_choice(stage, STAGES, "stage")
            return
        child.observe_per_item(seconds, n)

    def learn_latency(
        self,
        arrivals: np.ndarray | Sequence[float],
        counts: np.ndarray | Sequence[int] | None = None,
        now: float | None = None,
    ) -> int:
        """Observe records learned at Unix time ``now`` (default: now) that arrived at ``arrivals``.

        ``counts[i]`` records arrived at ``arrivals[i]`` (default: one each): a file's
        lines come many to a read. A latency below 0 (a producer clock ahead of ours)
        counts as 0. One numpy pass per batch; returns how many records were observed.

        >>> telemetry = Telemetry()
        >>> telemetry.learn_latency([99.998, 99.96, 99.0], now=100.0)
        3
        >>> telemetry.value("streamlearn_learn_latency_seconds_bucket", le="0.05")
        2.0
        """
        end = time.time() if now is None else now
        if counts is not None and len(counts) == 1:  # a block from one read: no numpy call
            return self._latency_child.observe_count(
                max(end - float(arrivals[0]), 0.0), int(counts[0])
            )
        latency = end - np.asarray(arrivals, dtype=np.float64)
        np.maximum(latency, 0.0, out=latency)
        return self._latency_child.observe_many(latency, counts)

    def drift(self, detector: str, signal: str = "error", ts: float | None = None) -> None:
        """Count one drift flagged by ``detector`` on ``signal`` at Unix time ``ts`` (now)."""
        self._drift.detected(detector, signal, ts)

    def drift_action(self, action: str) -> None:
        """Count one action taken after a drift (unknown actions accepted, bounded)."""
        self._drift.action(action)

    def pseudo(self, decision: str, n: int = 1) -> None:
        """Count ``n`` pseudo-label candidates ``"accepted"`` or ``"rejected"``."""
        child = self._pseudo.get(decision)
        if child is None:
            check_choice(decision, PSEUDO_DECISIONS, "pseudo-label decision")
        else:
            child.inc(n)

    def checkpoint_ok(self, ts: float | None = None) -> None:
        """Note a checkpoint written and synced at Unix time ``ts`` (now)."""
        self._checkpoint_ok.set(time.time() if ts is None else ts)

    def last_record(self, ts: float | None = None) -> None:
        """Note the wall-clock Unix time ``ts`` (now) the loop last processed a record."""
        self._last_record.set(time.time() if ts is None else ts)

    def divergence(self, n: int = 1) -> None:
        """Count a divergence: a non-finite prediction or weight, model restored."""
        self._divergence.inc(n)

    def duplicates(self, n: int) -> None:
        """Count ``n`` Kafka messages skipped as already learned."""
        self._duplicates.inc(n)

    def gaps(self, n: int) -> None:
        """Count ``n`` Kafka offsets missing between consecutive messages."""
        self._gaps.inc(n)

    def http_predict(self, outcome: str) -> None:
        """Count one ``POST /predict`` by outcome (called by ``streamlearn.observe.http``)."""
        child = self._http_predict.get(outcome)
        if child is None:
            check_choice(outcome, PREDICT_OUTCOMES, "predict outcome")
        else:
            child.inc()

    # -- reading --------------------------------------------------------------------------

    def value(self, name: str, **labels: str) -> float | None:
        """One sample's current value (for tests and ``inspect``; slow: a full collect)."""
        return self.registry.get_sample_value(name, labels)
