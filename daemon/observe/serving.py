"""What the HTTP face asks of the model: predictions that never change it, and the writes.

A prediction passes the model only the features it has learned (the stream's header or
``--features``; else the names the learner noted): a feature a model never saw can grow its
state when predicted on (River's scalers add it to their statistics), and an unauthenticated
client must not change what a checkpoint stores. The others are ignored and named in the
answer, or refused under ``--strict-features``.

The writes are off unless asked for: ``POST /learn`` (``--http-learn``) learns records
test-then-train through the run loop, counted like the stream's, and a prediction made with
an id waits for its label there; ``GET /model/download`` (``--http-download``) reads the
latest checkpoint file.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
from collections.abc import Collection, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, NamedTuple, Protocol

from streamlearn.observe.json_bodies import BadRequest, Example, Query

if TYPE_CHECKING:
    from streamlearn.classify.metrics import Proba
    from streamlearn.classify.space import ClassSpace
    from streamlearn.interfaces import LabelJoin, LearnerLike
    from streamlearn.keys.run import KeyedRun
    from streamlearn.records import Decoded
    from streamlearn.state import CheckpointStore

__all__ = [
    "Learned",
    "ModelService",
    "ModelUnavailable",
    "Prediction",
    "ServedDaemon",
    "checkpoint_file",
    "split_known",
]

#: Seconds a request waits for the loop to finish its batch before it is answered 503.
LOCK_TIMEOUT = 2.0
#: Predictions with an id kept waiting for their label when the run has no join of its own.
MAX_PENDING_IDS = 10_000


class ModelUnavailable(Exception):
    """No model to serve (none yet, or the loop holds it too long): answered with 503."""


class Prediction(NamedTuple):
    """One answer of ``POST /predict``."""

    #: A number; a classifier's: the class label (NaN while it cannot predict).
    prediction: float | str
    #: Records the model has learned: answers only move forward.
    model_version: int
    #: Features of the request the model has not learned, left out of the prediction.
    ignored_features: tuple[str, ...] = ()
    #: A classifier's class probabilities, by label.
    probabilities: dict[str, float] | None = None
    #: A keyed daemon's: the key, and the fallback that answered for a key without a model.
    key: str | None = None
    fallback: str | None = None

    @property
    def finite(self) -> bool:
        """Whether there is an answer to give (a class, or a finite number)."""
        prediction = self.prediction
        return isinstance(prediction, str) or math.isfinite(prediction)


@dataclass(frozen=True)
class Learned:
    """The answer of ``POST /learn``."""

    learned: int
    model_version: int
    #: Late labels whose features were not waiting (dead-lettered, as in the stream).
    unjoined: int = 0
    #: Features outside the stream's header or ``--features``, left out.
    ignored_features: tuple[str, ...] = ()

    def document(self) -> dict[str, object]:
        """The JSON answer: the counts, and what was left out when anything was."""
        answer: dict[str, object] = {"learned": self.learned, "model_version": self.model_version}
        if self.unjoined:
            answer["unjoined"] = self.unjoined
        if self.ignored_features:
            answer["ignored_features"] = list(self.ignored_features)
        return answer


class Lock(Protocol):
    """The loop's lock: held while a batch is learned."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


class Counts(Protocol):
    """The loop's counters the service reads."""

    records_seen: int
    rejected_by_reason: dict[str, int]


class ServedDaemon(Protocol):
    """What the service asks of the run loop (``streamlearn.loop.daemon.Daemon``)."""

    @property
    def lock(self) -> Lock: ...

    @property
    def learner(self) -> LearnerLike: ...

    @property
    def join(self) -> LabelJoin | None: ...

    @property
    def store(self) -> CheckpointStore | None: ...

    @property
    def counters(self) -> Counts: ...

    def learn_items(self, items: list[Decoded], join: LabelJoin | None = None) -> None:
        """Route records from elsewhere than the source like a batch, under the lock."""
        ...


def split_known(
    features: Mapping[str, float], known: Collection[Hashable]
) -> tuple[dict[str, float], tuple[str, ...]]:
    """The features in ``known``, and the names of the others (sorted).

    >>> split_known({"a": 1.0, "zz": 2.0, "b": 3.0}, known={"a", "b"})
    ({'a': 1.0, 'b': 3.0}, ('zz',))
    """
    kept = {name: value for name, value in features.items() if name in known}
    if len(kept) == len(features):
        return kept, ()
    return kept, tuple(sorted(name for name in features if name not in known))


def _sound(learner: LearnerLike) -> bool:
    """Whether the model predicts a finite number without features (its intercept, say)."""
    from streamlearn.learner import Learner

    try:
        if isinstance(learner, Learner):
            return math.isfinite(learner.serve({}))
        return learner.sound({})
    except Exception:  # a model that cannot predict without its features: not known sound
        return False


def _answer(
    learner: LearnerLike, kept: dict[str, float], ignored: tuple[str, ...]
) -> tuple[Prediction, float | Proba | None]:
    """The served prediction of a regressor or a classifier, and what a late label is scored
    with (the number, or the class probabilities by code)."""
    from streamlearn.classify.learner import ClassLearner, finite
    from streamlearn.learner import Learner

    version = learner.records_learned
    if isinstance(learner, Learner):
        yhat = learner.serve(kept)
        return Prediction(yhat, version, ignored), yhat
    assert isinstance(learner, ClassLearner)
    proba = learner.serve(kept)
    if proba is None or not finite(proba):
        return Prediction(math.nan, version, ignored), None
    from streamlearn.classify.task import predicted

    classes = learner.classes
    line = Prediction(classes.label(predicted(proba)), version, ignored, classes.proba_json(proba))
    return line, proba


def _numbered(index: int, batch: bool, exc: BadRequest) -> BadRequest:
    return BadRequest(f"record {index}: {exc}", exc.status) if batch else exc


def targets(learner: LearnerLike, examples: Sequence[Example], keep: bool) -> list[float]:
    """The targets of ``examples`` as the learner takes them: a number as it is, a
    classifier's label as its class code in the learner's space (the decoder's), as the
    stream's labels are coded. A label the space refuses is a ``BadRequest`` naming the dead
    letter's reason. ``keep`` False codes them in a copy of the space (a label new to it is
    not kept); True, once the whole body is known good, in the space itself (same codes).
    """
    if not any(isinstance(example.y, str) for example in examples):
        return [float(example.y) for example in examples]
    from streamlearn.classify.learner import ClassLearner

    assert isinstance(learner, ClassLearner)  # the face reads labels for classifiers only
    space = learner.classes if keep else copy.deepcopy(learner.classes)
    codes = []
    for index, example in enumerate(examples):
        try:
            codes.append(_code(space, example.y))
        except BadRequest as exc:
            raise _numbered(index, len(examples) > 1, exc) from None
    return codes


def _code(space: ClassSpace, label: float | str) -> float:
    """The class code of ``label`` in ``space``, or ``BadRequest`` with the refusal."""
    from streamlearn.classify.space import ClassSetupError

    text = label if isinstance(label, str) else repr(label)
    try:
        code = space.encode(text)
    except ClassSetupError as exc:  # a binary stream's first label, of no known pair
        raise BadRequest(str(exc)) from None
    if isinstance(code, float):
        return code
    raise BadRequest(f"label {text.strip()[:40]!r} refused: {code.reason}: {code.detail}")


def checkpoint_file(store: CheckpointStore | None) -> tuple[str, bytes]:
    """The name and bytes of the newest checkpoint generation in ``store``.

    Raises ``BadRequest`` (404) when there is none, ``ModelUnavailable`` when generations
    are replaced faster than they can be read.
    """
    if store is None:
        raise BadRequest(
            "no checkpoint to send: the daemon runs without --state-dir", HTTPStatus.NOT_FOUND
        )
    for _ in range(3):
        generations = [generation for generation in store.generations() if generation > 0]
        if not generations:
            raise BadRequest("no checkpoint written yet", HTTPStatus.NOT_FOUND)
        path = store.path(generations[-1])
        try:
            return path.name, path.read_bytes()
        except FileNotFoundError:
            continue  # pruned while a newer one was installed: take that one
    raise ModelUnavailable("checkpoints are being replaced; try again")


class ModelService:
    """Predicts and learns for HTTP clients between the loop's batches.

    Parameters
    ----------
    daemon
        The run loop: its lock, learner, join, counters and checkpoint store.
    fixed_features
        The stream's features when a header or ``--features`` fixes them; None when
        records bring their own (JSON): the learner then notes the names it learned
        (``Learner.track_features``, turned on here).
    strict_features
        Refuse a request with a feature the model has not learned (400), rather than
        ignore it.
    learn
        Whether ``POST /learn`` is on (``--http-learn``). Then a prediction with an id
        waits for its label in the run's join, or in a join of the service's own
        (``MAX_PENDING_IDS`` entries, not checkpointed) when the run has none.

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
        learn: bool = False,
        keyed: KeyedRun | None = None,
    ) -> None:
        self.daemon = daemon
        #: A keyed run's models (``--key-by``): each query names its key.
        self.keyed = keyed
        self.fixed_features = frozenset(fixed_features) if fixed_features is not None else None
        self.strict_features = strict_features
        if self.fixed_features is None:
            daemon.learner.track_features()
        self.learns = learn
        #: Where a prediction with an id waits for its label (None: ids are not kept).
        self.join: LabelJoin | None = None
        #: The join's own when the run has none: handed to the loop with each /learn.
        self._own_join: LabelJoin | None = None
        if learn:
            self.join = daemon.join
            if self.join is None:
                from streamlearn.labels.join import LabelJoin

                self.join = self._own_join = LabelJoin(max_pending=MAX_PENDING_IDS)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[LearnerLike]:
        """The learner, between two of the loop's batches."""
        lock = self.daemon.lock
        if not lock.acquire(timeout=LOCK_TIMEOUT):
            raise ModelUnavailable("the model is busy; try again")
        try:
            yield self.daemon.learner
        finally:
            lock.release()

    def known_features(self, learner: LearnerLike) -> Collection[Hashable]:
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

    def _strict(self, ignored: tuple[str, ...]) -> None:
        if ignored and self.strict_features:
            raise BadRequest(
                f"unknown features: {', '.join(ignored)} (the model has not learned them)"
            )

    def predict(self, features: Mapping[str, float]) -> Prediction:
        """The served prediction (``Learner.serve``) on the learned part of ``features``.

        Raises ``ModelUnavailable`` when the loop holds the model too long, and
        ``BadRequest`` for unknown features under ``strict_features`` (400) or for features
        whose prediction is not a finite number while the model is sound (422: a value too
        large for it, such as 1e300). A NaN answer means the model itself is unsound.
        """
        return self.predict_many([Query(dict(features))])[0]

    def predict_many(self, queries: Sequence[Query], batch: bool = False) -> list[Prediction]:
        """``predict`` each query, all between the same two batches of the loop; a query
        with an id waits for its label when ``learn`` is on. ``batch``: errors name the
        record."""
        with self._locked() as learner:
            if self.keyed is not None:
                return [self._keyed(query) for query in queries]
            known = self.known_features(learner)
            split = [split_known(query.features, known) for query in queries]
            for index, (_, ignored) in enumerate(split):
                try:
                    self._strict(ignored)
                except BadRequest as exc:
                    raise _numbered(index, batch, exc) from None
            made = [_answer(learner, kept, ignored) for kept, ignored in split]
            answers = [answer for answer, _ in made]
            for index, answer in enumerate(answers):
                if not answer.finite and _sound(learner):
                    too_large = BadRequest(
                        "the prediction for these features is not a finite number: "
                        "a value is too large for the model",
                        HTTPStatus.UNPROCESSABLE_ENTITY,
                    )
                    raise _numbered(index, batch, too_large)
            self._remember(queries, split, [given for _, given in made])
        return answers

    def _keyed(self, query: Query) -> Prediction:
        """A keyed daemon's answer: the key's model, else the fallback's, else 404."""
        assert self.keyed is not None and query.key is not None
        learner, fallback = self.keyed.serving(query.key)
        if learner is None:
            raise BadRequest(
                f"no model for key {query.key!r}: no labeled record of it learned yet "
                "(--key-fallback none)",
                HTTPStatus.NOT_FOUND,
            )
        kept, ignored = split_known(query.features, self.known_features(learner))
        self._strict(ignored)
        answer, given = _answer(learner, kept, ignored)
        if self.join is not None and query.id is not None and given is not None and answer.finite:
            self._remember([query], [(kept, ignored)], [given])  # its label, by id, to its key
            self.keyed.tally.keyed.wait(query.id, query.key, self.keyed.pending_bound)
        return answer._replace(key=query.key, fallback=fallback)

    def _remember(
        self,
        queries: Sequence[Query],
        split: list[tuple[dict[str, float], tuple[str, ...]]],
        answers: list[float | Proba | None],
    ) -> None:
        join = self.join
        if join is None:
            return
        from streamlearn.records import Record
        from streamlearn.sources.base import Raw

        index = self.daemon.counters.records_seen
        for query, (kept, _), answer in zip(queries, split, answers, strict=True):
            if query.id is None or answer is None:
                continue
            if isinstance(answer, tuple) or math.isfinite(answer):
                raw = Raw(json.dumps({"id": query.id, "x": kept}).encode(), -1)
                # A classifier's probabilities wait as they were given (see ClassRouter).
                join.remember(Record(kept, None, query.id, raw, query.key), answer, index)

    def learn(self, examples: Sequence[Example]) -> Learned:
        """Learn ``examples`` test-then-train through the loop, counted like stream records.

        A late label (an id and a target) joins the features predicted under that id, and
        is scored with the prediction made then. Raises ``BadRequest`` (404) for a single
        late label whose features are not waiting; it is dead-lettered, as in the stream.
        """
        counters = self.daemon.counters
        with self._locked() as learner:
            # A classifier's labels are coded by the space the decoder uses: under the lock.
            items, ignored = self._items(examples, targets(learner, examples, keep=False))
            targets(learner, examples, keep=True)  # the body is good: its new labels kept
            learned = learner.records_learned
            unjoined = counters.rejected_by_reason.get("unjoined_label", 0)
            self.daemon.learn_items(items, self._own_join)
            learner = self.daemon.learner
            answer = Learned(
                learner.records_learned - learned,
                learner.records_learned,
                counters.rejected_by_reason.get("unjoined_label", 0) - unjoined,
                tuple(sorted(ignored)),
            )
        if answer.unjoined and len(examples) == 1:
            raise BadRequest(
                f"no features wait for id {examples[0].id!r} (predicted with that id?)",
                HTTPStatus.NOT_FOUND,
            )
        return answer

    def _items(
        self, examples: Sequence[Example], ys: list[float]
    ) -> tuple[list[Decoded], set[str]]:
        """The records and late labels of ``examples`` (targets ``ys``), and the features
        left out of them (not the model's ``fixed_features``)."""
        from streamlearn.records import Label, Record
        from streamlearn.sources.base import Raw

        items: list[Decoded] = []
        ignored: set[str] = set()
        for index, (example, y) in enumerate(zip(examples, ys, strict=True)):
            raw = Raw(json.dumps({"id": example.id, "y": example.y}).encode(), -1)
            if example.features is None:
                assert example.id is not None
                items.append(Label(example.id, y, raw))
                continue
            features = example.features
            if self.fixed_features is not None:
                features, left_out = split_known(features, self.fixed_features)
                try:
                    self._strict(left_out)
                except BadRequest as exc:
                    raise _numbered(index, len(examples) > 1, exc) from None
                ignored.update(left_out)
            items.append(Record(features, y, example.id, raw, example.key))
        return items, ignored

    def download(self) -> tuple[str, bytes]:
        """The newest checkpoint file's name and bytes (``checkpoint_file``)."""
        return checkpoint_file(self.daemon.store)
