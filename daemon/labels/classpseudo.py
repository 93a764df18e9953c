"""Pseudo-labels for a classifier, the seed's way: keep an unlabeled record when the teacher's
class probability passes the threshold, each class within its share of the true labels.

The side loop is ``PseudoLabeler``'s (queue, windows decided as their last record comes,
``--pseudo-max-fraction``, ``--pseudo-weight``, the queue bound, threaded or deterministic),
with three differences:

- the teacher votes a class (``streamlearn.labels.classteachers``): a record is accepted
  when the teacher's probability of its class is at least the threshold (a committee: all
  members give that class, each with at least that probability); the pseudo-label learned
  is the class code, through ``ClassLearner.learn_weighted``;
- each window accepts every class within its share of the last true labels
  (``streamlearn.labels.classwindow``, where the rule is written out);
- the audit counts right and wrong pseudo-labels, per class, and the effect compares the
  accuracy of the model with that of its twin (``streamlearn.labels.classeffect``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from streamlearn.classify.task import predicted
from streamlearn.labels.classeffect import ClassPseudoEffect
from streamlearn.labels.classwindow import ClassShares, decide_class_window
from streamlearn.labels.pseudo import PseudoLabeler
from streamlearn.labels.summary import loop_summary

if TYPE_CHECKING:
    from streamlearn.classify.space import ClassSpace
    from streamlearn.interfaces import Prediction
    from streamlearn.labels.classteachers import ClassTeacher
    from streamlearn.labels.join import LabelJoin
    from streamlearn.labels.window import Candidate, Verdict

__all__ = ["CLASS_THRESHOLD", "ClassPseudoLabeler"]

#: ``--pseudo-threshold`` of a classifier when not given: the least class probability kept.
CLASS_THRESHOLD = 0.9


class Knobs(TypedDict, total=False):
    """``PseudoLabeler``'s keyword arguments but the effect (as ``build_pseudo`` gives them)."""

    threshold: float
    weight: float
    window: int
    max_fraction: float
    queue_size: int
    deterministic: bool
    join: LabelJoin | None


class ClassPseudoLabeler(PseudoLabeler):
    """The pseudo-label side loop of a classifier (``PseudoLabeler``'s, with classes).

    Parameters are ``PseudoLabeler``'s, with ``threshold`` the least probability of the
    class the teacher gives (a committee: of each member's), and ``classes`` the learner's
    class space. The guard's ``records`` (``effect``) is also how many of the last true
    labels give the classes' shares.

    Examples
    --------
    A teacher sure of large inputs, unsure near 0; 70 % of the true labels are ``no``:

    >>> from river import linear_model
    >>> from streamlearn.classify.learner import ClassLearner
    >>> from streamlearn.classify.space import ClassSpace
    >>> from streamlearn.records import Record
    >>> from streamlearn.sources.base import Raw
    >>> space = ClassSpace(binary=True)
    >>> class Teacher:
    ...     name, learned, ready, target_std = "demo", 0, True, None
    ...     def learn(self, x, y): ...
    ...     def use_classes(self, classes): ...
    ...     def vote(self, xs):
    ...         from streamlearn.labels.classteachers import ClassVote
    ...         return [ClassVote(int(x["a"] > 0), min(1.0, abs(x["a"])), None) for x in xs]
    >>> class Host:
    ...     learner = ClassLearner(linear_model.LogisticRegression(), space)
    ...     telemetry, records_seen = None, 0
    >>> pseudo = ClassPseudoLabeler(Teacher(), space, window=10, max_fraction=1.0)
    >>> for label in ["no"] * 7 + ["yes"] * 3:   # the true labels: 70 % no, 30 % yes
    ...     pseudo.observe_labeled({"a": 0.0}, space.encode(label), (0.5, 0.5), Host)
    >>> for i, a in enumerate([-1, -1, -1, 1, 1, 1, 1, 1, 0.5, -0.2]):
    ...     pseudo.offer(Record({"a": a}, None, None, Raw(b"", i)), (0.5, 0.5), i, Host)
    >>> s = pseudo.summary()["pseudo_labels"]

    Only 3 confident ``no``: the window accepts T = 5 (3.5 of them ``no``, 1.5 ``yes``),
    rounded down by class:

    >>> s["class_shares"], s["accepted_by_class"]
    ({'no': 0.7, 'yes': 0.3}, {'no': 3, 'yes': 1})
    >>> s["rejected_by_reason"]
    {'class_share': 4, 'threshold': 2}
    """

    teacher: ClassTeacher
    effect: ClassPseudoEffect

    def __init__(
        self,
        teacher: ClassTeacher,
        classes: ClassSpace,
        *,
        effect: ClassPseudoEffect | None = None,
        **knobs: Unpack[Knobs],
    ) -> None:
        knobs.setdefault("threshold", CLASS_THRESHOLD)
        super().__init__(
            teacher, effect=effect if effect is not None else ClassPseudoEffect(), **knobs
        )
        #: The classes of the last true labels the teacher learned (the shares).
        self.shares = ClassShares()
        #: Accepted pseudo-labels by class code.
        self.accepted_by_class: dict[int, int] = {}
        #: By outcome, by the pseudo-label's class code: [audited, right, student right].
        self.class_audit: dict[str, dict[int, list[int]]] = {"accepted": {}, "rejected": {}}
        #: Accepted pseudo-labels audited: {true code: {pseudo-label code: count}}.
        self.audit_confusion: dict[int, dict[int, int]] = {}
        self.classes = classes  # the learner's space (use_classes)
        self.use_classes(classes)

    def use_classes(self, classes: ClassSpace) -> None:
        """Speak the codes of ``classes``: the learner's space (also after a restart, when
        the checkpoint's teacher may hold a copy of it)."""
        self.classes = classes
        self.teacher.use_classes(classes)
        self.effect.use_classes(classes)

    # -- the differences ---------------------------------------------------------------

    def _teach(self, x: dict[str, float], y: float) -> None:
        self.teacher.learn(x, y)
        self.shares.add(int(y), self.effect.records)

    def _rule(self) -> Callable[..., list[Verdict]]:
        return partial(decide_class_window, counts=self.shares.counts)

    def _finish(
        self, candidate: Candidate, outcome: str, reason: str | None, label: float | None
    ) -> None:
        if outcome == "accepted" and label is not None:
            code = int(label)
            self.accepted_by_class[code] = self.accepted_by_class.get(code, 0) + 1
        super()._finish(candidate, outcome, reason, label)

    def _audit_label(self, outcome: str, label: float, yhat: Prediction, y: float) -> None:
        """Count whether the pseudo-label (and the student's class then) was ``y``."""
        code, true = int(label), int(y)
        row = self.class_audit[outcome].setdefault(code, [0, 0, 0])
        row[0] += 1
        row[1] += code == true
        row[2] += isinstance(yhat, tuple) and predicted(yhat) == true
        if outcome == "accepted":
            counts = self.audit_confusion.setdefault(true, {})
            counts[code] = counts.get(code, 0) + 1

    def _copied_state(self) -> dict[str, Any]:
        return {
            "shares": self.shares.copy(),
            "accepted_by_class": dict(self.accepted_by_class),
            "class_audit": {
                outcome: {code: list(row) for code, row in rows.items()}
                for outcome, rows in self.class_audit.items()
            },
            "audit_confusion": {true: dict(row) for true, row in self.audit_confusion.items()},
        }

    # -- reporting ----------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The ``pseudo_labels`` part of ``inspect --json`` (``class_pseudo_summary``)."""
        return {"pseudo_labels": class_pseudo_summary(self)}


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def class_pseudo_summary(labeler: ClassPseudoLabeler) -> dict[str, Any]:
    """What ``labeler`` did, for ``inspect --json`` (classes by their label text).

    The knobs and counts as a regressor's (``pseudo_summary``); ``class_shares`` (of the
    last ``share_window`` true labels) and ``accepted_by_class``; the audit, label
    accuracy of the pseudo-labels whose true label came later: ``audit_accuracy``
    (``_rejected``) of the accepted (rejected) with ``audit_student_accuracy`` (the
    model's own class then, for scale), ``audit_by_class`` by the pseudo-label's class,
    ``audit_confusion`` of the accepted ({true: {pseudo-label: count}}); ``effect``: the
    benefit, measured (``ClassPseudoEffect.summary``).
    """
    name = labeler.classes.label
    counts = labeler.shares.counts
    total = sum(counts)
    out: dict[str, Any] = {
        "task": "classification",
        **loop_summary(labeler),
        "share_window": labeler.effect.records,
        "class_shares": {name(c): n / total for c, n in enumerate(counts) if n},
        "accepted_by_class": {name(c): n for c, n in sorted(labeler.accepted_by_class.items())},
    }
    by_class: dict[int, dict[str, Any]] = {}
    for outcome, suffix in (("accepted", ""), ("rejected", "_rejected")):
        rows = labeler.class_audit[outcome]
        audited = sum(row[0] for row in rows.values())
        out[f"audited{suffix}"] = audited
        out[f"audit_accuracy{suffix}"] = _ratio(sum(row[1] for row in rows.values()), audited)
        out[f"audit_student_accuracy{suffix}"] = _ratio(
            sum(row[2] for row in rows.values()), audited
        )
        for code, row in rows.items():
            entry = by_class.setdefault(
                code,
                {
                    "accepted": 0,
                    "accepted_accuracy": None,
                    "rejected": 0,
                    "rejected_accuracy": None,
                },
            )
            entry[outcome] = row[0]
            entry[f"{outcome}_accuracy"] = _ratio(row[1], row[0])
    out["audit_by_class"] = {name(code): by_class[code] for code in sorted(by_class)}
    out["audit_confusion"] = {
        name(true): {name(code): n for code, n in sorted(row.items())}
        for true, row in sorted(labeler.audit_confusion.items())
    }
    out["effect"] = labeler.effect.summary()
    return out
