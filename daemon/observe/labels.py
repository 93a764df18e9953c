"""The label values of streamlearn's metrics, and the bound on those that come from data.

The fixed sets are exported at 0 from the start, so dashboards and ``increase()`` see a
series before its first event. Values that come from configuration or data (a source kind,
a rejection reason, a drift detector) go through :class:`BoundedLabel`, so that no input
can create an unbounded number of series.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge

from streamlearn import records

__all__ = [
    "LEARN_LABELS",
    "PREDICT_OUTCOMES",
    "PSEUDO_DECISIONS",
    "REJECT_REASONS",
    "STAGES",
    "BoundedLabel",
    "check_choice",
    "labelled",
]

log = logging.getLogger(__name__)

Metric = TypeVar("Metric", Counter, Gauge)

#: Why a record was sent to the dead-letter sink (pre-initialised label values): the
#: decoders' closed set, plus "other" for reasons past the label-value budget.
REJECT_REASONS: tuple[str, ...] = (*records.REJECT_REASONS, "other")
#: Where a learned target came from.
LEARN_LABELS: tuple[str, ...] = ("true", "pseudo")
#: What the pseudo-labelling loop did with a candidate.
PSEUDO_DECISIONS: tuple[str, ...] = ("accepted", "rejected")
#: Stages of the run loop that are timed.
STAGES: tuple[str, ...] = ("decode", "predict", "learn", "checkpoint")
#: Outcomes of ``POST /predict`` (see ``streamlearn.observe.http``).
PREDICT_OUTCOMES: tuple[str, ...] = ("ok", "bad_request", "too_large", "unavailable", "error")


class BoundedLabel:
    """Maps label values that come from configuration or data onto a bounded set.

    The known values are exported from the start. A new value is accepted as itself
    while fewer than ``max_extra`` new ones were seen, then folded into ``"other"``:
    a typo or a data-driven reason can never blow up the number of series.
    """

    def __init__(self, known: Iterable[str], max_extra: int) -> None:
        self.known = tuple(dict.fromkeys(known))
        self._allowed = set(self.known)
        self._extra = 0
        self._max_extra = max_extra
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        value = str(value)
        if value in self._allowed:
            return value
        with self._lock:
            if value in self._allowed:
                return value
            if self._extra >= self._max_extra:
                return "other"
            self._extra += 1
            self._allowed.add(value)
            log.info("new telemetry label value %r (not in %s)", value, self.known)
            return value


def check_choice(value: str, allowed: Sequence[str], what: str) -> str:
    """``value`` if it is one of ``allowed``; else a ``ValueError`` (a label from code: a bug)."""
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
    return value


def labelled(
    kind: type[Metric],
    name: str,
    documentation: str,
    label: str,
    values: Iterable[str],
    registry: CollectorRegistry,
) -> tuple[Metric, dict[str, Metric]]:
    """A metric family with one ``label``, and its children for ``values``, made now so
    that each series is exported at 0 before its first event."""
    family = kind(name, documentation, [label], registry=registry)
    return family, {value: family.labels(value) for value in values}
