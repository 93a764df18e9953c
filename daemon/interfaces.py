"""The seams of the run loop: every collaborator it calls, declared as a Protocol.

Only interfaces live here (as Bytewax's ``inputs.py`` and prometheus_client's ``Collector``):
implementations are in their subsystems. An optional ability is declared (a Protocol of its
own, or a method every implementation has), never probed with ``getattr``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from streamlearn.learner import Learner
    from streamlearn.observe.telemetry import Telemetry


class ModelHost(Protocol):
    """What a drift monitor or the pseudo-label loop may use of the daemon that calls it.

    The loop passes one to ``observe``/``drain``: the learner whose model they may score,
    replace or teach, the factories of fresh models, and telemetry. They never call back
    into the loop itself.
    """

    @property
    def learner(self) -> Learner: ...

    @property
    def telemetry(self) -> Telemetry | None: ...

    @property
    def model_factory(self) -> Callable[[], Any] | None:
        """A fresh model of the run's spec (a reset), or None."""
        ...

    @property
    def warm_model_factory(self) -> Callable[[], Any] | None:
        """A fresh copy of the warm-start model A, or None without a warm start."""
        ...

    @property
    def records_seen(self) -> int:
        """Records seen so far in the stream (the next record's 0-based index)."""
        ...
