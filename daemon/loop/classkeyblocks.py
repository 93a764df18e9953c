"""A keyed ``logistic`` run's blocks, learned by the compiled kernels (issue 14, point 9).

As ``keyblocks`` for ``sgd``: ``--key-by COLUMN`` over CSV lines whose other columns are
the features then the class, with ``--model logistic``. A block has its key column cut out
and each row's key given an id in C, is parsed as the plain layout, its targets read as
class codes (the decoder judges any other, text labels among them, as the one-model
classifier's path does: ``fast.classblock.class_codes``), and ``learn_logistic_keyed`` tests
then trains every row in its key's slot (``keys.classslots``), in stream order. The whole
stream's tally hears of the rows learned a run at a time (``ClassBlockLearner._score``, its
running log loss and loss curve by ``score_losses``). The results are the record path's to
the last bit: each key's weights, class metrics, window, both curves and drift events, the
tally, counters, dead letters and predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from streamlearn.fast.block import Parsed
from streamlearn.fast.classblock import ClassBlockLearner, LossCurve, Scored, class_codes
from streamlearn.fast.classspec import LOSS_MEAN, LOSS_N
from streamlearn.keys.classslots import ClassKeySlots, class_slot_learner
from streamlearn.keys.tally import ClassTally
from streamlearn.keys.units import KeyClassifier

from .keyblocks import KeyedBlockReader, SlotBlockPath, keyed_csv_refusal, refused, slots_for
from .paths import PathKit

if TYPE_CHECKING:
    from streamlearn.classify.space import ClassSpace

    from .keyrouter import KeyedRouter

__all__ = ["ClassKeyedBlockPath", "class_keyed_path"]


class ClassKeyedReader(KeyedBlockReader):
    """The keyed reader, each labeled row's target read as its class code (or judged)."""

    def __init__(
        self, features: Sequence[str], column: int, slots: ClassKeySlots, classes: ClassSpace
    ) -> None:
        super().__init__(features, column, slots)
        self.classes = classes

    def _doubt(self, parsed: Parsed) -> None:
        class_codes(self.classes, parsed)


def class_keyed_path(kit: PathKit) -> ClassKeyedBlockPath | None:
    """The compiled keyed ``logistic`` path for a keyed run, where it gives the record
    path's results; None (why logged once) otherwise."""
    from .keyrouter import KeyedRouter

    router = kit.router
    if not isinstance(router, KeyedRouter) or not isinstance(router.keys.tally, ClassTally):
        return None
    why = _refusal(kit, router)
    if why is not None:
        refused(why, "logistic")
        return None
    slots = slots_for(kit, router, ClassKeySlots, "logistic")
    assert isinstance(slots, ClassKeySlots)
    return ClassKeyedBlockPath(kit, kit.learner.model, router, slots)


def _refusal(kit: PathKit, router: KeyedRouter) -> str | None:
    """Why the compiled keyed ``logistic`` path cannot take this run's blocks (None: it can)."""
    keys = router.keys
    why = keyed_csv_refusal(kit)
    if why is not None:
        return why
    tally = keys.tally
    if not isinstance(tally, ClassTally) or tally.feature_names is not None:
        return "not a classification with fixed features"
    if keys.labelers is not None or router.join is not None or keys.fallback == "global":
        return "pseudo-labels, late labels or --key-fallback global see each record"
    template = keys.models.codec.fresh("")
    if not isinstance(template, KeyClassifier) or not class_slot_learner(template, template):
        return "the model is not a binary logistic (with no warm start, and drift alerts only)"
    return None


class ClassKeyedBlockPath(SlotBlockPath):
    """Blocks of keyed CSV lines learned by ``logistic`` per key in the compiled kernels."""

    name = "class-keyed-block"

    def __init__(
        self, kit: PathKit, model: object, router: KeyedRouter, slots: ClassKeySlots
    ) -> None:
        super().__init__(kit, model, router)
        tally = router.keys.tally
        assert isinstance(tally, ClassTally)
        self.tally = tally
        self.slots = self.table = slots
        features = self.decoder.features
        self.reader = ClassKeyedReader(features, self.column, slots, tally.classes)
        self.scorer = ClassBlockLearner(features, tally.classes)
        from streamlearn.fast import _kernels

        self._learn = _kernels.learn_logistic_keyed
        self._score_losses = _kernels.score_losses
        self.p: NDArray[np.float64] = np.empty(0)
        self.loss: NDArray[np.float64] = np.empty(0)

    def _outputs(self, rows: int) -> None:
        self.p = np.full(rows, np.nan)
        self.loss = np.full(rows, np.nan)

    def _run(
        self, parsed: Parsed, at: NDArray[np.int64], index: NDArray[np.int64], row: int,
        end: int, why: NDArray[np.int64],
    ) -> int:  # fmt: skip
        slots = self.table
        return self._learn(
            parsed.values, parsed.status, at, index, row, end, slots.weights, slots.lr,
            slots.state, slots.counters, slots.ring, slots.ring_y, slots.ring_pred,
            slots.ring_p, slots.points, slots.pend_err, slots.pend_idx, self.p, self.loss, why,
        )  # fmt: skip

    def _learned(
        self, parsed: Parsed, ids: NDArray[np.int64], at: NDArray[np.int64], start: int, stop: int
    ) -> None:
        """Rows ``start..stop`` were learned in their slots: the whole stream hears of them
        as ``KeyedRouter._learned`` tells it, in order."""
        router = self.kit.router
        p = self.p[start:stop]
        y = parsed.values[start:stop, -1].astype(np.int64)
        proba = np.column_stack([1.0 - p, p])
        pred = (p > proba[:, 0]).astype(np.int64)  # ``predicted``: class 1 when more probable
        self._tally(Scored(y, proba, pred, self.loss[start:stop], p.copy()))
        if router.tracks_errors:
            router.errors.arrays.append((pred != y).astype(np.float64))
        if router.predictions_all:
            label = self.tally.classes.label
            answers = [tuple(pair) for pair in proba.tolist()]
            self._write_learned(parsed, ids, start, answers, [label(c) for c in y.tolist()])

    def _tally(self, scored: Scored) -> None:
        """The whole stream's class metrics, window and curves of the rows, as
        ``ClassTally.step_with_prediction`` of each leaves them."""
        tally = self.tally
        metrics = tally.metrics
        state = np.array([metrics.loss.n, metrics.loss.get()], dtype=np.float64)
        curve = LossCurve.of(tally, len(scored.y))
        self._score_losses(scored.loss, 0, len(scored.y), state, *curve)
        mean = (float(state[LOSS_N]), float(state[LOSS_MEAN]))
        self.scorer.score_learned(tally, scored, mean, curve.made())
