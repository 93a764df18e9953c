"""Teachers of a classifier: models that learn only true labels and vote a class and a confidence.

The seed's rule: the pseudo-label of a record is the class a model gives it, kept when the
model's probability of that class is at least the threshold. A committee votes as one: its
members must all give the same class, and the confidence is the least of their
probabilities of it, so a threshold ``t`` keeps a record only when every member gives the
class a probability of at least ``t``. Labels are class codes (``streamlearn.classify``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from streamlearn.classify.task import predicted
from streamlearn.labels.teachers import Teacher, poisson1, teacher_kind, warm_teacher_model

if TYPE_CHECKING:
    from streamlearn.classify.space import ClassSpace, Proba

__all__ = [
    "ClassCommitteeTeacher",
    "ClassModelTeacher",
    "ClassTeacher",
    "ClassVote",
    "build_class_teacher",
]


class ClassVote(NamedTuple):
    """A teacher's verdict on one record: a class and how sure it is, or why there is none."""

    code: int  # the class given (a code of the ClassSpace); -1 when there is none
    confidence: float  # the probability of that class (a committee: its members' least)
    refusal: str | None  # None, or why there is no class: a PSEUDO_REJECT_REASONS entry


class ClassTeacher(Teacher, Protocol):
    """A ``Teacher`` of a classifier: ``learn`` takes class codes, ``vote`` gives classes.

    ``label`` gives ``(code, confidence)`` (NaN when there is no class), ``target_std`` is
    None: the confidence is a probability, on no target's scale.
    """

    def vote(self, xs: Sequence[dict[str, float]]) -> list[ClassVote]:
        """The class and confidence of each record (or why there is none)."""
        ...

    def use_classes(self, classes: ClassSpace) -> None:
        """Speak the codes of ``classes`` (the learner's space, also after a restart)."""
        ...


def _checked(model: Any, classes: ClassSpace, name: str) -> Any:
    """``model`` if it can teach a classifier of ``classes``, else a ``ValueError`` saying why."""
    from streamlearn.classify.task import CLASSIFICATION, binary_only, infer_task

    if infer_task(model) != CLASSIFICATION:
        raise ValueError(
            f"the teacher {name!r} is a regressor; a classifier's teacher must be a "
            "classifier: try --teacher committee"
        )
    if not classes.binary and binary_only(model):
        raise ValueError(
            f"the teacher {name!r} knows only two classes and the model learns several: "
            "try --teacher committee or a multiclass spec (e.g. HoeffdingTreeClassifier)"
        )
    return model


class _ClassTeacher:
    """What both class teachers share: the space, the warm-up, ``label`` from ``vote``."""

    name: str

    def __init__(self, classes: ClassSpace, warmup: int) -> None:
        if warmup < 1:
            raise ValueError(f"warmup must be at least 1 labeled record, got {warmup!r}")
        self.classes = classes
        self.warmup = int(warmup)
        self.learned = 0

    @property
    def ready(self) -> bool:
        return self.learned >= self.warmup

    @property
    def target_std(self) -> float | None:
        return None  # a probability needs no scale

    def use_classes(self, classes: ClassSpace) -> None:
        self.classes = classes

    def vote(self, xs: Sequence[dict[str, float]]) -> list[ClassVote]:
        raise NotImplementedError

    def label(self, xs: Sequence[dict[str, float]]) -> list[tuple[float, float]]:
        return [
            (math.nan, 0.0) if vote.refusal is not None else (float(vote.code), vote.confidence)
            for vote in self.vote(xs)
        ]

    def _proba(self, model: Any, x: dict[str, float]) -> Proba | None:
        return self.classes.proba(model.predict_proba_one(x))


def _one_vote(probas: Sequence[Proba | None]) -> ClassVote:
    """The vote of one or more models' probabilities for a record: all must give one class."""
    if any(proba is None for proba in probas):
        return ClassVote(-1, 0.0, "teacher_warmup")  # a model that cannot predict yet
    given = [proba for proba in probas if proba is not None]
    if any(p - p != 0.0 for proba in given for p in proba):
        return ClassVote(-1, 0.0, "non_finite")
    codes = {predicted(proba) for proba in given}
    if len(codes) > 1:
        return ClassVote(-1, 0.0, "disagreement")
    (code,) = codes
    confidence = min(proba[code] for proba in given)
    return ClassVote(code, min(1.0, max(0.0, confidence)), None)


class ClassCommitteeTeacher(_ClassTeacher):
    """K bagged copies of a classifier; a record's class is the one they all give.

    Online bagging (Oza and Russell), as ``CommitteeTeacher``: each member learns each true
    label a Poisson(1) number of times, from a seeded generator. A record gets a class only
    when every member predicts it (their first most probable class), with the confidence of
    the least sure member; members that disagree give none (``disagreement``).

    Parameters
    ----------
    spec
        A classifier's spec (``streamlearn.models.registry``), usually the student's.
    classes
        The learner's class space.
    k
        Committee size (at least 2).
    lr
        ``--lr`` for specs that take it.
    seed
        Seed of the bagging draws.
    warmup
        True labels to see before any record is judged.

    Examples
    --------
    >>> from streamlearn.classify.space import ClassSpace
    >>> space = ClassSpace(binary=True)
    >>> teacher = ClassCommitteeTeacher("logistic", space, k=3, lr=0.5, warmup=10)
    >>> for i in range(200):
    ...     a = (i % 10) / 5 - 1
    ...     teacher.learn({"a": a}, space.encode("yes" if a > 0 else "no"))
    >>> [(vote.code, vote.confidence > 0.9) for vote in teacher.vote([{"a": 3.0}, {"a": -3.0}])]
    [(1, True), (0, True)]
    """

    def __init__(
        self,
        spec: str,
        classes: ClassSpace,
        k: int = 5,
        *,
        lr: float = 0.01,
        seed: int = 0,
        warmup: int = 30,
    ) -> None:
        from streamlearn.models.registry import build_model

        super().__init__(classes, warmup)
        if k < 2:
            raise ValueError(f"a committee needs at least 2 members, got k={k!r}")
        self.spec = spec
        self.k = int(k)
        self.members = [_checked(build_model(spec, lr=lr), classes, spec) for _ in range(k)]
        self.rng = random.Random(seed)
        self.name = f"committee of {self.k} x {spec}"

    def learn(self, x: dict[str, float], y: float) -> None:
        self.learned += 1
        label = self.classes.model_label(y)
        rng = self.rng
        for member in self.members:
            for _ in range(poisson1(rng)):
                member.learn_one(x, label)

    def vote(self, xs: Sequence[dict[str, float]]) -> list[ClassVote]:
        return [_one_vote([self._proba(member, x) for member in self.members]) for x in xs]


class ClassModelTeacher(_ClassTeacher):
    """One classifier; a record's class is the one it finds most probable, with that probability.

    Parameters
    ----------
    model
        A River classifier (a spec built, or a warm-started model A).
    name
        What to call it in ``inspect``.
    classes
        The learner's class space.
    warmup
        True labels to see before any record is judged.

    Examples
    --------
    >>> from streamlearn.classify.space import ClassSpace
    >>> from streamlearn.models.registry import build_model
    >>> space = ClassSpace(binary=False)
    >>> teacher = ClassModelTeacher(build_model("GaussianNB"), "nb", space, warmup=5)
    >>> for i in range(60):
    ...     teacher.learn({"a": i % 3 + (i % 5) / 10}, space.encode("abc"[i % 3]))
    >>> vote = teacher.vote([{"a": 2.2}])[0]
    >>> space.label(vote.code), vote.confidence > 0.9, vote.refusal
    ('c', True, None)
    """

    def __init__(self, model: Any, name: str, classes: ClassSpace, *, warmup: int = 30) -> None:
        super().__init__(classes, warmup)
        self.model = _checked(model, classes, name)
        self.name = name

    def learn(self, x: dict[str, float], y: float) -> None:
        self.learned += 1
        self.model.learn_one(x, self.classes.model_label(y))

    def vote(self, xs: Sequence[dict[str, float]]) -> list[ClassVote]:
        return [_one_vote([self._proba(self.model, x)]) for x in xs]


def build_class_teacher(
    spec: str,
    *,
    model_spec: str,
    classes: ClassSpace,
    lr: float = 0.01,
    k: int = 5,
    seed: int = 0,
    trust_pickle: bool = False,
    lr_from_flag: bool = True,
) -> ClassTeacher:
    """The teacher of a classifier a ``--teacher`` value names (as ``build_teacher``).

    ``committee`` (``k`` bagged copies of the student's spec), ``committee:SPEC``,
    ``warm:PATH`` (model A, a classifier, fine-tuning on) or a classifier's ``SPEC``
    (``ClassModelTeacher``: the student's own spec is the seed's self-training).
    Raises ``ValueError`` saying what to write instead (a regressor, a binary-only
    model for several classes, an unknown spec).

    Examples
    --------
    >>> from streamlearn.classify.space import ClassSpace
    >>> build_class_teacher("committee", model_spec="logistic", classes=ClassSpace(binary=True),
    ...                     k=3).name
    'committee of 3 x logistic'
    >>> try:
    ...     build_class_teacher("KNNRegressor", model_spec="logistic", classes=ClassSpace(False))
    ... except ValueError as exc:
    ...     print(exc)
    the teacher 'KNNRegressor' is a regressor; a classifier's teacher must be a classifier:
    try --teacher committee
    """
    from streamlearn.models.registry import build_model

    kind, named = teacher_kind(spec, model_spec)
    if kind == "committee":
        return ClassCommitteeTeacher(named, classes, k, lr=lr, seed=seed)
    if kind == "warm":
        model = warm_teacher_model(named, lr, trust_pickle, lr_from_flag)
        return ClassModelTeacher(model, f"warm start from {named}", classes)
    return ClassModelTeacher(build_model(named, lr=lr), named, classes)
