"""The learner of one key: a ``Learner`` or ``ClassLearner`` with the key's own drift monitor.

The monitor is pickled with the learner, so a key spilled to the state store and read back
keeps its detector's state, events and challenger; each key's drift is its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamlearn.classify.learner import ClassLearner
from streamlearn.learner import Learner

if TYPE_CHECKING:
    from streamlearn.interfaces import Monitor

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


class KeyClassifier(ClassLearner):
    """A key's classification learner."""

    #: The key's drift monitor (None: ``--drift-detector none``).
    drift: Monitor | None = None
