"""Prometheus series of a keyed run, bounded whatever the number of keys.

Totals only, never one series per key: keys in memory and held, spills and loads with
their latency, a histogram of the keys by rolling metric (every key held counts once, as
last written), and the worst ``--metrics-top-keys`` keys as gauges labelled by key, a set
that changes as keys get better or worse (at most that many series at any time).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.metrics_core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from streamlearn.keys.scores import KeyScores
from streamlearn.observe.histogram import BatchHistogram, one_two_five_buckets
from streamlearn.observe.scrape import ScrapeTimeCollector

__all__ = ["MAX_TOP_KEYS", "SPILL_BUCKETS", "KeyTelemetry", "KeysHeld"]

#: ``--metrics-top-keys`` at most: each is a series.
MAX_TOP_KEYS = 1000
#: Seconds a spill or load takes: 1 us to 10 s.
SPILL_BUCKETS: tuple[float, ...] = one_two_five_buckets(1e-6, 10.0)


class KeysHeld(Protocol):
    """What the telemetry reads of the keyed store at scrape time (``KeyedModels``)."""

    @property
    def live(self) -> int: ...

    max_live: int
    keys_total: int
    scores: KeyScores

    def state_bytes(self) -> int: ...


class KeyTelemetry:
    """The ``streamlearn_key*`` series; it is also the store's ``KeyEvents`` (spills, loads).

    Parameters
    ----------
    registry
        The daemon's registry (``Telemetry.registry``).
    metric
        The keys' score: ``mae`` or ``accuracy`` (the ``metric`` label).
    top_keys
        Worst keys exported (``--metrics-top-keys``, at most ``MAX_TOP_KEYS``).
    held
        The store, read at each scrape; may be set later.

    Examples
    --------
    >>> from streamlearn.keys import KeyedModels, LearnerCodec
    >>> from streamlearn.learner import Learner
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> models = KeyedModels(LearnerCodec(lambda: Learner(SGDRegressor())), max_live=1)
    >>> registry = CollectorRegistry()
    >>> models.events = telemetry = KeyTelemetry(registry, top_keys=2, held=models)
    >>> for key, y in [("a", 1.0), ("b", 3.0), ("c", 2.0), ("a", 1.0)]:
    ...     _ = models.get(key).step({"x": 1.0}, y)
    >>> registry.get_sample_value("streamlearn_keys_held"), models.spills
    (3.0, 3)
    >>> registry.get_sample_value("streamlearn_key_spills_total")
    3.0
    >>> worst = "streamlearn_key_worst_rolling_metric"
    >>> registry.get_sample_value(worst, {"metric": "mae", "key": "b"})
    3.0
    >>> models.close()
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        metric: str = "mae",
        top_keys: int = 10,
        held: KeysHeld | None = None,
        seconds_buckets: Sequence[float] = SPILL_BUCKETS,
    ) -> None:
        if not 0 <= top_keys <= MAX_TOP_KEYS:
            raise ValueError(f"top_keys must be 0 to {MAX_TOP_KEYS}")
        self.metric = metric
        self.top_keys = top_keys
        self.held = held
        self._spills = Counter(
            "streamlearn_key_spills",
            "Per-key models written to the state store to make room in memory.",
            registry=registry,
        )
        self._loads = Counter(
            "streamlearn_key_loads",
            "Per-key models read back from the state store when their key returned.",
            registry=registry,
        )
        self._spill_seconds = BatchHistogram(
            "streamlearn_key_spill_seconds",
            "Seconds to write one per-key model to the state store (pickle, sign, append).",
            seconds_buckets,
            registry=registry,
        )
        self._load_seconds = BatchHistogram(
            "streamlearn_key_load_seconds",
            "Seconds to read one per-key model back (read, check the signature, unpickle).",
            seconds_buckets,
            registry=registry,
        )
        registry.register(ScrapeTimeCollector("streamlearn_keys", self._collect))

    # -- KeyEvents ------------------------------------------------------------------------------

    def spilled(self, seconds: float) -> None:
        self._spills.inc()
        self._spill_seconds.observe(seconds)

    def loaded(self, seconds: float) -> None:
        self._loads.inc()
        self._load_seconds.observe(seconds)

    # -- scrape time ----------------------------------------------------------------------------

    def _collect(self) -> Iterator[Metric]:
        held = self.held
        if held is None:
            return
        yield GaugeMetricFamily(
            "streamlearn_keys_live", "Per-key models in memory.", value=float(held.live)
        )
        yield GaugeMetricFamily(
            "streamlearn_keys_live_limit",
            "Per-key models in memory at most (--max-live-keys); beyond, the least recently "
            "used are spilled.",
            value=float(held.max_live),
        )
        yield GaugeMetricFamily(
            # Not ``streamlearn_keys_total``: a gauge named ``_total`` reads as a counter.
            "streamlearn_keys_held",
            "Keys held, in memory and spilled.",
            value=float(held.keys_total),
        )
        yield GaugeMetricFamily(
            "streamlearn_keys_state_bytes",
            "Bytes of per-key state in use in the state store (spilled and checkpointed).",
            value=float(held.state_bytes()),
        )
        scores = held.scores
        cumulative, unscored, total, worst = scores.snapshot()
        by_score = GaugeHistogramMetricFamily(
            "streamlearn_keys_rolling_metric",
            "Keys by their rolling metric as last written (a spill or a checkpoint): every "
            "key held counts once; _gsum / _gcount is the mean key's.",
            labels=["metric"],
        )
        bounds = [floatToGoString(bound) for bound in (*scores.bounds, math.inf)]
        by_score.add_metric(
            [self.metric],
            [(le, float(count)) for le, count in zip(bounds, cumulative, strict=True)],
            gsum_value=total,
        )
        yield by_score
        yield GaugeMetricFamily(
            "streamlearn_keys_unscored",
            "Keys held that have not scored a prediction yet (not in the histogram).",
            value=float(unscored),
        )
        worst_family = GaugeMetricFamily(
            "streamlearn_key_worst_rolling_metric",
            "The rolling metric of the worst keys (--metrics-top-keys of them), as last written.",
            labels=["metric", "key"],
        )
        for key, score in worst[: self.top_keys]:
            worst_family.add_metric([self.metric, key], score)
        yield worst_family
