"""The run loop: poll -> decode -> route -> learn -> sinks -> checkpoint, until stopped.

One readable loop in the manner of Quix Streams' ``app.py``: poll a batch, decode
it, learn from it, and write a checkpoint every ``checkpoint_every`` records or
``checkpoint_interval`` seconds. Sinks are flushed before the checkpoint and the
source's offsets are committed only after it, so a crash at any moment resumes
from a model and a position that belong together: nothing lost, nothing learned twice.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from streamlearn import __version__
from streamlearn.learner import Learner
from streamlearn.models.registry import final_estimator
from streamlearn.records import Label, Record, Rejected
from streamlearn.sinks.jsonlines import NullSink, Sink
from streamlearn.sources.base import Source
from streamlearn.state import (
    BackgroundWriter,
    CheckpointError,
    CheckpointStore,
    encode,
)

if TYPE_CHECKING:
    from streamlearn.sources.file import Block

log = logging.getLogger(__name__)

STATE_FORMAT = 1

#: Blocks of fewer lines go line by line: too short to pay for a block's set-up (arrays,
#: loading and storing the model's state) in the compiled kernels.
_MIN_BLOCK_LINES = 64
#: Parsed rows a River model's block turns into Python lists at a time (``_learn_rows``):
#: a few thousand floats alive at once, whatever the block's size.
_ROWS_AT_ONCE = 128
#: Lines per block on the compiled path (``batch_size`` counts records on the per-record
#: path): at about 1 us a line a block holds the loop's lock some 8 ms, and the Python
#: work around each block (a dozen calls, a few small arrays) falls under 5 % per line.
BLOCK_LINES = 8192
#: Lines the per-record path takes while the fast path waits for the model's first
#: weights (``sgd`` gets them from its first record): a few, not a whole batch.
_FIRST_LINES = 16

#: Tests only: SIGKILL this process right after checkpoint generation N is durable,
#: before the source commits it (see tests/test_kafka_daemon.py).
_CRASH_BEFORE_COMMIT = int(os.environ.get("STREAMLEARN_TEST_CRASH_BEFORE_COMMIT", "0") or 0)


@dataclass
class RunOptions:
    """How the loop paces itself and how often it checkpoints."""

    # By time first (as Kafka consumers auto-commit every 5 s): a count of 1000 made a
    # fast model checkpoint, and commit its offsets, hundreds of times a second.
    checkpoint_every: int = 100_000
    checkpoint_interval: float = 5.0
    batch_size: int = 1000
    rate: float = 0.0  # records per second; 0 = as fast as possible
    idle_sleep: float = 0.05
    progress: bool = False

    def __post_init__(self) -> None:
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        if self.checkpoint_interval <= 0:
            raise ValueError("checkpoint_interval must be positive")
        if self.rate < 0:
            raise ValueError("rate must be 0 (as fast as possible) or positive")


@dataclass
class Counters:
    """What the daemon has seen; all of it goes into the checkpoint."""

    records_seen: int = 0
    records_rejected: int = 0
    records_unlabeled: int = 0
    predictions: int = 0
    divergence_events: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "records_seen": self.records_seen,
            "records_rejected": self.records_rejected,
            "records_unlabeled": self.records_unlabeled,
            "predictions": self.predictions,
            "divergence_events": self.divergence_events,
            "rejected_by_reason": dict(self.rejected_by_reason),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counters:
        return cls(
            records_seen=int(data.get("records_seen", 0)),
            records_rejected=int(data.get("records_rejected", 0)),
            records_unlabeled=int(data.get("records_unlabeled", 0)),
            predictions=int(data.get("predictions", 0)),
            divergence_events=int(data.get("divergence_events", 0)),
            rejected_by_reason=dict(data.get("rejected_by_reason", {})),
        )


def _block_kind(source: Source, decoder: Any) -> type | None:
    """The model class the compiled fast path learns for this source and decoder, or None.

    ``STREAMLEARN_FASTPATH=0`` turns it off (to compare, or to rule it out).
    """
    if os.environ.get("STREAMLEARN_FASTPATH", "1") == "0":
        return None
    if not callable(getattr(source, "next_block", None)):
        return None
    from streamlearn.records import JsonDecoder

    # Plain CSV lines, or JSON values (``streamlearn.fast.jsonblock``), learned a block at a time.
    if not getattr(decoder, "plain", False) and type(decoder) is not JsonDecoder:
        return None
    from streamlearn.models.sgd import SGDRegressor

    return SGDRegressor


class Daemon:
    """Learns from a source until it is exhausted (replay) or stopped (run).

    Parameters
    ----------
    source
        Where raw records come from.
    decoder
        Turns a ``Raw`` into a ``Record``, ``Label``, ``Rejected`` or None.
    learner
        The model and its prequential metrics.
    model_spec
        The spec the model was built from (for the state and ``inspect``).
    settings
        Decoding settings stored in the state (target, features, id column, format).
    store
        Where checkpoints go; None keeps everything in memory.
    model_factory
        Builds a fresh model (divergence restore when no checkpoint exists yet).
    restored
        The state loaded from ``store`` at start, if any.

    Examples
    --------
    >>> from streamlearn.testing import ListSource
    >>> from streamlearn.records import JsonDecoder
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> source = ListSource([b'{"x": {"a": 1}, "y": 2}', b'not json', b'{"x": {"a": 2}, "y": 4}'])
    >>> daemon = Daemon(source, JsonDecoder(), Learner(SGDRegressor(lr=0.1)), model_spec="sgd")
    >>> summary = daemon.run()
    >>> summary["records_learned"], summary["records_rejected"], summary["weights"]
    (2, 1, {'a': 0.9...})
    """

    def __init__(
        self,
        source: Source,
        decoder: Any,
        learner: Learner,
        *,
        model_spec: str,
        settings: Mapping[str, Any] | None = None,
        store: CheckpointStore | None = None,
        dead_letters: Sink | None = None,
        predictions: Sink | None = None,
        options: RunOptions | None = None,
        model_factory: Callable[[], Any] | None = None,
        restored: Mapping[str, Any] | None = None,
        telemetry: Any = None,
        pseudo: Any = None,
        join: Any = None,
        monitor: Any = None,
        warm_model_factory: Callable[[], Any] | None = None,
        divergence_factor: float = 0.0,
    ) -> None:
        self.source = source
        self.decoder = decoder
        self.learner = learner
        self.model_spec = model_spec
        self.settings = dict(settings or {})
        self.store = store
        self.dead_letters = dead_letters or NullSink()
        self.predictions = predictions or NullSink()
        self.options = options or RunOptions()
        self.model_factory = model_factory
        self.telemetry = telemetry
        # Optional parts, each picklable and kept in the checkpoint's extensions:
        # the pseudo-label side loop, the delayed-label join, the drift monitor.
        self.pseudo = pseudo
        self.join = join
        self.monitor = monitor
        self.warm_model_factory = warm_model_factory
        self.divergence_factor = divergence_factor
        self._errors = _BatchErrors()
        self.counters = Counters()
        self.extensions: dict[str, Any] = {}
        self.checkpoint_generation = store.generation if store is not None else 0
        self.writer: BackgroundWriter | None = None
        self.checkpoint_failures = 0
        self.last_checkpoint_time = 0.0
        self._stop = threading.Event()
        # Held while a batch is processed: the HTTP thread predicts and reads metrics
        # only between batches, never from a half-updated model.
        self.lock = threading.RLock()
        self._source_name = source.describe()
        self._last_x: dict[str, float] | None = None
        #: The rolling MAE as the last batch left it: the divergence guard's "recent level".
        self._recent_mae: float | None = None
        # The compiled fast path: the model class it learns (None: line by line only),
        # and its BlockLearner, built at the first block that is worth compiling for.
        self._block_kind: Any = _block_kind(source, decoder)
        self._block_learner_: Any = None
        self._block_soon = False  # the fast path waits only for the model's first weights
        if restored is not None:
            self.counters = Counters.from_dict(restored.get("counters", {}))
            self.extensions = {
                key: value
                for key, value in restored.get("extensions", {}).items()
                if key not in ("pseudo", "join", "drift")
            }
            for sink, key in (
                (self.dead_letters, "dead_letters"),
                (self.predictions, "predictions"),
            ):
                size = restored.get("sinks", {}).get(key)
                if size is not None:
                    sink.rewind(size)

    # -- control --------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish its batch, checkpoint and return (signal-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def ready(self) -> bool:
        """For /readyz: the source reaches its data and the model is loaded."""
        return self.source.connected and self.learner.model is not None and not self.stopping

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the loop cleanly; a second Ctrl+C kills at once."""

        def handler(signum: int, frame: FrameType | None) -> None:
            log.info(
                "received %s: finishing the batch and checkpointing", signal.Signals(signum).name
            )
            self.stop()
            signal.signal(signum, signal.SIG_DFL)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # -- the loop -------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Process until the source is exhausted or ``stop()``; returns the inspect summary."""
        options = self.options
        since_checkpoint = 0
        self.last_checkpoint_time = time.monotonic()
        started = time.monotonic()
        processed = 0
        progress = _Progress(self.source) if options.progress else None
        batch_size = options.batch_size
        block_size = max(batch_size, BLOCK_LINES)
        if options.rate > 0:
            # Small batches so that pacing is smooth (about 20 batches a second).
            batch_size = block_size = max(1, min(batch_size, int(options.rate / 20) or 1))
        if self.store is not None and self.writer is None:
            self.writer = BackgroundWriter(
                self.store, syncs=(self.dead_letters.sync, self.predictions.sync)
            )
        # The learn-latency metric needs each record's arrival time: noted only for telemetry.
        self.source.track_arrivals = self.telemetry is not None
        try:
            while not self._stop.is_set():
                room = options.checkpoint_every - since_checkpoint
                # A batch ends where a checkpoint is due (or, once one waits for the
                # writer, is a full batch): checkpoints fall between batches.
                block = self._next_block(min(block_size, room) if room > 0 else block_size)
                rows_block = None  # any other model: the same lines as a batch, parsed at once
                if block is None:
                    want = min(batch_size, room) if room > 0 else batch_size
                    if self._block_soon:
                        want = min(want, _FIRST_LINES)
                    rows_block = self._next_rows_block(want)
                    batch: Any = (
                        rows_block if rows_block is not None else self.source.next_batch(want)
                    )
                else:
                    batch = block
                if batch:
                    with self.lock:
                        if block is not None:
                            self._process_block(block)
                        elif rows_block is not None:
                            self._process_rows_block(rows_block)
                        else:
                            self.process(batch)
                    since_checkpoint += len(batch)
                    processed += len(batch)
                    if progress is not None:
                        progress.update(self.counters.records_seen)
                    if options.rate > 0:
                        delay = started + processed / options.rate - time.monotonic()
                        if delay > 0:
                            self._stop.wait(delay)
                elif self.source.exhausted:
                    break
                else:
                    self._stop.wait(options.idle_sleep)
                due = time.monotonic() - self.last_checkpoint_time >= options.checkpoint_interval
                wanted = since_checkpoint >= options.checkpoint_every or (due and since_checkpoint)
                # While the writer is still on the last checkpoint, a new snapshot would only
                # replace the one waiting: take it at the first batch after the writer is free.
                if wanted and (self.writer is None or self.writer.idle):
                    self.checkpoint()
                    since_checkpoint = 0
                elif self.writer is not None:
                    # Commit what the writer made durable meanwhile, also when the stream
                    # is idle: the group's offsets must not lag behind the last checkpoint.
                    self._collect_durable()
            if self.pseudo is not None and self.source.exhausted:
                # A finished replay decides its last, partial pseudo-label window too.
                with self.lock:
                    self.pseudo.flush(self)
            self.checkpoint(wait=True)
        finally:
            if progress is not None:
                progress.close(self.counters.records_seen)
            if self.writer is not None:
                self.writer.close()
                self.writer = None
        return self.inspect()

    def process(self, batch: list[Any]) -> None:
        """Decode and route one batch (test-then-train for labeled records)."""
        started = time.perf_counter()
        decode_batch = getattr(self.decoder, "decode_batch", None)
        if decode_batch is not None:
            items = decode_batch(batch)
        else:
            decode = self.decoder.decode
            items = [decode(raw) for raw in batch]
        decoded = time.perf_counter()
        seen_before = self.counters.records_seen
        learned_before = self.learner.records_learned
        self._route(items)
        self._finish_batch(seen_before, learned_before, decoded - started, decoded, items)

    def _route(self, items: list[Any]) -> None:
        """Test-then-train, predict, dead-letter or join each decoded item, in order."""
        counters = self.counters
        step = self.learner.step
        monitor = self.monitor
        errors = self._errors.floats
        track = self._tracks_errors
        for item in items:
            if item is None:  # a header or blank line: not a record
                continue
            counters.records_seen += 1
            if type(item) is Record:
                y = item.y
                if y is not None:
                    x = item.x
                    yhat = step(x, y)
                    if yhat - yhat != 0.0:
                        self._diverged(item, yhat)
                        continue
                    self._last_x = x
                    if self.pseudo is not None:
                        self.pseudo.observe_labeled(x, y)
                    if track:
                        errors.append(abs(y - yhat))
                        if monitor is not None:
                            monitor.observe(counters.records_seen - 1, x, y, yhat, self)
                else:
                    self._unlabeled(item)
            elif type(item) is Rejected:
                self._reject(item)
            elif type(item) is Label:
                self._late_label(item)

    @property
    def _tracks_errors(self) -> bool:
        """Whether the loop keeps each batch's absolute errors (telemetry, drift, guard)."""
        return self.telemetry is not None or self.monitor is not None or self.divergence_factor > 0

    def _finish_batch(
        self,
        seen_before: int,
        learned_before: int,
        decode_s: float,
        decoded: float,
        items: list[Any] | None = None,
    ) -> None:
        """After a batch: the pseudo-label side loop, the error-explosion guard, telemetry.

        ``items`` are the batch's decoded items when it went record by record (they tell
        which records were learned, for the learn latency).
        """
        if self.pseudo is not None:
            self.pseudo.drain(self)
        learned = time.perf_counter()
        errors = self._errors
        if errors:
            self._check_error_explosion(errors)
        if self.telemetry is not None:
            learned_now = self.learner.records_learned - learned_before
            self._report_batch(
                self.counters.records_seen - seen_before, learned_now, decode_s, learned - decoded
            )
            if learned_now > 0:
                self._report_latency(learned_now, items)
        errors.clear()

    # -- the compiled fast path: plain CSV lines learned by sgd ---------------------

    def _next_block(self, want: int) -> Block | None:
        """A block of whole CSV lines for ``_process_block``, or None to go line by line.

        Only what ``streamlearn.fast.block`` computes exactly: a file, the plain CSV
        layout, the bare ``sgd`` model holding a weight for every feature (after its
        first record), no baseline, no pseudo-labels, no late-label join. JSON values
        (``streamlearn.fast.jsonblock``) likewise, one value a line, once the features are
        known (``--features``, else those of the last record learned).
        """
        self._block_soon = False
        model: Any = self.learner.model
        if not self._blocks_possible() or type(model) is not self._block_kind:
            return None
        features = _block_features(self.decoder, self._last_x)
        if features is None or not all(name in model.weights for name in features):
            # A cold model: its first records give it the weights, then blocks follow.
            self._block_soon = True
            return None
        block: Block | None = self.source.next_block(want)
        return block

    def _blocks_possible(self) -> bool:
        """What every block path needs: a source and decoder that make blocks (``_block_kind``),
        and no part that must see each record on its own (baseline, pseudo-labels, join)."""
        return (
            self._block_kind is not None
            and self.learner.baseline is None
            and self.pseudo is None
            and self.join is None
        )

    def _process_block(self, block: Block) -> None:
        """``process`` for a block of plain CSV lines: compiled kernels, the same results.

        The kernels learn the rows in order; then dead letters, predictions and
        counters are written in stream order as ``process`` writes them. A drift
        monitor sees every learned record; if it changes the model at one, the block
        is learned again up to that record and the rest goes through ``_route``, as
        the rest of a block does after a non-finite prediction.
        """
        opened = self._open_block(block)
        if opened is None:
            return
        fast, parsed, batch = opened
        learner = self.learner
        model = learner.model
        saved = fast.save(learner, model) if self.monitor is not None else None
        done = fast.learn(learner, model, parsed, 0, parsed.rows)
        if saved is not None:
            changed = self._observe_block(parsed, fast.yhat, done, model)
            if changed is not None:
                fast.restore(learner, model, saved)
                done = fast.learn(learner, model, parsed, 0, changed + 1)
        self._close_block(parsed, fast.yhat, done, batch)

    def _open_block(self, block: Block) -> tuple[Any, Any, tuple[int, int, float, float]] | None:
        """The block learner and the parsed block, with what ``_close_block`` reports.

        None when the block went through ``process`` instead (too short for the kernels,
        or the compiled kernels not built).
        """
        fast = self._block_learner(block)
        started = time.perf_counter()
        parsed = None
        if fast is not None:
            parsed = fast.parse(
                block.data, block.offset, self.decoder, block.lines, getattr(block, "locate", None)
            )
        if parsed is None:  # also JSON values of no layout the model has weights for
            self.process(block.raws())
            return None
        decoded = time.perf_counter()
        before = (self.counters.records_seen, self.learner.records_learned)
        return fast, parsed, (*before, decoded - started, decoded)

    def _close_block(
        self, parsed: Any, yhat: Any, done: int, batch: tuple[int, int, float, float]
    ) -> None:
        """Write out rows ``0..done``, take the rest record by record, finish the batch."""
        self._settle_block(parsed, yhat, done)
        if done < parsed.rows:
            # The model predicted NaN/inf there, or the monitor changed it: record by record.
            rest = [parsed.raw(row) for row in range(done, parsed.rows)]
            decode_batch = getattr(self.decoder, "decode_batch", None)
            decode = self.decoder.decode
            self._route(decode_batch(rest) if decode_batch else [decode(raw) for raw in rest])
        self._finish_batch(*batch)

    def _block_learner(self, block: Block) -> Any:
        """The compiled ``BlockLearner`` (built at the first block worth it), or None."""
        if block.lines < _MIN_BLOCK_LINES:
            return None  # a header-only file or a trickle of live lines: not worth a block
        if self._block_learner_ is None:
            from streamlearn.fast import block as fastpath

            kernels = fastpath.compiled_kernels()
            if kernels is None:
                self._block_kind = None  # the extension is not built: line by line
                return None
            if getattr(self.decoder, "plain", False):
                self._block_learner_ = fastpath.BlockLearner(self.decoder.features, kernels)
            else:
                from streamlearn.fast.jsonblock import JsonBlockLearner

                self._block_learner_ = JsonBlockLearner(self.decoder, self.learner, kernels)
        return self._block_learner_

    def _observe_block(self, parsed: Any, yhat: Any, done: int, model: Any) -> int | None:
        """Show the monitor each learned row before ``done``; the row where it changed the model."""
        import numpy as np

        from streamlearn.fast.block import LABELED, NOTHING

        status = parsed.status[:done]
        learned = np.flatnonzero(status == LABELED)
        # The stream index process() passes: records seen up to and including the row, less 1.
        seen = np.cumsum(status != NOTHING)[learned] + (self.counters.records_seen - 1)
        monitor, learner = self.monitor, self.learner
        start = 0
        if monitor.errors_only:
            # Only the error is watched: hand the monitor numpy arrays, no feature dicts
            # (its compiled ADWIN reads them as they are; floats would cost as much again).
            indices = seen
            errors = np.abs(parsed.values[learned, -1] - yhat[learned])
            while start < len(indices) and monitor.errors_only:
                start += monitor.observe_errors(indices[start:], errors[start:], self)
                if learner.model is not model:
                    return int(learned[start - 1])
            if start == len(indices):
                return None
        observe, features = monitor.observe, _features(parsed, self.decoder)
        learned, seen = learned[start:], seen[start:]
        for row, index, values, guess in zip(
            learned.tolist(),
            seen.tolist(),
            parsed.values[learned].tolist(),
            yhat[learned].tolist(),
            strict=True,
        ):
            x = dict(zip(features, values, strict=False))  # values end with the target
            observe(index, x, values[-1], guess, self)
            if learner.model is not model:
                return int(row)
        return None

    def _settle_block(self, parsed: Any, yhat: Any, done: int) -> None:
        """Counters, dead letters, predictions and kept errors of rows ``0..done``, in order."""
        import numpy as np

        from streamlearn.fast.block import LABELED, NOTHING, REJECTED, UNLABELED

        counters = self.counters
        status = parsed.status[:done]
        learned = status == LABELED
        if self._tracks_errors:
            self._errors.arrays.append(parsed.abs_errors(yhat, learned))
        others = np.flatnonzero(~learned).tolist()  # usually none, or the header
        kinds = status[others].tolist()
        counters.records_seen += done - kinds.count(NOTHING)
        if len(others) < done:  # the model-is-finite check before a checkpoint predicts it
            self._last_x = parsed.x(
                int(np.flatnonzero(learned)[-1]), _features(parsed, self.decoder)
            )
        record_id = getattr(parsed, "record_id", None)  # JSON values: the record's id
        for row, kind in zip(others, kinds, strict=True):
            if kind == REJECTED:
                self._reject(parsed.judged[row])
            elif kind == UNLABELED:  # as _unlabeled, whose prediction the kernel made
                counters.records_unlabeled += 1
                counters.predictions += 1
                where = parsed.raw(row).where()
                prediction = float(yhat[row])
                self.predictions.write(
                    {
                        "id": record_id(row) if record_id is not None else None,
                        "position": where,
                        "prediction": prediction,
                    }
                )
                if self.telemetry is not None:
                    self.telemetry.predictions(1)

    # -- plain CSV lines learned by any other model (River's) -----------------------

    def _next_rows_block(self, want: int) -> Block | None:
        """A block of whole CSV lines for ``_process_rows_block``, or None to go line by line.

        For a model the compiled path does not learn (River's estimators and pipelines)
        on a file in the plain CSV layout, when the block can be scored after it was
        learned: no baseline, pseudo-labels or late-label join, and a drift monitor only
        if it can do no more than alert (one that swaps the model mid-block would leave
        the rest of the block learned by the wrong one).
        """
        monitor = self.monitor
        if (
            not self._blocks_possible()
            or not getattr(self.decoder, "plain", False)  # JSON values: sgd only
            or want < _MIN_BLOCK_LINES
            # The project's own models predict and learn in one call (predict_learn_one):
            # the compiled path learns sgd; mlp goes record by record.
            or getattr(self.learner.model, "predict_learn_one", None) is not None
            or (
                monitor is not None
                and (
                    getattr(getattr(monitor, "config", None), "on_drift", None) != "alert"
                    or getattr(monitor, "challenger", None) is not None
                )
            )
        ):
            return None
        block: Block | None = self.source.next_block(want)
        return block

    def _process_rows_block(self, block: Block) -> None:
        """``process`` for a block of plain CSV lines learned by any model: the same results.

        The compiled parser reads the block (the decoder judges the lines it doubts, as
        for ``_process_block``), and the model predicts, then learns, each record in
        order, from a dict of the parsed row. What ``Learner.step`` does besides (River's
        metrics, the rolling window, the curve) is then done for the whole block at once
        by the compiled kernel; the drift monitor watches the block, and counters, dead
        letters and predictions are written as ``_process_block`` writes them. From a
        prediction the divergence guard must see, the rest goes through ``_route``.
        """
        opened = self._open_block(block)
        if opened is None:
            return
        fast, parsed, batch = opened
        learner = self.learner
        yhat = self._learn_rows(learner.model, parsed)
        done = len(yhat)
        fast.score(learner, parsed, yhat, done)
        if self.monitor is not None:
            # It can only alert (``_next_rows_block``): the model that learned the block stays.
            self._observe_block(parsed, yhat, done, learner.model)
        self._close_block(parsed, yhat, done, batch)

    def _learn_rows(self, model: Any, parsed: Any) -> Any:
        """Predict, then learn, each record of a parsed block; the prediction of each row.

        Unlabeled rows are predicted only; other rows get NaN. It stops before the first
        prediction that is NaN, infinite or beyond ``learner.DIVERGED`` (as
        ``Learner.step`` rejects it): the array then ends there.
        """
        import gc

        import numpy as np

        from streamlearn.fast.block import LABELED, UNLABELED
        from streamlearn.learner import DIVERGED

        features = self.decoder.features
        predict, learn = model.predict_one, model.learn_one
        values = parsed.values
        kinds = parsed.status.tolist()
        guesses = [math.nan] * len(kinds)
        # No cyclic garbage collection while the model learns the block. A River model
        # makes and keeps many small objects (a tree's nodes and their statistics): the
        # young collections they set off every few hundred allocations move them on to the
        # oldest generation, whose collections walk the whole model and every imported
        # module again. Paused, the block's survivors are aged by one young collection
        # after it; their garbage dies by reference counting meanwhile, and what cycles
        # one block leaves wait for that collection. Same results; a replay of 20,000
        # records into HoeffdingAdaptiveTreeRegressor collected for 0.3-0.4 s instead of
        # 0.6-0.9 s (two full collections instead of four).
        collecting = gc.isenabled()
        gc.disable()
        try:
            # The rows become Python lists a slice at a time: fewer alive at once.
            for first in range(0, len(kinds), _ROWS_AT_ONCE):
                for row, numbers in enumerate(
                    values[first : first + _ROWS_AT_ONCE].tolist(), start=first
                ):
                    kind = kinds[row]
                    if kind > UNLABELED:  # rejected, a header, a blank line: _settle_block's
                        continue
                    x = dict(zip(features, numbers, strict=False))  # the last is the target
                    guess = predict(x)
                    if not -DIVERGED < guess < DIVERGED:
                        return np.array(guesses[:row], dtype=np.float64)
                    guesses[row] = guess
                    if kind == LABELED:
                        learn(x, numbers[-1])
        finally:
            if collecting:
                gc.enable()
        return np.array(guesses, dtype=np.float64)

    def _report_batch(self, seen: int, learned: int, decode_s: float, learn_s: float) -> None:
        telemetry = self.telemetry
        telemetry.received(seen)
        if learned:
            telemetry.learned(learned)
            telemetry.stage_seconds("learn", learn_s, learned)
        if self._errors:
            telemetry.abs_errors(self._errors.values())
        if seen:
            telemetry.stage_seconds("decode", decode_s, seen)
            telemetry.last_record()

    def _report_latency(self, learned: int, items: list[Any] | None) -> None:
        """Seconds from arrival to now, learned, of the batch's ``learned`` true-label records."""
        arrivals = self.source.arrivals()
        if arrivals is not None:
            times, counts = _learned_arrivals(arrivals[0], arrivals[1], learned, items)
            self.telemetry.learn_latency(times, counts)

    def _check_error_explosion(self, errors: _BatchErrors) -> None:
        """Divergence guard: a batch whose error is far above the level before it restores.

        The level is the rolling MAE as the previous batch left it. Read after this batch,
        the window would hold the batch's own last records (only those, after a block of
        8192): a stream that converges within a block (a target without noise) read as an
        explosion, the model was restored, converged again, and so on block after block.
        """
        factor = self.divergence_factor
        learner = self.learner
        if factor <= 0 or len(errors) < 10:
            return
        recent = self._recent_mae
        full = learner.window_len >= learner.rolling_window
        self._recent_mae = learner.rolling_mae() if full else None
        batch_mae = errors.mean()
        if recent is not None and recent > 0 and batch_mae > factor * recent:
            log.error(
                "prequential error exploded: batch MAE %.6g is over %g times the recent %.6g",
                batch_mae,
                factor,
                recent,
            )
            self._diverged(Record({}, None, None, _NO_RAW), batch_mae)

    def _reject(self, item: Rejected) -> None:
        counters = self.counters
        counters.records_rejected += 1
        by_reason = counters.rejected_by_reason
        by_reason[item.reason] = by_reason.get(item.reason, 0) + 1
        self.dead_letters.write(item.dead_letter(self._source_name))
        if self.telemetry is not None:
            self.telemetry.rejected(item.reason)

    def _unlabeled(self, item: Record) -> None:
        self.counters.records_unlabeled += 1
        yhat = self.learner.predict(item.x)
        if yhat - yhat != 0.0:
            self._diverged(item, yhat)
            yhat = self.learner.predict(item.x)
            if yhat - yhat != 0.0:
                return  # never serve NaN: the restored model cannot predict this either
        self.counters.predictions += 1
        self.predictions.write({"id": item.id, "position": item.raw.where(), "prediction": yhat})
        if self.telemetry is not None:
            self.telemetry.predictions(1)
        index = self.counters.records_seen - 1
        if self.join is not None and item.id is not None:
            self.join.remember(item, yhat, index)
        if self.pseudo is not None:
            self.pseudo.offer(item, yhat, index)

    def _late_label(self, item: Label) -> None:
        pending = None
        if self.join is not None:
            pending = self.join.take(item, self.counters.records_seen - 1)
        if pending is None:
            # No waiting features (never seen, expired, or no join configured).
            self._reject(
                Rejected("unjoined_label", f"no pending features for id {item.id!r}", item.raw)
            )
            return
        # Test-then-train with the prediction made when the features arrived.
        self.learner.step_with_prediction(pending.x, item.y, pending.yhat)
        if self.pseudo is not None:
            self.pseudo.observe_labeled(pending.x, item.y)
        if self.telemetry is not None or self.monitor is not None:
            self._errors.append(abs(item.y - pending.yhat))
        if self.monitor is not None:
            self.monitor.observe(
                self.counters.records_seen - 1, pending.x, item.y, pending.yhat, self
            )

    def _diverged(self, item: Record, yhat: float) -> None:
        """The model predicted NaN/inf: restore the last good model; never learn or serve it."""
        self.counters.divergence_events += 1
        self._recent_mae = None  # the restored model is judged from its next batch on
        if self.telemetry is not None:
            self.telemetry.divergence()
        restored = None
        if self.writer is not None:
            try:
                self.writer.wait()  # the newest checkpoint on disk is the last good model
            except CheckpointError as exc:  # the last write failed: the one before is good
                self._checkpoint_failed(exc)
        if self.store is not None and self.store.generation:
            loaded = self.store.load()
            if loaded is not None:
                restored = loaded.state["learner"].model
        if restored is None and self.model_factory is not None:
            restored = self.model_factory()
        log.error(
            "model diverged (prediction %s at %s); restored the %s",
            yhat,
            item.raw.where(),
            "last checkpointed model"
            if self.store is not None and self.store.generation
            else "initial model",
        )
        if restored is not None:
            self.learner.reset_model(restored)

    # -- state ----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything a restart needs, as one picklable dict."""
        return {
            "format": STATE_FORMAT,
            "streamlearn": __version__,
            "created": time.time(),
            "model_spec": self.model_spec,
            "settings": self.settings,
            "learner": self.learner,
            "source": self.source.snapshot(),
            "counters": self.counters.as_dict(),
            "extensions": {
                **self.extensions,
                **{
                    key: part
                    for key, part in (
                        ("pseudo", self.pseudo),
                        ("join", self.join),
                        ("drift", self.monitor),
                    )
                    if part is not None
                },
            },
            "sinks": {
                "dead_letters": self.dead_letters.position(),
                "predictions": self.predictions.position(),
            },
        }

    def _model_is_finite(self) -> bool:
        if self._last_x is None:
            return True
        value = self.learner.predict(self._last_x)
        return not math.isnan(value) and not math.isinf(value)

    def checkpoint(self, *, wait: bool = False) -> None:
        """Snapshot the state and write it (on the writer thread unless ``wait``).

        The snapshot is taken here, between batches, so model and position match.
        Sinks are synced before the checkpoint is written and the source commits
        only after it is durable.
        """
        self.last_checkpoint_time = time.monotonic()
        if self.store is None:
            self.dead_letters.flush()
            self.predictions.flush()
            return
        if not self._model_is_finite():
            # Never store a diverged model: restore first, then checkpoint the good one.
            self._diverged(Record({}, None, None, _NO_RAW), math.nan)
        started = time.perf_counter()
        state = self.state()  # hands the sinks' buffers to the OS through position()
        if self.writer is not None and not wait:
            # Only the snapshot needs the loop: the writer pickles it here or, when that
            # costs more than a fork, in a forked child; checksum and disk come after.
            try:
                self.writer.snapshot(state, state["source"], hold=_snapshot_locks(state))
            except CheckpointError as exc:
                self._checkpoint_failed(exc)
            self._collect_durable()
        else:
            blob = encode(state)
            if self.writer is not None:
                try:
                    self.writer.wait()  # its generations come before this one
                except CheckpointError as exc:
                    self._checkpoint_failed(exc)  # reported; this one is written all the same
            self.dead_letters.sync()
            self.predictions.sync()
            generation = self.store.write(blob)
            self._durable([(generation, state["source"])])
        if self.telemetry is not None:
            self.telemetry.stage_seconds("checkpoint", time.perf_counter() - started)

    def _collect_durable(self) -> None:
        assert self.writer is not None
        try:
            written = self.writer.durable()
        except CheckpointError as exc:
            self._checkpoint_failed(exc)
            return
        if written:
            self._durable(written)

    def _checkpoint_failed(self, exc: CheckpointError) -> None:
        # A full disk or an unreachable Kafka sink: keep learning and try again at the
        # next checkpoint (the alert on checkpoint age tells an operator).
        self.checkpoint_failures += 1
        log.error("checkpoint failed, will retry: %s", exc)

    def _durable(self, written: list[tuple[int, Any]]) -> None:
        for generation, snapshot in written:
            self.checkpoint_generation = generation
            if _CRASH_BEFORE_COMMIT and generation >= _CRASH_BEFORE_COMMIT:
                # Fault injection for the crash tests: die between a durable
                # checkpoint and the Kafka group commit, the window that must be safe.
                os.kill(os.getpid(), signal.SIGKILL)
            self.source.commit(snapshot)
            if self.telemetry is not None:
                self.telemetry.checkpoint_ok()

    def inspect(self) -> dict[str, Any]:
        """The ``inspect --json`` object of the current state."""
        return inspect_state(self.state(), self.checkpoint_generation or None)


def _block_features(decoder: Any, last_x: dict[str, float] | None) -> Sequence[str] | None:
    """The features a block of ``decoder``'s records is learned with, if known yet.

    The decoder's (a CSV header, ``--features``); JSON values without ``--features``: those
    of the last record learned. Here, not in ``streamlearn.fast.jsonblock``: asked before every
    block, it must not import numpy into a run that never makes one (a header-only file).
    """
    features: Sequence[str] | None = getattr(decoder, "features", None)
    if features is None and last_x is not None:
        return list(last_x)
    return features


def _features(parsed: Any, decoder: Any) -> Any:
    """The feature names of a parsed block's columns (a JSON block's own, else the decoder's)."""
    return getattr(parsed, "features", None) or decoder.features


def _snapshot_locks(state: Mapping[str, Any]) -> list[Any]:
    """Locks that threads of the state's parts take to change them (``snapshot_locks()``).

    A checkpoint's fork holds them, so the child never copies a part mid-change.
    """
    locks: list[Any] = []
    for part in state.get("extensions", {}).values():
        snapshot_locks = getattr(part, "snapshot_locks", None)
        if callable(snapshot_locks):
            locks.extend(snapshot_locks())
    return locks


def inspect_state(state: Mapping[str, Any], generation: int | None = None) -> dict[str, Any]:
    """The ``inspect --json`` object of a state (a loaded checkpoint or a live daemon)."""
    learner: Learner = state["learner"]
    counters = state.get("counters", {})
    out: dict[str, Any] = {
        "model": state.get("model_spec"),
        "records_seen": counters.get("records_seen", 0),
        "records_learned": learner.records_learned,
        "records_rejected": counters.get("records_rejected", 0),
        "records_unlabeled": counters.get("records_unlabeled", 0),
        "rejected_by_reason": counters.get("rejected_by_reason", {}),
        "predictions": counters.get("predictions", 0),
        "divergence_events": counters.get("divergence_events", 0),
        "position": state.get("source"),
        "metrics": learner.summary(),
        "rolling_metrics": learner.rolling_summary(),
        "rolling_window": learner.rolling_window,
        "settings": state.get("settings", {}),
        "checkpoint": {
            "generation": generation,
            "created": state.get("created"),
            "streamlearn": state.get("streamlearn"),
        },
    }
    baseline = learner.baseline_summary()
    if baseline is not None:
        out["baseline_metrics"] = baseline
    final = final_estimator(learner.model)
    weights = getattr(final, "weights", None)
    if isinstance(weights, Mapping):
        out["weights"] = {str(k): float(v) for k, v in weights.items()}
        intercept = getattr(final, "intercept", None)
        if intercept is not None:
            out["intercept"] = float(intercept)
    for part in state.get("extensions", {}).values():
        summary = getattr(part, "summary", None)
        if callable(summary):
            out.update(summary())
    return out


def _learned_arrivals(
    times: Any, counts: Any, learned: int, items: list[Any] | None
) -> tuple[Any, Any]:
    """The arrivals (``Source.arrivals``) of the ``learned`` records among a batch's items.

    Usually a batch learns every item. When it does not, the decoded ``items`` (the
    per-record path) tell which were learned: labelled records and late labels. Without
    them (a compiled block: there, the header or a rejected line), the earliest arrivals
    are dropped. If fewer still were learned (a diverged prediction, a late label with no
    features waiting: rare), the first ``learned`` stand in for them, so the histogram's
    count stays that of ``streamlearn_records_learned_total{label="true"}``.

    >>> import numpy as np
    >>> _learned_arrivals(np.array([1.0, 2.0]), np.array([3, 2]), 4, None)  # a header
    (array([1., 2.]), array([2, 2]))
    >>> labelled = Record({"a": 1.0}, 2.0, None, _NO_RAW)
    >>> unlabelled = Record({"a": 1.0}, None, None, _NO_RAW)
    >>> _learned_arrivals(np.array([1.0, 2.0, 3.0]), None, 1, [unlabelled, labelled, None])
    (array([2.]), None)
    """
    import numpy as np

    total = len(times) if counts is None else int(counts.sum())
    if learned >= total:
        return times, counts
    if items is not None and len(items) == total:
        per_item = times if counts is None else np.repeat(times, counts)
        learnable = np.fromiter(
            (
                type(item) is Label or (type(item) is Record and item.y is not None)
                for item in items
            ),
            dtype=bool,
            count=total,
        )
        return per_item[learnable][:learned], None
    skip = total - learned
    if counts is None:
        return times[skip:], None
    ends = np.cumsum(counts)
    first = int(np.searchsorted(ends, skip, side="right"))  # the first run not all skipped
    kept = counts[first:].copy()
    kept[0] = ends[first] - skip
    return times[first:], kept


class _BatchErrors:
    """A batch's absolute prequential errors, for the divergence guard and telemetry.

    Floats from the per-record path, arrays from compiled blocks: turning a block's
    errors into Python floats (``tolist``) cost more than learning its records.
    """

    __slots__ = ("arrays", "floats")

    def __init__(self) -> None:
        self.floats: list[float] = []
        self.arrays: list[Any] = []

    def __len__(self) -> int:
        return len(self.floats) + sum(len(array) for array in self.arrays)

    def values(self) -> Any:
        """All of them, in order: the list of floats, or one array when a block added some."""
        if not self.arrays:
            return self.floats
        import numpy as np

        return np.concatenate([*self.arrays, np.asarray(self.floats, dtype=np.float64)])

    def mean(self) -> float:
        values = self.values()
        return float(sum(values) / len(values) if not self.arrays else values.mean())

    def append(self, error: float) -> None:
        self.floats.append(error)

    def clear(self) -> None:
        self.floats.clear()
        self.arrays.clear()


class _Progress:
    """A one-line progress report on stderr, only when stderr is a terminal."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.enabled = sys.stderr.isatty()
        self.started = time.monotonic()
        self.last = 0.0

    def update(self, seen: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.5:
            return
        self.last = now
        self._draw(seen, now)

    def _draw(self, seen: int, now: float) -> None:
        rate = seen / max(now - self.started, 1e-9)
        size = getattr(self.source, "size", lambda: None)()
        offset = self.source.snapshot().get("offset") if size else None
        percent = f" {100.0 * offset / size:5.1f}%" if size and offset is not None else ""
        sys.stderr.write(f"\r{seen:>12,} records {rate:>10,.0f}/s{percent}")
        sys.stderr.flush()

    def close(self, seen: int) -> None:
        if self.enabled:
            self._draw(seen, time.monotonic())
            sys.stderr.write("\n")
            sys.stderr.flush()


class _NoRaw:
    value = b""
    offset = -1
    partition = -1
    key = None
    topic = None
    truncated = False

    def where(self) -> dict[str, Any]:
        return {}


_NO_RAW: Any = _NoRaw()
