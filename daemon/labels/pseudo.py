"""Unlabeled and late-labeled records: the pseudo-labeling side loop and the delayed-label join.

The seed's recipe (伪标签学习): train on the labeled data, predict the unlabeled
data, pick the predictions judged right "in a certain order", and learn them
together with the labeled data. On a stream that becomes:

- every unlabeled record enters a bounded queue (``PseudoLabeler.offer``);
- a **teacher** that learns only from true labels gives each queued record a
  label and a confidence in ``[0, 1]``;
- within each window of ``window`` queued records the most confident are
  accepted first, at most ``max_fraction`` of the window, and only those whose
  confidence reaches ``threshold``; the student learns them with weight
  ``weight`` (never scored: the prequential metrics stay for true labels);
- every unlabeled record ends as exactly one of accepted or rejected (with a
  reason: ``threshold``, ``window_cap``, ``overflow``, ``superseded``,
  ``teacher_warmup``, ``non_finite``).

The confidence is ``1 - u / s``, clipped to ``[0, 1]``: ``u`` is the teacher's
uncertainty about that record in target units, ``s`` the standard deviation of
the true targets the teacher has seen. So ``--pseudo-threshold t`` accepts a
pseudo-label when the teacher expects to be off by at most ``(1 - t) * s``
(reported as ``threshold_in_target_units``). ``u`` is the spread (sample
standard deviation) of the committee's predictions for ``CommitteeTeacher``,
and the teacher's own mean absolute error on the ``neighbors`` nearest recently
labeled records (standardised feature space) for ``ModelTeacher``.

Labels that arrive after their features (``{"id": ..., "y": ...}``) are joined
by id in ``LabelJoin``, within a time-to-live given in seconds or records
(``600s``, ``10m``, ``5000r``). The join links each waiting record to its
pseudo-label decision, so a true label audits the pseudo-label it replaces:
``audit_mae`` says whether the threshold is right.
"""

from __future__ import annotations

import decimal
import logging
import math
import pickle
import random
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import click

if TYPE_CHECKING:
    import numpy as np

# numpy is imported where it is used: the CLI imports this module for its options,
# and `streamlearn --help` should not pay for numpy.

log = logging.getLogger(__name__)

__all__ = [
    "QUEUED",
    "REJECT_REASONS",
    "Candidate",
    "CommitteeTeacher",
    "LabelJoin",
    "LabelTtl",
    "ModelTeacher",
    "PendingFeatures",
    "PseudoLabeler",
    "Teacher",
    "build_pseudo",
    "build_teacher",
    "pseudo_options",
]

#: Why an unlabeled record was not learned (the keys of ``rejected_by_reason``).
REJECT_REASONS = (
    "threshold",  # the teacher's confidence was below --pseudo-threshold
    "window_cap",  # confident enough, but its window's --pseudo-max-fraction was used up
    "overflow",  # the queue was full: the oldest waiting record is decided, never lost
    "superseded",  # its true label arrived before the decision: the true label is learned
    "teacher_warmup",  # the teacher had not yet seen enough true labels to judge
    "non_finite",  # the teacher's label was NaN or infinite
)

DEFAULT_TTL = "100000r"
DEFAULT_MAX_PENDING = 100_000


# -- the delayed-label join ------------------------------------------------------------------


_TTL = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdr])\s*$", re.IGNORECASE)
_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True, slots=True)
class LabelTtl:
    """How long features wait for a label: ``amount`` seconds (``unit="s"``) or records (``"r"``).

    Records count every stream record between the features and the label (a
    reproducible replay uses records); seconds are wall-clock time, which keeps
    counting across a restart.

    Examples
    --------
    >>> LabelTtl.parse("5000r"), LabelTtl.parse("10m")
    (LabelTtl(amount=5000.0, unit='r'), LabelTtl(amount=600.0, unit='s'))
    >>> str(LabelTtl.parse("1.5h")), str(LabelTtl.parse("2000000r")), str(LabelTtl.parse("0.5s"))
    ('5400s', '2000000r', '0.5s')
    >>> try:
    ...     LabelTtl.parse("600")
    ... except ValueError as exc:
    ...     print(exc)
    label TTL '600' needs a unit: seconds (600s, 10m, 2h, 1d) or records (5000r)
    """

    amount: float
    unit: str

    def __post_init__(self) -> None:
        if self.unit not in ("s", "r"):
            raise ValueError(f"label TTL unit must be 's' or 'r', got {self.unit!r}")
        if not (math.isfinite(self.amount) and self.amount > 0):
            raise ValueError(f"label TTL must be positive, got {self.amount!r}")

    @classmethod
    def parse(cls, text: str | LabelTtl) -> LabelTtl:
        """Read ``600s``, ``10m``, ``2h``, ``1d`` (wall-clock) or ``5000r`` (records)."""
        if isinstance(text, LabelTtl):
            return text
        match = _TTL.match(str(text))
        if match is None:
            raise ValueError(
                f"label TTL {text!r} needs a unit: seconds (600s, 10m, 2h, 1d) or records (5000r)"
            )
        amount, unit = float(match.group(1)), match.group(2).lower()
        if unit == "r":
            return cls(amount, "r")
        return cls(amount * _SECONDS[unit], "s")

    def expired(self, index: int, time: float, now_index: int, now: float) -> bool:
        """Whether features that came at (``index``, ``time``) are too old now."""
        if self.unit == "r":
            return now_index - index > self.amount
        return now - time > self.amount

    def __str__(self) -> str:
        # Exact and never in exponent form ("1e+06r" would not parse back).
        return f"{decimal.Decimal(repr(self.amount)).normalize():f}{self.unit}"


class PendingFeatures(NamedTuple):
    """Features that waited for their label, with the prediction made when they arrived."""

    x: dict[str, float]
    yhat: float
    stream_index: int
    time: float


# Fields of a join entry. Entries are plain lists, not objects: a checkpoint pickles up
# to --max-pending-labels of them, and lists of builtins pickle several times faster.
_X, _YHAT, _INDEX, _TIME, _PSEUDO = range(5)
#: ``entry[_PSEUDO]`` while the record waits in the side loop's queue.
QUEUED = "queued"


class LabelJoin:
    """Joins late labels to the features that came earlier under the same id.

    Bounded twice: an entry older than ``ttl`` is expired (counted, then
    forgotten), and past ``max_pending`` entries the oldest is evicted
    (counted). A label whose features were never seen, were joined already,
    expired or were evicted returns None from ``take`` (counted as
    ``unjoined``), and the daemon dead-letters it as ``unjoined_label``. The
    table is plain picklable state: it is in the checkpoint, so a restart
    loses no waiting features. A checkpoint pickles every waiting entry, so
    its cost grows with the table (``--max-pending-labels``).

    Each entry also holds the pseudo-label decision of its record (set by
    ``PseudoLabeler``), so that the true label audits the pseudo-label.

    Parameters
    ----------
    ttl
        A ``LabelTtl`` or its text (``"600s"``, ``"5000r"``).
    max_pending
        The most entries kept waiting.
    clock
        Wall-clock time in seconds (for time TTLs; a picklable callable).

    Examples
    --------
    >>> from streamlearn.records import Label, Record
    >>> from streamlearn.sources.base import Raw
    >>> join = LabelJoin("2r")
    >>> join.remember(Record({"a": 1.0}, None, "r1", Raw(b"", 0)), 0.5, index=0)
    >>> join.remember(Record({"a": 2.0}, None, "r2", Raw(b"", 1)), 0.7, index=1)
    >>> pending = join.take(Label("r1", 3.0, Raw(b"", 2)), index=2)
    >>> pending.x, pending.yhat
    ({'a': 1.0}, 0.5)
    >>> join.take(Label("r1", 3.0, Raw(b"", 3)), index=3) is None   # each label joins once
    True
    >>> join.take(Label("r2", 1.0, Raw(b"", 9)), index=9) is None   # 8 records later: expired
    True
    >>> counts = join.summary()["pending_labels"]
    >>> counts["joined"], counts["expired"], counts["unjoined"], counts["pending"]
    (1, 1, 2, 0)
    """

    def __init__(
        self,
        ttl: LabelTtl | str = DEFAULT_TTL,
        max_pending: int = DEFAULT_MAX_PENDING,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl = LabelTtl.parse(ttl)
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending!r}")
        self.max_pending = int(max_pending)
        self.clock = clock
        # Insertion order is arrival order, so expiry and eviction pop from the front
        # (an OrderedDict pops its front in O(1); a dict slows down after many).
        self.pending: OrderedDict[str, list[Any]] = OrderedDict()
        self.pseudo: PseudoLabeler | None = None  # set by PseudoLabeler: audits pseudo-labels
        self.remembered = 0
        self.joined = 0
        self.expired = 0
        self.evicted = 0
        self.unjoined = 0
        self.duplicate_ids = 0
        self.delay_records = 0  # summed over joined labels, for the mean delay

    def remember(self, record: Any, yhat: float, index: int) -> None:
        """Keep an unlabeled record's features and prediction until its label comes."""
        record_id = record.id
        if record_id is None:
            return
        now = self.clock()
        self.expire(index, now)
        pending = self.pending
        if pending.pop(record_id, None) is not None:
            # The id came again: the newer features win (a label joins the latest).
            self.duplicate_ids += 1
        pending[record_id] = [record.x, float(yhat), index, now, None]
        self.remembered += 1
        while len(pending) > self.max_pending:
            pending.popitem(last=False)
            self.evicted += 1

    def mark(self, record_id: str, index: int, decision: Any) -> None:
        """Note the side loop's decision on the record ``(record_id, index)``, if it waits here.

        ``decision`` is ``QUEUED`` or ``(outcome, pseudo_label)``.
        """
        entry = self.pending.get(record_id)
        if entry is not None and entry[_INDEX] == index:
            entry[_PSEUDO] = decision

    def take(self, label: Any, index: int) -> PendingFeatures | None:
        """The waiting features of ``label.id`` (removed), or None if unknown or expired."""
        now = self.clock()
        entry = self.pending.pop(label.id, None)
        if entry is not None and self.ttl.expired(entry[_INDEX], entry[_TIME], index, now):
            self.expired += 1
            entry = None
        self.expire(index, now)
        if entry is None:
            # Never seen, already joined, expired or evicted: the daemon dead-letters it.
            self.unjoined += 1
            return None
        self.joined += 1
        self.delay_records += index - entry[_INDEX]
        decision = entry[_PSEUDO]
        if decision is not None and self.pseudo is not None:
            self.pseudo.audit(entry[_INDEX], decision, entry[_YHAT], float(label.y))
        return PendingFeatures(entry[_X], entry[_YHAT], entry[_INDEX], entry[_TIME])

    def expire(self, index: int, now: float | None = None) -> int:
        """Forget entries past their TTL at stream ``index``; returns how many."""
        pending = self.pending
        if not pending:
            return 0
        now = self.clock() if now is None else now
        expired = self.ttl.expired
        dropped = 0
        while pending:
            oldest = next(iter(pending.values()))
            if not expired(oldest[_INDEX], oldest[_TIME], index, now):
                break
            pending.popitem(last=False)
            dropped += 1
        self.expired += dropped
        return dropped

    def summary(self) -> dict[str, Any]:
        """The ``pending_labels`` part of ``inspect --json``."""
        return {
            "pending_labels": {
                "pending": len(self.pending),
                "remembered": self.remembered,
                "joined": self.joined,
                "expired": self.expired,
                "evicted": self.evicted,
                "unjoined": self.unjoined,
                "duplicate_ids": self.duplicate_ids,
                "mean_delay_records": self.delay_records / self.joined if self.joined else None,
                "ttl": str(self.ttl),
                "max_pending": self.max_pending,
            }
        }


# -- teachers --------------------------------------------------------------------------------


class Teacher(Protocol):
    """What the side loop needs from a teacher.

    A teacher learns only from true labels and must bring something the student
    lacks: the student itself as teacher gives a linear regressor its own
    prediction, hence a zero error and a zero update.
    """

    name: str
    learned: int

    @property
    def ready(self) -> bool:
        """Whether it has seen enough true labels to judge (before that: reject all)."""
        ...

    @property
    def target_std(self) -> float | None:
        """Standard deviation of the true targets seen (the confidence's scale)."""
        ...

    def learn(self, x: dict[str, float], y: float) -> None:
        """Learn one true label."""
        ...

    def label(self, xs: Sequence[dict[str, float]]) -> list[tuple[float, float]]:
        """``(pseudo_label, confidence)`` for each record, confidence in ``[0, 1]``."""
        ...


class _TargetScale:
    """Running mean and variance of the true targets (Welford), for the confidence scale."""

    def __init__(self, warmup: int) -> None:
        if warmup < 2:
            raise ValueError(f"warmup must be at least 2 labeled records, got {warmup!r}")
        self.warmup = int(warmup)
        self.learned = 0
        self._y_mean = 0.0
        self._y_m2 = 0.0

    def _see_target(self, y: float) -> None:
        self.learned += 1
        delta = y - self._y_mean
        self._y_mean += delta / self.learned
        self._y_m2 += delta * (y - self._y_mean)

    @property
    def target_std(self) -> float | None:
        if self.learned < 2:
            return None
        return math.sqrt(self._y_m2 / (self.learned - 1))

    @property
    def ready(self) -> bool:
        scale = self.target_std
        return self.learned >= self.warmup and scale is not None and scale > 0

    def _confidence(self, uncertainty: float) -> float:
        scale = self.target_std
        if scale is None or scale <= 0 or not math.isfinite(uncertainty):
            return 0.0
        return min(1.0, max(0.0, 1.0 - uncertainty / scale))


def _poisson1(rng: random.Random) -> int:
    """A Poisson(1) draw (Knuth), from a seeded, picklable ``random.Random``."""
    limit = math.exp(-1.0)
    k, p = 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class CommitteeTeacher(_TargetScale):
    """K bagged copies of a model; the pseudo-label is their mean, the doubt their spread.

    Online bagging (Oza and Russell): each member learns each true label a
    Poisson(1) number of times, from a seeded generator, so the members differ
    and a replay is reproducible. The uncertainty ``u`` of a record is the
    sample standard deviation of the K predictions (target units); the
    confidence is ``1 - u / s`` (``s``: the true targets' standard deviation),
    clipped to ``[0, 1]``.

    Parameters
    ----------
    spec
        A model spec (``streamlearn.models.registry``), usually the student's.
    k
        Committee size (at least 2).
    lr
        ``--lr`` for specs that take it.
    seed
        Seed of the bagging draws.
    warmup
        True labels to see before any pseudo-label is judged.

    Examples
    --------
    >>> teacher = CommitteeTeacher("sgd", k=4, lr=0.05, seed=1, warmup=10)
    >>> for i in range(200):
    ...     x = {"a": (i % 10) / 10}
    ...     teacher.learn(x, 2 * x["a"] + 1)
    >>> (label, confidence), = teacher.label([{"a": 0.5}])
    >>> round(label, 1), confidence > 0.9, teacher.ready
    (2.0, True, True)
    """

    def __init__(
        self, spec: str, k: int = 5, *, lr: float = 0.01, seed: int = 0, warmup: int = 30
    ) -> None:
        from streamlearn.models.registry import build_model

        super().__init__(warmup)
        if k < 2:
            raise ValueError(f"a committee needs at least 2 members, got k={k!r}")
        self.spec = spec
        self.k = int(k)
        self.members = [build_model(spec, lr=lr) for _ in range(self.k)]
        self.rng = random.Random(seed)
        self.name = f"committee of {self.k} x {spec}"

    def learn(self, x: dict[str, float], y: float) -> None:
        self._see_target(y)
        rng = self.rng
        for member in self.members:
            for _ in range(_poisson1(rng)):
                member.learn_one(x, y)

    def label(self, xs: Sequence[dict[str, float]]) -> list[tuple[float, float]]:
        out = []
        for x in xs:
            predictions = [float(m.predict_one(x)) for m in self.members]
            mean = math.fsum(predictions) / len(predictions)
            if mean - mean != 0.0:  # a NaN or infinite member
                out.append((math.nan, 0.0))
                continue
            spread = math.sqrt(
                math.fsum((p - mean) ** 2 for p in predictions) / (len(predictions) - 1)
            )
            out.append((mean, self._confidence(spread)))
        return out


class ModelTeacher(_TargetScale):
    """A separate model; the doubt is its own recent error on records like this one.

    Each true label is first predicted (an honest, prequential error), then
    learned. The last ``memory`` (features, absolute error) pairs are kept; the
    uncertainty ``u`` of a record is the mean absolute error on its
    ``neighbors`` nearest kept records, with distances over features
    standardised by the kept records' spread. The confidence is ``1 - u / s``
    (``s``: the true targets' standard deviation), clipped to ``[0, 1]``.

    Parameters
    ----------
    model
        Any River regressor (``build_model("KNNRegressor")``, a warm-started model A).
    name
        What to call it in ``inspect``.
    memory
        Recent labeled records kept for the local error.
    neighbors
        How many of them make the local error of a record.
    warmup
        True labels to see before any pseudo-label is judged.

    Examples
    --------
    >>> from streamlearn.models.registry import build_model
    >>> teacher = ModelTeacher(build_model("KNNRegressor(n_neighbors=3)"), "knn", warmup=10)
    >>> for i in range(100):
    ...     x = {"a": i / 100}
    ...     teacher.learn(x, (10 * x["a"]) ** 2 if x["a"] < 0.5 else 25 + 50 * (i % 2))
    >>> (smooth, sure), (noisy, unsure) = teacher.label([{"a": 0.2}, {"a": 0.8}])
    >>> round(smooth, 1), sure > unsure
    (4.0, True)
    """

    def __init__(
        self,
        model: Any,
        name: str,
        *,
        memory: int = 512,
        neighbors: int = 10,
        warmup: int = 30,
    ) -> None:
        import numpy as np

        super().__init__(warmup)
        if memory < 1 or neighbors < 1:
            raise ValueError("memory and neighbors must be at least 1")
        self.model = model
        self.name = name
        self.memory = int(memory)
        self.neighbors = int(neighbors)
        self.columns: dict[str, int] = {}
        self.points = np.zeros((self.memory, 0))
        self.errors = np.zeros(self.memory)
        self.size = 0
        self.next_slot = 0

    def _vector(self, x: Mapping[str, float], grow: bool) -> np.ndarray:
        import numpy as np

        columns = self.columns
        if grow:
            new = [name for name in x if name not in columns]
            if new:
                for name in new:
                    columns[name] = len(columns)
                # A feature seen for the first time was 0 in the records before it.
                self.points = np.pad(self.points, ((0, 0), (0, len(new))))
        vector = np.zeros(len(columns))
        for name, value in x.items():
            column = columns.get(name)
            if column is not None:
                vector[column] = value
        return vector

    def learn(self, x: dict[str, float], y: float) -> None:
        self._see_target(y)
        yhat = float(self.model.predict_one(x))
        if math.isfinite(yhat):
            slot = self.next_slot
            self.points[slot] = self._vector(x, grow=True)
            self.errors[slot] = abs(y - yhat)
            self.next_slot = (slot + 1) % self.memory
            self.size = min(self.size + 1, self.memory)
        self.model.learn_one(x, y)

    def _local_errors(self, xs: Sequence[dict[str, float]]) -> np.ndarray:
        import numpy as np

        if self.size == 0:
            return np.full(len(xs), math.inf)
        points = self.points[: self.size]
        errors = self.errors[: self.size]
        scale = points.std(axis=0)
        scale[scale == 0] = 1.0
        kept = points / scale
        queries = np.array([self._vector(x, grow=False) for x in xs]) / scale
        # Squared distances by |q|^2 + |p|^2 - 2 q.p: one matrix product per window.
        distances = (
            (queries**2).sum(axis=1)[:, None]
            + (kept**2).sum(axis=1)[None, :]
            - 2 * queries @ kept.T
        )
        k = min(self.neighbors, self.size)
        nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
        return errors[nearest].mean(axis=1)

    def label(self, xs: Sequence[dict[str, float]]) -> list[tuple[float, float]]:
        if not xs:
            return []
        local = self._local_errors(xs)
        out = []
        for x, uncertainty in zip(xs, local, strict=True):
            yhat = float(self.model.predict_one(x))
            if not math.isfinite(yhat):
                out.append((math.nan, 0.0))
            else:
                out.append((yhat, self._confidence(float(uncertainty))))
        return out


def build_teacher(
    spec: str, *, model_spec: str, lr: float = 0.01, k: int = 5, seed: int = 0
) -> Teacher:
    """The teacher a ``--teacher`` value names.

    ``committee``
        ``k`` bagged copies of the student's spec (``CommitteeTeacher``).
    ``committee:SPEC``
        ``k`` bagged copies of another spec.
    ``warm:PATH``
        Model A (``streamlearn pretrain``, scikit-learn, Keras, a checkpoint),
        warm-started and learning on (``ModelTeacher``).
    any other ``SPEC``
        A separate model of that spec (``ModelTeacher``), e.g. ``KNNRegressor``.

    Raises ``ValueError`` (a ``SpecError`` or ``TransferError``) with what to write instead.

    Examples
    --------
    >>> build_teacher("committee", model_spec="sgd", k=3).name
    'committee of 3 x sgd'
    >>> build_teacher("StandardScaler | KNNRegressor(n_neighbors=7)", model_spec="sgd").name
    'StandardScaler | KNNRegressor(n_neighbors=7)'
    >>> try:
    ...     build_teacher("Oracle", model_spec="sgd")
    ... except ValueError as exc:
    ...     print(exc)
    unknown model 'Oracle' in 'Oracle'; known: ...
    """
    from streamlearn.models.registry import build_model

    spec = spec.strip()
    if spec == "committee":
        return CommitteeTeacher(model_spec, k, lr=lr, seed=seed)
    if spec.startswith("committee:"):
        return CommitteeTeacher(spec.split(":", 1)[1].strip(), k, lr=lr, seed=seed)
    if spec.startswith("warm:"):
        from streamlearn.models.transfer import load_batch_model, warm_start

        path = spec.split(":", 1)[1].strip()
        model = warm_start(load_batch_model(path), "finetune", lr=lr)
        return ModelTeacher(model, f"warm start from {path}")
    if spec == model_spec:
        log.warning(
            "the teacher %r is the student's own spec: it learns the same labels, so its "
            "pseudo-labels add little; try --teacher committee or another model",
            spec,
        )
    return ModelTeacher(build_model(spec, lr=lr), spec)


# -- the side loop ---------------------------------------------------------------------------


class Candidate(NamedTuple):
    """An unlabeled record offered to the side loop (a tuple: cheap to queue and to pickle)."""

    stream_index: int  # its place in the stream: unique, so it names the record
    id: str | None
    x: dict[str, float]
    yhat: float  # the student's prediction when the record came


class _Decision(NamedTuple):
    """The verdict on one candidate (made on either thread, applied on the loop thread)."""

    candidate: Candidate
    label: float | None
    confidence: float | None
    accept: bool
    reason: str | None


class PseudoLabeler:
    """The pseudo-labeling side loop: queue, teacher, ordered acceptance, weighted learning.

    Fits the hooks of ``streamlearn.loop.daemon.Daemon``: ``offer`` per unlabeled
    record, ``observe_labeled`` per true label, ``drain`` after each batch
    (learns accepted pseudo-labels on the loop thread), ``audit`` from
    ``LabelJoin.take``. Picklable (the checkpoint holds it, with the queue and
    the teacher).

    Parameters
    ----------
    teacher
        A ``Teacher`` (``build_teacher``).
    threshold
        Least confidence accepted, in ``[0, 1]``: a pseudo-label is accepted only
        if the teacher expects an error of at most ``(1 - threshold)`` standard
        deviations of the target.
    weight
        Sample weight of an accepted pseudo-label, in ``(0, 1]``.
    window
        Decisions are made per window of this many queued records, most
        confident first. A window is decided when it is full; ``flush`` decides
        a partial one (the end of a replay).
    max_fraction
        At most ``floor(max_fraction * window)`` of a window are accepted.
    queue_size
        Most records waiting for a decision; when full, the oldest is rejected
        (``overflow``). At least ``window``. (In threaded mode one more window
        may be with the teacher.)
    deterministic
        Decide on the loop thread in ``drain`` (reproducible), or on a side thread.
    join
        The ``LabelJoin``, to link each record with an id to its decision (audit).

    Examples
    --------
    A teacher that is unsure of negative inputs; windows of 4, at most half accepted:

    >>> class Teacher:
    ...     name, learned, ready, target_std = "demo", 0, True, 1.0
    ...     def learn(self, x, y): ...
    ...     def label(self, xs):
    ...         return [(2 * x["a"], 0.9 if x["a"] > 0 else 0.1) for x in xs]
    >>> from streamlearn.learner import Learner
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> from streamlearn.records import Record
    >>> from streamlearn.sources.base import Raw
    >>> class Daemon:  # what drain() uses of the real one
    ...     learner, telemetry = Learner(SGDRegressor(lr=0.1)), None
    >>> pseudo = PseudoLabeler(Teacher(), threshold=0.5, window=4, max_fraction=0.5)
    >>> for i, a in enumerate([1.0, -1.0, 3.0, 2.0, 5.0]):
    ...     pseudo.offer(Record({"a": a}, None, None, Raw(b"", i)), 0.0, i)
    >>> pseudo.drain(Daemon)   # one full window; the fifth record waits for the next
    >>> s = pseudo.summary()["pseudo_labels"]
    >>> s["accepted"], s["rejected"], s["queued"], s["rejected_by_reason"]
    (2, 2, 1, {'threshold': 1, 'window_cap': 1})
    >>> Daemon.learner.pseudo_learned
    2
    >>> pseudo.flush(Daemon)   # end of the stream: the partial window too
    >>> s = pseudo.summary()["pseudo_labels"]
    >>> s["accepted"] + s["rejected"] == s["offered"] == 5
    True
    """

    def __init__(
        self,
        teacher: Teacher,
        *,
        threshold: float = 0.8,
        weight: float = 0.5,
        window: int = 100,
        max_fraction: float = 0.5,
        queue_size: int = 10_000,
        deterministic: bool = True,
        join: LabelJoin | None = None,
    ) -> None:
        self.teacher = teacher
        self.configure(
            threshold=threshold,
            weight=weight,
            window=window,
            max_fraction=max_fraction,
            queue_size=queue_size,
            deterministic=deterministic,
        )
        self.join = join
        if join is not None:
            join.pseudo = self
        self.pending: deque[Candidate] = deque()
        # Indexes of queued records whose true label came first: counted as rejected
        # (superseded) at once, skipped when their window is decided.
        self.superseded: set[int] = set()
        self.teach: deque[tuple[dict[str, float], float]] = deque()  # threaded mode only
        self.ready_decisions: deque[_Decision] = deque()  # threaded mode: made, not applied
        self.offered = 0
        self.accepted = 0
        self.rejected = 0
        self.rejected_by_reason: dict[str, int] = {}
        self.audit_counts = {"accepted": 0, "rejected": 0}
        self.audit_abs = {"accepted": 0.0, "rejected": 0.0}  # |pseudo-label - true label|
        self.audit_student_abs = {"accepted": 0.0, "rejected": 0.0}  # |student's yhat - y|
        self._init_runtime()

    def configure(
        self,
        *,
        threshold: float,
        weight: float,
        window: int,
        max_fraction: float,
        queue_size: int,
        deterministic: bool,
    ) -> None:
        """Set (or, on a restored labeler, change) the knobs; checks them first."""
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a confidence in [0, 1], got {threshold!r}")
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"weight must be in (0, 1], got {weight!r}")
        if window < 1:
            raise ValueError(f"window must be at least 1 record, got {window!r}")
        if not 0.0 < max_fraction <= 1.0:
            raise ValueError(f"max_fraction must be in (0, 1], got {max_fraction!r}")
        if int(max_fraction * window + 1e-9) < 1:
            raise ValueError(
                f"max_fraction {max_fraction} of a window of {window} accepts nothing; "
                f"raise the window to at least {math.ceil(1 / max_fraction)} or the fraction"
            )
        if queue_size < window:
            raise ValueError(
                f"queue_size ({queue_size}) must hold at least one window ({window}), "
                "or no window would ever fill"
            )
        running = getattr(self, "_thread", None) is not None
        if running and deterministic != getattr(self, "deterministic", deterministic):
            raise ValueError("cannot switch between threaded and deterministic while running")
        self.threshold = float(threshold)
        self.weight = float(weight)
        self.window = int(window)
        self.max_fraction = float(max_fraction)
        self.queue_size = int(queue_size)
        self.deterministic = bool(deterministic)

    def _init_runtime(self) -> None:
        # Runtime-only parts, never pickled: the side thread and its locks.
        # ``_cond`` guards the deques shared with the thread; ``_busy`` is held while
        # the thread uses the teacher, so a checkpoint or a flush sees it at rest.
        self._cond = threading.Condition()
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._error: BaseException | None = None
        # Prometheus counters start at 0 in each process: report only what happens here.
        self._reported_accepted = self.accepted
        self._reported_rejected = self.rejected

    # -- hooks called by the daemon's loop thread ---------------------------------------

    def offer(self, record: Any, yhat: float, index: int) -> None:
        """Queue an unlabeled record (after its prediction was written)."""
        candidate = Candidate(index, record.id, record.x, float(yhat))
        self.offered += 1
        if self.join is not None and record.id is not None:
            self.join.mark(record.id, index, QUEUED)
        overflow: list[Candidate] = []
        with self._cond:
            pending = self.pending
            while len(pending) >= self.queue_size:
                overflow.append(pending.popleft())
            pending.append(candidate)
            if not self.deterministic and len(pending) >= self.window:
                self._cond.notify_all()
        for oldest in overflow:
            if oldest.stream_index in self.superseded:
                self.superseded.discard(oldest.stream_index)  # decided already
            else:
                self._finish(oldest, "rejected", "overflow", None)
        if not self.deterministic:
            self._ensure_thread()

    def observe_labeled(self, x: dict[str, float], y: float) -> None:
        """A true label: the teacher learns it (the student already did)."""
        if self.deterministic:
            self.teacher.learn(x, y)
            return
        self._ensure_thread()
        limit = max(self.queue_size, 1000)
        with self._cond:
            # Back-pressure rather than loss: a teacher far behind slows the loop down.
            while len(self.teach) >= limit and self._error is None:
                self._cond.wait(0.1)
            self.teach.append((x, y))
            self._cond.notify_all()

    def drain(self, daemon: Any) -> None:
        """Decide what is due and learn the accepted pseudo-labels (after each batch)."""
        counters = getattr(daemon, "counters", None)
        if self.join is not None and counters is not None:
            self.join.expire(counters.records_seen - 1)  # labels may stop coming: free memory
        if self.deterministic:
            while len(self.pending) >= self.window:
                window = [self.pending.popleft() for _ in range(self.window)]
                self._apply(self._decide(window, self.window), daemon)
        else:
            self._raise_if_failed()
            with self._cond:
                decisions = list(self.ready_decisions)
                self.ready_decisions.clear()
            self._apply(decisions, daemon)
        self._report(daemon)

    def flush(self, daemon: Any) -> None:
        """Decide everything still queued, partial window included (end of a replay)."""
        self._raise_if_failed()
        with self._busy:  # the side thread, if any, is between steps: the teacher is ours
            with self._cond:
                teach = list(self.teach)
                self.teach.clear()
                decisions = list(self.ready_decisions)
                self.ready_decisions.clear()
                queued = list(self.pending)
                self.pending.clear()
                self._cond.notify_all()
            for x, y in teach:
                self.teacher.learn(x, y)
            for start in range(0, len(queued), self.window):
                decisions.extend(self._decide(queued[start : start + self.window], None))
        self._apply(decisions, daemon)
        self._report(daemon)

    def audit(self, index: int, decision: Any, yhat: float, y: float) -> None:
        """The true label ``y`` came for the record at ``index`` (called by ``LabelJoin.take``).

        ``decision`` is what ``LabelJoin.mark`` noted: ``QUEUED`` or
        ``(outcome, pseudo_label)``; ``yhat`` the student's prediction then.
        """
        if decision == QUEUED:
            # Still undecided: the true label is learned instead, never the pseudo-label.
            self.superseded.add(index)
            self._count("rejected", "superseded")
            return
        outcome, label = decision
        if label is None:
            return  # decided without a teacher label (overflow, warm-up): nothing to audit
        self.audit_counts[outcome] += 1
        self.audit_abs[outcome] += abs(label - y)
        self.audit_student_abs[outcome] += abs(yhat - y)

    def close(self) -> None:
        """Stop the side thread (queued records stay queued, in the next checkpoint)."""
        thread = self._thread
        if thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread.join()
        self._thread = None
        self._stopping = False

    # -- deciding ---------------------------------------------------------------------

    def _decide(self, window: list[Candidate], size: int | None) -> list[_Decision]:
        """The verdicts on one window, most confident first (no state is written here).

        ``size`` is the full window size the cap is computed from, None for a
        partial window at ``flush`` (whose cap is then a fraction of what it holds).
        """
        cap = int(self.max_fraction * (size if size is not None else len(window)) + 1e-9)
        superseded = self.superseded
        decisions = [
            _Decision(c, None, None, False, "superseded")
            for c in window
            if c.stream_index in superseded
        ]
        live = [c for c in window if c.stream_index not in superseded]
        if not live:
            return decisions
        teacher = self.teacher
        if not teacher.ready:
            return decisions + [_Decision(c, None, None, False, "teacher_warmup") for c in live]
        verdicts = teacher.label([c.x for c in live])
        # Most confident first; ties keep stream order, so a replay decides the same.
        order = sorted(range(len(live)), key=lambda i: (-verdicts[i][1], live[i].stream_index))
        taken = 0
        threshold = self.threshold
        for i in order:
            label, confidence = verdicts[i]
            if label - label != 0.0:
                decisions.append(_Decision(live[i], None, None, False, "non_finite"))
            elif confidence < threshold:
                decisions.append(_Decision(live[i], label, confidence, False, "threshold"))
            elif taken < cap:
                taken += 1
                decisions.append(_Decision(live[i], label, confidence, True, None))
            else:
                decisions.append(_Decision(live[i], label, confidence, False, "window_cap"))
        return decisions

    def _apply(self, decisions: Sequence[_Decision], daemon: Any) -> None:
        """Record verdicts and learn the accepted ones: on the loop thread only."""
        if not decisions:
            return
        learner = daemon.learner
        learned_before = learner.pseudo_learned
        weight = self.weight
        superseded = self.superseded
        for candidate, label, _, accept, reason in decisions:
            if candidate.stream_index in superseded:
                superseded.discard(candidate.stream_index)  # counted when its true label came
                continue
            if accept:
                assert label is not None
                learner.learn_weighted(candidate.x, label, weight)
                self._finish(candidate, "accepted", None, label)
            else:
                self._finish(candidate, "rejected", reason, label)
        telemetry = getattr(daemon, "telemetry", None)
        if telemetry is not None and learner.pseudo_learned > learned_before:
            telemetry.learned(learner.pseudo_learned - learned_before, label="pseudo")

    def _report(self, daemon: Any) -> None:
        """Send decisions made since the last report (overflow and superseded included)."""
        telemetry = getattr(daemon, "telemetry", None)
        if telemetry is None:
            return
        if self.accepted > self._reported_accepted:
            telemetry.pseudo("accepted", self.accepted - self._reported_accepted)
            self._reported_accepted = self.accepted
        if self.rejected > self._reported_rejected:
            telemetry.pseudo("rejected", self.rejected - self._reported_rejected)
            self._reported_rejected = self.rejected

    def _finish(
        self, candidate: Candidate, outcome: str, reason: str | None, label: float | None
    ) -> None:
        self._count(outcome, reason)
        if candidate.id is not None and self.join is not None:
            self.join.mark(candidate.id, candidate.stream_index, (outcome, label))

    def _count(self, outcome: str, reason: str | None) -> None:
        if outcome == "accepted":
            self.accepted += 1
        else:
            self.rejected += 1
            key = reason or "threshold"
            self.rejected_by_reason[key] = self.rejected_by_reason.get(key, 0) + 1

    # -- the side thread ----------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._work, name="streamlearn-pseudo", daemon=True
            )
            self._thread.start()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"the pseudo-label side loop failed: {self._error!r}") from (
                self._error
            )

    def _work(self) -> None:
        try:
            while True:
                with self._cond:
                    while not (self._stopping or self.teach or len(self.pending) >= self.window):
                        self._cond.wait()
                    if self._stopping:
                        return
                self._step()
        except BaseException as exc:  # surfaced on the loop thread by drain()
            log.exception("the pseudo-label side loop failed")
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _step(self) -> None:
        """One unit of side-loop work: a chunk of true labels, else one window."""
        with self._busy:
            with self._cond:
                chunk = [self.teach.popleft() for _ in range(min(256, len(self.teach)))]
                window: list[Candidate] = []
                if not chunk and len(self.pending) >= self.window:
                    window = [self.pending.popleft() for _ in range(self.window)]
                self._cond.notify_all()  # room for a producer waiting on back-pressure
            for x, y in chunk:
                self.teacher.learn(x, y)
            if window:
                decisions = self._decide(window, self.window)
                with self._cond:
                    self.ready_decisions.extend(decisions)

    # -- state --------------------------------------------------------------------------

    def snapshot_locks(self) -> tuple[Any, ...]:
        """The locks ``__getstate__`` takes, in its order: a forked checkpoint holds them."""
        return (self._busy, self._cond)

    def __getstate__(self) -> dict[str, Any]:
        with self._busy, self._cond:
            state = {
                key: value
                for key, value in self.__dict__.items()
                if key
                not in (
                    "_cond",
                    "_busy",
                    "_thread",
                    "_stopping",
                    "_error",
                    "_reported_accepted",
                    "_reported_rejected",
                )
            }
            state["pending"] = deque(self.pending)
            state["teach"] = deque(self.teach)
            state["ready_decisions"] = deque(self.ready_decisions)
            state["audit_counts"] = dict(self.audit_counts)
            state["audit_abs"] = dict(self.audit_abs)
            state["audit_student_abs"] = dict(self.audit_student_abs)
            state["superseded"] = set(self.superseded)
            state["rejected_by_reason"] = dict(self.rejected_by_reason)
            if self._thread is not None:
                # Pickled now, while the side thread is held at rest: later it moves on.
                state["teacher"] = None
                state["_teacher_blob"] = pickle.dumps(self.teacher, pickle.HIGHEST_PROTOCOL)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        blob = state.pop("_teacher_blob", None)
        self.__dict__.update(state)
        if blob is not None:
            self.teacher = pickle.loads(blob)
        self._init_runtime()

    # -- reporting ----------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The ``pseudo_labels`` part of ``inspect --json``."""

        def mean(total: float, n: int) -> float | None:
            return total / n if n else None

        scale = self.teacher.target_std
        return {
            "pseudo_labels": {
                "teacher": self.teacher.name,
                "teacher_learned": self.teacher.learned,
                "mode": "deterministic" if self.deterministic else "threaded",
                "threshold": self.threshold,
                "threshold_in_target_units": None
                if scale is None
                else (1 - self.threshold) * scale,
                "target_std": scale,
                "weight": self.weight,
                "window": self.window,
                "max_fraction": self.max_fraction,
                "queue_size": self.queue_size,
                "offered": self.offered,
                "accepted": self.accepted,
                "rejected": self.rejected,
                "queued": self.offered - self.accepted - self.rejected,
                "overflow": self.rejected_by_reason.get("overflow", 0),
                "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
                "audited": self.audit_counts["accepted"],
                "audit_mae": mean(self.audit_abs["accepted"], self.audit_counts["accepted"]),
                "audit_student_mae": mean(
                    self.audit_student_abs["accepted"], self.audit_counts["accepted"]
                ),
                "audited_rejected": self.audit_counts["rejected"],
                "audit_mae_rejected": mean(
                    self.audit_abs["rejected"], self.audit_counts["rejected"]
                ),
                "audit_student_mae_rejected": mean(
                    self.audit_student_abs["rejected"], self.audit_counts["rejected"]
                ),
            }
        }


# -- construction from settings --------------------------------------------------------------

_DEFAULTS: dict[str, Any] = {
    "pseudo_label": False,
    "pseudo_queue": 10_000,
    "pseudo_threshold": 0.8,
    "pseudo_weight": 0.5,
    "pseudo_window": 100,
    "pseudo_max_fraction": 0.5,
    "teacher": "committee",
    "teacher_k": 5,
    "deterministic": None,
    "label_ttl": None,
    "max_pending_labels": DEFAULT_MAX_PENDING,
}


def _bad(message: str, option: str) -> click.BadParameter:
    return click.BadParameter(message, param_hint=f"'--{option}'")


def build_pseudo(
    extra: Mapping[str, Any],
    *,
    model_spec: str,
    lr: float,
    restored: Mapping[str, Any] | None,
    follow: bool = False,
) -> tuple[PseudoLabeler | None, LabelJoin | None]:
    """The side loop and the join that the options in ``extra`` ask for (either may be None).

    ``restored`` is the state loaded from the checkpoint (or just its
    ``extensions``: a mapping with ``"pseudo"`` and/or ``"join"``), None on a fresh start.

    The join is on whenever the stream may carry late labels: with
    ``--label-ttl``, with ``--pseudo-label`` (TTL ``100000r`` unless given), or
    when the restored state holds one (its waiting features are kept). A
    restored side loop carries on with its queue and teacher under the new
    knobs; a different ``--teacher`` starts a new teacher. ``--deterministic``
    defaults to on for a replay and off when following (``follow``).

    Raises ``click.BadParameter`` for a setting that cannot work.

    Examples
    --------
    >>> pseudo, join = build_pseudo({}, model_spec="sgd", lr=0.01, restored=None)
    >>> pseudo is None and join is None
    True
    >>> pseudo, join = build_pseudo({"pseudo_label": True, "label_ttl": "5000r"},
    ...                             model_spec="sgd", lr=0.01, restored=None)
    >>> pseudo.teacher.name, pseudo.deterministic, str(join.ttl), pseudo.join is join
    ('committee of 5 x sgd', True, '5000r', True)
    >>> try:
    ...     build_pseudo({"pseudo_label": True, "pseudo_window": 1}, model_spec="sgd",
    ...                  lr=0.01, restored=None)
    ... except click.BadParameter as exc:
    ...     print(exc.format_message())
    Invalid value for '--pseudo-max-fraction': max_fraction 0.5 of a window of 1 accepts
    nothing; raise the window to at least 2 or the fraction
    """
    options = {**_DEFAULTS, **{k: v for k, v in extra.items() if k in _DEFAULTS and v is not None}}
    # ``restored`` is a loaded state (its "extensions" hold the parts) or those parts alone.
    restored = restored or {}
    extensions = restored.get("extensions", restored)
    old_pseudo = extensions.get("pseudo")
    old_join = extensions.get("join")

    join: LabelJoin | None = None
    ttl_given = extra.get("label_ttl") is not None
    if ttl_given or options["pseudo_label"] or old_join is not None:
        try:
            ttl = LabelTtl.parse(options["label_ttl"] or DEFAULT_TTL)
        except ValueError as exc:
            raise _bad(str(exc), "label-ttl") from None
        max_pending = int(options["max_pending_labels"])
        if max_pending < 1:
            raise _bad("keep at least 1 pending label", "max-pending-labels")
        if isinstance(old_join, LabelJoin):
            join = old_join
            if ttl_given:
                join.ttl = ttl
            join.max_pending = max_pending
            log.info("delayed-label join restored with %d waiting features", len(join.pending))
        else:
            join = LabelJoin(ttl, max_pending)

    if not options["pseudo_label"]:
        if isinstance(old_pseudo, PseudoLabeler):
            waiting = old_pseudo.offered - old_pseudo.accepted - old_pseudo.rejected
            if waiting:
                log.warning(
                    "pseudo-labeling is off now: %d unlabeled records queued in the checkpoint "
                    "will not be decided (use --pseudo-label to carry on)",
                    waiting,
                )
        if join is not None:
            join.pseudo = None
        return None, join

    deterministic = options["deterministic"]
    if deterministic is None:
        deterministic = not follow
    knobs: dict[str, Any] = {
        "threshold": float(options["pseudo_threshold"]),
        "weight": float(options["pseudo_weight"]),
        "window": int(options["pseudo_window"]),
        "max_fraction": float(options["pseudo_max_fraction"]),
        "queue_size": int(options["pseudo_queue"]),
        "deterministic": bool(deterministic),
    }
    teacher_spec = str(options["teacher"])

    def new_teacher() -> Teacher:
        try:
            return build_teacher(
                teacher_spec, model_spec=model_spec, lr=lr, k=int(options["teacher_k"])
            )
        except ValueError as exc:
            raise _bad(str(exc), "teacher") from None

    try:
        if isinstance(old_pseudo, PseudoLabeler):
            pseudo = old_pseudo
            pseudo.configure(**knobs)
            expected = _teacher_name(teacher_spec, model_spec, int(options["teacher_k"]))
            if expected is not None and pseudo.teacher.name != expected:
                log.warning(
                    "the checkpoint's teacher is %r, not %r: starting a new teacher",
                    pseudo.teacher.name,
                    expected,
                )
                pseudo.teacher = new_teacher()
        else:
            pseudo = PseudoLabeler(new_teacher(), **knobs)
    except ValueError as exc:
        text = str(exc)
        option = next(
            (
                name
                for key, name in (
                    ("max_fraction", "pseudo-max-fraction"),
                    ("queue_size", "pseudo-queue"),
                    ("threshold", "pseudo-threshold"),
                    ("weight", "pseudo-weight"),
                    ("window", "pseudo-window"),
                )
                if text.startswith(key)
            ),
            "pseudo-label",
        )
        raise _bad(text, option) from None
    pseudo.join = join
    if join is not None:
        join.pseudo = pseudo
    return pseudo, join


def _teacher_name(spec: str, model_spec: str, k: int) -> str | None:
    """The ``name`` ``build_teacher`` would give (to notice a changed ``--teacher``)."""
    spec = spec.strip()
    if spec == "committee":
        return f"committee of {k} x {model_spec}"
    if spec.startswith("committee:"):
        return f"committee of {k} x {spec.split(':', 1)[1].strip()}"
    if spec.startswith("warm:"):
        return f"warm start from {spec.split(':', 1)[1].strip()}"
    return spec


class _TtlType(click.ParamType):
    name = "TTL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return str(LabelTtl.parse(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _check_teacher(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from streamlearn.models.registry import SpecError, parse_spec

    spec = value.strip()
    if spec == "committee" or spec.startswith("warm:"):
        if spec.startswith("warm:") and not spec[5:].strip():
            raise click.BadParameter("write warm:PATH, the file or state dir of model A")
        return spec
    try:
        parse_spec(spec.split(":", 1)[1] if spec.startswith("committee:") else spec)
    except SpecError as exc:
        raise click.BadParameter(str(exc)) from None
    return spec


def pseudo_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Click options of the side loop and the delayed-label join (each with a STREAMLEARN_* var).

    Examples
    --------
    >>> from click.testing import CliRunner
    >>> @click.command()
    ... @pseudo_options
    ... def show(**params):
    ...     click.echo(f"{params['pseudo_label']} {params['teacher']} {params['label_ttl']}")
    >>> CliRunner().invoke(show, ["--pseudo-label", "--label-ttl", "10m"]).output
    'True committee 600s\\n'
    >>> print(CliRunner().invoke(show, ["--label-ttl", "10"]).output.splitlines()[-1])
    Error: Invalid value for '--label-ttl': label TTL '10' needs a unit: seconds (600s, 10m, 2h,
    1d) or records (5000r)
    """
    options = [
        click.option(
            "--pseudo-label/--no-pseudo-label",
            default=False,
            show_default=True,
            envvar="STREAMLEARN_PSEUDO_LABEL",
            help="Learn unlabeled records from a teacher's confident pseudo-labels "
            "(weighted, never scored). Also turns on the delayed-label join.",
        ),
        click.option(
            "--pseudo-queue",
            default=_DEFAULTS["pseudo_queue"],
            show_default=True,
            type=click.IntRange(min=1),
            envvar="STREAMLEARN_PSEUDO_QUEUE",
            help="Unlabeled records waiting for a decision; when full the oldest is rejected "
            "(counted as overflow).",
        ),
        click.option(
            "--pseudo-threshold",
            default=_DEFAULTS["pseudo_threshold"],
            show_default=True,
            type=click.FloatRange(0, 1),
            envvar="STREAMLEARN_PSEUDO_THRESHOLD",
            help="Least teacher confidence accepted. Confidence = 1 - u/s (u: the teacher's "
            "expected error, s: the target's std), so T accepts u <= (1-T)*s.",
        ),
        click.option(
            "--pseudo-weight",
            default=_DEFAULTS["pseudo_weight"],
            show_default=True,
            type=click.FloatRange(0, 1, min_open=True),
            envvar="STREAMLEARN_PSEUDO_WEIGHT",
            help="Sample weight of an accepted pseudo-label.",
        ),
        click.option(
            "--pseudo-window",
            default=_DEFAULTS["pseudo_window"],
            show_default=True,
            type=click.IntRange(min=1),
            envvar="STREAMLEARN_PSEUDO_WINDOW",
            help="Decide per window of this many unlabeled records, most confident first.",
        ),
        click.option(
            "--pseudo-max-fraction",
            default=_DEFAULTS["pseudo_max_fraction"],
            show_default=True,
            type=click.FloatRange(0, 1, min_open=True),
            envvar="STREAMLEARN_PSEUDO_MAX_FRACTION",
            help="At most this fraction of each window is accepted.",
        ),
        click.option(
            "--teacher",
            default=_DEFAULTS["teacher"],
            show_default=True,
            callback=_check_teacher,
            envvar="STREAMLEARN_TEACHER",
            help="Who pseudo-labels: 'committee' (K bagged copies of --model; confidence from "
            "their spread), 'committee:SPEC', a model spec such as 'KNNRegressor' (confidence "
            "from its recent error near the input), or 'warm:PATH' (model A).",
        ),
        click.option(
            "--teacher-k",
            default=_DEFAULTS["teacher_k"],
            show_default=True,
            type=click.IntRange(min=2),
            envvar="STREAMLEARN_TEACHER_K",
            help="Committee size.",
        ),
        click.option(
            "--deterministic/--threaded",
            default=None,
            envvar="STREAMLEARN_DETERMINISTIC",
            help="Decide pseudo-labels on the loop thread (reproducible; default for replay) "
            "or on a side thread (default for run).",
        ),
        click.option(
            "--label-ttl",
            default=None,
            type=_TtlType(),
            envvar="STREAMLEARN_LABEL_TTL",
            help="Join late labels ({'id','y'} lines, or CSV rows with only id and target) to "
            "features seen this long ago: 600s, 10m, 2h, 1d (wall clock) or 5000r (records). "
            f"Turns the join on; default {DEFAULT_TTL} with --pseudo-label.",
        ),
        click.option(
            "--max-pending-labels",
            default=DEFAULT_MAX_PENDING,
            show_default=True,
            type=click.IntRange(min=1),
            envvar="STREAMLEARN_MAX_PENDING_LABELS",
            help="Most features kept waiting for a label; past it the oldest are evicted "
            "(counted).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func
