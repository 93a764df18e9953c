"""What the keys of a JSON stream's values say, apart from decoding: the distinct feature
names (capped) and whether the target key ever comes.

A JSON value may name any feature, and a model grows by each new name it learns:
:class:`FeatureNames` holds them to ``--max-features``. A ``--target`` that names no key
of the stream leaves every record unlabeled: :class:`TargetWatch` says so once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MAX_FEATURES", "TARGET_WARNING_AFTER", "FeatureNames", "TargetWatch"]

log = logging.getLogger(__name__)

#: The most distinct feature names a stream may bring, unless told (``--max-features``).
MAX_FEATURES = 10_000

#: Values read without the target key before saying so (every one is unlabeled).
TARGET_WARNING_AFTER = 1_000


class FeatureNames:
    """The distinct feature names a stream brought: at most ``cap``, each kept for good.

    A record that would bring names beyond the cap is refused (``too_many_features``). The
    names are checkpointed (``JsonDecoder.schema``): a restart goes on counting.

    >>> names = FeatureNames(cap=2)
    >>> names.refuse({"a": 1.0}), names.refuse({"a": 1.0, "b": 2.0})
    (None, None)
    >>> names.refuse({"c": 0.0, "a": 1.0})
    "new feature names 'c' beyond --max-features 2"
    """

    def __init__(self, cap: int = MAX_FEATURES, names: Iterable[str] = ()) -> None:
        self.cap = cap
        self.names = set(names)

    def refuse(self, x: Mapping[str, float]) -> str | None:
        """None when ``x``'s names fit under the cap (the new ones are kept), else why not."""
        names = self.names
        if names.issuperset(x):
            return None
        new = [name for name in x if name not in names]
        if len(names) + len(new) <= self.cap:
            names.update(new)
            return None
        shown = ", ".join(repr(name[:40]) for name in new[:3])
        more = f" and {len(new) - 3} more" if len(new) > 3 else ""
        return f"new feature names {shown}{more} beyond --max-features {self.cap}"


class TargetWatch:
    """Says once when the first ``after`` values of a stream all lack the ``target`` key.

    >>> watch = TargetWatch("y", after=2)
    >>> watch.see({"a": 1}); watch.watching
    True
    >>> watch.see({"a": 1, "y": 2}); watch.watching
    False
    """

    def __init__(self, target: str, after: int = TARGET_WARNING_AFTER) -> None:
        self.target = target
        self.after = after
        self.without = 0
        #: False once a value had the key (or the warning was given): nothing more to see.
        self.watching = True

    def see(self, obj: Mapping[str, Any]) -> None:
        """Count a value (a JSON object) read while ``watching``."""
        if self.target in obj:
            self.watching = False
            return
        self.without += 1
        if self.without >= self.after:
            self.watching = False
            keys = ", ".join(sorted(str(key) for key in obj)[:10])
            log.warning(
                "none of the first %d records has the target key %r (--target): each one is "
                "unlabeled, predicted and never learned; a record's keys: %s",
                self.after,
                self.target,
                keys,
            )
