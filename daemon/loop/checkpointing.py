"""Writing the loop's checkpoints: snapshot, write (on the writer thread), then commit the source.

Sinks are synced before a checkpoint is written and the source commits a position only
after the checkpoint holding it is durable, so a crash at any moment resumes from a model
and a position that belong together: nothing lost, nothing learned twice. A full disk
(state dir or sink) pauses the loop until a checkpoint can be written (``DiskFull``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

from streamlearn.sinks.jsonlines import Sink
from streamlearn.sources.base import Source
from streamlearn.state import BackgroundWriter, CheckpointError, CheckpointStore, Lock
from streamlearn.state.epoch import fenced_cause

from ..interfaces import LockedStatePart
from .diskfull import DiskFull, disk_full_error
from .host import LoopHost

log = logging.getLogger(__name__)

#: Seconds between looks at the state directory between checkpoints (deleted under us?).
STATE_DIR_CHECK_SECONDS = 1.0


class KeyedState(Protocol):
    """The keyed store of a keyed run (``streamlearn.keys.KeyedModels``), as checkpoints see it."""

    def checkpoint(self) -> Any:
        """Write the keys changed since the last checkpoint; their manifest (``.seq``)."""
        ...

    def checkpoint_part(self) -> Any:
        """``checkpoint`` made where the state is pickled: in a forked child, or on the loop
        (a ``Deferred`` part with a ``seq``)."""
        ...

    @property
    def in_flight(self) -> bool:
        """A forked child's keys wait for its checkpoint to be durable (or to fail)."""
        ...

    def abandon(self) -> None:
        """The forked child's checkpoint failed: its keys are changed again."""
        ...

    def sync(self) -> None: ...

    def durable(self, seq: int) -> None: ...


class KeyedTag(NamedTuple):
    """The writer's tag of a keyed run's checkpoint: the source position and the keys' seq."""

    source: Any
    seq: int


class Checkpointer:
    """Writes snapshots of the loop's state to ``store`` and commits the source after each.

    Parameters
    ----------
    store
        Where checkpoints go; None keeps everything in memory (the sinks are only flushed).
    source
        Commits a position (Kafka group offsets) once the checkpoint holding it is durable.
    sinks
        Dead letters and predictions: synced before a checkpoint, so a durable checkpoint
        never points past durable sink output.
    host
        Its telemetry hears of each durable checkpoint.
    on_durable
        Called with each generation once it is durable, before the source commits it (a
        test kills the process there: the window that must be safe).
    """

    def __init__(
        self,
        store: CheckpointStore | None,
        source: Source,
        sinks: tuple[Sink, Sink],
        host: LoopHost,
        on_durable: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.source = source
        self.sinks = sinks
        self.host = host
        self.on_durable = on_durable
        self.writer: BackgroundWriter | None = None
        #: The newest durable generation.
        self.generation = store.generation if store is not None else 0
        #: Checkpoints that failed (reported, retried at the next one).
        self.failures = 0
        #: Paused on a full disk (a sink's or the state dir's) until a checkpoint is written.
        self.disk = DiskFull()
        self._next_state_dir_check = 0.0
        #: A keyed run's store: its manifest goes into each checkpoint (``keys``), its
        #: segments are synced before the generation file and collected once not named.
        self.keys: KeyedState | None = None

    def open(self, state: Callable[[], dict[str, Any]]) -> None:
        """Start the writer thread (a run starts).

        A state dir without a generation first gets ``state()`` as the run's start state:
        the sinks' sizes are durable before a record is written to them, so a restart
        after a crash before the first checkpoint cuts them back (nothing in them twice).
        """
        if self.store is None:
            return
        if self.writer is None:
            syncs = tuple(sink.sync for sink in self.sinks)
            if self.keys is not None:
                syncs = (*syncs, self.keys.sync)
            self.writer = BackgroundWriter(self.store, syncs=syncs)
        if not self.store.generation:
            try:
                self.store.write_start(self.store.encode(state()))
            except OSError as exc:  # a full state dir: the loop waits for a checkpoint
                self._pause_on(exc, f"state dir {self.store.directory}")

    def close(self) -> None:
        """Stop the writer thread (a run ends)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    @property
    def busy(self) -> bool:
        """The writer is still on the last checkpoint (a new one would only replace it)."""
        return self.writer is not None and not self.writer.idle

    def flush_sinks(self) -> None:
        """Hand the sinks' buffers to the OS (no store: nothing else to do)."""
        for sink in self.sinks:
            sink.flush()
        if not self.pause_if_sinks_full():
            self.disk.clear()

    def pause_if_sinks_full(self) -> bool:
        """True (and paused) when a sink holds lines back for lack of space.

        No checkpoint may be written then: it would claim lines that are not on disk.
        """
        for sink in self.sinks:
            error = sink.held_back
            if error is not None:
                self.disk.hit(sink.describe(), error)
                return True
        return False

    def write(self, state: dict[str, Any], *, wait: bool = False) -> None:
        """Write ``state`` (taken between batches): on the writer thread unless ``wait``."""
        assert self.store is not None
        tag: Any = state["source"]
        if self.keys is not None:
            self._settle_keys()
            # Without a writer, or waited for: on the loop; else in the forked child if forked.
            on_loop = self.writer is None or wait
            keys = self.keys.checkpoint() if on_loop else self.keys.checkpoint_part()
            state["keys"] = keys
            tag = KeyedTag(tag, keys.seq)
        if self.writer is not None and not wait:
            # Only the snapshot needs the loop: the writer pickles it here or, when that
            # costs more than a fork, in a forked child; checksum and disk come after.
            try:
                self.writer.snapshot(state, tag, hold=snapshot_locks(state))
            except CheckpointError as exc:
                self.failed(exc)
            self.collect_durable()
            return
        blob = self.store.encode(state)
        if self.writer is not None:
            try:
                self.writer.wait()  # its generations come before this one
            except CheckpointError as exc:
                self.failed(exc)  # reported; this one is written all the same
        where = f"state dir {self.store.directory}"
        try:
            for sink in self.sinks:
                sink.sync()
            if self.keys is not None:
                self.keys.sync()
            generation = self.store.write(blob)
        except OSError as exc:
            self._pause_on(exc, where)  # a full disk: nothing written, the loop waits
            return
        self._durable([(generation, tag)])

    def _settle_keys(self) -> None:
        """A forked child's keys are adopted, or given back, before the next keys' checkpoint
        (its index entries must be the parent's first)."""
        assert self.keys is not None
        if self.keys.in_flight and self.writer is not None:
            try:
                self.writer.wait()
            except CheckpointError as exc:
                self.failed(exc)
            self.collect_durable()
        if self.keys.in_flight:  # no word of it: never lose its keys
            self.keys.abandon()

    def _pause_on(self, exc: OSError, where: str) -> None:
        """Pause on a full disk (``where`` for the message); any other error is raised."""
        error = disk_full_error(exc)
        if error is None:
            raise exc
        self.disk.hit(where, error)

    def keep_state_dir(self) -> None:
        """About once a second: a state dir deleted under the run is recreated and locked.

        So that a second daemon started on the recreated path meets the lock, also
        while no checkpoint is due. ``StateLost`` (another daemon locked it first)
        ends the run.
        """
        now = time.monotonic()
        if self.store is None or now < self._next_state_dir_check:
            return
        self._next_state_dir_check = now + STATE_DIR_CHECK_SECONDS
        self.store.keep_directory()

    def collect_durable(self) -> None:
        """Commit what the writer made durable meanwhile (also while the stream is idle)."""
        if self.writer is None:
            return
        try:
            written = self.writer.durable()
        except CheckpointError as exc:
            self.failed(exc)
            return
        if written:
            self._durable(written)

    def last_good_model(self) -> Any:
        """The model of the newest durable checkpoint, or None (no store, none written)."""
        if self.writer is not None:
            try:
                self.writer.wait()  # the newest checkpoint on disk is the last good model
            except CheckpointError as exc:  # the last write failed: the one before is good
                self.failed(exc)
        if self.store is not None and self.store.generation:
            loaded = self.store.load()
            if loaded is not None:
                return loaded.state["learner"].model
        return None

    @property
    def has_checkpoint(self) -> bool:
        """Whether a generation exists to restore from."""
        return self.store is not None and bool(self.store.generation)

    def failed(self, exc: CheckpointError) -> None:
        """An unreachable Kafka sink: keep learning, retry at the next one; a full disk: pause.

        The alert on checkpoint age tells an operator.
        """
        self.failures += 1
        if self.keys is not None:
            self.keys.abandon()  # a forked child's keys, if any, are written again
        fenced = fenced_cause(exc)
        if fenced is not None:
            raise fenced  # another instance took the model over: this run must end
        error = disk_full_error(exc)
        if error is not None and self.store is not None:
            self.disk.hit(f"state dir {self.store.directory}", error)
        else:
            log.error("checkpoint failed, will retry: %s", exc)

    def _durable(self, written: list[tuple[int, Any]]) -> None:
        telemetry = self.host.telemetry
        for generation, snapshot in written:
            self.generation = generation
            if isinstance(snapshot, KeyedTag):
                if self.keys is not None:
                    self.keys.durable(snapshot.seq)
                snapshot = snapshot.source
            if self.on_durable is not None:
                self.on_durable(generation)
            self.source.commit(snapshot)
            if telemetry is not None:
                telemetry.checkpoint_ok()
        if written and not self.pause_if_sinks_full():
            self.disk.clear()


def snapshot_locks(state: Mapping[str, Any]) -> list[Lock]:
    """Locks that threads of the state's parts take to change them (``snapshot_locks()``).

    A checkpoint's fork holds them, so the child never copies a part mid-change.
    """
    locks: list[Lock] = []
    for part in state.get("extensions", {}).values():
        if isinstance(part, LockedStatePart):
            locks.extend(part.snapshot_locks())
    return locks
