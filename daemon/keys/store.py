"""One learner per key, at most ``max_live`` of them in memory, the rest spilled to disk.

:class:`KeyedModels` maps a key's text to its learner. The least recently used learners
beyond ``max_live`` are written to the segments (``streamlearn.keys.segments``: signed
frames, never overwritten) and read back when their key returns, the same bits. A
checkpoint writes the keys learned since the last one and the index shards they changed,
and returns a small :class:`~streamlearn.keys.manifest.KeysManifest` that the generation
file holds beside the source position. Without a state dir the segments go to a temporary
directory, removed at exit.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from ..state.format import CheckpointError
from ..state.key import StateKey
from .childsave import ChildKeys, Forked, adopted, given_back
from .codec import KeyCodec
from .index import Entry, KeyIndex
from .manifest import MANIFEST_FORMAT, KeysManifest
from .overlay import NO_OVERLAY, KeyOverlay
from .scores import ACCURACY_BUCKETS, MAE_BUCKETS, KeyScores
from .segments import MODEL, SEGMENT_BYTES, SHARD, Ref, SegmentLog, clear_directory
from .tempdir import SpillDir

__all__ = [
    "DEFAULT_MAX_KEYS",
    "DEFAULT_MAX_LIVE",
    "KEY_REASONS",
    "MAX_KEY_CHARS",
    "KeyEvents",
    "KeyRejected",
    "KeyedModels",
    "clear_directory",
]

log = logging.getLogger(__name__)

L = TypeVar("L")

#: Learners in memory at most, by default (``--max-live-keys``).
DEFAULT_MAX_LIVE = 10_000
#: Keys held at most, live and spilled, by default; a new key beyond is refused.
DEFAULT_MAX_KEYS = 10_000_000
#: Characters of a key's text at most.
MAX_KEY_CHARS = 256
#: Why a key is refused (the dead-letter reason of its record).
KEY_REASONS = ("missing_key", "key_too_long", "too_many_keys")
#: Bytes a checkpoint's compaction may copy at least (at most: this, or what it wrote).
COMPACT_MIN_BYTES = 1024 * 1024
_NAME_LENGTH = struct.Struct(">H")


class KeyRejected(ValueError):
    """A key the store cannot hold; ``reason`` is one of ``KEY_REASONS``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class KeyEvents(Protocol):
    """Hears of each spill and load, with its duration (telemetry)."""

    def spilled(self, seconds: float) -> None: ...

    def loaded(self, seconds: float) -> None: ...


def check_key(key: str) -> None:
    """``KeyRejected`` for an empty key or one longer than ``MAX_KEY_CHARS``."""
    if not key:
        raise KeyRejected("missing_key", "the key is empty")
    if len(key) > MAX_KEY_CHARS:
        raise KeyRejected(
            "key_too_long", f"a key of {len(key)} characters (at most {MAX_KEY_CHARS})"
        )


class KeyedModels(Generic[L]):
    """Key -> learner: ``max_live`` in memory (least recently used spilled), all on disk.

    Parameters
    ----------
    codec
        Makes, pickles and describes learners (``streamlearn.keys.codec``).
    directory
        Where the segments go (``<state-dir>/keys``); None: a temporary directory, removed
        by ``close`` or at exit.
    key
        Signs the segments' frames (the state dir's key); a random one without a directory.
    manifest
        The checkpoint to resume from (its segments must be in ``directory``).
    max_live
        Learners in memory at most (at least 1).
    max_keys
        Keys held at most; a new key beyond is refused (``KeyRejected``, ``too_many_keys``).
    keep
        Generations the checkpoint store keeps: a segment is deleted once that many durable
        checkpoints no longer name it.
    scores
        The keys' score histogram to keep (default: buckets for the codec's score).
    segment_bytes
        Size of a segment file before the next one starts.
    read_only
        Only look (``inspect``): ``peek`` and ``entries``, nothing written.

    Examples
    --------
    >>> from streamlearn.keys.codec import LearnerCodec
    >>> from streamlearn.learner import Learner
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> models = KeyedModels(LearnerCodec(lambda: Learner(SGDRegressor(lr=0.1))), max_live=1)
    >>> _ = models.get("a").step({"x": 1.0}, 2.0)
    >>> _ = models.get("b").step({"x": 1.0}, 4.0)   # "a" is spilled to disk
    >>> models.live, len(models), models.spills
    (1, 2, 1)
    >>> models.get("a").model.weights    # read back, the same bits
    {'x': 0.2}
    >>> models.close()
    """

    #: Holds some keys' state ahead of their learners (the compiled keyed path), when set.
    overlay: KeyOverlay = NO_OVERLAY

    def __init__(
        self,
        codec: KeyCodec[L],
        *,
        directory: str | os.PathLike[str] | None = None,
        key: StateKey | None = None,
        manifest: KeysManifest | None = None,
        max_live: int = DEFAULT_MAX_LIVE,
        max_keys: int = DEFAULT_MAX_KEYS,
        keep: int = 2,
        scores: KeyScores | None = None,
        segment_bytes: int = SEGMENT_BYTES,
        read_only: bool = False,
    ) -> None:
        if max_live < 1:
            raise ValueError("max_live must be at least 1")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        if manifest is not None and manifest.format > MANIFEST_FORMAT:
            raise CheckpointError(
                f"the keys' state has format {manifest.format}, newer than this streamlearn "
                f"understands ({MANIFEST_FORMAT})"
            )
        self.codec = codec
        self.max_live = max_live
        self.max_keys = max_keys
        self.keep = keep
        self._spill_dir: SpillDir | None = None
        if directory is None:
            if manifest is not None or read_only:
                raise ValueError("a checkpoint's keys are read from their directory")
            self._spill_dir = SpillDir()
            path = self._spill_dir.path
            key = StateKey(os.urandom(32), "a key of this run's spill directory")
        else:
            path = Path(directory)
            if key is None:
                raise ValueError("a key store in a state dir needs the state dir's key")
            if not read_only:
                path.mkdir(parents=True, exist_ok=True)
        self.directory = path
        self.log = SegmentLog(
            path,
            key,
            first=manifest.next_segment if manifest is not None else 1,
            live=manifest.live_bytes if manifest is not None else None,
            durable=directory is not None,
            segment_bytes=segment_bytes,
            read_only=read_only,
        )
        self.index = KeyIndex(self.log, manifest.table if manifest is not None else None)
        self.keys_total = manifest.keys_total if manifest is not None else 0
        if manifest is not None:
            self.scores = manifest.scores.copy()
        elif scores is not None:
            self.scores = scores
        else:
            accuracy = codec.score_name == "accuracy"
            self.scores = KeyScores(
                ACCURACY_BUCKETS if accuracy else MAE_BUCKETS, higher_is_worse=not accuracy
            )
        seq = manifest.seq if manifest is not None else 0
        self.log.seq = seq + 1
        self._durable: list[int] = [seq] if manifest is not None else []
        self._live: OrderedDict[str, L] = OrderedDict()
        self._dirty: set[str] = set()
        #: Its forked checkpoint children (``childsave``): the keys one is writing.
        self.forked = Forked()
        self.read_only = read_only
        #: Hears of spills and loads (telemetry), when set.
        self.events: KeyEvents | None = None
        #: Learners written to disk to make room, read back, made new, and dropped
        #: unchanged (their copy on disk was current), by this process.
        self.spills = 0
        self.loads = 0
        self.created = 0
        self.dropped = 0
        #: Seconds spent spilling and loading, by this process.
        self.spill_seconds = 0.0
        self.load_seconds = 0.0

    # -- what the router uses -----------------------------------------------------------------

    def get(self, key: str) -> L:
        """The learner of ``key``, to learn: read back or made new if not in memory.

        ``KeyRejected`` for a key the store cannot hold; ``CheckpointError`` when its state
        on disk is unreadable (never a fresh model instead).
        """
        self.overlay.settle(key)
        learner = self._live.get(key)
        if learner is None:
            learner = self._bring(key, create=True)
            assert learner is not None
        else:
            self._live.move_to_end(key)
        self._dirty.add(key)
        return learner

    def peek(self, key: str) -> L | None:
        """The learner of ``key``, to predict with (not changed); None for a key never seen."""
        self.overlay.settle(key)
        learner = self._live.get(key)
        if learner is not None:
            self._live.move_to_end(key)
            return learner
        return self._bring(key, create=False)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return key in self._live or self.index.get(key) is not None

    def __len__(self) -> int:
        """Keys held, live and spilled."""
        return self.keys_total

    @property
    def live(self) -> int:
        """Learners in memory, and keys new to the run whose state only the overlay holds."""
        return len(self._live) + self.overlay.unsettled

    def state_bytes(self) -> int:
        """Bytes of per-key state in use in the segments (safe to call from another thread)."""
        return sum(self.log.live.copy().values())

    def live_keys(self) -> list[str]:
        """The keys in memory, least recently used first."""
        return list(self._live)

    # -- spilling -----------------------------------------------------------------------------

    def _bring(self, key: str, *, create: bool) -> L | None:
        check_key(key)
        entry = self.index.get(key)
        if entry is not None:
            started = time.perf_counter()
            learner = self._read(key, entry.ref)
            seconds = time.perf_counter() - started
            self.loads += 1
            self.load_seconds += seconds
            if self.events is not None:
                self.events.loaded(seconds)
        elif not create:
            return None
        elif self.read_only:
            raise CheckpointError("this key store was opened read-only")
        elif self.keys_total >= self.max_keys:
            raise KeyRejected(
                "too_many_keys", f"{self.keys_total} keys held already (at most {self.max_keys})"
            )
        else:
            learner = self.codec.fresh(key)
            self.keys_total += 1
            self.created += 1
        live = self._live
        live[key] = learner
        while len(live) > self.max_live:
            self._evict()
        return learner

    def _evict(self) -> None:
        live = self._live
        key = next(iter(live))
        if key not in self._dirty and key not in self.forked.inflight:
            del live[key]
            self.dropped += 1  # unchanged since it was written or read: the disk has it
            return
        started = time.perf_counter()
        # Written before it leaves: a write that fails (a full disk) loses nothing.
        rolled = self._persist(key, live[key])
        del live[key]
        self._dirty.discard(key)
        self.forked.inflight.discard(key)  # a forked child's copy of it is older
        seconds = time.perf_counter() - started
        self.spills += 1
        self.spill_seconds += seconds
        if self.events is not None:
            self.events.spilled(seconds)
        if rolled and not self.log.durable:
            # No checkpoint compacts a temporary directory: a full segment does.
            self._compact(self.log.segment_bytes)

    def _persist(self, key: str, learner: L) -> bool:
        """Write ``learner`` as ``key``'s latest state; True when a new segment was started."""
        segment = self.log.current
        encoded = key.encode()
        payload = _NAME_LENGTH.pack(len(encoded)) + encoded + self.codec.dump(learner)
        ref = self.log.append(MODEL, key, payload)
        records, score = self.codec.describe(learner)
        old = self.index.put(key, Entry(*ref, records, score))
        self.scores.update(key, old.score if old is not None else None, score)
        return self.log.current != segment

    def _read(self, key: str, ref: Ref) -> L:
        try:
            payload = memoryview(self.log.read(ref))
        except CheckpointError as exc:  # which key: the store's own message cannot say
            raise CheckpointError(f"the state of key {key!r}: {exc}") from None
        (length,) = _NAME_LENGTH.unpack_from(payload)
        name = bytes(payload[2 : 2 + length]).decode(errors="replace")
        if name != key:
            raise CheckpointError(f"the state read for key {key!r} is key {name!r}'s")
        try:
            return self.codec.load(bytes(payload[2 + length :]))
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError) as exc:
            raise CheckpointError(f"the state of key {key!r} cannot be loaded: {exc}") from None

    def saved(self, key: str) -> L | None:
        """``key``'s learner as last written (a spill or a checkpoint); None if never written."""
        entry = self.index.get(key)
        return self._read(key, entry.ref) if entry is not None else None

    def replace(self, key: str, learner: L) -> None:
        """Put ``learner`` in place of ``key``'s (a divergence restore); it is live and changed."""
        check_key(key)
        if key not in self:
            raise KeyError(key)
        self._live[key] = learner
        self._live.move_to_end(key)
        self._dirty.add(key)
        while len(self._live) > self.max_live:
            self._evict()

    def rescore(self) -> None:
        """Count the changed live keys at their scores now, unwritten: without a state dir
        no checkpoint writes them, and the keys' telemetry would show only the spilled."""
        if self.events is None:  # nothing reads them without --metrics-port (seconds a run)
            return
        described = self.overlay.scores()  # its keys as they are now: after their learners
        for key, score in ((key, self.codec.describe(self._live[key])[1]) for key in self._dirty):
            entry = self.index.get(key)
            self.scores.counted(key, entry.score if entry is not None else None, score)
        for key, score, written in described:  # a key new to the run was never written
            entry = self.index.get(key) if written else None
            self.scores.counted(key, entry.score if entry is not None else None, score)

    def spill_all(self) -> None:
        """Write every changed live learner and empty the live set (tests, a revoked partition)."""
        self.overlay.settle_all()
        while self._live:
            self._evict()

    # -- checkpoints --------------------------------------------------------------------------

    def checkpoint(self) -> KeysManifest:
        """Write the keys changed since the last checkpoint and the index shards they changed;
        returns what the generation file holds of them.

        Call it where the learners are consistent (between batches). Its cost grows with the
        keys changed, not with the keys held. The generation file may be written only after
        ``sync`` (which the checkpoint writer's thread may run); ``durable`` then says it is.
        """
        if not self.log.durable:
            raise CheckpointError("a temporary spill directory has no checkpoints")
        self.overlay.settle_all()
        before, started = self.log.bytes_written, time.perf_counter()
        live = self._live
        for key in self._dirty:  # every changed key is live: a spilled one was written
            self._persist(key, live[key])
        if self._dirty:
            self.forked.persist_seconds = (time.perf_counter() - started) / len(self._dirty)
        self._dirty.clear()
        self._compact(max(COMPACT_MIN_BYTES, self.log.bytes_written - before))
        self.index.flush()
        return self.manifest()

    def manifest(self) -> KeysManifest:
        """What the generation file holds of the keys as written (its ``seq`` is used up)."""
        live = self._live
        manifest = KeysManifest(
            seq=self.log.seq,
            keys_total=self.keys_total,
            table=self.index.table.copy(),
            live_bytes=dict(self.log.live),
            next_segment=self.log.current + 1,
            scores=self.scores.copy(),
            score_name=self.codec.score_name,
            extra={"live": len(live)},
        )
        self.log.seq += 1
        return manifest

    def sync(self) -> None:
        """Make what ``checkpoint`` wrote durable (fsync); the checkpoint writer's thread may."""
        if self.log.durable:
            self.log.sync()

    def checkpoint_part(self) -> ChildKeys:
        """``checkpoint`` as a ``Deferred`` part: made where the state is pickled, in the
        forked child (the keys changed pickled and written off the loop) or on the loop."""
        if not self.log.durable:
            raise CheckpointError("a temporary spill directory has no checkpoints")
        self.overlay.settle_all()
        part = ChildKeys(self, self.log.seq)
        self.log.seq += 1
        return part

    @property
    def in_flight(self) -> bool:
        """A forked child writes keys whose checkpoint is not durable yet."""
        return self.forked.part is not None

    def abandon(self) -> None:
        """The forked child's checkpoint failed: its keys are changed again."""
        if self.forked.part is not None:
            given_back(self, self.forked.part)

    def durable(self, seq: int) -> None:
        """The checkpoint ``seq`` is durable: delete the segments no kept checkpoint names."""
        if self.forked.part is not None and seq >= self.forked.part.seq:
            adopted(self, self.forked.part)
        self._durable.append(seq)
        del self._durable[: -self.keep]
        if len(self._durable) == self.keep:
            self.log.collect(self._durable[0])

    def _compact(self, budget: int) -> int:
        """Copy the frames in use of segments mostly out of use (at most about ``budget``
        bytes), so that those segments can go. Returns the bytes copied."""
        copied = 0
        index, segments = self.index, self.log
        for segment in segments.sparse():
            if copied >= budget:
                break
            for kind, name, ref in segments.entries(segment):
                if kind == MODEL:
                    entry = index.get(name)
                    if entry is None or entry.ref != ref:
                        continue
                    index.move(
                        name, ref, segments.append_frame(MODEL, name, segments.read_frame(ref))
                    )
                elif kind == SHARD and name.isdigit():
                    number = int(name)
                    if index.shard_ref(number) != ref or not index.movable(number):
                        continue
                    index.move_shard(
                        number, ref, segments.append_frame(SHARD, name, segments.read_frame(ref))
                    )
                else:
                    continue
                copied += ref.length
        return copied

    # -- reading ------------------------------------------------------------------------------

    def entries(self) -> Iterator[tuple[str, int, float]]:
        """Every key held: (key, records learned, score; NaN: none), the live ones as they are
        now, the others as last written. One shard in memory at a time."""
        self.overlay.settle_all()
        describe = self.codec.describe
        for key, learner in self._live.items():
            yield (key, *describe(learner))
        live = self._live
        for key, entry in self.index.items():
            if key not in live:
                yield key, entry.records, entry.score

    def close(self) -> None:
        """Close the segment files; a temporary directory is removed. Twice is fine."""
        self.log.close()
        if self._spill_dir is not None:
            self._spill_dir.close()
