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
    from streamlearn.fast.block import BlockLearner

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
        self._waiting: list[float] = []

    def sound(self, x: dict[str, float]) -> bool:
        """True: the tally predicts nothing, so it never diverges."""
        return True

    def later(self, y: float, yhat: float) -> None:
        """``step_with_prediction`` of a key's prediction, in stream order, done by ``settle``
        (the router's, at the end of each batch: nothing reads the tally within one).

        >>> tally = RegressionTally(rolling_window=2)
        >>> tally.later(1.0, 0.5); tally.later(3.0, 1.0)
        >>> tally.records_scored
        0
        >>> tally.settle(); tally.records_scored, tally.summary()["mae"]
        (2, 1.25)
        """
        self._waiting += (yhat, y)

    def settle(self) -> None:
        """Score the pairs ``later`` kept, in order: a batch's at once by the compiled kernel
        (``BlockLearner.score``: the bits of ``step_with_prediction`` pair by pair)."""
        waiting = self._waiting
        if not waiting:
            return
        self._waiting = []
        count = len(waiting) // 2
        scorer = _scorer() if count >= _AT_ONCE and self.baseline is None else None
        if scorer is None:
            for at in range(0, len(waiting), 2):
                self.step_with_prediction({}, waiting[at + 1], waiting[at])
            return
        import numpy as np

        from streamlearn.fast.block import LABELED, Parsed

        pairs = np.array(waiting, dtype=np.float64).reshape(count, 2)
        status = np.full(count, LABELED, dtype=np.int8)
        parsed = Parsed(pairs, status, np.zeros(count + 1, dtype=np.int64), b"", 0, {})
        scorer.score(self, parsed, pairs[:, 0].copy(), count)

    def __getstate__(self) -> dict[str, Any]:
        self.settle()  # (a checkpoint comes between batches: nothing waits then)
        state = super().__getstate__()
        del state["_waiting"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._waiting = []


#: Pairs ``RegressionTally.settle`` scores by the compiled kernel at least (fewer: in Python).
_AT_ONCE = 16
_SCORER: list[BlockLearner | None] = []


def _scorer() -> BlockLearner | None:
    """The compiled kernels' ``BlockLearner`` (None when they are not built), made once."""
    if not _SCORER:
        from streamlearn.fast.block import BlockLearner, compiled_kernels

        kernels = compiled_kernels()
        _SCORER.append(BlockLearner([], kernels) if kernels is not None else None)
    return _SCORER[0]


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
