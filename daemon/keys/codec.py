"""How the keyed store makes, pickles, unpickles and describes the learner of one key.

The store knows a learner only through a :class:`KeyCodec`: a ``Learner`` (regression), a
``ClassLearner``, or later a slot of a compiled weight matrix. :class:`LearnerCodec` pickles
a learner on its own, except the objects every key shares (model A of a warm start, its
frozen copy serving as baseline): those are written as a reference by name and found again
on load, so that a million keys do not hold a million copies of A.
"""

from __future__ import annotations

import io
import math
import pickle
from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from ..state.format import RENAMED

__all__ = ["KEY_CURVE_POINTS", "Describe", "KeyCodec", "LearnerCodec", "describe_regression"]

L = TypeVar("L")
L_co = TypeVar("L_co", covariant=True)

#: Points of a key's learning curve (``Curve(max_points=...)``): a whole stream's curve keeps
#: 4096, which would make a key's state ten times larger than its model and metrics.
KEY_CURVE_POINTS = 64

#: ``(records learned, score)`` of a learner; the score is NaN while it has none.
Describe = Callable[[Any], tuple[int, float]]


class KeyCodec(Protocol[L]):
    """What the keyed store needs of the learner of a key."""

    #: The score ``describe`` gives: ``"mae"`` (lower is better) or ``"accuracy"``.
    score_name: str

    def fresh(self, key: str) -> L:
        """The learner of a key seen for the first time."""
        ...

    def dump(self, learner: L) -> bytes:
        """``learner`` as bytes (``load`` reads them back, the same bits)."""
        ...

    def load(self, payload: bytes) -> L:
        """The learner ``dump`` wrote."""
        ...

    def describe(self, learner: L) -> tuple[int, float]:
        """Records learned and the score (NaN: none yet), kept in the index for ``inspect``."""
        ...


def describe_regression(learner: Any) -> tuple[int, float]:
    """Records learned and rolling MAE of a regression ``Learner`` (NaN before its first score).

    The rolling MAE is the one the learning curve plots (the window's running sum of
    absolute errors over its length): it costs no pass over the window, and differs from
    ``rolling_summary()["mae"]`` only in the last bits of a sum kept up record by record.

    >>> from streamlearn.learner import Learner
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> learner = Learner(SGDRegressor(lr=0.1))
    >>> describe_regression(learner)
    (0, nan)
    >>> _ = learner.step({"x": 1.0}, 2.0)
    >>> describe_regression(learner)
    (1, 2.0)
    """
    if not learner.records_learned:
        return 0, math.nan  # (exporting would make the metrics a fresh learner makes later)
    state = learner.export_prequential()
    score = state.abs_sum / state.window_len if state.window_len else math.nan
    return int(learner.records_learned), score


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, shared: Mapping[int, str]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._shared = shared

    def persistent_id(self, obj: Any) -> str | None:
        return self._shared.get(id(obj))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, shared: Mapping[str, object]) -> None:
        super().__init__(file)
        self._shared = shared

    def find_class(self, module: str, name: str) -> Any:
        module, name = RENAMED.get((module, name), (module, name))
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> object:
        try:
            return self._shared[pid]
        except (KeyError, TypeError):
            raise pickle.UnpicklingError(
                f"the state of a key names a shared object {pid!r} this run does not have"
            ) from None


class LearnerCodec(Generic[L]):
    """Learners made by ``factory``, pickled with the ``shared`` objects by reference.

    Parameters
    ----------
    factory
        Makes the learner of a new key (a fresh model, or a copy of the warm start).
    shared
        Objects every key's learner may hold, by name (model A, the frozen baseline): they
        are pickled as their name, never copied. The same names must be given on load.
    describe
        Records learned and score of a learner (``describe_regression`` by default).
    score_name
        What the score is (``"mae"``, ``"accuracy"``).

    Examples
    --------
    >>> from streamlearn.learner import Learner
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> frozen = SGDRegressor(lr=0.1)
    >>> codec = LearnerCodec(
    ...     lambda: Learner(SGDRegressor(lr=0.1), baseline=frozen), shared={"baseline": frozen}
    ... )
    >>> learner = codec.fresh("store-7")
    >>> _ = learner.step({"x": 1.0}, 2.0)
    >>> back = codec.load(codec.dump(learner))
    >>> back.model.weights == learner.model.weights, back.baseline is frozen
    (True, True)
    """

    def __init__(
        self,
        factory: Callable[[], L],
        *,
        shared: Mapping[str, object] | None = None,
        describe: Describe = describe_regression,
        score_name: str = "mae",
    ) -> None:
        self.factory = factory
        self.shared: dict[str, object] = dict(shared or {})
        self._ids = {id(obj): name for name, obj in self.shared.items()}
        self._describe = describe
        self.score_name = score_name

    def share(self, name: str, obj: object) -> None:
        """Pickle ``obj`` as ``name`` from now on (a part every key refers to, made later)."""
        self.shared[name] = obj
        self._ids[id(obj)] = name

    def fresh(self, key: str) -> L:
        return self.factory()

    def dump(self, learner: L) -> bytes:
        if not self._ids:
            return pickle.dumps(learner, protocol=pickle.HIGHEST_PROTOCOL)
        buffer = io.BytesIO()
        _Pickler(buffer, self._ids).dump(learner)
        return buffer.getvalue()

    def load(self, payload: bytes) -> L:
        learner: L = _Unpickler(io.BytesIO(payload), self.shared).load()
        return learner

    def describe(self, learner: L) -> tuple[int, float]:
        return self._describe(learner)
