"""The learner of one key: a ``Learner`` or ``ClassLearner`` with the key's own drift monitor
and pseudo-label side loop.

Both are pickled with the learner, so a key spilled to the state store and read back
keeps its detector's state, events and challenger, and its pseudo-label queue and teacher;
each key's drift and pseudo-labels are its own.
"""

from __future__ import annotations

import copy
from array import array
from typing import TYPE_CHECKING, Any

from streamlearn.classify.learner import ClassLearner
from streamlearn.learner import Learner

if TYPE_CHECKING:
    from streamlearn.interfaces import Monitor
    from streamlearn.labels.pseudo import PseudoLabeler

__all__ = ["KeyClassifier", "KeyRegressor"]


class KeyRegressor(Learner):
    """A key's regression learner.

    >>> from streamlearn.models.sgd import SGDRegressor
    >>> learner = KeyRegressor(SGDRegressor(lr=0.1))
    >>> learner.step({"x": 1.0}, 2.0), learner.drift is None
    (0.0, True)
    """

    #: The key's drift monitor (None: ``--drift-detector none``).
    drift: Monitor | None = None
    #: The key's pseudo-label side loop (None: no ``--pseudo-label``; ``keys.pseudo``).
    pseudo: PseudoLabeler | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        used = self._window_len
        state["_window_y"] = _head(self._window_y, used)
        state["_window_yhat"] = _head(self._window_yhat, used)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        size = state["rolling_window"]
        for name in ("_window_y", "_window_yhat"):
            state[name] = _padded(state[name], size, "d")
        super().__setstate__(state)


class KeyClassifier(ClassLearner):
    """A key's classification learner.

    Its rolling window is pickled as far as it is filled (see ``_head``).
    """

    #: The key's drift monitor (None: ``--drift-detector none``).
    drift: Monitor | None = None
    #: The key's pseudo-label side loop (None: no ``--pseudo-label``; ``keys.pseudo``).
    pseudo: PseudoLabeler | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        window = self.window
        trimmed = state["window"] = copy.copy(window)
        for name in _WINDOW_ARRAYS:
            setattr(trimmed, name, _head(getattr(window, name), window.len))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        window = state.get("window")
        if window is not None:
            for name, code in _WINDOW_ARRAYS.items():
                setattr(window, name, _padded(getattr(window, name), window.size, code))
        super().__setstate__(state)


#: The rings of a classifier's rolling window (``classify.metrics.Window``), by type code.
_WINDOW_ARRAYS = {"y": "q", "pred": "q", "loss": "d", "p_pos": "d"}


def _head(ring: array[Any], used: int) -> bytes | array[Any]:
    """The filled part of a ring that is not full yet, as bytes: its slots from ``used`` on
    are all zero (a ring fills from slot 0), so a key of a few records is not pickled as a
    whole window of zeros (16 kB a key at the default window, beside a few hundred bytes of
    model and metrics); and bytes pickle in a tenth of an array's time. Kept whole if those
    slots are not all zero bits.

    >>> _head(array("d", [1.5, 0.0, 0.0]), 1) == array("d", [1.5]).tobytes()
    True
    >>> _head(array("d", [1.5, 0.0, -0.0]), 1)
    array('d', [1.5, 0.0, -0.0])
    """
    view = memoryview(ring)
    tail = view[used:]
    if tail.nbytes and tail.tobytes().count(0) != tail.nbytes:
        return ring
    return view[:used].tobytes()


def _padded(ring: bytes | array[Any], size: int, code: str) -> array[Any]:
    """``ring`` (``_head``'s: bytes, or an array) as an array of ``size`` slots, the
    missing ones zero.

    >>> _padded(array("d", [1.5]).tobytes(), 3, "d")
    array('d', [1.5, 0.0, 0.0])
    """
    if not isinstance(ring, array):
        ring = array(code, ring)
    if len(ring) < size:
        ring.frombytes(bytes(ring.itemsize * (size - len(ring))))
    return ring
