"""The learner of one key: a ``Learner`` or ``ClassLearner`` with the key's own drift monitor
and pseudo-label side loop.

Both are pickled with the learner, so a key spilled to the state store and read back
keeps its detector's state, events and challenger, and its pseudo-label queue and teacher;
each key's drift and pseudo-labels are its own. A learner's rolling window is pickled as far
as it is filled (``streamlearn.rings``): a key of a few records is a few hundred bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamlearn.classify.learner import ClassLearner
from streamlearn.learner import Learner

if TYPE_CHECKING:
    from streamlearn.interfaces import Monitor
    from streamlearn.labels.pseudo import PseudoLabeler

    from .held import HeldErrors

__all__ = ["KeyClassifier", "KeyRegressor"]


class KeyRegressor(Learner):
    """A key's regression learner.

    >>> from streamlearn.models.sgd import SGDRegressor
    >>> learner = KeyRegressor(SGDRegressor(lr=0.1))
    >>> learner.step({"x": 1.0}, 2.0), learner.drift is None
    (0.0, True)
    """

    #: The key's drift monitor (None: ``--drift-detector none``).
    drift: Monitor | None = None
    #: The key's pseudo-label side loop (None: no ``--pseudo-label``; ``keys.pseudo``).
    pseudo: PseudoLabeler | None = None
    #: Errors ``drift`` has yet to hear of (``keys.held``); None: it hears of each at once.
    held: HeldErrors | None = None

    def hear_held(self) -> None:
        """``drift`` hears of the errors held for it, in order (``keys.held``)."""
        held = self.held
        if held is None or not held.errors:
            return
        indexes, errors = held.indexes, held.errors
        held.indexes, held.errors = [], []
        del held.overlay.holding[id(self)]
        assert self.drift is not None
        self.drift.observe_errors(indexes, errors, held.host)

    def __getstate__(self) -> dict[str, Any]:
        self.hear_held()  # the monitor pickled has heard of every error learned
        state = super().__getstate__()
        state.pop("held", None)
        return state


class KeyClassifier(ClassLearner):
    """A key's classification learner."""

    #: The key's drift monitor (None: ``--drift-detector none``).
    drift: Monitor | None = None
    #: The key's pseudo-label side loop (None: no ``--pseudo-label``; ``keys.pseudo``).
    pseudo: PseudoLabeler | None = None
