"""Routing decoded records, one at a time: each goes where it belongs, in stream order.

A labeled record is tested then trained on (prequential); an unlabeled one gets a
prediction, waits in the label join and is offered to the pseudo-label loop; a rejected
one goes to the dead letters; a late label is joined to the features that waited for it.
After each batch: the pseudo-label loop learns what it decided, the divergence guard looks
at the batch's errors, and telemetry hears of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from streamlearn.learner import Learner
from streamlearn.records import Decoded, Label, Record, Rejected
from streamlearn.sinks.jsonlines import Sink
from streamlearn.sources.base import Raw, Source

from ..interfaces import Decoder, LabelJoin, Monitor, Prediction, PseudoLoop
from .batch import BatchErrors, BatchStart, learned_arrivals
from .guard import DivergenceGuard
from .host import LoopHost


class Router:
    """Sends decoded items to the learner, the sinks and the optional parts, and reports batches.

    It owns what the record path and the block paths share: the counters (through the
    host), the batch's errors, and the last record learned (which a checkpoint predicts to
    make sure the model it stores is finite).
    """

    #: A keyed run's router (``keyrouter.KeyedRouter``): one learner per key, no block path.
    keyed = False

    def __init__(
        self,
        host: LoopHost,
        decoder: Decoder,
        source: Source,
        dead_letters: Sink,
        predictions: Sink,
        guard: DivergenceGuard,
        *,
        pseudo: PseudoLoop | None = None,
        join: LabelJoin | None = None,
        monitor: Monitor | None = None,
        predictions_all: bool = False,
    ) -> None:
        self.host = host
        self.counters = host.counters
        self.decoder = decoder
        self.source = source
        self.dead_letters = dead_letters
        self.predictions = predictions
        self.guard = guard
        self.pseudo = pseudo
        self.join = join
        self.monitor = monitor
        self.errors = BatchErrors()
        #: Write the prediction of every labeled record too, made before it was learned, with
        #: its label (``--predictions-all``, like ``vw -p``), among the unlabeled ones' in
        #: stream order.
        self.predictions_all = predictions_all
        #: The features of the last record learned (None before the first).
        self.last_x: dict[str, float] | None = None
        self._source_name = source.describe()

    @property
    def regressor(self) -> Learner:
        """The learner, a regressor's (``classrouter.ClassRouter`` routes a classifier's)."""
        learner = self.host.learner
        assert isinstance(learner, Learner)
        return learner

    @property
    def tracks_errors(self) -> bool:
        """Whether the loop keeps each batch's absolute errors (telemetry, drift, guard)."""
        return self.host.telemetry is not None or self.monitor is not None or self.guard.factor > 0

    # -- the record path -------------------------------------------------------------------

    def process(self, batch: Sequence[Raw]) -> None:
        """Decode and route one batch of raw items, then finish it."""
        started = time.perf_counter()
        items = self.decoder.decode_batch(batch)
        decoded = time.perf_counter()
        learned = self.host.learner.records_learned
        start = BatchStart(self.counters.records_seen, learned, decoded - started, decoded)
        self.route(items)
        self.finish_batch(start, items)

    def process_items(self, items: list[Decoded], join: LabelJoin | None = None) -> None:
        """Route items from elsewhere than the source (HTTP ``POST /learn``) as one batch,
        counted like the stream's; their late labels join in ``join`` when given (else in
        the run's join). They have no arrival times: the learn latency stays the stream's."""
        start = BatchStart(
            self.counters.records_seen, self.host.learner.records_learned, 0.0, time.perf_counter()
        )
        run_join = self.join
        self.join = join or run_join
        try:
            self.route(items)
        finally:
            self.join = run_join
        self.finish_batch(start, arrivals=False)

    def route(self, items: list[Decoded]) -> None:
        """Test-then-train, predict, dead-letter or join each decoded item, in order."""
        counters = self.counters
        learn = self._labeled_step()
        for item in items:
            if item is None:  # a header or blank line: not a record
                continue
            counters.records_seen += 1
            if type(item) is Record:
                y = item.y
                if y is not None:
                    learn(item, y)
                else:
                    self.unlabeled(item)
            elif type(item) is Rejected:
                self.reject(item)
            elif type(item) is Label:
                self.late_label(item)

    def _labeled_step(self) -> Callable[[Record, float], None]:
        """Test-then-train of one labeled record, bound to this batch's collaborators (read
        once a batch, as the loop's locals are, not once a record)."""
        counters = self.counters
        step = self.regressor.step
        monitor, pseudo, host = self.monitor, self.pseudo, self.host
        errors = self.errors.floats
        track = self.tracks_errors
        every = self.predictions_all

        def learn(item: Record, y: float) -> None:
            x = item.x
            yhat = step(x, y)
            if yhat is None:  # learned, not scored: the model could not predict it yet
                return
            if yhat - yhat != 0.0:
                self.guard.restore(item.raw.where(), yhat)
                return
            self.last_x = x
            if every:
                self.write_scored(item.id, item.raw.where(), yhat, y)
            if pseudo is not None:
                pseudo.observe_labeled(x, y, yhat, host)
            if track:
                errors.append(abs(y - yhat))
                if monitor is not None:
                    monitor.observe(counters.records_seen - 1, x, y, yhat, host)

        return learn

    def reject(self, item: Rejected) -> None:
        """A dead letter: counted by reason and written once."""
        counters = self.counters
        counters.records_rejected += 1
        by_reason = counters.rejected_by_reason
        by_reason[item.reason] = by_reason.get(item.reason, 0) + 1
        self.dead_letters.write(item.dead_letter(self._source_name))
        telemetry = self.host.telemetry
        if telemetry is not None:
            telemetry.rejected(item.reason)

    def unlabeled(self, item: Record) -> None:
        """Predict it (never serving NaN), then let the join and the pseudo-label loop keep it."""
        self.counters.records_unlabeled += 1
        learner = self.regressor
        yhat = learner.serve(item.x)  # the frozen baseline's, while it serves
        if yhat - yhat != 0.0:
            if not self.guard.restore_unless_cold(item.raw.where(), yhat, self.last_x):
                return  # the model cannot predict this record yet: nothing to serve
            yhat = learner.serve(item.x)
            if yhat - yhat != 0.0:
                return  # never serve NaN: the restored model cannot predict this either
        self._keep(item, yhat)

    def _keep(self, item: Record, yhat: Prediction) -> None:
        """An unlabeled record's prediction: written, then kept by the join (for its late
        label) and offered to the pseudo-label loop."""
        self.write_prediction(item.id, item.raw.where(), yhat)
        index = self.counters.records_seen - 1
        if self.join is not None and item.id is not None:
            self.join.remember(item, yhat, index)
        if self.pseudo is not None:
            self.pseudo.offer(item, yhat, index, self.host)

    # -- what a task changes: its output line, its error, its learner ----------------------

    def _prediction_line(
        self, record_id: str | None, where: dict[str, object], yhat: Prediction
    ) -> dict[str, Any]:
        """An output line: the predicted value."""
        return {"id": record_id, "position": where, "prediction": yhat}

    def _label_out(self, y: float) -> object:
        """A label as an output line writes it."""
        return y

    def _error(self, y: float, yhat: Prediction) -> float:
        """A prediction's error as the batch keeps it: the absolute error."""
        assert not isinstance(yhat, tuple)  # a regressor predicts values
        return abs(y - yhat)

    def _learn_joined(self, x: dict[str, float], y: float, yhat: Prediction) -> None:
        """Learn a record whose prediction was made when its features arrived."""
        assert not isinstance(yhat, tuple)  # a regressor's join holds its values
        self.regressor.step_with_prediction(x, y, yhat)

    # -- output and late labels ------------------------------------------------------------

    def write_prediction(
        self, record_id: str | None, where: dict[str, object], yhat: Prediction
    ) -> None:
        """One prediction for an unlabeled record, counted and written."""
        self.counters.predictions += 1
        self.predictions.write(self._prediction_line(record_id, where, yhat))
        telemetry = self.host.telemetry
        if telemetry is not None:
            telemetry.predictions(1)

    def write_scored(
        self, record_id: str | None, where: dict[str, object], yhat: Prediction, y: float
    ) -> None:
        """The prediction of a labeled record, made before it was learned, with its label."""
        line = self._prediction_line(record_id, where, yhat)
        line["label"] = self._label_out(y)
        self.predictions.write(line)

    def late_label(self, item: Label) -> None:
        """Join a late label to its waiting features and learn them, else dead-letter it."""
        pending = None
        if self.join is not None:
            pending = self.join.take(item, self.counters.records_seen - 1)
        if pending is None:
            # No waiting features (never seen, expired, or no join configured).
            self.reject(
                Rejected("unjoined_label", f"no pending features for id {item.id!r}", item.raw)
            )
            return
        # Test-then-train with the prediction made when the features arrived.
        yhat = pending.yhat
        self._learn_joined(pending.x, item.y, yhat)
        if self.pseudo is not None:
            self.pseudo.observe_labeled(pending.x, item.y, yhat, self.host)
        if self.host.telemetry is not None or self.monitor is not None:
            self.errors.append(self._error(item.y, yhat))
        if self.monitor is not None:
            self.monitor.observe(self.counters.records_seen - 1, pending.x, item.y, yhat, self.host)

    # -- after each batch --------------------------------------------------------------------

    def finish_batch(
        self, start: BatchStart, items: list[Decoded] | None = None, *, arrivals: bool = True
    ) -> None:
        """The pseudo-label loop, the error-explosion guard, telemetry.

        ``items`` are the batch's decoded items when it went record by record (they tell
        which records were learned, for the learn latency); ``arrivals`` False: the batch
        did not come from the source, it has no learn latency.
        """
        if self.pseudo is not None:
            self.pseudo.drain(self.host)
        learned = time.perf_counter()
        errors = self.errors
        if errors:
            self.guard.check_batch(errors)
        if self.host.telemetry is not None:
            learned_now = self.host.learner.records_learned - start.learned
            self._report(
                self.counters.records_seen - start.seen,
                learned_now,
                start.decode_seconds,
                learned - start.decoded,
            )
            if learned_now > 0 and arrivals:
                self._report_latency(learned_now, items)
        errors.clear()

    def _report(self, seen: int, learned: int, decode_s: float, learn_s: float) -> None:
        telemetry = self.host.telemetry
        assert telemetry is not None
        telemetry.received(seen)
        if learned:
            telemetry.learned(learned)
            telemetry.stage_seconds("learn", learn_s, learned)
        if self.errors:
            telemetry.abs_errors(self.errors.values())
        if seen:
            telemetry.stage_seconds("decode", decode_s, seen)
            telemetry.last_record()

    def _report_latency(self, learned: int, items: list[Decoded] | None) -> None:
        """Seconds from arrival to now, learned, of the batch's ``learned`` true-label records."""
        telemetry = self.host.telemetry
        arrivals = self.source.arrivals()
        if arrivals is not None and telemetry is not None:
            times, counts = learned_arrivals(arrivals[0], arrivals[1], learned, items)
            telemetry.learn_latency(times, counts)
