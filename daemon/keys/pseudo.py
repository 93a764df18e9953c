"""Each key's own pseudo-label side loop (``--pseudo-label`` with ``--key-by``).

A key's learner holds its own ``PseudoLabeler`` (``KeyRegressor.pseudo``): its queue,
windows, teacher, twin and guard are pickled with the learner, so they spill and load with
the key, and memory stays bounded by ``--max-live-keys``. A key's labeler is a copy of one
made from the options at start (a ``warm:`` teacher's model A is read once), made the first
time the key learns or predicts with pseudo-labels on. Each key's labeler decides a window
the moment it fills, on the loop thread (``--deterministic``): one side thread per key
would not be bounded. The labelers share the run's delayed-label join, pickled by
reference (the codec's shared ``join``); the audit of a late label goes to the labeler of
the key its features came with (:class:`KeyAudits`).

The whole run's figures (:class:`PseudoTotals`, ``inspect --json``'s ``pseudo_labels`` of
a keyed run) are every key's added up, kept as running sums: each call into a key's loop
goes through :class:`KeyLabelers`, which adds what the call changed, so no key is read to
show them, spilled or not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .codec import KeyCodec, LearnerCodec
from .tally import ClassTally
from .units import KeyClassifier, KeyRegressor

if TYPE_CHECKING:
    from streamlearn.interfaces import ModelHost, Prediction
    from streamlearn.labels.join import LabelJoin, LateLabel
    from streamlearn.labels.pseudo import PseudoLabeler
    from streamlearn.records import Record

    from .run import KeyedRun
    from .store import KeyedModels

__all__ = ["JOIN", "KeyAudits", "KeyLabelers", "PseudoTotals", "keyed_pseudo", "share_join"]

#: The codec's shared name of the run's delayed-label join.
JOIN = "join"


def _no_auditor() -> None:
    return None


def share_join(codec: KeyCodec[Any], join: LabelJoin) -> None:
    """Keys' states name ``join`` (their labelers' join) rather than hold a copy of it."""
    if not isinstance(codec, LearnerCodec):
        raise TypeError(f"the keys' codec {type(codec).__name__} cannot share the label join")
    codec.share(JOIN, join)


#: The audit's figures of one outcome (accepted, rejected): records audited, the sum of
#: |pseudo-label - true label| and of |student's prediction - true label| (a classifier's:
#: right pseudo-labels, right classes of the student).
Audit = tuple[int, float, float]

#: What a key's loop has done so far: offered, accepted, rejected, pseudo-labels its learner
#: learned, rejections by reason, and (read around an audit only) the audit by outcome.
Figures = tuple[int, int, int, int, dict[str, int], dict[str, Audit] | None]

_OUTCOMES = ("accepted", "rejected")


def figures(learner: KeyRegressor | KeyClassifier, audit: bool = False) -> Figures:
    """``learner``'s loop's figures (all 0 without a loop); its audit's with ``audit``."""
    labeler = learner.pseudo
    if labeler is None:
        audits = dict.fromkeys(_OUTCOMES, (0, 0.0, 0.0)) if audit else None
        return 0, 0, 0, learner.pseudo_learned, {}, audits
    return (
        labeler.offered,
        labeler.accepted,
        labeler.rejected,
        learner.pseudo_learned,
        labeler.rejected_by_reason.copy(),
        _audits(labeler) if audit else None,
    )


def _audits(labeler: PseudoLabeler) -> dict[str, Audit]:
    from streamlearn.labels.classpseudo import ClassPseudoLabeler

    if isinstance(labeler, ClassPseudoLabeler):  # per class: [audited, right, student right]
        out: dict[str, Audit] = {}
        for outcome, rows in labeler.class_audit.items():
            n = right = student = 0
            for row in rows.values():
                n, right, student = n + row[0], right + row[1], student + row[2]
            out[outcome] = (n, float(right), float(student))
        return out
    audited, errors, students = labeler.audit_counts, labeler.audit_abs, labeler.audit_student_abs
    return {o: (audited[o], errors[o], students[o]) for o in _OUTCOMES}


class PseudoTotals:
    """The whole run's pseudo-label figures: every key's loop's, added up.

    Kept as running sums (``add``: what one call into a key's loop changed), checkpointed
    with the tally (``KeyedCounts.pseudo``) in the same checkpoint as the keys' states.
    ``summary`` names them as a one-model run's ``pseudo_labels`` does.
    """

    def __init__(self, teacher: str, classes: bool) -> None:
        #: The name of a new key's teacher (``KeyLabelers.teacher``).
        self.teacher = teacher
        self.classes = classes
        #: Keys with a loop (one is made when a key first learns or predicts).
        self.keys = 0
        self.offered = self.accepted = self.rejected = self.learned = 0
        self.rejected_by_reason: dict[str, int] = {}
        self.audit: dict[str, Audit] = dict.fromkeys(_OUTCOMES, (0, 0.0, 0.0))

    def add(self, before: Figures, after: Figures) -> None:
        """Add what a key's loop did between ``before`` and ``after`` (its ``figures``)."""
        offered, accepted, rejected, learned, reasons_after, audit_after = after
        self.offered += offered - before[0]
        self.accepted += accepted - before[1]
        self.learned += learned - before[3]
        if rejected != before[2] or reasons_after != before[4]:
            self.rejected += rejected - before[2]
            reasons, reasons_before = self.rejected_by_reason, before[4]
            for reason in reasons_after.keys() | reasons_before.keys():
                change = reasons_after.get(reason, 0) - reasons_before.get(reason, 0)
                reasons[reason] = reasons.get(reason, 0) + change
        audit_before = before[5]
        if audit_before is not None and audit_after is not None:
            for outcome, (n, error, student) in audit_after.items():
                was, now = audit_before[outcome], self.audit[outcome]
                self.audit[outcome] = (
                    now[0] + n - was[0],
                    now[1] + error - was[1],
                    now[2] + student - was[2],
                )

    def merge(self, other: PseudoTotals) -> None:
        """Add ``other``'s totals (another run's: a scaled-out run's partition) through
        ``add``, as if they were one key's loop's figures from nothing."""
        nothing: Figures = (0, 0, 0, 0, {}, dict.fromkeys(_OUTCOMES, (0, 0.0, 0.0)))
        self.add(
            nothing,
            (
                other.offered,
                other.accepted,
                other.rejected,
                other.learned,
                other.rejected_by_reason,
                other.audit,
            ),
        )
        self.keys += other.keys

    def summary(self) -> dict[str, Any]:
        """The ``pseudo_labels`` part of a keyed run's ``inspect --json``."""
        reasons = self.rejected_by_reason
        out: dict[str, Any] = {
            "keys_with_loop": self.keys,
            "teacher": self.teacher,
            "offered": self.offered,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "queued": self.offered - self.accepted - self.rejected,
            "overflow": reasons.get("overflow", 0),
            "rejected_by_reason": {r: n for r, n in sorted(reasons.items()) if n},
            "learned": self.learned,
        }
        if self.classes:
            out["task"] = "classification"
        means = ("accuracy", "student_accuracy") if self.classes else ("mae", "student_mae")
        for outcome, suffix in (("accepted", ""), ("rejected", "_rejected")):
            n, error, student = self.audit[outcome]
            out[f"audited{suffix}"] = n
            out[f"audit_{means[0]}{suffix}"] = error / n if n else None
            out[f"audit_{means[1]}{suffix}"] = student / n if n else None
        return out


class KeyAudits:
    """The join's auditor in a keyed run: hands an audit to the labeler of ``key``, the key
    of the late label being joined (the router sets it around ``LabelJoin.take``), and adds
    what it changed to the run's ``totals``.

    Never pickled with its store: a checkpointed join comes back without an auditor, and
    the run that resumes it sets a new one.
    """

    def __init__(self, models: KeyedModels[Any], totals: PseudoTotals) -> None:
        self.models = models
        self.totals = totals
        self.key: str | None = None

    def audit(self, late: LateLabel) -> None:
        if self.key is None:
            return
        learner = self.models.get(self.key)
        if isinstance(learner, KeyRegressor | KeyClassifier) and learner.pseudo is not None:
            before = figures(learner, audit=True)
            learner.pseudo.audit(late)
            self.totals.add(before, figures(learner, audit=True))

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _no_auditor, ()


class KeyLabelers:
    """Makes each key's labeler (a copy of ``prototype``, its join the run's ``join``), and
    calls into it, adding what each call changed to the run's ``totals``.

    ``prototype`` is made from the options (``build_pseudo``); it is switched to deciding
    on the loop thread, attached to ``join``, and ``join`` becomes one of the ``codec``'s
    shared objects (every key's labeler names it, none holds a copy).
    """

    def __init__(
        self,
        codec: KeyCodec[Any],
        models: KeyedModels[Any],
        prototype: PseudoLabeler,
        join: LabelJoin | None,
        totals: PseudoTotals,
    ) -> None:
        prototype.close()
        prototype.deterministic = True
        prototype.attach(join)
        self.totals = totals
        self.audits: KeyAudits | None = None
        if join is not None:
            share_join(codec, join)
            self.audits = KeyAudits(models, totals)
            join.auditor = self.audits
        self._codec = codec
        self._blob = codec.dump(prototype)
        #: What a new key's labeler is called (``inspect``).
        self.teacher = totals.teacher = prototype.teacher.name

    def new(self) -> PseudoLabeler:
        """A key's labeler, as the options make it."""
        labeler: PseudoLabeler = self._codec.load(self._blob)
        return labeler

    def of(self, learner: KeyRegressor | KeyClassifier) -> PseudoLabeler:
        """The labeler of a key's ``learner``, made now if it has none."""
        if learner.pseudo is None:
            learner.pseudo = self.new()
            self.totals.keys += 1
        return learner.pseudo

    def offer(self, learner: object, record: Record, yhat: Prediction, index: int,
              host: ModelHost) -> None:  # fmt: skip
        """A key's unlabeled record (``index`` in the stream), predicted ``yhat`` by its
        ``learner``, to its loop: a window is decided as it fills."""
        if not isinstance(learner, KeyRegressor | KeyClassifier):
            return
        before = figures(learner)
        labeler = self.of(learner)
        labeler.offer(record, yhat, index, host)
        labeler.drain(host)  # telemetry
        self.totals.add(before, figures(learner))

    def teach(self, learner: object, x: dict[str, float], y: float, yhat: Prediction,
              host: ModelHost) -> None:  # fmt: skip
        """A key's true label, predicted ``yhat``, to its loop (its teacher and twin learn)."""
        if not isinstance(learner, KeyRegressor | KeyClassifier):
            return
        before = figures(learner)
        labeler = self.of(learner)
        labeler.observe_labeled(x, y, yhat, host)
        labeler.drain(host)  # telemetry (a window was decided as it filled)
        self.totals.add(before, figures(learner))

    def flush(self, learner: KeyRegressor | KeyClassifier, host: ModelHost) -> None:
        """Decide the key's queued records, its partial window too (the end of a replay)."""
        if learner.pseudo is not None:
            before = figures(learner)
            learner.pseudo.flush(host)
            self.totals.add(before, figures(learner))

    def replaced(self, old: object, new: object) -> None:
        """A key's learner ``old`` gave way to ``new`` (its last written state, or a fresh
        one): its loop's figures are ``new``'s now."""
        if isinstance(old, KeyRegressor | KeyClassifier) and isinstance(
            new, KeyRegressor | KeyClassifier
        ):
            self.totals.add(figures(old, audit=True), figures(new, audit=True))
            self.totals.keys += (new.pseudo is not None) - (old.pseudo is not None)


def keyed_pseudo(
    run: KeyedRun | None, pseudo: PseudoLabeler | None, join: LabelJoin | None
) -> PseudoLabeler | None:
    """The run's pseudo-label loop: ``pseudo``, unless ``run`` is keyed (None: each key gets a
    copy of ``pseudo``, and the whole run's figures are kept in the tally: ``PseudoTotals``,
    counted from the run's start or taken up from its checkpoint). Without pseudo-labels
    the keys' states may still name ``join`` (a resumed run that had them)."""
    if run is None:
        return pseudo
    if pseudo is not None:
        counts = run.tally.keyed
        if counts.pseudo is None:
            counts.pseudo = PseudoTotals(pseudo.teacher.name, isinstance(run.tally, ClassTally))
        run.labelers = KeyLabelers(run.models.codec, run.models, pseudo, join, counts.pseudo)
    elif join is not None:
        share_join(run.models.codec, join)
    return None
