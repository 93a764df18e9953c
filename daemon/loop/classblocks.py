"""The compiled block path of a classifier: plain CSV lines learned by ``logistic`` or
``softmax`` in the C kernels (``streamlearn.fast.classblock``), with the record path's results.

A block is opened (parsed; the decoder judges the lines the parser doubts, text labels
among them), learned by the kernel, watched by the drift monitor on the 0/1 errors,
settled (counters, dead letters and prediction lines written in stream order, as
``ClassRouter`` writes them) and finished like any batch. Where the record path would act on
one record (a non-finite margin, a class new to the model, a monitor that replaced the
model) the block stops there and its rest goes record by record.

:func:`class_path` is ``choose_path``'s choice for a classifier.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from streamlearn.classify.learner import ClassLearner, Proba
from streamlearn.classify.metrics import class_loss, predicted
from streamlearn.fast.block import LABELED, NOTHING, REJECTED, UNLABELED
from streamlearn.fast.classblock import Scored
from streamlearn.records import Rejected

from ..interfaces import Block, BlockLearner, RecordPath
from .blocks import ROWS_AT_ONCE, CompiledBlockPath, RowBlocks, collector_paused
from .classrouter import ClassRouter
from .paths import MIN_BLOCK_LINES, FirstRecords, PathKit, RecordByRecord

if TYPE_CHECKING:
    from streamlearn.classify.space import ClassSpace
    from streamlearn.fast.block import Parsed
    from streamlearn.fast.classblock import ClassBlockLearner, ClassModel, ClassSaved

__all__ = ["ClassBlockPath", "class_path", "classes_known"]

#: River's ``_clamp_proba`` bounds, as ``classify.metrics.binary_loss`` clamps.
_LOW, _HIGH = 1e-15, 1 - 1e-15


def class_path(kit: PathKit) -> RecordPath:
    """The path of a classifier's next batches, blocks being possible (``choose_path``), on
    plain CSV: kernel blocks for ``logistic`` and ``softmax`` once the model holds a weight for
    every feature (and softmax a class), record by record until then; rows blocks for any
    other classifier, unless a drift monitor may replace it halfway through a block."""
    from streamlearn.models.logistic import LogisticRegression
    from streamlearn.models.softmax import SoftmaxRegression

    model = kit.learner.model
    if not kit.decoder.plain:
        return RecordByRecord(kit, model)
    if type(model) in (LogisticRegression, SoftmaxRegression):
        if not classes_known(kit, model):
            return FirstRecords(kit, model, lambda: classes_known(kit, model))
        return ClassBlockPath(kit, model)
    monitor = kit.monitor
    if monitor is None or not monitor.may_change_model:
        return ClassRowsBlockPath(kit, model)
    return RecordByRecord(kit, model)


def classes_known(kit: PathKit, model: object) -> bool:
    """Whether the model holds a weight for every feature of the stream (``softmax``: in
    every class, and at least one class), as the kernels need."""
    from streamlearn.models.logistic import LogisticRegression
    from streamlearn.models.softmax import SoftmaxRegression

    features = kit.decoder.features
    if features is None:
        return False
    if isinstance(model, LogisticRegression):
        return all(name in model.weights for name in features)
    if isinstance(model, SoftmaxRegression):
        weights = model.weights
        return bool(model.classes) and all(
            name in weights[c] for c in model.classes for name in features
        )
    return False


class ClassBlockPath(
    CompiledBlockPath["Parsed", "ClassSaved", ClassLearner, "ClassModel"],
):
    """Blocks of plain CSV lines learned by ``logistic`` or ``softmax`` in the kernels.

    ``CompiledBlockPath.process_block`` with the class learner: the monitor sees the 0/1
    errors, and the rows are written out as ``ClassRouter`` writes them.
    """

    name = "class-block"

    def __init__(self, kit: PathKit, model: object) -> None:
        super().__init__(kit, model)
        learner, router = kit.learner, kit.router
        assert isinstance(learner, ClassLearner) and isinstance(router, ClassRouter)
        self.learner = learner
        self.router = router
        self.fast: ClassBlockLearner | None = None

    def _learner(
        self, lines: int
    ) -> BlockLearner[Parsed, ClassSaved, ClassLearner, ClassModel] | None:
        return self._block_learner(lines)

    def _block_learner(self, lines: int) -> ClassBlockLearner | None:
        if lines < MIN_BLOCK_LINES:
            return None
        if self.fast is None:
            from streamlearn.fast.classblock import ClassBlockLearner, compiled_class_kernels

            kernels = compiled_class_kernels()
            if kernels is None:
                self.kit.compiled.missing = True  # record by record from here on
                return None
            features = self.kit.decoder.features
            assert features is not None  # the plain CSV layout names its columns
            self.fast = ClassBlockLearner(features, self.learner.classes, kernels)
        return self.fast

    def _target(self) -> tuple[ClassLearner, ClassModel]:
        model: ClassModel = self.learner.model
        return self.learner, model

    # -- the steps of a block, for class probabilities ----------------------------------------

    @staticmethod
    def _errors(
        parsed: Parsed, proba: NDArray[np.float64], rows: NDArray[np.intp]
    ) -> NDArray[np.float64]:
        """The 0/1 errors of ``rows``: the first most probable class by code is not the label."""
        if proba.shape[1] == 2:  # binary: class 1 when it is the more probable
            chosen = proba[rows, 1] > proba[rows, 0]
        else:
            chosen = np.argmax(proba[rows], axis=1)
        wrong: NDArray[np.float64] = (chosen != parsed.values[rows, -1]).astype(np.float64)
        return wrong

    def _observe(
        self, parsed: Parsed, yhat: NDArray[np.float64], done: int, model: object
    ) -> int | None:
        """Show the monitor each learned row's 0/1 error (``yhat``: the probabilities by
        code); the row where it changed the model."""
        monitor, router = self.kit.monitor, self.router
        assert monitor is not None
        learner, host = self.learner, router.host
        status = parsed.status[:done]
        learned = np.flatnonzero(status == LABELED)
        seen = np.cumsum(status != NOTHING)[learned] + (router.counters.records_seen - 1)
        errors = self._errors(parsed, yhat, learned)
        start = 0
        while monitor.errors_only and start < len(seen):
            start += monitor.observe_errors(seen[start:], errors[start:], host)
            if learner.model is not model:
                return int(learned[start - 1])
        if start == len(seen):
            return None
        features = self._features(parsed)
        width = len(learner.classes)
        for row, index in zip(learned[start:].tolist(), seen[start:].tolist(), strict=True):
            values = parsed.values[row].tolist()
            proba = tuple(yhat[row, :width].tolist())
            monitor.observe(
                index, dict(zip(features, values, strict=False)), values[-1], proba, host
            )
            if learner.model is not model:
                return int(row)
        return None

    def _settle(self, parsed: Parsed, yhat: NDArray[np.float64], done: int) -> None:
        """Counters, dead letters, prediction lines and errors of rows ``0..done``, in order."""
        router = self.router
        counters = router.counters
        status = parsed.status[:done]
        learned = status == LABELED
        rows = np.flatnonzero(learned)
        if router.tracks_errors:
            router.errors.arrays.append(self._errors(parsed, yhat, rows))
        others = np.flatnonzero(~learned).tolist()  # usually none, or the header
        kinds = status[others].tolist()
        counters.records_seen += done - kinds.count(NOTHING)
        if rows.size:  # the model-is-finite check before a checkpoint predicts it
            router.last_x = parsed.x(int(rows[-1]), self._features(parsed))
        if router.predictions_all:  # every row, in order: the labeled ones write theirs too
            others, kinds = list(range(done)), status.tolist()
        width = len(self.learner.classes)
        for row, kind in zip(others, kinds, strict=True):
            if kind == LABELED:  # as ``ClassRouter.route`` with ``predictions_all``
                proba = tuple(yhat[row, :width].tolist())
                label = float(parsed.values[row, -1])
                router.write_class_scored(None, parsed.raw(row).where(), proba, label)
            elif kind == REJECTED:
                item = parsed.judged[row]
                if isinstance(item, Rejected):
                    router.reject(item)
            elif kind == UNLABELED:  # as ``ClassRouter.unlabeled``; the kernel predicted it
                counters.records_unlabeled += 1
                proba = tuple(yhat[row, :width].tolist())
                router.write_class_prediction(None, parsed.raw(row).where(), proba)


class ClassRowsBlockPath(RowBlocks, ClassBlockPath):
    """Blocks of plain CSV lines learned by any other classifier (River's), a row at a time.

    The compiled parser reads the block (the decoder judges the lines it doubts, text labels
    among them); the model is asked for its probabilities, then learns, each record in order,
    as ``ClassLearner.step`` asks it; the class metrics, window and curve are then updated for
    the whole block at once (``ClassBlockLearner.score``). The drift monitor (one that can
    only alert: ``class_path``) watches the block. A record the model cannot predict yet, or
    predicts NaN for, and the rest of the block go record by record.
    """

    name = "class-rows-block"

    def process_block(self, block: Block) -> None:
        fast = self._block_learner(block.lines)
        if fast is None:
            self.router.process(block.raws())
            return
        # The collector waits for the whole block, not only the model's loop: the block's
        # short-lived containers (probabilities, curve points, output rows) then die by
        # reference counting, never counted into a collection that would age them and, every
        # so often, set off a full one over the whole heap (60-90 ms each).
        with collector_paused():
            started = time.perf_counter()
            parsed = fast.parse(block, self.kit.decoder)
            start = self._parsed(started)
            yhat, scored, done = self._learn_rows(parsed)
            fast.score(self.learner, scored)
            if self.kit.monitor is not None:
                # It can only alert: the model that learned the block stays.
                self._observe(parsed, yhat, done, self.learner.model)
            self._close(parsed, yhat, done, start)

    def _learn_rows(self, parsed: Parsed) -> tuple[NDArray[np.float64], Scored, int]:
        """Probabilities, then learning, of each record of a parsed block, in order: the
        probabilities of each row by code, the learned rows scored, and the row it stopped at
        (``parsed.stop``, or a row ``ClassLearner.step`` would not score)."""
        space = self.learner.classes
        answers, probas, predicted, done = self._predict_learn(parsed)
        yhat = np.zeros((parsed.rows, len(space)))
        at = np.array(predicted, dtype=np.intp)
        if predicted:
            yhat[at] = np.array(probas, dtype=np.float64)
        labeled = np.flatnonzero(parsed.status[at] == LABELED)
        rows = at[labeled]
        y = parsed.values[rows, -1].astype(np.int64)
        proba = yhat[rows]
        chosen = [answers[i] for i in labeled.tolist()]
        if space.binary:
            pred, loss, p_pos = _binary_scores(space, chosen, y, proba)
        else:
            pred, loss = _class_scores(space, chosen, y, proba)
            p_pos = np.zeros(len(rows))
        return yhat, Scored(y, proba, pred, loss, p_pos), done

    def _predict_learn(
        self, parsed: Parsed
    ) -> tuple[list[Mapping[Hashable, float]], list[Proba], list[int], int]:
        """The model's answers and probabilities by code of the rows it predicted (before
        learning each labeled one), those rows, and the row it stopped at: no answer yet, or
        one not all finite (the record path's to handle), else ``parsed.stop``."""
        learner = self.learner
        space, model = learner.classes, learner.model
        binary = space.binary
        names = space.labels  # multiclass: what the model learns, by code
        # ``ClassSpace.proba`` and ``finite``, inline: the classes read from an answer, by
        # code; two of them (any binary model, a two-class one) read without a loop.
        keys: tuple[Hashable, ...] = (False, True) if binary else tuple(names)
        pair = len(keys) == 2
        first_key, second_key = (keys[0], keys[1]) if pair else (None, None)
        predict, learn = model.predict_proba_one, model.learn_one
        features = self._features(parsed)
        stop = parsed.stop
        values = parsed.values[:stop]
        kinds = parsed.status[:stop].tolist()
        codes = values[:, -1].tolist()
        labeled, unlabeled = LABELED, UNLABELED
        answers: list[Mapping[Hashable, float]] = []
        probas: list[Proba] = []
        predicted: list[int] = []
        keep_answer, keep_proba, keep_row = answers.append, probas.append, predicted.append
        with collector_paused():
            # The rows become Python lists a slice at a time: fewer alive at once.
            for first in range(0, stop, ROWS_AT_ONCE):
                last = min(first + ROWS_AT_ONCE, stop)
                chunk = values[first:last].tolist()
                for row, numbers, kind, code in zip(  # noqa: B905 (equal lengths)
                    range(first, last), chunk, kinds[first:last], codes[first:last]
                ):
                    if kind > unlabeled:  # rejected, header, blank: ``_settle``'s
                        continue
                    x = dict(zip(features, numbers))  # noqa: B905 (the target left out)
                    answer = predict(x)
                    if not answer:  # cannot predict yet: the record path's to handle
                        return answers, probas, predicted, row
                    get = answer.get
                    if pair:
                        low, high = float(get(first_key, 0.0)), float(get(second_key, 0.0))
                        total = low + high  # ``finite``: NaN or infinite if either is
                        proba: Proba = (low, high)
                    else:
                        proba = tuple([float(get(key, 0.0)) for key in keys])
                        total = sum(proba)
                    if total - total != 0.0:  # diverged: the record path's to handle
                        return answers, probas, predicted, row
                    keep_answer(answer)
                    keep_proba(proba)
                    keep_row(row)
                    if kind == labeled:
                        learn(x, code == 1.0 if binary else names[int(code)])
        return answers, probas, predicted, stop


def _binary_scores(
    space: ClassSpace,
    answers: list[Mapping[Hashable, float]],
    y: NDArray[np.int64],
    proba: NDArray[np.float64],
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """``score`` of each learned row of a binary model, a block at a time, the same bits:
    the class chosen, the log loss and P(positive)."""
    p_neg, p_pos = proba[:, 0], proba[:, 1]
    # River's ``max(answer, key=answer.get)``: the larger of the two; where they tie, or the
    # answer is not exactly the two classes, as ``ClassLearner.step`` asks it.
    pred = (p_pos > p_neg).astype(np.int64)
    unsure = set(np.flatnonzero(p_pos == p_neg).tolist())
    unsure.update(
        i
        for i, answer in enumerate(answers)
        if len(answer) != 2 or False not in answer or True not in answer
    )
    for i in unsure:
        answer = answers[i]
        choice = space.code_of(max(answer, key=answer.__getitem__))
        pred[i] = predicted(proba[i].tolist()) if choice is None else choice
    # ``binary_loss``: the probability clamped as River clamps it, then one log a record.
    clamped = np.maximum(np.minimum(p_pos, _HIGH), _LOW)
    kept = np.where(y != 0, clamped, 1 - clamped)
    loss = -np.fromiter(map(math.log, kept.tolist()), dtype=np.float64, count=len(kept))
    return pred, loss, p_pos.copy()


def _class_scores(
    space: ClassSpace,
    answers: list[Mapping[Hashable, float]],
    y: NDArray[np.int64],
    proba: NDArray[np.float64],
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """``score`` of each learned row of a multiclass model: the class chosen, the
    cross-entropy (0 for a class the model's answer leaves out, as River's).

    A block at a time where the answer names exactly the space's classes and one of them is
    the most probable: River's ``max(answer, key=answer.get)`` is then the largest
    probability by code, whatever the dict's order; the other rows as ``ClassLearner.step``
    scores them, one by one.
    """
    names = space.labels
    count = len(y)
    classes = set(names)
    complete = np.fromiter((answer.keys() == classes for answer in answers), bool, count)
    pred = np.argmax(proba, axis=1).astype(np.int64)
    top = proba[np.arange(count), pred]
    single = (proba == top[:, None]).sum(axis=1) == 1
    # ``class_loss``: the probability clamped as River clamps it, then one log a record.
    given = np.maximum(np.minimum(proba[np.arange(count), y], _HIGH), _LOW)
    loss = -np.fromiter(map(math.log, given.tolist()), dtype=np.float64, count=count)
    for i in np.flatnonzero(~(complete & single)).tolist():
        answer, row, code = answers[i], proba[i].tolist(), int(y[i])
        choice = space.code_of(max(answer, key=answer.__getitem__))
        pred[i] = predicted(row) if choice is None else choice
        loss[i] = class_loss(code, row, names[code] in answer)
    return pred, loss
