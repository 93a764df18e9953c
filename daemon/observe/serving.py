"""What the HTTP face asks of the model: predictions that never change it.

A prediction passes the model only the features it has learned (the stream's header or
``--features``; else the names the learner noted): a feature a model never saw can grow its
state when predicted on (River's scalers add it to their statistics), and an unauthenticated
client must not change what a checkpoint stores. The others are ignored and named in the
answer, or refused under ``--strict-features``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, NamedTuple, Protocol

from streamlearn.observe.json_bodies import BadRequest

if TYPE_CHECKING:
    from streamlearn.learner import Learner

__all__ = ["ModelService", "ModelUnavailable", "Prediction", "ServedDaemon", "split_known"]

#: Seconds a request waits for the loop to finish its batch before it is answered 503.
LOCK_TIMEOUT = 2.0


class ModelUnavailable(Exception):
    """No model to serve (none yet, or the loop holds it too long): answered with 503."""


class Prediction(NamedTuple):
    """One answer of ``POST /predict``."""

    prediction: float
    #: Records the model has learned: answers only move forward.
    model_version: int
    #: Features of the request the model has not learned, left out of the prediction.
    ignored_features: tuple[str, ...] = ()


class Lock(Protocol):
    """The loop's lock: held while a batch is learned."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


class ServedDaemon(Protocol):
    """What the service reads of the run loop (``streamlearn.loop.daemon.Daemon``)."""

    @property
    def lock(self) -> Lock: ...

    @property
    def learner(self) -> Learner: ...


def split_known(
    features: Mapping[str, float], known: Collection[str]
) -> tuple[dict[str, float], tuple[str, ...]]:
    """The features in ``known``, and the names of the others (sorted).

    >>> split_known({"a": 1.0, "zz": 2.0, "b": 3.0}, known={"a", "b"})
    ({'a': 1.0, 'b': 3.0}, ('zz',))
    """
    kept = {name: value for name, value in features.items() if name in known}
    if len(kept) == len(features):
        return kept, ()
    return kept, tuple(sorted(name for name in features if name not in known))


def _sound(learner: Learner) -> bool:
    """Whether the model predicts a finite number without features (its intercept, say)."""
    try:
        return math.isfinite(learner.serve({}))
    except Exception:  # a model that cannot predict without its features: not known sound
        return False


class ModelService:
    """Predicts for HTTP clients between the loop's batches, never changing the model.

    Parameters
    ----------
    daemon
        The run loop: its lock and its learner.
    fixed_features
        The stream's features when a header or ``--features`` fixes them; None when
        records bring their own (JSON): the learner then notes the names it learned
        (``Learner.track_features``, turned on here).
    strict_features
        Refuse a request with a feature the model has not learned (400), rather than
        ignore it.

    Examples
    --------
    >>> import threading
    >>> from types import SimpleNamespace
    >>> from streamlearn.learner import Learner
    >>> from streamlearn.models.registry import build_model
    >>> learner = Learner(build_model("StandardScaler | LinearRegression"))
    >>> service = ModelService(SimpleNamespace(lock=threading.RLock(), learner=learner), None)
    >>> _ = learner.step({"a": 1.0}, 2.0)
    >>> answer = service.predict({"a": 1.0, "zz": 5.0})
    >>> answer.ignored_features, answer.model_version
    (('zz',), 1)
    >>> sorted(learner.model["StandardScaler"].means)   # zz never reached the scaler
    ['a']
    """

    def __init__(
        self,
        daemon: ServedDaemon,
        fixed_features: Sequence[str] | None,
        *,
        strict_features: bool = False,
    ) -> None:
        self.daemon = daemon
        self.fixed_features = frozenset(fixed_features) if fixed_features is not None else None
        self.strict_features = strict_features
        if self.fixed_features is None:
            daemon.learner.track_features()

    def known_features(self, learner: Learner) -> Collection[str]:
        """The features a prediction may pass to the model (called under the lock)."""
        if self.fixed_features is not None:
            return self.fixed_features
        from streamlearn.models.sgd import SGDRegressor

        model = learner.model
        if isinstance(model, SGDRegressor):
            # Its weights are what it learned (the compiled paths learn without the
            # learner noting names); it never changes when predicting.
            return model.weights.keys()
        return learner.feature_names or ()

    def predict(self, features: Mapping[str, float]) -> Prediction:
        """The served prediction (``Learner.serve``) on the learned part of ``features``.

        Raises ``ModelUnavailable`` when the loop holds the model too long, and
        ``BadRequest`` for unknown features under ``strict_features`` (400) or for features
        whose prediction is not a finite number while the model is sound (422: a value too
        large for it, such as 1e300). A NaN answer means the model itself is unsound.
        """
        daemon = self.daemon
        if not daemon.lock.acquire(timeout=LOCK_TIMEOUT):
            raise ModelUnavailable("the model is busy; try again")
        try:
            learner = daemon.learner
            kept, ignored = split_known(features, self.known_features(learner))
            if ignored and self.strict_features:
                raise BadRequest(
                    f"unknown features: {', '.join(ignored)} (the model has not learned them)"
                )
            yhat = learner.serve(kept)
            if not math.isfinite(yhat) and _sound(learner):
                raise BadRequest(
                    "the prediction for these features is not a finite number: "
                    "a value is too large for the model",
                    HTTPStatus.UNPROCESSABLE_ENTITY,
                )
            return Prediction(yhat, learner.records_learned, ignored)
        finally:
            daemon.lock.release()
