"""Keys held in slots, rows of arrays a compiled keyed kernel learns in: what the slots of
every model share (which key holds which slot, making room, settling into learners).

A key learned by a compiled keyed path (``streamlearn.loop.keyblocks``) holds a slot: its
rows of the model's arrays (``keys.slots`` for ``sgd``, ``keys.classslots`` for
``logistic``), which the kernel updates in place. While a key holds a slot the slot is its
state; its learner in the store (``KeyedModels``), if any, is behind. The slot is written
back into the learner (*settled*) before anything else reads it: the store asks
(``KeyedModels.overlay``) at ``get``, ``peek``, a checkpoint, ``entries`` and ``spill_all``;
the slot is then free. A key new to the run gets no learner object until it is settled,
so a key of a few records costs a slot, not a learner, a drift monitor and a curve.

Rows come with their keys as ids (``keys.keyids``: the key index in C), and a slot is found
by id in an array: no Python object or dict lookup a row.

Each key's drift monitor hears of its errors ``pending`` at a time (the slot's buffer; the
monitor when it is full, and the rest when the key is settled): a monitor that can only
alert (``choose`` requires it) gives the same detections and events whenever it hears of
them, and ADWIN tests only every 32 values anyway.
"""

from __future__ import annotations

import math
import mmap
import pickle
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeGuard, TypeVar

import numpy as np
from numpy.typing import NDArray

from streamlearn.fast.keyspec import K_LEARNED, KeyIndex, held_slots
from streamlearn.fast.spec import LABELED

from .keyids import KeyIds

if TYPE_CHECKING:
    from streamlearn.interfaces import ModelHost, Monitor

    from .store import KeyedModels

__all__ = ["HeldSlots", "KeyedLearner", "SlotTable", "plain_key_learner", "ratio", "zeros"]

G = TypeVar("G", bound=np.generic)


class KeyedLearner(Protocol):
    """What the slots read of a key's learner besides its model's state: its drift monitor."""

    drift: Monitor | None


#: A key's learner as the slots hold it (``KeyRegressor``, ``KeyClassifier``).
L = TypeVar("L", bound=KeyedLearner)

#: ``keyspec.held_slots``, or its compiled form.
HeldSlots = Callable[
    [NDArray[np.int64], NDArray[np.int8], NDArray[np.int64], NDArray[np.int64], int,
     NDArray[np.int64], int, int],
    int,
]  # fmt: skip

#: Slots made fresh at first; more as keys come, up to the capacity.
FIRST_SLOTS = 1024
#: Bytes of slot arrays at most (mapped, not used, until keys come): fewer slots beyond.
MAX_BYTES = 2 << 30
#: Errors a slot keeps for its key's drift monitor.
PENDING = 32


class SlotTable(Generic[L]):
    """Slots of per-key state for ``models``' keys, at most ``capacity`` of them.

    A model's slots (a subclass) make their arrays (``_arrays``), say which learners a slot
    can hold (``holds``), and load, store and make fresh a slot (``_load``, ``_store``,
    ``_fresh``); their ``counters`` array (int64) holds records learned at ``K_LEARNED``
    and the errors waiting for the monitor at ``pending_at``.

    Parameters
    ----------
    models
        The keyed store; the slots settle into its learners (and it asks them to).
    template
        A fresh learner of a key (``codec.fresh``): its drift monitor is each new key's.
    features
        The feature names, in the order of the parsed columns.
    capacity
        Slots at most (the store's ``max_live``): the least recently used are settled to
        make room.
    host
        What a key's drift monitor reports to (telemetry).
    index
        The key index (``_kernels.KeyIndex``; its specification by default).
    held
        ``held_slots`` (``_kernels.held_slots``; its specification by default).
    """

    #: The column of ``counters`` that counts the errors waiting for the monitor.
    pending_at: int
    counters: NDArray[np.int64]
    pend_err: NDArray[np.float64]
    pend_idx: NDArray[np.int64]

    def __init__(
        self,
        models: KeyedModels[Any],
        template: L,
        features: Sequence[str],
        capacity: int,
        host: ModelHost,
        index: KeyIndex | None = None,
        held: HeldSlots = held_slots,
    ) -> None:
        self.models = models
        self.features = list(features)
        self.template = template
        self.host = host
        self._held_slots = held
        drift = template.drift
        self._monitor = pickle.dumps(drift) if drift is not None else None
        #: Errors a slot keeps for its key's monitor (0: no drift monitor).
        self.pending = PENDING if drift is not None else 0
        self.of: dict[str, int] = {}
        #: Keys settled since the caller last looked (their slots may be another's now).
        self.released: list[tuple[str, int]] = []
        self.clock = 0
        #: Keys new to the run in slots, not in the store yet (``KeyOverlay.unsettled``).
        self.unsettled = 0
        self._names: list[str | None] = []
        self._new: list[bool] = []
        self._monitors: list[Monitor | None] = []
        self._free: list[int] = []
        self._shape(template)
        per_slot = self._slot_bytes() + 8 * (2 * self.pending + 1) + 1
        self.capacity = size = max(1, min(max(1, capacity), MAX_BYTES // per_slot))
        self._arrays(size)
        self.pend_err = zeros((size, self.pending), np.float64)
        self.pend_idx = zeros((size, self.pending), np.int64)
        #: The rows' keys as ids, and each id's slot.
        self.ids = KeyIds(index if index is not None else KeyIndex(), size, self.of)
        #: The ``clock`` of each slot's last use (the least recently used make room).
        self.stamp: NDArray[np.int64] = zeros((size,), np.int64)
        #: Slots learned since they were loaded: settled into their learner.
        self.changed: NDArray[np.bool_] = zeros((size,), np.bool_)
        #: Records learned by each slot when its score was last given (``scores``).
        self.scored: NDArray[np.int64] = zeros((size,), np.int64)
        self._allocate(min(self.capacity, FIRST_SLOTS))

    # -- what a model's slots say --------------------------------------------------------------

    def _shape(self, template: L) -> None:
        """Take what the slots need of ``template`` (learning rate, window, initial weights)."""
        raise NotImplementedError

    def _slot_bytes(self) -> int:
        """Bytes of the model's arrays a slot."""
        raise NotImplementedError

    def _arrays(self, size: int) -> None:
        """Make the model's arrays for ``size`` slots, as ``zeros``."""
        raise NotImplementedError

    def _first(self, start: int, stop: int) -> None:
        """Make slots ``start:stop``, zeros until now, fresh (the initial weights...)."""
        raise NotImplementedError

    def holds(self, learner: object) -> TypeGuard[L]:
        """Whether a key's ``learner`` can live in these slots."""
        raise NotImplementedError

    def _fresh(self, slot: int) -> None:
        """Make a freed slot fresh again."""
        raise NotImplementedError

    def _load(self, slot: int, learner: L) -> None:
        """Put ``learner``'s state into the slot."""
        raise NotImplementedError

    def _store(self, slot: int, learner: L) -> None:
        """Write the slot's state into ``learner``; ``_handover`` gives it its monitor."""
        raise NotImplementedError

    def _score(self, slots: NDArray[np.intp]) -> list[float]:
        """The score of each of ``slots`` as ``KeyCodec.describe`` gives it."""
        raise NotImplementedError

    # -- the arrays ------------------------------------------------------------------------

    def _allocate(self, size: int) -> None:
        """Make slots ``size`` fresh (those held keep their rows). The arrays are made for
        the whole capacity at once, as zeros the system maps only where they are written:
        no copy as keys come, and memory only for the slots used (a free slot is always
        fresh, so a new key costs no writes either)."""
        old = len(self._names)
        self._first(old, size)
        self._names += [None] * (size - old)
        self._new += [False] * (size - old)
        self._monitors += [None] * (size - old)
        self._free += range(size - 1, old - 1, -1)

    @property
    def size(self) -> int:
        """Slots allocated."""
        return len(self._names)

    # -- keys to slots ---------------------------------------------------------------------

    def assign(
        self,
        ids: NDArray[np.int64],
        status: NDArray[np.int8],
        slots: NDArray[np.int64],
        start: int,
        stop: int,
    ) -> None:
        """``slots[start:stop]``: each labeled row's slot, taken for a key without one;
        -1 for the rows the record path takes (other rows, keys the slots cannot hold).
        ``stop - start`` must not exceed the capacity (each row's key keeps its slot)."""
        self.clock += 1
        slot_of_id = self.ids.slot_of_id
        if not self._held_slots(
            ids, status, slot_of_id, self.stamp, self.clock, slots, start, stop
        ):
            return
        view = ids[start:stop]
        held = slots[start:stop]
        missed = np.flatnonzero((held < 0) & (status[start:stop] == LABELED) & (view >= 0))
        wanted = view[missed]
        unique, first = np.unique(wanted, return_index=True)
        order = unique[np.argsort(first, kind="stable")].tolist()  # in the order first seen
        names = self.ids.names
        keys = [names[id_] for id_ in order]
        self._take_new(order, keys)
        for id_, key in zip(order, keys, strict=True):
            self._held(id_, key)
        held[missed] = self.ids.slot_of_id[wanted]

    def _take_new(self, ids: list[int], keys: list[str]) -> None:
        """Slots for ``keys`` (of ``ids``, each once) at once when all are new to the run and
        fit in free slots (a stream of new keys: no per-key call); else ``assign`` takes
        them one by one."""
        models = self.models
        count = len(keys)
        if (
            models.keys_total > self.unsettled  # the store holds keys: each must be looked up
            or models.keys_total + count > models.max_keys
        ):
            return
        if count > len(self._free) and self.size < self.capacity:
            self._allocate(min(self.capacity, max(2 * self.size, self.size + count)))
        free = self._free
        if count > len(free):
            return
        taken = free[len(free) - count :]
        del free[len(free) - count :]
        self.of.update(zip(keys, taken, strict=True))
        names, fresh = self._names, self._new
        for key, slot in zip(keys, taken, strict=True):
            names[slot] = key
            fresh[slot] = True
        self.ids.bind_all(ids, taken)
        self.stamp[taken] = self.clock
        self.unsettled += count
        models.keys_total += count  # held from now on; ``get`` counts each again when settled

    def reassign(
        self, ids: NDArray[np.int64], slots: NDArray[np.int64], start: int, stop: int
    ) -> None:
        """After keys were settled (``released``): rows ``start:stop`` of theirs get a slot
        again (their old slot may be another key's now)."""
        released, self.released = self.released, []
        if not released or start >= stop:
            return
        view = slots[start:stop]
        rows = np.flatnonzero(np.isin(view, [slot for _, slot in released])).tolist()
        view[rows] = -1
        for row in rows:
            id_ = int(ids[start + row])
            view[row] = self._held(id_, self.ids.names[id_])

    def _held(self, id_: int, key: str) -> int:
        """The slot of key ``key`` (id ``id_``), taken if it holds none; -1: the record
        path's."""
        slot = int(self.ids.slot_of_id[id_])
        if slot < 0:
            slot = self._take(key)
            if slot >= 0:
                self.ids.bind(id_, slot)
        return slot

    def _take(self, key: str) -> int:
        """A slot for ``key`` (loaded from its learner, or fresh); -1: the record path's."""
        models = self.models
        # Only keys the store holds already are in it (not those new in the slots).
        if models.keys_total > self.unsettled and key in models:
            learner = models.get(key)
            if not self.holds(learner):
                return -1  # e.g. a key restored after it diverged into another spec: its own path
            slot = self._slot()
            if slot < 0:
                return -1
            self._load(slot, learner)
            self.changed[slot] = False
            self._new[slot] = False
            self._monitors[slot] = learner.drift
        else:
            if models.keys_total >= models.max_keys:
                return -1  # the record path dead-letters it (too_many_keys)
            slot = self._slot()
            if slot < 0:
                return -1
            self._new[slot] = True
            self.unsettled += 1
            models.keys_total += 1  # held from now on; ``get`` counts it again when settled
        self.of[key] = slot
        self._names[slot] = key
        self.stamp[slot] = self.clock
        return slot

    def _slot(self) -> int:
        if not self._free and self.size < self.capacity:
            self._allocate(min(self.capacity, 2 * self.size))
        if not self._free:
            self._make_room()
        return self._free.pop() if self._free else -1

    def _make_room(self) -> None:
        """Settle the least recently used eighth of the slots (none of the current rows')."""
        stamps = self.stamp
        older = np.flatnonzero(stamps < self.clock)
        if not len(older):
            return
        count = max(1, min(len(older), self.capacity // 8))
        victims = older[np.argsort(stamps[older], kind="stable")[:count]]
        for slot in victims.tolist():
            name = self._names[slot]
            assert name is not None
            self.settle(name)

    # -- the drift monitors --------------------------------------------------------------------

    def _handover(self, slot: int, learner: L) -> None:
        """Give the key's ``learner`` its monitor, told of the slot's waiting errors."""
        monitor = self._monitors[slot]
        if monitor is None:
            monitor = learner.drift  # a new key's: as fresh as the slot's would be
        self._monitors[slot] = monitor
        self.flush(slot)
        learner.drift = monitor

    def flush(self, slot: int) -> None:
        """Hand the slot's waiting errors to its key's drift monitor (made if it has none)."""
        counters = self.counters[slot]
        waiting = int(counters[self.pending_at])
        if not waiting:
            return
        monitor = self._monitors[slot]
        if monitor is None:
            assert self._monitor is not None
            monitor = self._monitors[slot] = pickle.loads(self._monitor)
        assert monitor is not None
        monitor.observe_errors(
            self.pend_idx[slot, :waiting].copy(), self.pend_err[slot, :waiting].copy(), self.host
        )
        counters[self.pending_at] = 0

    # -- settling (KeyedModels.overlay) ------------------------------------------------------

    def __contains__(self, key: object) -> bool:
        return key in self.of

    def settle(self, key: str) -> None:
        """Write ``key``'s slot into its learner in the store (made if new) and free it."""
        slot = self.of.pop(key, None)
        if slot is None:
            return
        models = self.models
        if self._new[slot]:
            models.keys_total -= 1  # counted when it took the slot; ``get`` counts it now
            self.unsettled -= 1
        if self.changed[slot]:
            learner = models.get(key)
            assert self.holds(learner)
            self._store(slot, learner)
        self._names[slot] = None
        self._new[slot] = False
        self.ids.unbind(slot)
        self._fresh(slot)
        self.changed[slot] = False
        self.scored[slot] = 0
        self._monitors[slot] = None
        self.stamp[slot] = 0
        self._free.append(slot)
        self.released.append((key, slot))

    def scores(self) -> Iterator[tuple[str, float, bool]]:
        """Each learned slot's key, score (``KeyCodec.describe``'s) and whether the store may
        have written it (not for a key new to the run)."""
        size = self.size
        learned = self.counters[:size, K_LEARNED]
        # A key new to the run is counted again only once it learned more: the store keeps
        # the score counted last. One loaded from a learner is counted every time (after
        # the learner, which the store counts too).
        new = np.array(self._new, dtype=np.bool_)
        slots = np.flatnonzero(self.changed[:size] & (~new | (learned != self.scored[:size])))
        self.scored[slots] = learned[slots]
        names, fresh = self._names, self._new
        for slot, score in zip(slots.tolist(), self._score(slots), strict=True):
            key = names[slot]
            assert key is not None
            yield key, score, not fresh[slot]

    def settle_all(self) -> None:
        """Settle every key (before a checkpoint, ``entries``, ``spill_all``)."""
        for key in list(self.of):
            self.settle(key)


def plain_key_learner(learner: Any, template: Any) -> bool:
    """What every model's slots ask of a key's learner besides its model: ``template``'s
    window and curve size, no baseline, no pseudo-labels, fixed features, and a drift monitor
    (if any) that can only alert."""
    drift = learner.drift
    return bool(
        learner.rolling_window == template.rolling_window
        and learner.curve.max_points == template.curve.max_points
        and learner.baseline is None
        and learner.pseudo is None
        and learner.feature_names is None
        and (drift is None or (drift.errors_only and not drift.may_change_model))
    )


def ratio(numerators: NDArray[Any], lengths: NDArray[np.int64]) -> list[float]:
    """Each numerator over its length (NaN over 0), as Python divides them."""
    return [
        total / length if length else math.nan
        for total, length in zip(numerators.tolist(), lengths.tolist(), strict=True)
    ]


def zeros(shape: tuple[int, ...], dtype: type[G]) -> NDArray[G]:
    """An array of zeros in memory of its own (an anonymous mapping), touched only where it
    is written. Not numpy's allocation: numpy asks for huge pages for large arrays, and a
    slot's first write then made the system find and clear 2 MiB (a keyed run of 100,000 new
    keys spent 4 s of 5 in such faults on a busy machine, 0.4 s with normal pages)."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    # Private: a forked checkpoint child gets its own copy on write, as of any other memory.
    buffer = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buffer, dtype=dtype, count=int(np.prod(shape))).reshape(shape)
