"""Routing the records of a keyed run (``--key-by``): each record to its key's own learner.

A labeled record is tested then trained on by its key's learner (``KeyedModels.get``: made
new, or read back from the state store), its prediction scored in the whole stream's tally
too; an unlabeled one is predicted by its key's learner, or by ``--key-fallback`` for a key
without a model; a late label joins by id and is learned by the key its features came with.
A key whose learner diverges (NaN/inf) gets its last written state back (else a fresh
learner): the divergence guard is each key's own, and so is its drift monitor. The block
paths of a keyed run (``keyblocks``: sgd in the kernels; ``keyrows``: any other model, a
parsed row at a time through ``keyed_step``) give the same results.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

from streamlearn.classify.learner import ClassLearner, finite
from streamlearn.classify.metrics import Proba
from streamlearn.classify.task import error
from streamlearn.keys.held import HELD, HeldErrors, HeldOverlay
from streamlearn.keys.overlay import NO_OVERLAY
from streamlearn.keys.run import KeyedRun, KeyLearner
from streamlearn.keys.store import KeyRejected
from streamlearn.keys.tally import ClassTally, RegressionTally
from streamlearn.keys.units import KeyClassifier, KeyRegressor
from streamlearn.records import Decoded, Label, Record, Rejected
from streamlearn.sinks.jsonlines import Sink
from streamlearn.sources.base import Source

from ..interfaces import Decoder, LabelJoin
from .blocks import collector_paused
from .classrouter import prediction_line
from .guard import DivergenceGuard
from .host import LoopHost
from .router import Router

__all__ = ["KeyedRouter", "KeyedStep", "RecordOf"]

log = logging.getLogger(__name__)

#: A key's prediction: a regressor's value or a classifier's probabilities by class code.
Answer = float | Proba
#: A labeled record as ``KeyedRouter.keyed_step`` takes it: the record, or what makes it.
RecordOf = Record | Callable[[], Record]
#: ``KeyedRouter.keyed_step``: test-then-train of ``(key, x, y, record)``.
KeyedStep = Callable[[str | None, dict[str, float], float, RecordOf], None]


def _record(item: RecordOf) -> Record:
    return item if isinstance(item, Record) else item()


class KeyedRouter(Router):
    """``Router`` of a keyed run: the same sinks and counters, one learner per key."""

    keyed = True

    def __init__(
        self,
        host: LoopHost,
        decoder: Decoder,
        source: Source,
        dead_letters: Sink,
        predictions: Sink,
        guard: DivergenceGuard,
        *,
        keys: KeyedRun,
        join: LabelJoin | None = None,
        predictions_all: bool = False,
        **unused: Any,
    ) -> None:
        super().__init__(
            host, decoder, source, dead_letters, predictions, guard,
            join=join, predictions_all=predictions_all,
        )  # fmt: skip
        self.keys = keys
        overlay = keys.models.overlay
        if overlay is NO_OVERLAY:
            overlay = keys.models.overlay = HeldOverlay()
        #: The store's overlay of errors held for keys' monitors (``keys.held``); the
        #: keyed step holds none once another overlay (the compiled keyed path's) is there.
        self._held = overlay if isinstance(overlay, HeldOverlay) else HeldOverlay()
        tally = keys.tally
        self.class_tally = tally if isinstance(tally, ClassTally) else None

    # -- the record path -------------------------------------------------------------------

    def route(self, items: list[Decoded]) -> None:
        """Test-then-train in each record's key, predict, dead-letter or join, in order."""
        counters = self.counters
        learn = self._labeled_step()
        # As a River block (``blocks.collector_paused``): a key's model makes and keeps
        # small objects, and young collections would walk every key's model again.
        with collector_paused():
            for item in items:
                if item is None:  # a header or blank line: not a record
                    continue
                counters.records_seen += 1
                if type(item) is Record:
                    if item.y is None:
                        self.unlabeled(item)
                    else:
                        learn(item, item.y)
                elif type(item) is Rejected:
                    self.reject(item)
                elif type(item) is Label:
                    self.late_label(item)
        tally = self.keys.tally
        if isinstance(tally, RegressionTally):
            tally.settle()  # the batch's predictions, scored in the whole stream's tally

    def _learner(self, key: str | None, item: Record | Label) -> KeyLearner | None:
        """The learner of ``key`` to learn (None: the key is refused, dead-lettered)."""
        try:
            if key is None:
                raise KeyRejected("missing_key", "the record has no key")
            return self.keys.models.get(key)
        except KeyRejected as exc:
            self.reject(Rejected(exc.reason, str(exc), item.raw))
            return None

    def _labeled_step(self) -> Callable[[Record, float], None]:
        """Test-then-train of one labeled record in its key (``keyed_step``'s, for a record)."""
        step = self.keyed_step()

        def learn(item: Record, y: float) -> None:
            step(item.key, item.x, y, item)

        return learn

    def keyed_step(self) -> KeyedStep:
        """Test-then-train of one labeled record in its key, bound to this batch's
        collaborators (read once a batch, not once a record): ``step(key, x, y, item)``.

        ``item`` is the record, or what makes it (a block's row, ``keyrows``): only a dead
        letter, a diverged or classifier's prediction and ``--predictions-all`` need it.
        """
        keys = self.keys
        get = keys.models.get
        counts = keys.tally.keyed
        regression = self.class_tally is None
        errors = self.errors.floats if regression and self.tracks_errors else None
        tally = keys.tally
        score = tally.later if isinstance(tally, RegressionTally) else None
        side_loops = keys.labelers is not None
        every = self.predictions_all
        host = self._key_host()
        # Errors held for alert-only monitors (``keys.held``), while no other overlay is there
        overlay = self._held
        hold = keys.models.overlay is overlay
        holding = overlay.holding
        hold_errors = self._hold_errors

        def step(key: str | None, x: dict[str, float], y: float, item: RecordOf) -> None:
            if key is None:
                self._learner(key, _record(item))  # dead-lettered
                return
            try:
                learner = get(key)
            except KeyRejected as exc:
                self.reject(Rejected(exc.reason, str(exc), _record(item).raw))
                return
            yhat: Answer | None = learner.step(x, y)
            if counts.fallback is not None:
                self._learn_fallback(x, y)
            if yhat is None:  # learned, not scored: the key's model could not predict it yet
                counts.learned += 1
                return
            if score is None or isinstance(yhat, tuple) or yhat - yhat != 0.0:
                # a classifier's, or diverged
                if type(learner) is KeyRegressor:
                    learner.hear_held()  # before the restore drops its monitor
                self._learned(_record(item), key, learner, y, yhat)
                return
            counts.learned += 1
            score(y, yhat)
            if errors is not None:
                errors.append(abs(y - yhat))
            if side_loops:
                self._teach(learner, x, y, yhat)
            if isinstance(learner, KeyRegressor) and learner.drift is not None:
                held = learner.held if hold else None
                if held is None and hold:
                    held = hold_errors(learner)
                if held is not None:  # its monitor hears of them HELD at a time
                    pend = held.errors
                    if not pend:
                        holding[id(learner)] = learner
                    pend.append(abs(y - yhat))
                    held.indexes.append(self.counters.records_seen - 1)
                    if len(pend) == HELD:
                        learner.hear_held()
                else:
                    host.learner = learner
                    host.telemetry = self.host.telemetry
                    learner.drift.observe(self.counters.records_seen - 1, x, y, yhat, host)
            if every:
                record = _record(item)
                line = self.output_line(record.id, record.raw.where(), key, yhat)
                line["label"] = y
                self.predictions.write(line)

        return step

    def _hold_errors(self, learner: KeyRegressor) -> HeldErrors | None:
        """What holds ``learner``'s errors from now on if its monitor hears of them a few at a
        time (``keys.held``): one that can only alert; else None."""
        drift = learner.drift
        if drift is None or not drift.errors_only or drift.may_change_model:
            return None
        held = learner.held = HeldErrors(self._held, self.host)
        return held

    def hear_held(self) -> None:
        """Every key's monitor hears of the errors held for it (a checkpoint's time without
        a state dir: the drift telemetry follows)."""
        self._held.settle_all()

    def _learned(self, item: Record, key: str, learner: KeyLearner, y: float, yhat: Answer) -> None:
        """The rest of a labeled record's test-then-train, once its key learned it: a
        classifier's, or one whose prediction diverged (the key's state is restored)."""
        x = item.x
        if self._bad(yhat):
            self._restore(key, item.raw.where(), yhat)
            return
        self.keys.tally.keyed.learned += 1
        self._scored(x, y, yhat)
        self._teach(learner, x, y, yhat)
        self._observe(learner, x, y, yhat)
        if self.predictions_all:
            line = self.output_line(item.id, item.raw.where(), key, yhat)
            line["label"] = self._label(y)
            self.predictions.write(line)

    def _learn_fallback(self, x: dict[str, float], y: float) -> None:
        """The ``global`` fallback learns every labeled record (a fresh one if it diverged)."""
        counts = self.keys.tally.keyed
        fallback = counts.fallback
        if fallback is None:
            return
        yhat: Answer | None = fallback.step(x, y)
        if yhat is not None and self._bad(yhat):
            log.error("the global fallback model diverged (prediction %s); it starts afresh", yhat)
            counts.fallback = self.keys.models.codec.fresh("")

    def _scored(self, x: dict[str, float], y: float, yhat: Answer) -> None:
        """The whole stream's tally and the batch's errors hear of a key's prediction."""
        tally = self.keys.tally
        if isinstance(tally, ClassTally):
            proba = cast(Proba, yhat)
            tally.step_with_prediction(x, y, proba)
            if self.tracks_errors:
                self.errors.append(error(y, proba))
        else:
            value = cast(float, yhat)
            tally.later(y, value)
            if self.tracks_errors:
                self.errors.append(abs(y - value))

    def _observe(self, learner: KeyLearner, x: dict[str, float], y: float, yhat: Answer) -> None:
        """The key's own drift monitor hears of its learned record; its actions (reset,
        rollback, a challenger) act on the key's learner only."""
        if not isinstance(learner, KeyRegressor | KeyClassifier) or learner.drift is None:
            return
        if isinstance(learner, KeyRegressor):
            learner.hear_held()  # in order: the errors held come first
        learner.drift.observe(self.counters.records_seen - 1, x, y, yhat, self._own(learner))

    def _own(self, learner: KeyLearner) -> LoopHost:
        """The ``ModelHost`` of a key's parts: its learner, the run's counters and telemetry."""
        host, keys = self.host, self.keys
        return LoopHost(learner, host.counters, host.telemetry, keys.model_factory,
                        keys.warm_model_factory)  # fmt: skip

    def _key_host(self) -> LoopHost:
        """One ``_own`` host for a batch's drift monitors, its learner set before each call
        (no monitor keeps the host it is given: it acts through it during the call)."""
        return self._own(self.keys.tally)

    def _teach(self, learner: KeyLearner, x: dict[str, float], y: float, yhat: Answer) -> None:
        """The key's pseudo-label loop hears of its true label (its teacher and twin learn it)."""
        labelers = self.keys.labelers
        if labelers is not None:
            labelers.teach(learner, x, y, yhat, self._own(learner))

    def end_of_replay(self) -> None:
        """A finished replay decides each key's last, partial pseudo-label window too."""
        labelers = self.keys.labelers
        if labelers is None:
            return
        models = self.keys.models
        for key in [key for key, _, _ in models.entries()]:
            learner = models.peek(key)
            if not isinstance(learner, KeyRegressor | KeyClassifier) or learner.pseudo is None:
                continue
            if learner.pseudo.pending:
                models.get(key)  # changed: written at the next checkpoint
                labelers.flush(learner, self._own(learner))

    def _bad(self, yhat: Answer) -> bool:
        if isinstance(yhat, tuple):
            return not finite(yhat)
        return yhat - yhat != 0.0

    def _restore(self, key: str, where: dict[str, object], value: Answer) -> None:
        """``key``'s learner diverged: its last written state (else a fresh one) takes over."""
        counters = self.counters
        counters.divergence_events += 1
        telemetry = self.host.telemetry
        if telemetry is not None:
            telemetry.divergence()
        models = self.keys.models
        saved = models.saved(key)
        learner = saved if saved is not None else models.codec.fresh(key)
        if self.keys.labelers is not None:  # the run's pseudo-label figures follow the key's
            self.keys.labelers.replaced(models.peek(key), learner)
        models.replace(key, learner)
        restored = "its last written state" if saved is not None else "a fresh model"
        log.error("the model of key %r diverged (prediction %s at %s); restored %s",
                  key, value, where, restored)  # fmt: skip

    # -- predictions -------------------------------------------------------------------------

    def _label(self, y: float) -> object:
        classes = self.class_tally
        return classes.classes.label(y) if classes is not None else y

    def output_line(
        self, record_id: str | None, where: dict[str, object], key: str, yhat: Answer
    ) -> dict[str, Any]:
        """An output line: as a run of one model writes it, with the record's key."""
        tally = self.class_tally
        if tally is not None:
            line = prediction_line(tally, record_id, where, cast(Proba, yhat))
        else:
            line = {"id": record_id, "position": where, "prediction": yhat}
        line["key"] = key
        return line

    def unlabeled(self, item: Record) -> None:
        """Predict it with its key's learner, else the fallback (never serving NaN); then it
        waits in the join for its label, with its key."""
        self.counters.records_unlabeled += 1
        key = item.key
        assert key is not None  # the decoder gives every record its key
        keys = self.keys
        learner = keys.models.peek(key)
        served_by = None
        if learner is None or not learner.records_learned:
            learner, served_by = keys.fallback_learner(), keys.fallback
            if learner is None:
                self._unserved(key)
                return
        yhat: Answer | None = learner.serve(item.x)
        if yhat is None or self._bad(yhat):
            return  # the model cannot predict this record yet: nothing to serve
        line = self.output_line(item.id, item.raw.where(), key, yhat)
        if served_by is not None:
            line["fallback"] = served_by
            keys.tally.keyed.fallback_predictions += 1
        self.counters.predictions += 1
        self.predictions.write(line)
        telemetry = self.host.telemetry
        if telemetry is not None:
            telemetry.predictions(1)
        index = self.counters.records_seen - 1
        if self.join is not None and item.id is not None:
            self.join.remember(item, yhat, index)
            keys.tally.keyed.wait(item.id, key, keys.pending_bound)
        if keys.labelers is not None and served_by is None:
            # Only a key's own model's predictions: a key without one has no loop yet.
            learner = keys.models.get(key)  # its loop changes: written at the next checkpoint
            keys.labelers.offer(learner, item, yhat, index, self._own(learner))

    def _unserved(self, key: str) -> None:
        counts = self.keys.tally.keyed
        counts.unserved += 1
        if counts.unserved == 1 or counts.unserved % 10_000 == 0:
            log.info(
                "no prediction for an unlabeled record of key %r: the key has no model yet "
                "and --key-fallback is none (%d such records so far)",
                key,
                counts.unserved,
            )

    def late_label(self, item: Label) -> None:
        """Join a late label to its waiting features; the key they came with learns them."""
        waiting = self.keys.tally.keyed.pending
        audits = self.keys.labelers.audits if self.keys.labelers is not None else None
        if audits is not None:
            audits.key = waiting.get(item.id)  # a pseudo-label's audit goes to its key
        try:
            pending = self.join.take(item, self.counters.records_seen - 1) if self.join else None
        finally:
            if audits is not None:
                audits.key = None
        key = waiting.pop(item.id, None)
        if pending is None or key is None:
            self.reject(
                Rejected("unjoined_label", f"no pending features for id {item.id!r}", item.raw)
            )
            return
        learner = self._learner(key, item)
        if learner is None:
            return
        yhat: Answer = pending.yhat
        if isinstance(learner, ClassLearner):
            learner.step_with_prediction(pending.x, item.y, cast(Proba, yhat))
        else:
            learner.step_with_prediction(pending.x, item.y, cast(float, yhat))
        self._learn_fallback(pending.x, item.y)
        self.keys.tally.keyed.learned += 1
        self._scored(pending.x, item.y, yhat)
        self._teach(learner, pending.x, item.y, yhat)
        self._observe(learner, pending.x, item.y, yhat)
