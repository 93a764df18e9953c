"""The instance's role in its group, and the metrics that say it.

``streamlearn_role{role}`` is 1 for the role held (``active`` or ``standby``) and 0 for the
other; ``streamlearn_fencing_refusals_total`` counts this instance's checkpoint writes refused
because another instance took the model over. Both live in this object, not in one
registry: each role serves its own HTTP face, and the counts carry over between them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["ROLES", "Role"]

#: The roles an instance of a group can hold.
ROLES = ("active", "standby")


class Role:
    """Which role this instance holds, and how many of its writes were refused.

    >>> role = Role()
    >>> registry = CollectorRegistry()
    >>> role.register(registry)
    >>> role.become("active")
    >>> registry.get_sample_value("streamlearn_role", {"role": "active"})
    1.0
    >>> role.refused(2)
    >>> registry.get_sample_value("streamlearn_fencing_refusals_total")
    2.0
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.name = "standby"
        self.refusals = 0
        #: Takeovers this instance made (each raised the state dir's epoch).
        self.takeovers = 0

    def become(self, name: str) -> None:
        if name not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {name!r}")
        with self._lock:
            self.name = name

    def refused(self, count: int = 1) -> None:
        with self._lock:
            self.refusals += count

    def register(self, registry: CollectorRegistry) -> None:
        """Export the role and the refusals on ``registry`` (read at scrape time)."""
        registry.register(_RoleCollector(self))

    def families(self) -> list[Metric]:
        with self._lock:
            name, refusals, takeovers = self.name, self.refusals, self.takeovers
        role = GaugeMetricFamily(
            "streamlearn_role",
            "1 for the role this instance holds in its group (active learner or hot standby).",
            labels=["role"],
        )
        for each in ROLES:
            role.add_metric([each], 1.0 if each == name else 0.0)
        refused = CounterMetricFamily(
            "streamlearn_fencing_refusals",
            "Checkpoint writes refused because another instance took the model over.",
            value=float(refusals),
        )
        taken = CounterMetricFamily(
            "streamlearn_takeovers",
            "Times this instance took the model over (became the active learner).",
            value=float(takeovers),
        )
        return [role, refused, taken]


class _RoleCollector:
    def __init__(self, role: Role) -> None:
        self._role = role

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._role.families()
