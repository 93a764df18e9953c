"""What the loop counts, and the ``ModelHost`` it hands its collaborators instead of itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..interfaces import LearnerLike, Telemetry


@dataclass
class Counters:
    """What the daemon has seen; all of it goes into the checkpoint."""

    records_seen: int = 0
    records_rejected: int = 0
    records_unlabeled: int = 0
    predictions: int = 0
    divergence_events: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "records_seen": self.records_seen,
            "records_rejected": self.records_rejected,
            "records_unlabeled": self.records_unlabeled,
            "predictions": self.predictions,
            "divergence_events": self.divergence_events,
            "rejected_by_reason": dict(self.rejected_by_reason),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counters:
        return cls(
            records_seen=int(data.get("records_seen", 0)),
            records_rejected=int(data.get("records_rejected", 0)),
            records_unlabeled=int(data.get("records_unlabeled", 0)),
            predictions=int(data.get("predictions", 0)),
            divergence_events=int(data.get("divergence_events", 0)),
            rejected_by_reason=dict(data.get("rejected_by_reason", {})),
        )


@dataclass
class LoopHost:
    """The ``streamlearn.interfaces.ModelHost`` a drift monitor or the pseudo-label loop gets.

    The learner they may score, replace or teach, the factories of fresh models, telemetry
    (set once the HTTP side is up) and the counters. The loop's parts read ``telemetry``
    here too, so that setting it once reaches them all.
    """

    learner: LearnerLike
    counters: Counters
    telemetry: Telemetry | None = None
    model_factory: Callable[[], Any] | None = None
    warm_model_factory: Callable[[], Any] | None = None

    @property
    def records_seen(self) -> int:
        """Records seen so far in the stream (the next record's 0-based index)."""
        return self.counters.records_seen
