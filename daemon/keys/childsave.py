"""A keyed checkpoint written by the forked checkpoint child: the keys changed, off the loop.

``KeyedModels.checkpoint_part`` hands the checkpoint writer a :class:`ChildKeys`, a
``Deferred`` part of the state. When the writer forks, the child (a copy-on-write image of
the loop at that moment) pickles each changed key into a segment of its own, one the parent
will not write to (``SegmentLog.reserve``), writes the index shards they changed there too,
fsyncs it and puts the manifest in the generation file it writes; the loop learns on
meanwhile. The parent keeps those keys changed (``Forked.inflight``: a key evicted meanwhile is
written by the parent, as any changed key) until the checkpoint is durable; then it points
its index at the child's frames of the keys not written since (:func:`adopted`), read from
the index shards the child wrote there. A child that failed gives its keys back as changed
(:func:`given_back`). When the writer pickles on the loop instead, the part is the
checkpoint on the loop (``KeyedModels.checkpoint``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..state.child import CHILD_SHA256, Deferred, Lock
from ..state.format import load
from .index import Entry
from .segments import SHARD, Ref

if TYPE_CHECKING:
    from .manifest import KeysManifest
    from .store import KeyedModels

__all__ = ["ChildKeys", "Forked", "adopted", "given_back"]


@dataclass
class Forked:
    """What a keyed store knows of its forked checkpoint children."""

    #: Keys the child in flight writes: changed for the parent until its checkpoint is durable.
    inflight: set[str] = field(default_factory=set)
    #: That child's part (None: no child in flight).
    part: ChildKeys | None = None
    #: Seconds a changed key costs a checkpoint on the loop (pickled and written), last measured.
    persist_seconds: float = 20e-6
    #: Keys written by children, taken up once their checkpoint was durable.
    keys: int = 0


class ChildKeys(Deferred):
    """The keys' checkpoint ``seq``: the keys changed now, written where it is made."""

    def __init__(self, models: KeyedModels[Any], seq: int) -> None:
        self.models = models
        self.seq = seq
        self.keys = list(models._dirty)
        self.segment = models.log.reserve()

    def guess(self) -> float:
        return len(self.keys) * self.models.forked.persist_seconds

    def locks(self) -> Sequence[Lock]:
        return (self.models.log._sync_lock,)

    def made(self, child: bool) -> KeysManifest:
        models = self.models
        if not child:  # on the loop: written now, as a checkpoint without a child is
            models.log.seq = self.seq
            return models.checkpoint()
        log = models.log
        log.in_child(self.segment, CHILD_SHA256)
        log.seq = self.seq
        live = models._live
        for key in self.keys:
            models._persist(key, live[key])
        models.index.flush()
        log.sync()
        return models.manifest()

    def forked(self) -> None:
        models = self.models
        models.forked.inflight = set(self.keys)
        models._dirty = set()
        models.forked.part = self
        models.log.skip(self.segment)


def adopted(models: KeyedModels[Any], part: ChildKeys) -> None:
    """The child's checkpoint is durable: the index points at its frames of the keys not
    written since."""
    from .store import COMPACT_MIN_BYTES

    log, index, segment = models.log, models.index, part.segment
    inflight = models.forked.inflight
    shards: dict[str, Ref] = {}  # the child's index shards, each as it wrote it last
    for kind, name, ref in log.entries(segment):
        if kind == SHARD:
            shards[name] = ref
    for ref in shards.values():
        for key, fields in load(log.read(ref))["entries"].items():
            entry = Entry(*fields)
            if entry.segment != segment or key not in inflight:
                continue  # a key the child did not write, or the parent wrote since
            inflight.discard(key)
            old = index.put(key, entry)
            log.adopt(entry.ref)
            models.scores.update(key, old.score if old is not None else None, entry.score)
            models.forked.keys += 1
    given_back(models, part)  # none left, unless the segment lost some
    models._compact(COMPACT_MIN_BYTES)  # a checkpoint on the loop would have


def given_back(models: KeyedModels[Any], part: ChildKeys) -> None:
    """The keys the child was to write are changed again; its segment is named from
    ``part.seq`` at most."""
    models._dirty |= models.forked.inflight
    models.forked.inflight = set()
    models.forked.part = None
    models.log.drop(part.segment, part.seq + 1)
