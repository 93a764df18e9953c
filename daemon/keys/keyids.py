"""The keys of a keyed ``sgd`` run's blocks as ids, and each id's slot (``keys.slots``).

The key index (``_kernels.KeyIndex``, specified by ``streamlearn.fast.keyspec.KeyIndex``) cuts
the key column out of a block's lines and gives each distinct key an id, making text only of
the keys it has not seen: no Python object or dict lookup a row. An id's slot is then an
array's item (``slot_of_id``). The index holds every distinct key it cut since it was last
cleared; it is cleared (between blocks) once it holds more than ``max_ids`` keys (twice the
slots, at least 65,536): its memory is bounded by that whatever the number of keys in the
stream, and a key seen again after a clear gets a new id (found in its slot, if it holds one).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from streamlearn.fast.keyspec import KeyIndex

__all__ = ["KeyIds"]

#: Key ids the index holds before it is cleared (``max_ids``): this many a slot, at least
#: ``MIN_IDS``.
IDS_PER_SLOT = 2
MIN_IDS = 1 << 16


class KeyIds:
    """Key ids of ``index`` for ``slots`` slots, whose keys' slots are ``of`` (the slots' own
    dict: a key new to the index may hold a slot already)."""

    def __init__(self, index: KeyIndex, slots: int, of: dict[str, int]) -> None:
        self.index = index
        self.of = of
        #: Each key id's text.
        self.names: list[str] = []
        #: Each key id's slot (-1: none), and each slot's key id (-1: none).
        self.slot_of_id: NDArray[np.int64] = np.full(1024, -1, dtype=np.int64)
        self.id_of_slot: NDArray[np.int64] = np.full(slots, -1, dtype=np.int64)
        self.max_ids = max(MIN_IDS, IDS_PER_SLOT * slots)
        #: Whether the index was cleared: only then may a key new to it hold a slot.
        self.cleared = False

    def cut(
        self, data: bytes, column: int, starts: NDArray[np.int64], ids: NDArray[np.int64]
    ) -> bytes:
        """A block's lines less their key cells, each row's key id into ``ids`` (-1: the
        decoder's to judge; ``key_id`` then), as ``KeyIndex.cut``. The index is cleared
        first if it holds more than ``max_ids`` keys."""
        if len(self.index) > self.max_ids:
            self.index.clear()
            self.names = []
            self.slot_of_id[:] = -1
            self.id_of_slot[:] = -1
            self.cleared = True
        cut, new = self.index.cut(data, column, starts, ids)
        self._named(new)
        return cut

    def key_id(self, key: str) -> int:
        """The id of a key the decoder read (added to the index if new)."""
        found = self.index.id(key.encode("utf-8", "surrogatepass"))
        if found == len(self.names):
            self._named([key])
        return found

    def _named(self, new: list[str]) -> None:
        """Keys new to the index took the next ids: those in slots are found there."""
        if not new:
            return
        first = len(self.names)
        self.names += new
        if len(self.names) > len(self.slot_of_id):
            grown = np.full(2 * len(self.names), -1, dtype=np.int64)
            grown[: len(self.slot_of_id)] = self.slot_of_id
            self.slot_of_id = grown
        if self.cleared and self.of:  # keys in slots since the index was cleared
            of = self.of
            for id_, key in enumerate(new, first):
                slot = of.get(key)
                if slot is not None:
                    self.bind(id_, slot)

    def bind(self, id_: int, slot: int) -> None:
        self.slot_of_id[id_] = slot
        self.id_of_slot[slot] = id_

    def bind_all(self, ids: list[int], slots: list[int]) -> None:
        self.slot_of_id[ids] = slots
        self.id_of_slot[slots] = ids

    def unbind(self, slot: int) -> None:
        """``slot`` holds no key now."""
        id_ = int(self.id_of_slot[slot])
        if id_ >= 0:
            self.slot_of_id[id_] = -1
            self.id_of_slot[slot] = -1
