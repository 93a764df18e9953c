"""The metrics the run loop and its parts report, as a Protocol (``streamlearn.interfaces``
re-exports it; the implementation is ``streamlearn.observe.telemetry.Telemetry``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["Telemetry"]


class Telemetry(Protocol):
    """The metrics the loop and its parts report (``streamlearn.observe.telemetry.Telemetry``)."""

    def received(self, n: int) -> None:
        """``n`` raw records read."""
        ...

    def learned(self, n: int, label: str = "true") -> None:
        """``n`` records learned, from true labels or (``"pseudo"``) pseudo-labels."""
        ...

    def rejected(self, reason: str) -> None:
        """One record dead-lettered for ``reason``."""
        ...

    def predictions(self, n: int) -> None:
        """``n`` predictions written for unlabeled records."""
        ...

    def abs_errors(self, errors: Sequence[float] | NDArray[np.float64]) -> None:
        """The absolute prequential errors of one batch."""
        ...

    def stage_seconds(self, stage: str, seconds: float, n: int = 1) -> None:
        """``seconds`` spent in ``stage`` (decode, learn, checkpoint) on ``n`` records."""
        ...

    def learn_latency(
        self, arrivals: NDArray[np.float64], counts: NDArray[np.int64] | None = None
    ) -> int:
        """Records learned now that arrived at ``arrivals`` (``counts[i]`` at each)."""
        ...

    def last_record(self) -> None:
        """The loop processed a record just now."""
        ...

    def divergence(self) -> None:
        """The model diverged and was restored."""
        ...

    def checkpoint_ok(self) -> None:
        """A checkpoint is durable."""
        ...

    def drift(self, detector: str, signal: str = "error") -> None:
        """A drift monitor's ``detector`` flagged a drift on ``signal``."""
        ...

    def drift_action(self, action: str) -> None:
        """A drift monitor acted (reset, rollback, swap...)."""
        ...

    def pseudo(self, decision: str, n: int = 1) -> None:
        """``n`` pseudo-label candidates ``"accepted"`` or ``"rejected"``."""
        ...
