"""Errors a key's drift monitor hears of a few at a time: the River specs' keyed step.

A key's drift monitor that can only alert (``errors_only`` and not ``may_change_model``)
gives the same detections, record indexes and events whether it hears of each learned
record's error as it comes or of ``HELD`` of them at once through ``observe_errors``: no
action of it changes the key's model, and ADWIN tests only every 32 values anyway (as the
compiled keyed path's slots do, ``keys.slots``). One call for 32 records costs less than
32 calls to ``observe``, and every key of a keyed run has its own monitor.

The errors are held by the key's learner (:class:`HeldErrors`, not pickled) and heard of
before anything reads or writes its monitor: when ``HELD`` are held; when the learner is
pickled (a spill, a checkpoint); before the record path's other branches observe (a late
label, a classifier's or diverged prediction); before ``inspect --key`` reads it; and for
every key holding some (:class:`HeldOverlay`, the store's overlay) before a checkpoint, at
a checkpoint's time without a state dir, and before ``entries`` or another overlay. Only
the moment its telemetry counts a detection and the warning is logged can be later (by up
to ``HELD - 1`` of the key's records).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamlearn.interfaces import ModelHost

    from .units import KeyRegressor

__all__ = ["HELD", "HeldErrors", "HeldOverlay"]

#: Errors held for a key's monitor at most before it hears of them.
HELD = 32


class HeldErrors:
    """A key's learned records' errors its drift monitor has yet to hear of, in order."""

    __slots__ = ("errors", "host", "indexes", "overlay")

    def __init__(self, overlay: HeldOverlay, host: ModelHost) -> None:
        #: The records' 0-based stream positions, as ``observe`` takes them.
        self.indexes: list[int] = []
        #: Their absolute errors (``RegressionScoring.error``).
        self.errors: list[float] = []
        #: The learners holding errors.
        self.overlay = overlay
        #: What the monitor reports to (its telemetry).
        self.host = host


class HeldOverlay:
    """The keyed store's overlay while River specs' keys hold errors: it holds no key's
    state, and makes every learner holding errors hear of them at ``settle_all``."""

    unsettled = 0

    def __init__(self) -> None:
        #: The learners holding errors, by ``id``, in the order they started to.
        self.holding: dict[int, KeyRegressor] = {}

    def settle(self, key: str) -> None:
        return None

    def settle_all(self) -> None:
        for learner in list(self.holding.values()):
            learner.hear_held()

    def scores(self) -> Iterator[tuple[str, float, bool]]:
        return iter(())
