"""A rolling window's rings pickled as far as they are filled.

A learner's rolling window is a few rings (``array`` buffers of ``size`` slots, filled from
slot 0). A learner of a few records would otherwise pickle a whole window of zeros (16 kB a
ring pair at the default window of 1000, beside a few hundred bytes of model and metrics):
a key's learner (``streamlearn.keys``) is pickled at every spill and checkpoint. So the
window's owner pickles each ring with :func:`packed` and reads it back with
:func:`unpacked` (``Learner``'s window fields, ``streamlearn.classify.metrics.Window``).
"""

from __future__ import annotations

from array import array
from typing import Any

__all__ = ["packed", "unpacked"]


def packed(ring: array[Any], used: int) -> bytes | array[Any]:
    """The filled part of a ring, as bytes: its slots from ``used`` on are all zero (a ring
    fills from slot 0), and bytes pickle in a tenth of an array's time. Kept whole if those
    slots are not all zero bits.

    >>> packed(array("d", [1.5, 0.0, 0.0]), 1) == array("d", [1.5]).tobytes()
    True
    >>> packed(array("d", [1.5, 0.0, -0.0]), 1)
    array('d', [1.5, 0.0, -0.0])
    """
    view = memoryview(ring)
    tail = view[used:]
    if tail.nbytes and tail.tobytes().count(0) != tail.nbytes:
        return ring
    return view[:used].tobytes()


def unpacked(ring: bytes | array[Any], size: int, code: str) -> array[Any]:
    """``ring`` (``packed``'s: bytes, or an array) as an array of ``size`` slots of type
    ``code``, the missing ones zero.

    >>> unpacked(array("d", [1.5]).tobytes(), 3, "d")
    array('d', [1.5, 0.0, 0.0])
    """
    if not isinstance(ring, array):
        ring = array(code, ring)
    if len(ring) < size:
        ring.frombytes(bytes(ring.itemsize * (size - len(ring))))
    return ring
