"""Teachers: models that learn only from true labels and pseudo-label the rest, with a confidence.

The confidence is ``1 - u / s``, clipped to ``[0, 1]``: ``u`` is the teacher's
uncertainty about that record in target units, ``s`` the standard deviation of
the true targets the teacher has seen. So a threshold ``t`` accepts a
pseudo-label when the teacher expects to be off by at most ``(1 - t) * s``.
``u`` is the spread (sample standard deviation) of the committee's predictions
for ``CommitteeTeacher``, and the teacher's own mean absolute error on the
``neighbors`` nearest recently labeled records (standardised feature space) for
``ModelTeacher``.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from streamlearn.models.answer import predicted

if TYPE_CHECKING:
    import numpy as np

# numpy is imported where it is used: a run without a ModelTeacher never pays for it.

log = logging.getLogger(__name__)

__all__ = [
    "CommitteeTeacher",
    "ModelTeacher",
    "Teacher",
    "build_teacher",
    "teacher_kind",
    "teacher_name",
    "warm_teacher_model",
]


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


def poisson1(rng: random.Random) -> int:
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
            for _ in range(poisson1(rng)):
                member.learn_one(x, y)

    def label(self, xs: Sequence[dict[str, float]]) -> list[tuple[float, float]]:
        out = []
        for x in xs:
            predictions = [predicted(m.predict_one(x)) for m in self.members]
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
        model: Any,  # a River regressor (River types x as dict[Hashable, Any])
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
        yhat = predicted(self.model.predict_one(x))
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
        means: np.ndarray = errors[nearest].mean(axis=1)
        return means

    def label(self, xs: Sequence[dict[str, float]]) -> list[tuple[float, float]]:
        if not xs:
            return []
        local = self._local_errors(xs)
        out = []
        for x, uncertainty in zip(xs, local, strict=True):
            yhat = predicted(self.model.predict_one(x))
            if not math.isfinite(yhat):
                out.append((math.nan, 0.0))
            else:
                out.append((yhat, self._confidence(float(uncertainty))))
        return out


def build_teacher(
    spec: str,
    *,
    model_spec: str,
    lr: float = 0.01,
    k: int = 5,
    seed: int = 0,
    trust_pickle: bool = False,
    lr_from_flag: bool = True,
) -> Teacher:
    """The teacher a ``--teacher`` value names.

    ``committee``
        ``k`` bagged copies of the student's spec (``CommitteeTeacher``).
    ``committee:SPEC``
        ``k`` bagged copies of another spec.
    ``warm:PATH``
        Model A (``streamlearn pretrain``, scikit-learn, Keras, a checkpoint),
        warm-started and learning on (``ModelTeacher``); a pickle only with
        ``trust_pickle`` (``load_batch_model``). It fine-tunes at ``lr`` when that is the
        user's (``lr_from_flag``), else at the rate suited to A, as model B does
        (``streamlearn.models.transfer.suited_lr``).
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

    kind, named = teacher_kind(spec, model_spec)
    if kind == "committee":
        return CommitteeTeacher(named, k, lr=lr, seed=seed)
    if kind == "warm":
        model = warm_teacher_model(named, lr, trust_pickle, lr_from_flag)
        return ModelTeacher(model, f"warm start from {named}")
    if named == model_spec:
        log.warning(
            "the teacher %r is the student's own spec: it learns the same labels, so its "
            "pseudo-labels add little; try --teacher committee or another model",
            named,
        )
    return ModelTeacher(build_model(named, lr=lr), named)


def teacher_kind(spec: str, model_spec: str) -> tuple[str, str]:
    """What a ``--teacher`` value names: ``("committee", the members' spec)``,
    ``("warm", the path of model A)`` or ``("model", a spec)``.

    >>> teacher_kind("committee", "sgd"), teacher_kind(" warm: a.skops", "sgd")
    (('committee', 'sgd'), ('warm', 'a.skops'))
    """
    spec = spec.strip()
    if spec == "committee":
        return "committee", model_spec
    for kind in ("committee", "warm"):
        if spec.startswith(f"{kind}:"):
            return kind, spec.split(":", 1)[1].strip()
    return "model", spec


def warm_teacher_model(path: str, lr: float, trust_pickle: bool, lr_from_flag: bool) -> Any:
    """Model A of ``warm:PATH`` as a teacher: warm-started, fine-tuning at ``lr`` when that
    is the user's (``lr_from_flag``), else at the rate suited to A."""
    from streamlearn.models.transfer import load_batch_model, warm_start

    a = load_batch_model(path, trust_pickle=trust_pickle)
    return warm_start(a, "finetune", lr=lr if lr_from_flag else None)  # None: suited to A


def teacher_name(spec: str, model_spec: str, k: int) -> str:
    """The ``name`` ``build_teacher`` would give (to notice a changed ``--teacher``)."""
    kind, named = teacher_kind(spec, model_spec)
    if kind == "committee":
        return f"committee of {k} x {named}"
    if kind == "warm":
        return f"warm start from {named}"
    return named
