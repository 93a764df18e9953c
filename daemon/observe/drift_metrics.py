"""The drift series of the daemon's telemetry: detections, the last one's time, actions taken.

Their label values (detector, signal, action) are the drift monitor's, so they are passed in
(``DriftMonitor.telemetry_labels()``) or, by default, the monitor's full sets; values beyond
those are accepted up to a bound (``BoundedLabel``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

from streamlearn.observe.labels import BoundedLabel, labelled

__all__ = ["DriftMetrics"]


class DriftMetrics:
    """``streamlearn_drift_detections``, ``streamlearn_last_drift_timestamp_seconds`` and
    ``streamlearn_drift_actions`` on ``registry``, every known label value at 0."""

    def __init__(
        self,
        registry: CollectorRegistry,
        detectors: Sequence[str] | None,
        signals: Sequence[str],
        actions: Sequence[str] | None,
        max_extra: int,
    ) -> None:
        if detectors is None or actions is None:
            # The drift monitor's names are the truth; imported here, not at the top, so that
            # telemetry does not load the drift package unless the defaults are needed.
            from streamlearn.drift.monitor import ACTIONS, DETECTOR_NAMES

            detectors = DETECTOR_NAMES if detectors is None else detectors
            actions = ACTIONS if actions is None else actions
        self._detector = BoundedLabel(detectors, max_extra)
        self._signal = BoundedLabel(signals, max_extra)
        self._action = BoundedLabel(actions, max_extra)
        self._drift_family = Counter(
            "streamlearn_drift_detections",
            "Drifts flagged, by detector and by the signal it watches.",
            ["detector", "signal"],
            registry=registry,
        )
        self._drift_detections = {
            (d, s): self._drift_family.labels(d, s)
            for d in self._detector.known
            for s in self._signal.known
        }
        self._last_drift_family, self._last_drift = labelled(
            Gauge,
            "streamlearn_last_drift_timestamp_seconds",
            "Unix time of the last drift flagged by each detector (0: none yet).",
            "detector",
            self._detector.known,
            registry,
        )
        self._actions_family, self._actions = labelled(
            Counter,
            "streamlearn_drift_actions",
            "Actions taken on the model after a drift, by action.",
            "action",
            self._action.known,
            registry,
        )

    def detected(self, detector: str, signal: str, ts: float | None) -> None:
        """Count one drift flagged by ``detector`` on ``signal`` at Unix time ``ts`` (now)."""
        key = (detector, signal)
        child = self._drift_detections.get(key)
        if child is None:
            bounded = (self._detector(detector), self._signal(signal))
            child = self._drift_detections.setdefault(bounded, self._drift_family.labels(*bounded))
            detector = bounded[0]
        gauge = self._last_drift.get(detector)
        if gauge is None:
            gauge = self._last_drift.setdefault(detector, self._last_drift_family.labels(detector))
        child.inc()
        gauge.set(time.time() if ts is None else ts)

    def action(self, action: str) -> None:
        """Count one action taken after a drift (unknown actions accepted, bounded)."""
        child = self._actions.get(action)
        if child is None:
            bounded = self._action(action)
            child = self._actions.setdefault(bounded, self._actions_family.labels(bounded))
        child.inc()
