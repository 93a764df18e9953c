"""A Prometheus histogram fed a numpy array at a time, and the bucket bounds it is given.

``prometheus_client.Histogram.observe`` takes a lock and walks the buckets once per value;
:class:`BatchHistogram` bins a whole batch with one ``np.searchsorted`` and one
``np.bincount`` under one lock, and exposes the same ``_bucket``/``_sum``/``_count`` series.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

__all__ = ["BatchHistogram", "one_two_five_buckets"]


def one_two_five_buckets(low: float, high: float) -> tuple[float, ...]:
    """Upper bounds 1, 2.5, 5 per decade from ``low`` to ``high`` (both powers of ten).

    Three buckets a decade keep the exposition small while ``histogram_quantile``
    stays within a factor of about 2 over many orders of magnitude.

    >>> one_two_five_buckets(0.01, 1)
    (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
    """
    if not (0 < low < high):
        raise ValueError(f"need 0 < low < high, got low={low!r} high={high!r}")
    first, last = math.log10(low), math.log10(high)
    if first != round(first) or last != round(last):
        raise ValueError(f"low and high must be powers of ten, got {low!r} and {high!r}")
    bounds: list[float] = []
    for exponent in range(round(first), round(last)):
        # round() strips the float noise of 10**-3 * 2.5 so `le` labels read "0.0025".
        bounds.extend(round(m * 10.0**exponent, 12) for m in (1.0, 2.5, 5.0))
    bounds.append(float(high))
    return tuple(bounds)


class BatchHistogram:
    """A Prometheus histogram fed a numpy array at a time.

    ``prometheus_client.Histogram.observe`` takes a lock and walks the buckets once per
    value; at hundreds of thousands of records a second that is the bottleneck. Here a
    batch is binned with one ``np.searchsorted`` and one ``np.bincount`` under one lock.
    The exposition is an ordinary histogram (``_bucket{le=...}`` cumulative, with
    ``+Inf``, ``_sum``, ``_count``), identical to a ``Histogram`` fed the same values one
    by one (``le`` means "less than or equal", as in Prometheus).

    Non-finite values (NaN, +-inf) are dropped and not counted: one would turn ``_sum``
    into NaN or inf for the life of the process. Whoever feeds the histogram reports
    divergence on its own (``Telemetry.divergence``).

    Optional integer ``weights`` count one value several times: a batch of ``n``
    records timed as a whole is observed as ``n`` records of ``seconds / n`` each.

    >>> from prometheus_client import CollectorRegistry
    >>> registry = CollectorRegistry()
    >>> h = BatchHistogram("demo_seconds", "A demo.", buckets=(0.1, 1.0), registry=registry)
    >>> h.observe_many(np.array([0.05, 0.1, 0.5, 7.0, float("nan")]))
    4
    >>> bucket = "demo_seconds_bucket"
    >>> [registry.get_sample_value(bucket, {"le": le}) for le in ("0.1", "1.0", "+Inf")]
    [2.0, 3.0, 4.0]
    >>> registry.get_sample_value("demo_seconds_sum")
    7.65
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        labelnames: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
    ) -> None:
        bounds = [float(b) for b in buckets]
        if not bounds or any(math.isnan(b) for b in bounds):
            raise ValueError(f"{name}: buckets must be a non-empty list of numbers")
        if bounds != sorted(set(bounds)):
            raise ValueError(f"{name}: buckets must be strictly increasing, got {bounds}")
        if bounds[-1] != math.inf:
            bounds.append(math.inf)
        if "le" in labelnames:
            raise ValueError(f"{name}: 'le' is reserved for the bucket bound")
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.upper_bounds = np.array(bounds, dtype=np.float64)
        self._le = [floatToGoString(b) for b in bounds]
        self._children: dict[tuple[str, ...], _BatchHistogramChild] = {}
        self._lock = threading.Lock()
        if not self.labelnames:
            self._children[()] = _BatchHistogramChild(self.upper_bounds)
        if registry is not None:
            registry.register(self)

    def labels(self, *labelvalues: str) -> _BatchHistogramChild:
        """The child for these label values, created (at zero) on first use."""
        if len(labelvalues) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {labelvalues}")
        key = tuple(str(v) for v in labelvalues)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children.setdefault(key, _BatchHistogramChild(self.upper_bounds))
        return child

    def observe_many(self, values: ArrayLike, weights: ArrayLike | None = None) -> int:
        """Observe every finite value of ``values`` (unlabelled histogram only)."""
        return self.labels().observe_many(values, weights)

    def observe(self, value: float, count: int = 1) -> int:
        """Observe one value ``count`` times (unlabelled histogram only)."""
        return self.labels().observe_count(float(value), count)

    def describe(self) -> Iterable[Metric]:
        """The family without samples, so the registry can refuse duplicate names."""
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterable[Metric]:
        """One histogram family with a cumulative ``_bucket`` series per bound."""
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, child in list(self._children.items()):
            cumulative, total = child.snapshot()
            family.add_metric(
                list(key), list(zip(self._le, cumulative.tolist(), strict=True)), total
            )
        return [family]


class _BatchHistogramChild:
    """Per-bucket counts of one label combination (not cumulative; summed at scrape)."""

    __slots__ = ("_bounds_list", "_counts", "_lock", "_sum", "_upper_bounds")

    def __init__(self, upper_bounds: np.ndarray) -> None:
        self._upper_bounds = upper_bounds
        self._bounds_list = upper_bounds.tolist()
        self._counts = np.zeros(len(upper_bounds), dtype=np.int64)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: ArrayLike, weights: ArrayLike | None = None) -> int:
        """Add the finite values, each counted ``weights[i]`` times; return how many counted."""
        array = np.asarray(values, dtype=np.float64).ravel()
        weight_array: np.ndarray | None = None
        if weights is not None:
            weight_array = np.broadcast_to(np.asarray(weights, dtype=np.int64), array.shape)
            if (weight_array < 0).any():
                raise ValueError("weights must be non-negative counts")
        batch_sum = float(array.sum() if weight_array is None else np.dot(array, weight_array))
        if not math.isfinite(batch_sum):
            # A NaN or an infinity in the batch (a finite sum says there is none, which
            # spares a pass over every value): keep only the finite values.
            finite = np.isfinite(array)
            array = array[finite]
            if weight_array is not None:
                weight_array = weight_array[finite]
            batch_sum = float(array.sum() if weight_array is None else np.dot(array, weight_array))
        if array.size == 0:
            return 0
        # side="left": the first bound >= value, i.e. Prometheus' `value <= le`.
        index = np.searchsorted(self._upper_bounds, array, side="left")
        if weight_array is None:
            per_bucket = np.bincount(index, minlength=len(self._upper_bounds))
            counted = int(array.size)
        else:
            per_bucket = np.bincount(
                index, weights=weight_array, minlength=len(self._upper_bounds)
            ).astype(np.int64)
            counted = int(weight_array.sum())
        with self._lock:
            self._counts += per_bucket
            self._sum += batch_sum
        return counted

    def observe_count(self, value: float, count: int = 1) -> int:
        """Add one value ``count`` times; the fast path for one number (no numpy call)."""
        if count <= 0 or not math.isfinite(value):
            return 0
        # bisect_left: the first bound >= value, i.e. Prometheus' `value <= le`.
        index = bisect.bisect_left(self._bounds_list, value)
        with self._lock:
            self._counts[index] += count
            self._sum += value * count
        return count

    def observe_per_item(self, totals: float | ArrayLike, counts: int | ArrayLike) -> None:
        """Observe ``counts[i]`` values of ``totals[i] / counts[i]`` for each ``i``.

        A batch of records timed as a whole is so observed as that many records of
        equal time; totals with a count of 0 are skipped.
        """
        if isinstance(totals, int | float) and isinstance(counts, int):
            # The usual call (one batch): a bisect, no numpy overhead.
            if counts > 0:
                self.observe_count(totals / counts, counts)
            return
        total = np.atleast_1d(np.asarray(totals, dtype=np.float64))
        count = np.broadcast_to(np.asarray(counts, dtype=np.int64), total.shape)
        nonempty = count > 0
        if not nonempty.all():
            total, count = total[nonempty], count[nonempty]
        self.observe_many(total / count, weights=count)

    def snapshot(self) -> tuple[np.ndarray, float]:
        """Cumulative bucket counts and the sum, read consistently."""
        with self._lock:
            counts = self._counts.copy()
            total = self._sum
        return np.cumsum(counts).astype(np.float64), total
