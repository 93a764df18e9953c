"""What the keyed store asks of a holder of keys' state ahead of their learners.

The compiled keyed path (``keys.slots``) learns keys in rows of arrays; ``KeyedModels``
asks it to write a key's state into the key's learner (``settle``) before it reads or
writes that learner, and all keys before a checkpoint. Without such a holder the store
asks :data:`NO_OVERLAY`, which holds nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

__all__ = ["NO_OVERLAY", "KeyOverlay", "NoOverlay"]


class KeyOverlay(Protocol):
    """Keys whose state is held elsewhere for a while, settled before the store reads it."""

    #: Keys held only there (new to the run, no learner yet).
    unsettled: int

    def settle(self, key: str) -> None: ...

    def settle_all(self) -> None: ...

    def scores(self) -> Iterator[tuple[str, float, bool]]:
        """(key, score as ``KeyCodec.describe`` gives it, whether the store may have written
        it) of each key learned there since it was loaded or made (``KeyedModels.rescore``:
        no learner is made for it)."""
        ...


class NoOverlay:
    """Holds no key."""

    unsettled = 0

    def settle(self, key: str) -> None:
        return None

    def settle_all(self) -> None:
        return None

    def scores(self) -> Iterator[tuple[str, float, bool]]:
        return iter(())


NO_OVERLAY = NoOverlay()
