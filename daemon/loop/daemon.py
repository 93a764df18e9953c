"""The run loop: take a batch from the chosen record path, learn it, pace, checkpoint when due.

One readable loop in the manner of Quix Streams' ``Application.run``. The batch comes from a
record path (``streamlearn.loop.paths``) chosen for the model and the source; it is learned
under the loop's lock (the HTTP thread predicts only between batches); the checkpoint
schedule (``streamlearn.state.schedule``) says when a checkpoint is due, and the
``Checkpointer`` writes it and commits the source's position after it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING, Any

from streamlearn import __version__
from streamlearn.records import Decoded
from streamlearn.sinks.jsonlines import NullSink, Sink
from streamlearn.sources.base import Raw, Source
from streamlearn.state import BackgroundWriter, CheckpointStore

from ..interfaces import (
    Decoder,
    LabelJoin,
    LearnerLike,
    Monitor,
    PseudoLoop,
    RecordPath,
    Telemetry,
)
from ..state.schedule import CheckpointSchedule
from .checkpointing import Checkpointer
from .classrouter import ClassRouter
from .diskfull import StoppedOnFullDisk
from .guard import DivergenceGuard
from .host import Counters, LoopHost
from .keyrouter import KeyedRouter
from .paths import BLOCK_LINES, CompiledBlocks, PathKit, choose_path, fastpath_enabled
from .progress import Pacer, Progress
from .router import Router
from .stopflag import StopFlag
from .summary import STATE_FORMAT, inspect_state

if TYPE_CHECKING:
    from streamlearn.keys.run import KeyedRun
    from streamlearn.observe.logbook import Logbook

log = logging.getLogger(__name__)


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

    def sizes(self) -> tuple[int, int]:
        """Records per batch on the record path, and lines per block on the block paths.

        With a rate, both are small, so that pacing is smooth (about 20 batches a second).
        """
        if self.rate > 0:
            size = max(1, min(self.batch_size, int(self.rate / 20) or 1))
            return size, size
        return self.batch_size, max(self.batch_size, BLOCK_LINES)


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
    telemetry, pseudo, join, monitor
        Optional parts: metrics, the pseudo-label side loop, the late-label join, the drift
        monitor (the last three are checkpointed beside the model).
    on_durable
        Called with each checkpoint generation once it is durable, before the source
        commits its position (tests kill the process there).
    keyed
        A keyed run's parts (``--key-by``): ``learner`` is then their tally.

    Examples
    --------
    >>> from streamlearn.testing import ListSource
    >>> from streamlearn.json_decoder import JsonDecoder
    >>> from streamlearn.learner import Learner
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
        decoder: Decoder,
        learner: LearnerLike,
        *,
        model_spec: str,
        settings: Mapping[str, Any] | None = None,
        store: CheckpointStore | None = None,
        dead_letters: Sink | None = None,
        predictions: Sink | None = None,
        options: RunOptions | None = None,
        model_factory: Callable[[], Any] | None = None,
        restored: Mapping[str, Any] | None = None,
        telemetry: Telemetry | None = None,
        pseudo: PseudoLoop | None = None,
        join: LabelJoin | None = None,
        monitor: Monitor | None = None,
        warm_model_factory: Callable[[], Any] | None = None,
        divergence_factor: float = 0.0,
        on_durable: Callable[[int], None] | None = None,
        keyed: KeyedRun | None = None,
    ) -> None:
        self.source = source
        self.decoder = decoder
        self.model_spec = model_spec
        self.settings = dict(settings or {})
        self.store = store
        self.dead_letters = dead_letters or NullSink()
        self.predictions = predictions or NullSink()
        self.options = options or RunOptions()
        self.pseudo = pseudo
        self.join = join
        self.monitor = monitor
        #: Parts of a restored state this run does not use, kept in its checkpoints.
        self.extensions: dict[str, Any] = {}
        counters = Counters()
        if restored is not None:
            counters = self._restore(restored)
        self.host = LoopHost(learner, counters, telemetry, model_factory, warm_model_factory)
        sinks = (self.dead_letters, self.predictions)
        self.checkpoints = Checkpointer(store, source, sinks, self.host, on_durable)
        self.guard = DivergenceGuard(self.host, self.checkpoints, divergence_factor)
        # A classifier's records go through the class router (class codes, probabilities).
        router: Callable[..., Router] = ClassRouter if learner.task == "classification" else Router
        #: A keyed run's parts, else None.
        self.keyed = keyed
        if keyed is not None:
            router, self.checkpoints.keys = partial(KeyedRouter, keys=keyed), keyed.models
        self.router = router(
            self.host,
            decoder,
            source,
            *sinks,
            self.guard,
            pseudo=pseudo,
            join=join,
            monitor=monitor,
        )
        self.schedule = CheckpointSchedule(
            self.options.checkpoint_every, self.options.checkpoint_interval
        )
        batch_size, block_size = self.options.sizes()
        compiled = CompiledBlocks(decoder, learner)
        self.kit = PathKit(
            source, decoder, learner, self.router, monitor, compiled, fastpath_enabled(),
            batch_size, block_size,
        )  # fmt: skip
        #: The record path batches take now (``choose_path``).
        self.path: RecordPath = choose_path(self.kit)
        self._stop = StopFlag()
        self._pacer = Pacer(self.options.rate, self._stop)
        self._progress: Progress | None = None
        #: The heartbeat and rejected-records lines (``streamlearn.observe.logbook``), if set.
        self.logbook: Logbook | None = None
        # Held while a batch is processed: the HTTP thread predicts and reads metrics
        # only between batches, never from a half-updated model.
        self.lock = threading.RLock()

    def _restore(self, restored: Mapping[str, Any]) -> Counters:
        """Take up a checkpointed state's counters, extra parts and sink sizes."""
        self.extensions = {
            key: value
            for key, value in restored.get("extensions", {}).items()
            if key not in ("pseudo", "join", "drift")
        }
        for sink, key in ((self.dead_letters, "dead_letters"), (self.predictions, "predictions")):
            size = restored.get("sinks", {}).get(key)
            if size is not None:
                sink.rewind(size)
        # The columns in force belong to the position (a CSV header row before it).
        self.decoder.restore_schema(restored.get("schema"))
        return Counters.from_dict(restored.get("counters", {}))

    # -- what the rest of the program reads -------------------------------------------------

    @property
    def learner(self) -> LearnerLike:
        return self.host.learner

    @property
    def counters(self) -> Counters:
        return self.host.counters

    @property
    def telemetry(self) -> Telemetry | None:
        return self.host.telemetry

    @telemetry.setter
    def telemetry(self, telemetry: Telemetry | None) -> None:
        self.host.telemetry = telemetry  # every part reads it there

    @property
    def checkpoint_generation(self) -> int:
        """The newest durable checkpoint generation (0: none yet)."""
        return self.checkpoints.generation

    @property
    def checkpoint_failures(self) -> int:
        return self.checkpoints.failures

    @property
    def writer(self) -> BackgroundWriter | None:
        """The background checkpoint writer while a run is on (None otherwise)."""
        return self.checkpoints.writer

    @writer.setter
    def writer(self, writer: BackgroundWriter | None) -> None:
        self.checkpoints.writer = writer

    @property
    def on_durable(self) -> Callable[[int], None] | None:
        return self.checkpoints.on_durable

    @on_durable.setter
    def on_durable(self, hook: Callable[[int], None] | None) -> None:
        self.checkpoints.on_durable = hook

    @property
    def block_learner(self) -> object | None:
        """The compiled block learner, once a block path built it (None: none yet)."""
        return self.kit.compiled.built

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
        return self.not_ready_reason is None

    @property
    def not_ready_reason(self) -> str | None:
        """Why the daemon is not ready (for /readyz), or None when it is."""
        if self.stopping:
            return "stopping"
        if self.checkpoints.disk.reason is not None:
            return f"paused: {self.checkpoints.disk.reason}"
        if not self.source.connected:
            return f"{self.source.describe()} is not reachable"
        if self.learner.model is None:
            return "no model"
        return None

    @property
    def paused_reason(self) -> str | None:
        """Why learning is paused (a full disk), or None."""
        return self.checkpoints.disk.reason

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
        self._start()
        try:
            while not self._stop.is_set():
                if self._paused():
                    continue
                path = self._current_path()
                batch = path.take(self.schedule.room)
                if batch:
                    with self.lock:
                        path.process(batch)
                    self._processed(len(batch))
                elif self.source.exhausted:
                    break
                else:
                    self._stop.wait(self.options.idle_sleep)
                self._checkpoint_if_due()
                if self.logbook is not None:
                    self.logbook.tick(self.counters)
            self._end_of_stream()
            self._final_checkpoint()
        finally:
            self._finish()
        return self.inspect()

    def process(self, batch: list[Raw]) -> None:
        """Decode and route one batch of raw items, record by record."""
        self.router.process(batch)

    def learn_items(self, items: list[Decoded], join: LabelJoin | None = None) -> None:
        """Records from elsewhere than the source (HTTP ``POST /learn``): routed like a batch
        under the lock (late labels join in ``join``, else the run's), and counted toward
        the next checkpoint."""
        with self.lock:
            self.router.process_items(items, join)
        self.schedule.count(len(items))

    def _start(self) -> None:
        self.schedule.start()
        self._pacer.start()
        name = "error rate" if self.learner.task == "classification" else "MAE"
        self._progress = (
            Progress(self.source, lambda: self.learner.rolling_mae(), name)
            if self.options.progress
            else None
        )
        self.checkpoints.open(self.state)
        # The learn-latency metric needs each record's arrival time: noted only for telemetry.
        self.source.track_arrivals = self.telemetry is not None

    def _current_path(self) -> RecordPath:
        """The chosen path, chosen again when it no longer fits (a named event happened)."""
        if not self.path.fits(self.learner.model):
            self.path = choose_path(self.kit)
        return self.path

    def _paused(self) -> bool:
        """On a full disk no batch is taken: wait (a stop ends the wait), then try again.

        The retry is a checkpoint: the lines the sinks held back, then the state.
        """
        if not self.checkpoints.disk.paused:
            return False
        self._stop.wait(self.checkpoints.disk.backoff())
        if not self._stop.is_set():
            self.checkpoint(wait=True)
        return self.checkpoints.disk.paused

    def _processed(self, records: int) -> None:
        self.checkpoints.pause_if_sinks_full()  # no next batch while a sink holds lines back
        self.schedule.count(records)
        if self._progress is not None:
            self._progress.update(self.counters.records_seen)
        self._pacer.pace(records)

    def _checkpoint_if_due(self) -> None:
        self.checkpoints.keep_state_dir()
        if self.schedule.expired(writer_busy=self._writer_busy):
            self.checkpoint()
        else:
            # Commit what the writer made durable meanwhile, also when the stream is idle:
            # the group's offsets must not lag behind the last checkpoint.
            self.checkpoints.collect_durable()

    def _writer_busy(self) -> bool:
        return self.checkpoints.busy

    def _end_of_stream(self) -> None:
        if self.source.exhausted:  # a finished replay decides its last, partial windows too
            with self.lock:
                if self.pseudo is not None:
                    self.pseudo.flush(self.host)
                if isinstance(self.router, KeyedRouter):
                    self.router.end_of_replay()  # each key's pseudo-label loop

    def _final_checkpoint(self) -> None:
        """The checkpoint at the end; stopped on a full disk, one line says what was kept."""
        self.checkpoint(wait=True)
        reason = self.checkpoints.disk.reason
        if reason is None:
            return
        if self.store is None:
            raise StoppedOnFullDisk(
                f"stopped while {reason}: the output held back is lost (no --state-dir)"
            )
        kept = self.checkpoint_generation
        resumed = f"generation {kept}" if kept else "its start"
        raise StoppedOnFullDisk(
            f"stopped while {reason}: no final checkpoint; a restart resumes from {resumed}, "
            "nothing is lost"
        )

    def _finish(self) -> None:
        if self._progress is not None:
            self._progress.close(self.counters.records_seen)
        if self.logbook is not None:
            self.logbook.close(self.counters)
        self.checkpoints.close()

    # -- state ----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything a restart needs, as one picklable dict."""
        parts = (("pseudo", self.pseudo), ("join", self.join), ("drift", self.monitor))
        return {
            "format": STATE_FORMAT,
            "streamlearn": __version__,
            "created": time.time(),
            "model_spec": self.model_spec,
            "settings": self.settings,
            "learner": self.learner,
            "source": self.source.snapshot(),
            "schema": self.decoder.schema(),
            "counters": self.counters.as_dict(),
            "extensions": {
                **self.extensions,
                **{key: part for key, part in parts if part is not None},
            },
            "sinks": {
                "dead_letters": self.dead_letters.position(),
                "predictions": self.predictions.position(),
            },
        }

    def checkpoint(self, *, wait: bool = False) -> None:
        """Snapshot the state and write it (on the writer thread unless ``wait``).

        The snapshot is taken here, between batches, so model and position match.
        Sinks are synced before the checkpoint is written and the source commits
        only after it is durable.
        """
        self.schedule.taken()
        if self.store is None:
            self.checkpoints.flush_sinks()
            if self.keyed is not None:  # the keys' telemetry follows them all the same
                if isinstance(self.router, KeyedRouter):
                    self.router.hear_held()  # and their monitors' (``keys.held``)
                self.keyed.models.rescore()
            return
        self.guard.check_model(self.router.last_x)  # never store a diverged model
        started = time.perf_counter()
        state = self.state()  # hands the sinks' buffers to the OS through position()
        if self.checkpoints.pause_if_sinks_full():
            return  # a sink's disk is full: no checkpoint may claim its lines
        self.checkpoints.write(state, wait=wait)
        if self.telemetry is not None:
            self.telemetry.stage_seconds("checkpoint", time.perf_counter() - started)

    def inspect(self) -> dict[str, Any]:
        """The ``inspect --json`` object of the current state."""
        summary = inspect_state(self.state(), self.checkpoint_generation or None)
        if self.keyed is not None:
            summary.update(self.keyed.summary())
        return summary
