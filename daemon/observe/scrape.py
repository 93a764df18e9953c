"""Gauges computed when Prometheus scrapes: model metrics, Kafka lag, readiness.

These values live in the learner, the model or the Kafka client; reading them at scrape time
(prometheus_client's custom-collector pattern) costs nothing per record, where copying them
into gauges would cost something on every batch. A reader that fails leaves its series out of
that one scrape and never fails the scrape.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from streamlearn.observe.class_counts import ClassCounts, class_families

__all__ = [
    "MODEL_METRICS",
    "MODEL_WINDOWS",
    "LagReader",
    "ModelMetrics",
    "ScrapeTimeCollector",
    "ScrapeTimeReaders",
    "lag_family",
    "metric_family",
    "paused_family",
    "ready_family",
]

log = logging.getLogger(__name__)

#: Model metric names and windows exported by ``streamlearn_model_metric``.
MODEL_METRICS: tuple[str, ...] = ("mae", "rmse", "r2")
MODEL_WINDOWS: tuple[str, ...] = ("cumulative", "rolling")

#: Reads ``{(metric, window): value}`` of a model at scrape time.
ModelMetrics = Callable[[], Mapping[tuple[str, str], float]]
#: Reads ``{(topic, partition): records behind the end}`` at scrape time.
LagReader = Callable[[], Mapping[tuple[str, int], int]]


class ScrapeTimeCollector:
    """Yields the metrics ``produce`` computes at scrape time; a failing ``produce`` yields none.

    >>> from prometheus_client import CollectorRegistry
    >>> registry = CollectorRegistry()
    >>> registry.register(ScrapeTimeCollector("demo", lambda: [ready_family(True)]))
    >>> registry.get_sample_value("streamlearn_ready")
    1.0
    """

    def __init__(self, name: str, produce: Callable[[], Iterable[Metric]]) -> None:
        self._name = name
        self._produce = produce

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            metrics = list(self._produce())
        except Exception:
            # A scrape must never fail (or kill the HTTP thread) because the model's
            # object was mid-update: the series are missing for this one scrape.
            log.warning("collecting %s failed", self._name, exc_info=True)
            return
        yield from metrics


class ScrapeTimeReaders:
    """The callables ``Telemetry`` reads when Prometheus scrapes (each None: its series absent,
    but ``streamlearn_model_metric``'s grid is NaN), and the series they make."""

    model_metrics: ModelMetrics | None
    baseline_metrics: ModelMetrics | None
    #: The metric grid of ``streamlearn_model_metric`` and ``streamlearn_baseline_metric``.
    model_metric_names: tuple[str, ...]
    class_counts: ClassCounts | None
    lag: LagReader | None
    ready: Callable[[], bool] | None
    paused: Callable[[], str | None] | None

    def _register_readers(self, registry: CollectorRegistry) -> None:
        for name, produce in (
            ("streamlearn_model_metric", self._collect_model),
            ("streamlearn_baseline_metric", self._collect_baseline),
            ("streamlearn_class_counts", self._collect_classes),
            ("streamlearn_kafka_lag", self._collect_lag),
            ("streamlearn_ready", self._collect_ready),
            ("streamlearn_paused", self._collect_paused),
        ):
            registry.register(ScrapeTimeCollector(name, produce))

    def _collect_model(self) -> Iterator[Metric]:
        yield metric_family(
            "streamlearn_model_metric",
            "Prequential metric of the online model (target units; r2 and a classifier's "
            "unitless).",
            self.model_metrics() if self.model_metrics is not None else {},
            self.model_metric_names,
        )

    def _collect_baseline(self) -> Iterator[Metric]:
        if self.baseline_metrics is not None:
            yield metric_family(
                "streamlearn_baseline_metric",
                "Prequential metric of the frozen warm-start model on the same records.",
                self.baseline_metrics(),
                self.model_metric_names,
            )

    def _collect_classes(self) -> Iterator[Metric]:
        if self.class_counts is not None:
            yield from class_families(self.class_counts())

    def _collect_lag(self) -> Iterator[Metric]:
        if self.lag is not None:
            yield lag_family(self.lag())

    def _collect_paused(self) -> Iterator[Metric]:
        if self.paused is not None:
            yield paused_family(self.paused())

    def _collect_ready(self) -> Iterator[Metric]:
        # Unbound, the gauge is absent rather than 0: an unknown state must not page.
        if self.ready is not None:
            yield ready_family(self.ready())


def metric_family(
    name: str,
    documentation: str,
    values: Mapping[tuple[str, str], float],
    metrics: Sequence[str] = MODEL_METRICS,
) -> GaugeMetricFamily:
    """A ``{metric, window}`` gauge: the full grid of ``metrics`` by ``MODEL_WINDOWS`` (NaN
    where missing), then any extra keys. A classifier's grid is its metric names
    (``streamlearn.classify.metrics.BINARY_METRICS`` or ``MULTICLASS_METRICS``).

    >>> family = metric_family("m", "doc", {("mae", "rolling"): 1.5, ("mape", "rolling"): 2.0})
    >>> [(s.labels["metric"], s.labels["window"], s.value) for s in family.samples][-3:]
    [('r2', 'cumulative', nan), ('r2', 'rolling', nan), ('mape', 'rolling', 2.0)]
    """
    family = GaugeMetricFamily(name, documentation, labels=["metric", "window"])
    for key in _grid_then_extra(values, metrics):
        family.add_metric(list(key), float(values.get(key, math.nan)))
    return family


def lag_family(lag: Mapping[tuple[str, int], int]) -> GaugeMetricFamily:
    """``streamlearn_kafka_consumer_lag_records`` by topic and partition."""
    family = GaugeMetricFamily(
        "streamlearn_kafka_consumer_lag_records",
        "Records between the consumer's position and the end of each partition.",
        labels=["topic", "partition"],
    )
    for (topic, partition), behind in sorted(lag.items()):
        family.add_metric([str(topic), str(partition)], float(behind))
    return family


def ready_family(ready: bool) -> GaugeMetricFamily:
    """``streamlearn_ready``: 1 or 0."""
    return GaugeMetricFamily(
        "streamlearn_ready",
        "1 when the source is connected and the model loaded (what /readyz says).",
        value=1.0 if ready else 0.0,
    )


def paused_family(reason: str | None) -> GaugeMetricFamily:
    """``streamlearn_paused{reason="disk_full"}``: 1 while paused for ``reason``, else 0."""
    family = GaugeMetricFamily(
        "streamlearn_paused",
        "1 while learning is paused, by reason (disk_full: a sink's or the state "
        "dir's disk is full; nothing is lost, learning goes on when space returns).",
        labels=["reason"],
    )
    family.add_metric(["disk_full"], 1.0 if reason is not None else 0.0)
    return family


def _grid_then_extra(
    values: Mapping[tuple[str, str], float], metrics: Sequence[str]
) -> list[tuple[str, str]]:
    grid = [(m, w) for m in metrics for w in MODEL_WINDOWS]
    known = set(grid)
    return grid + sorted(k for k in values if k not in known)
