"""What a checkpoint holds of a keyed run: the index's shard table and the segments in use.

The generation file (``streamlearn.state.store``) holds it beside the source position, so
the two are written in one atomic rename; the models themselves lie in the segments it
names, which are fsynced before it. Its size grows with the shards (about one per 48 keys,
24 bytes each), never with the models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .index import ShardTable
from .scores import KeyScores

__all__ = ["MANIFEST_FORMAT", "KeysManifest"]

#: The layout of ``KeysManifest`` this code writes.
MANIFEST_FORMAT = 1


@dataclass
class KeysManifest:
    """The keyed store as of one checkpoint (``KeyedModels.checkpoint``)."""

    #: This checkpoint's number in the store's sequence (``KeyedModels.durable`` names it).
    seq: int
    #: Keys held (every one in the index: a checkpoint writes the live keys first).
    keys_total: int
    #: Where each index shard's latest frame lies.
    table: ShardTable
    #: Bytes of frames in use per segment.
    live_bytes: dict[int, int]
    #: The first segment a resumed run may write (the ones before may have torn tails).
    next_segment: int
    #: The keys' score histogram and worst keys.
    scores: KeyScores
    #: What the score is (``KeyCodec.score_name``).
    score_name: str = "mae"
    format: int = MANIFEST_FORMAT
    #: Room for what a later version adds (a partition's epoch, say), kept as it is.
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Its part of ``inspect --json``."""
        return {
            "keys_total": self.keys_total,
            "key_segments": len(self.live_bytes),
            "key_bytes": sum(self.live_bytes.values()),
        }
