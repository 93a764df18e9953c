"""The index of persisted keys: key -> where its state lies, in shards stored in the segments.

The keys are spread over shards by linear hashing (CRC-32 of the key's text), about 32 to 64
keys a shard: a new key splits at most one shard, so the index grows a shard at a time. In
memory are only the shard table (three integers a shard: where its latest frame lies) and a
bounded cache of shards; a checkpoint writes the shards changed since the last one. So its
cost grows with the keys changed, and memory stays flat however many keys the index holds.
"""

from __future__ import annotations

import math
import pickle
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from ..state.format import CheckpointError, load
from .segments import SHARD, Ref, SegmentLog

__all__ = ["CACHE_SHARDS", "SHARD_KEYS", "Entry", "KeyIndex", "ShardTable"]

#: The mean number of keys a shard holds at most before the next shard splits.
SHARD_KEYS = 64
#: Shards kept in memory at most (a changed one is written to its segment when it leaves).
CACHE_SHARDS = 1024
#: Shards of a new index: the table grows from there, one shard a split.
FIRST_SHARDS = 16
_EMPTY = (-1, 0, 0)


class Entry(NamedTuple):
    """What the index says of a key: where its state lies and how it was doing then."""

    segment: int
    offset: int
    length: int
    #: Records it had learned when written.
    records: int
    #: Its score then (rolling MAE, or accuracy): NaN when it had none.
    score: float

    @property
    def ref(self) -> Ref:
        return Ref(self.segment, self.offset, self.length)


@dataclass
class ShardTable:
    """Where every shard's latest frame lies: what a checkpoint keeps of the index."""

    #: Shards before the current round of splits (a power of two).
    level: int
    #: Shards of this round split so far: there are ``level + split`` shards.
    split: int
    #: Three integers a shard: segment, offset, length (segment -1: empty shard).
    refs: array[int]
    #: Keys in the index.
    count: int

    @classmethod
    def new(cls) -> ShardTable:
        return cls(FIRST_SHARDS, 0, array("q", _EMPTY * FIRST_SHARDS), 0)

    def copy(self) -> ShardTable:
        return ShardTable(self.level, self.split, array("q", self.refs), self.count)


def key_hash(key: str) -> int:
    """The stable hash that places a key (``hash()`` changes from process to process).

    >>> key_hash("store-7") == zlib.crc32(b"store-7")
    True
    """
    return zlib.crc32(key.encode())


class KeyIndex:
    """Key -> ``Entry``, for every key whose state was written to the segments.

    Parameters
    ----------
    log
        Where shards are written and read.
    table
        The shard table of a checkpoint (a copy is taken); None: a new, empty index.
    shard_keys, cache_shards
        See ``SHARD_KEYS`` and ``CACHE_SHARDS``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from streamlearn.state.key import StateKey
    >>> log = SegmentLog(Path(tempfile.mkdtemp()), StateKey(bytes(range(32))), durable=False)
    >>> index = KeyIndex(log)
    >>> index.put("store-7", Entry(1, 40, 300, 12, 0.5)) is None
    True
    >>> index.get("store-7").records, index.get("store-8"), len(index)
    (12, None, 1)
    """

    def __init__(
        self,
        log: SegmentLog,
        table: ShardTable | None = None,
        *,
        shard_keys: int = SHARD_KEYS,
        cache_shards: int = CACHE_SHARDS,
    ) -> None:
        if shard_keys < 1 or cache_shards < 1:
            raise ValueError("shard_keys and cache_shards must be at least 1")
        self.log = log
        self.table = table.copy() if table is not None else ShardTable.new()
        self.shard_keys = shard_keys
        self.cache_shards = cache_shards
        self._cache: OrderedDict[int, dict[str, Entry]] = OrderedDict()
        self._dirty: set[int] = set()
        #: Shards read from the segments (cache misses) and written, by this process.
        self.shard_reads = 0
        self.shard_writes = 0

    def __len__(self) -> int:
        return self.table.count

    @property
    def shards(self) -> int:
        return self.table.level + self.table.split

    def shard_of(self, key: str) -> int:
        """The shard ``key`` belongs to now (linear hashing)."""
        table = self.table
        hashed = key_hash(key)
        shard = hashed & (table.level - 1)
        if shard < table.split:
            shard = hashed & (2 * table.level - 1)
        return shard

    def get(self, key: str) -> Entry | None:
        return self._shard(self.shard_of(key)).get(key)

    def put(self, key: str, entry: Entry) -> Entry | None:
        """Say where ``key``'s state lies now; returns the entry it replaces (its frame is
        retired), None for a key new to the index."""
        number = self.shard_of(key)
        shard = self._shard(number)
        old = shard.get(key)
        shard[key] = entry
        self._dirty.add(number)
        if old is not None:
            self.log.retire(old.ref)
        else:
            self.table.count += 1
            while self.table.count > self.shard_keys * self.shards:
                self._split()
        return old

    def move(self, key: str, old: Ref, new: Ref) -> bool:
        """Compaction copied ``key``'s frame from ``old`` to ``new``: point there if it is
        still the key's latest (True), else leave the entry alone (False)."""
        number = self.shard_of(key)
        shard = self._shard(number)
        entry = shard.get(key)
        if entry is None or entry.ref != old:
            return False
        shard[key] = entry._replace(segment=new.segment, offset=new.offset, length=new.length)
        self._dirty.add(number)
        self.log.retire(old)
        return True

    def shard_ref(self, number: int) -> Ref | None:
        """Where shard ``number``'s latest frame lies (None: empty, or not written yet)."""
        if number >= self.shards:
            return None
        segment, offset, length = self.table.refs[3 * number : 3 * number + 3]
        return Ref(segment, offset, length) if segment >= 0 else None

    def movable(self, number: int) -> bool:
        """Whether compaction may copy shard ``number``'s frame (no newer version is due)."""
        return number not in self._dirty

    def move_shard(self, number: int, old: Ref, new: Ref) -> bool:
        """Compaction copied a shard's frame: point the table there if it is its latest."""
        if self.shard_ref(number) != old or number in self._dirty:
            return False  # a newer version exists, or is about to be written
        self.table.refs[3 * number : 3 * number + 3] = array("q", new)
        self.log.retire(old)
        return True

    def items(self) -> Iterator[tuple[str, Entry]]:
        """Every key and its entry, shard by shard (shards not cached are read, not kept)."""
        for number in range(self.shards):
            cached = self._cache.get(number)
            yield from (cached if cached is not None else self._read(number)).items()

    def flush(self) -> int:
        """Write every changed shard to the segments; returns how many were written."""
        dirty = sorted(self._dirty)
        for number in dirty:
            self._write(number, self._cache[number])
        self._dirty.clear()
        return len(dirty)

    @property
    def dirty_shards(self) -> int:
        return len(self._dirty)

    # -- shards -------------------------------------------------------------------------------

    def _shard(self, number: int) -> dict[str, Entry]:
        cache = self._cache
        shard = cache.get(number)
        if shard is not None:
            cache.move_to_end(number)
            return shard
        shard = self._read(number)
        self._keep(number, shard)
        return shard

    def _keep(self, number: int, shard: dict[str, Entry]) -> None:
        """Cache a shard; the least recently used go (written first when changed)."""
        cache = self._cache
        cache[number] = shard
        while len(cache) > self.cache_shards:
            oldest, evicted = cache.popitem(last=False)
            if oldest in self._dirty:
                self._dirty.discard(oldest)
                self._write(oldest, evicted)

    def _read(self, number: int) -> dict[str, Entry]:
        ref = self.shard_ref(number)
        if ref is None:
            return {}
        self.shard_reads += 1
        state = load(self.log.read(ref))
        if not isinstance(state, dict) or state.get("shard") != number:
            raise CheckpointError(f"index shard {number} at {ref} is not that shard")
        return {key: Entry(*fields) for key, fields in state["entries"].items()}

    def _write(self, number: int, shard: dict[str, Entry]) -> None:
        old = self.shard_ref(number)
        if shard:
            # Plain tuples pickle smaller and faster than the named ones.
            entries = {key: tuple(entry) for key, entry in shard.items()}
            payload = pickle.dumps(
                {"shard": number, "entries": entries}, protocol=pickle.HIGHEST_PROTOCOL
            )
            new: tuple[int, int, int] = self.log.append(SHARD, str(number), payload)
        else:
            new = _EMPTY
        self.table.refs[3 * number : 3 * number + 3] = array("q", new)
        self.shard_writes += 1
        if old is not None:
            self.log.retire(old)

    def _split(self) -> None:
        """Split the next shard of this round in two (linear hashing)."""
        table = self.table
        number, level = table.split, table.level
        shard = self._shard(number)
        stay: dict[str, Entry] = {}
        moved: dict[str, Entry] = {}
        for key, entry in shard.items():
            (moved if key_hash(key) & level else stay)[key] = entry
        table.refs.extend(_EMPTY)
        table.split += 1
        if table.split == table.level:
            table.level, table.split = 2 * level, 0
        shard.clear()
        shard.update(stay)
        self._dirty.add(number)
        self._dirty.add(number + level)
        self._keep(number + level, moved)


def score_or_nan(score: float | None) -> float:
    """An entry's score: NaN for none (no record scored yet, or not a number)."""
    return math.nan if score is None or not math.isfinite(score) else float(score)
