"""The learner a keyed run shows the loop: the whole stream's tally, and what every key shares.

A keyed run has one learner per key (``streamlearn.keys.store``); the loop, ``inspect``, the
telemetry and the checkpoint see one learner: a tally of every key's predictions in stream
order (the whole stream's metrics, in a learner's shape), which also holds the state of
the run that is not any one key's: the ``global`` fallback model, the keys that late labels
wait under, and the run's keyed counts. It never learns (``learns`` is False: no compiled
block path takes a keyed run's records).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from streamlearn.classify.learner import ClassLearner
from streamlearn.classify.metrics import Proba, score
from streamlearn.classify.space import ClassSpace
from streamlearn.evaluator import Evaluator
from streamlearn.learner import Learner

from .stream import NoModel

if TYPE_CHECKING:
    from .pseudo import PseudoTotals

__all__ = ["ClassTally", "KeyedCounts", "RegressionTally", "Tally"]


class KeyedCounts:
    """What a keyed run counts and keeps beside the keys (checkpointed with the tally)."""

    #: The whole run's pseudo-label figures, every key's added up (``--pseudo-label``; None:
    #: none, or a checkpoint from before they were kept).
    pseudo: PseudoTotals | None = None

    def __init__(self) -> None:
        #: Labeled records learned, over every key (scored or not).
        self.learned = 0
        #: Unlabeled records of a key without a model, not predicted (``--key-fallback none``).
        self.unserved = 0
        #: Predictions made by the fallback for a key without a model.
        self.fallback_predictions = 0
        #: The ``global`` fallback: a learner of every record of every key (else None).
        self.fallback: Learner | ClassLearner | None = None
        #: Record id -> key, for the late labels of unlabeled records (oldest first).
        self.pending: OrderedDict[str, str] = OrderedDict()
        #: Objects every key's learner holds, by name (model A): the keys' states name them.
        self.shared: dict[str, object] = {}

    def wait(self, record_id: str, key: str, bound: int) -> None:
        """Note that a late label for ``record_id`` belongs to ``key`` (at most ``bound``)."""
        pending = self.pending
        pending[record_id] = key
        pending.move_to_end(record_id)
        while len(pending) > bound:
            pending.popitem(last=False)

    def summary(self) -> dict[str, Any]:
        return {
            "records_learned": self.learned,
            "unserved_unlabeled": self.unserved,
            "fallback_predictions": self.fallback_predictions,
        }


class RegressionTally(Evaluator):
    """The whole stream's regression metrics, fed every key's predictions.

    >>> tally = RegressionTally(rolling_window=2)
    >>> tally.step_with_prediction({}, 1.0, 0.5)
    >>> tally.records_scored, tally.summary()["mae"], tally.sound({"a": 1.0})
    (1, 0.5, True)
    """

    def __init__(self, rolling_window: int = 1000) -> None:
        super().__init__(NoModel(), rolling_window=rolling_window)
        self.keyed = KeyedCounts()

    def sound(self, x: dict[str, float]) -> bool:
        """True: the tally predicts nothing, so it never diverges."""
        return True


class ClassTally(ClassLearner):
    """The whole stream's class metrics, fed every key's probabilities.

    >>> tally = ClassTally(ClassSpace(binary=True), rolling_window=2)
    >>> tally.step_with_prediction({}, 1.0, (0.25, 0.75))
    >>> tally.records_learned, tally.summary()["accuracy"]
    (1, 1.0)
    """

    #: It scores, never learns.
    learns = False

    def __init__(self, classes: ClassSpace, rolling_window: int = 1000) -> None:
        super().__init__(NoModel(), classes, rolling_window=rolling_window)
        self.keyed = KeyedCounts()

    def step_with_prediction(self, x: dict[str, float], y: float, yhat: Proba) -> None:
        """Score probabilities a key's learner gave; nothing is learned."""
        self._remember(x, score(int(y), yhat, binary=self.classes.binary))

    def sound(self, x: dict[str, float]) -> bool:
        return True


#: The tally of a keyed run.
Tally = RegressionTally | ClassTally
