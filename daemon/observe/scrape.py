"""Gauges computed when Prometheus scrapes: model metrics, Kafka lag, readiness.

These values live in the learner, the model or the Kafka client; reading them at scrape time
(prometheus_client's custom-collector pattern) costs nothing per record, where copying them
into gauges would cost something on every batch. A reader that fails leaves its series out of
that one scrape and never fails the scrape.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

__all__ = [
    "MODEL_METRICS",
    "MODEL_WINDOWS",
    "LagReader",
    "ModelMetrics",
    "ScrapeTimeCollector",
    "lag_family",
    "metric_family",
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


def metric_family(
    name: str, documentation: str, values: Mapping[tuple[str, str], float]
) -> GaugeMetricFamily:
    """A ``{metric, window}`` gauge: the full grid (NaN where missing), then any extra keys.

    >>> family = metric_family("m", "doc", {("mae", "rolling"): 1.5, ("mape", "rolling"): 2.0})
    >>> [(s.labels["metric"], s.labels["window"], s.value) for s in family.samples][-3:]
    [('r2', 'cumulative', nan), ('r2', 'rolling', nan), ('mape', 'rolling', 2.0)]
    """
    family = GaugeMetricFamily(name, documentation, labels=["metric", "window"])
    for key in _grid_then_extra(values):
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


def _grid_then_extra(values: Mapping[tuple[str, str], float]) -> list[tuple[str, str]]:
    grid = [(m, w) for m in MODEL_METRICS for w in MODEL_WINDOWS]
    known = set(grid)
    return grid + sorted(k for k in values if k not in known)
