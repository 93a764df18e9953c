"""The status page at ``/`` and the JSON document it polls, ``/status.json``.

The document is the live ``inspect --json`` object trimmed to what an operator reads, plus
what only the running process knows: the rate now, checkpoint and last-record ages, Kafka
lag, and a short history of the headline metric for the page's chart: a regressor's MAE, a
classifier's accuracy (with its classes' counts beside).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from prometheus_client import CollectorRegistry

from streamlearn.observe.telemetry import Telemetry

__all__ = ["StatusBoard", "describe_position", "status_page"]

#: The gauges the document reads from the registry (Unix seconds; 0 means "not yet").
_CHECKPOINT_GAUGE = "streamlearn_checkpoint_last_success_timestamp_seconds"
_LAST_RECORD_GAUGE = "streamlearn_last_record_timestamp_seconds"
#: Drift events the page lists (the newest).
LAST_DRIFT_EVENTS = 5
#: Classes the page lists (those with the most true labels).
TOP_CLASSES = 10
#: The metric the page charts, by task: the history's columns are ``NAME``, ``rolling_NAME``
#: and ``baseline_NAME``.
HEADLINE = {"regression": "mae", "classification": "accuracy"}


@cache
def status_page() -> bytes:
    """The page served at ``/``: one self-contained HTML file shipped beside this module."""
    return resources.files(__package__).joinpath("status.html").read_bytes()


def describe_position(position: Mapping[str, Any] | None) -> str:
    """A source position in words: a file's byte offset (and share read), a topic's offsets.

    >>> describe_position({"kind": "kafka", "topic": "ev", "next_offsets": {"0": 519, "1": 500}})
    'ev: p0=519 p1=500'
    >>> describe_position({"kind": "file", "path": "/nonexistent/x.csv", "offset": 75414})
    '/nonexistent/x.csv @ byte 75,414'
    >>> describe_position(None)
    'none yet'
    """
    if not position:
        return "none yet"
    kind = position.get("kind")
    if kind == "kafka":
        offsets = position.get("next_offsets", {})
        parts = " ".join(f"p{p}={o}" for p, o in offsets.items()) or "no partition yet"
        return f"{position.get('topic')}: {parts}"
    if kind == "file":
        path, offset = str(position.get("path")), int(position.get("offset", 0))
        text = f"{path} @ byte {offset:,}"
        try:
            size = os.stat(path).st_size  # the daemon's own working directory: same as its source
        except OSError:
            return text
        if size > 0:
            text += f" of {size:,} ({min(100.0, 100.0 * offset / size):.0f}%)"
        return text
    return json.dumps(position, default=str)


@dataclass(frozen=True)
class _Sample:
    """What the chart and the rate need of one moment."""

    t: float
    seen: int
    learned: int
    cumulative: float | None
    rolling: float | None
    baseline: float | None


class StatusBoard:
    """Builds ``/status.json`` from the live inspect object, the telemetry and a short history.

    Parameters
    ----------
    inspect
        The live ``inspect --json`` object (``MetricsServer.model_info``).
    telemetry
        Checkpoint and last-record times and Kafka lag come from it (absent without it).
    ready
        What ``/readyz`` says.
    clock
        Unix seconds now (tests step it).
    history, spacing
        At most ``history`` samples are kept for the chart, at least ``spacing`` seconds
        apart (the page polls every second; two open pages do not double the samples).
    rate_window
        The rate is measured over about this many seconds (the rate now, not since start).

    Examples
    --------
    >>> now = [100.0]
    >>> state = {"model": "sgd", "records_seen": 0, "records_learned": 0,
    ...          "metrics": {"mae": None}, "rolling_metrics": {"mae": None}}
    >>> board = StatusBoard(lambda: state, clock=lambda: now[0])
    >>> board.document()["rate"]["seen_per_second"] is None  # one moment: no rate yet
    True
    >>> now[0], state["records_seen"], state["records_learned"] = 102.0, 500, 480
    >>> doc = board.document()
    >>> doc["rate"]["seen_per_second"], doc["rate"]["learned_per_second"], doc["history"]["seen"]
    (250.0, 240.0, [0, 500])
    """

    def __init__(
        self,
        inspect: Callable[[], Mapping[str, Any]],
        telemetry: Telemetry | None = None,
        ready: Callable[[], bool] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        history: int = 600,
        spacing: float = 1.0,
        rate_window: float = 5.0,
    ) -> None:
        self._inspect = inspect
        self._telemetry = telemetry
        self._ready = ready
        self._clock = clock
        self._spacing = spacing
        self._rate_window = rate_window
        self._samples: deque[_Sample] = deque(maxlen=history)
        self._lock = threading.Lock()  # the HTTP server answers on many threads

    def document(self) -> dict[str, Any]:
        """The ``/status.json`` object (may hold NaN: the server makes it JSON-safe)."""
        summary = self._inspect()
        now = self._clock()
        metrics = summary.get("metrics") or {}
        rolling = summary.get("rolling_metrics") or {}
        baseline = summary.get("baseline_metrics")
        task = str(summary.get("task") or "regression")
        headline = HEADLINE.get(task, "mae")
        sample = _Sample(
            now,
            int(summary.get("records_seen", 0)),
            int(summary.get("records_learned", 0)),
            metrics.get(headline),
            rolling.get(headline),
            baseline.get(headline) if baseline else None,
        )
        with self._lock:
            rate = self._rate(sample)
            if not self._samples or now - self._samples[-1].t >= self._spacing:
                self._samples.append(sample)
            history = list(self._samples)
        position = summary.get("position")
        checkpoint = summary.get("checkpoint") or {}
        checkpoint_at = self._gauge(_CHECKPOINT_GAUGE)
        last_record_at = self._gauge(_LAST_RECORD_GAUGE)
        started = self._telemetry.started_at if self._telemetry is not None else None
        return {
            "time": now,
            "model": summary.get("model"),
            "task": task,
            "headline": headline,
            "version": checkpoint.get("streamlearn"),
            "ready": self._is_ready(),
            "uptime_seconds": _age(now, started),
            "settings": _pick(summary.get("settings") or {}, "target", "features", "format"),
            "source": {
                "text": describe_position(position),
                "position": position,
                "lag": self._lag(),
            },
            "records": {
                "seen": sample.seen,
                "learned": sample.learned,
                "rejected": summary.get("records_rejected", 0),
                "unlabeled": summary.get("records_unlabeled", 0),
                "predictions": summary.get("predictions", 0),
                "divergence_events": summary.get("divergence_events", 0),
                "rejected_by_reason": summary.get("rejected_by_reason", {}),
            },
            "rate": rate,
            "metrics": {
                "cumulative": _numbers(metrics),
                "rolling": _numbers(rolling),
                "rolling_window": summary.get("rolling_window"),
                "baseline": _numbers(baseline) if baseline else baseline,
            },
            "classes": _classes(metrics.get("confusion")),
            "checkpoint": {
                "generation": checkpoint.get("generation"),
                "last_success": checkpoint_at,
                "age_seconds": _age(now, checkpoint_at),
            },
            "last_record_age_seconds": _age(now, last_record_at),
            "drift": _drift(summary),
            "pseudo_labels": summary.get("pseudo_labels"),
            "pending_labels": summary.get("pending_labels"),
            "history": _history(history, headline),
        }

    def _rate(self, now: _Sample) -> dict[str, Any]:
        """Records per second since the oldest sample of the last ``rate_window`` seconds."""
        span = self._spacing / 2  # a shorter span than this measures the poll, not the stream
        base = next(
            (s for s in self._samples if self._rate_window >= now.t - s.t >= span),
            None,
        )
        if base is None:
            older = [s for s in self._samples if span <= now.t - s.t <= 2 * self._rate_window]
            base = older[-1] if older else None
        if base is None:
            return {"seen_per_second": None, "learned_per_second": None, "over_seconds": None}
        seconds = now.t - base.t
        return {
            "seen_per_second": max(0, now.seen - base.seen) / seconds,
            "learned_per_second": max(0, now.learned - base.learned) / seconds,
            "over_seconds": seconds,
        }

    def _gauge(self, name: str) -> float | None:
        """A timestamp gauge of the telemetry; None when absent or still 0 ("not yet")."""
        if self._telemetry is None:
            return None
        registry: CollectorRegistry = self._telemetry.registry
        # Collects only the gauges named (and the registry's unnamed scrape-time collectors),
        # not the histograms.
        for family in registry.restricted_registry([name]).collect():
            for sample in family.samples:
                if sample.name == name:
                    return sample.value or None
        return None

    def _lag(self) -> dict[str, int] | None:
        """Records behind the end per ``topic/partition`` (Kafka only)."""
        reader = self._telemetry.lag if self._telemetry is not None else None
        if reader is None:
            return None
        return {f"{topic}/{partition}": int(n) for (topic, partition), n in reader().items()}

    def _is_ready(self) -> bool | None:
        if self._ready is None:
            return None
        try:
            return bool(self._ready())
        except Exception:  # /readyz answers 503 then; the page says "not ready"
            return False


def _age(now: float, then: float | None) -> float | None:
    return None if then is None else max(0.0, now - then)


def _pick(mapping: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {key: mapping.get(key) for key in keys}


def _drift(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """The drift monitor's settings, totals and newest events (None without a monitor)."""
    drift = summary.get("drift")
    if not isinstance(drift, Mapping):
        return None
    events = list(summary.get("drift_events") or [])
    return {
        **_pick(drift, "detector", "signals", "on_drift", "events_total", "suppressed"),
        "last_events": events[-LAST_DRIFT_EVENTS:][::-1],
    }


def _numbers(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics that are numbers (or None): a classifier's confusion matrix goes apart."""
    return {k: v for k, v in metrics.items() if v is None or isinstance(v, int | float)}


def _classes(confusion: object) -> list[dict[str, Any]] | None:
    """A classifier's classes with the most true labels: counts as true label, as prediction,
    and predicted right (None: not a classifier).

    >>> _classes({"no": {"no": 5, "yes": 1}, "yes": {"no": 2, "yes": 7}})
    [{'class': 'yes', 'labels': 9, 'predictions': 8, 'correct': 7}, \
{'class': 'no', 'labels': 6, 'predictions': 7, 'correct': 5}]
    """
    if not isinstance(confusion, Mapping):
        return None
    labels: dict[str, int] = {}
    predictions: dict[str, int] = {}
    for true, row in confusion.items():
        labels[true] = labels.get(true, 0) + sum(row.values())
        for predicted, count in row.items():
            predictions[predicted] = predictions.get(predicted, 0) + count
    names = sorted(labels.keys() | predictions.keys(), key=lambda c: (-labels.get(c, 0), c))
    return [
        {
            "class": name,
            "labels": labels.get(name, 0),
            "predictions": predictions.get(name, 0),
            "correct": confusion.get(name, {}).get(name, 0),
        }
        for name in names[:TOP_CLASSES]
    ]


def _history(samples: list[_Sample], headline: str) -> dict[str, list[Any]]:
    """The samples as columns (the page's chart reads them so): ``headline`` (``mae``,
    ``accuracy``), ``rolling_`` and ``baseline_`` it."""
    return {
        "t": [s.t for s in samples],
        "seen": [s.seen for s in samples],
        "learned": [s.learned for s in samples],
        headline: [s.cumulative for s in samples],
        f"rolling_{headline}": [s.rolling for s in samples],
        f"baseline_{headline}": [s.baseline for s in samples],
    }
