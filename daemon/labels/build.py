"""``build_pseudo``: the side loop and the join that ``PseudoSettings`` ask for, new or restored."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from streamlearn.labels.classeffect import ClassPseudoEffect
from streamlearn.labels.effect import PseudoEffect
from streamlearn.labels.join import LabelJoin
from streamlearn.labels.pseudo import PseudoLabeler
from streamlearn.labels.settings import PseudoSettings, PseudoSettingsError
from streamlearn.labels.teachers import Teacher, build_teacher, teacher_name
from streamlearn.labels.ttl import DEFAULT_TTL, LabelTtl

if TYPE_CHECKING:
    from streamlearn.classify.space import ClassSpace
    from streamlearn.labels.classteachers import ClassTeacher

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["REGRESSION_THRESHOLD", "build_pseudo"]

#: ``--pseudo-threshold`` of a regressor when not given (a classifier's: ``CLASS_THRESHOLD``).
REGRESSION_THRESHOLD = 0.8

#: ``PseudoLabeler.configure`` names the knob an error is about first: the setting of it.
_KNOB_FIELDS = (
    ("guard_margin", "pseudo_guard_margin"),
    ("guard_records", "pseudo_guard_records"),
    ("max_fraction", "pseudo_max_fraction"),
    ("queue_size", "pseudo_queue"),
    ("threshold", "pseudo_threshold"),
    ("weight", "pseudo_weight"),
    ("window", "pseudo_window"),
)


def build_pseudo(
    settings: PseudoSettings,
    *,
    model_spec: str,
    lr: float,
    restored: Mapping[str, Any] | None,
    follow: bool = False,
    model: object | None = None,
    lr_from_flag: bool = True,
    classes: ClassSpace | None = None,
) -> tuple[PseudoLabeler | None, LabelJoin | None]:
    """The side loop and the join that ``settings`` ask for (either may be None).

    ``restored`` is the state loaded from the checkpoint (or just its
    ``extensions``: a mapping with ``"pseudo"`` and/or ``"join"``), None on a fresh start.

    The join is on whenever the stream may carry late labels: with
    ``label_ttl``, with ``pseudo_label`` (TTL ``100000r`` unless given), or
    when the restored state holds one (its waiting features are kept). A
    restored side loop carries on with its queue and teacher under the new
    knobs; a different ``teacher``, when given (``teacher_from_flag``), starts a new
    teacher. ``deterministic``
    defaults to on for a replay and off when following (``follow``). Given the
    student ``model``, it logs how a pseudo-label's weight reaches it: a sample
    weight, or (a model that cannot take one) a draw with that probability. A new
    teacher learns at ``lr``, except model A (``warm:FILE``) when ``lr`` is not the
    user's (``lr_from_flag`` False): it then fine-tunes at the rate suited to it, as B does.
    With the learner's ``classes`` (a classifier), the side loop is a ``ClassPseudoLabeler``
    speaking that space's codes, with a classifier's teacher and threshold.

    Raises ``PseudoSettingsError`` (a ``ValueError`` naming the field to change)
    for a setting that cannot work.

    Examples
    --------
    >>> pseudo, join = build_pseudo(PseudoSettings(), model_spec="sgd", lr=0.01, restored=None)
    >>> pseudo is None and join is None
    True
    >>> pseudo, join = build_pseudo(PseudoSettings(pseudo_label=True, label_ttl="5000r"),
    ...                             model_spec="sgd", lr=0.01, restored=None)
    >>> pseudo.teacher.name, pseudo.deterministic, str(join.ttl), pseudo.join is join
    ('committee of 5 x sgd', True, '5000r', True)
    >>> try:
    ...     build_pseudo(PseudoSettings(pseudo_label=True, pseudo_window=1), model_spec="sgd",
    ...                  lr=0.01, restored=None)
    ... except PseudoSettingsError as exc:
    ...     print(exc.field, exc)
    pseudo_max_fraction max_fraction 0.5 of a window of 1 accepts nothing; raise the window
    to at least 2 or the fraction
    """
    # ``restored`` is a loaded state (its "extensions" hold the parts) or those parts alone.
    restored = restored or {}
    extensions = restored.get("extensions", restored)
    old_pseudo, old_join = extensions.get("pseudo"), extensions.get("join")
    join = _join(settings, old_join)
    if not settings.pseudo_label:
        if isinstance(old_pseudo, PseudoLabeler):
            waiting = old_pseudo.offered - old_pseudo.accepted - old_pseudo.rejected
            if waiting:
                log.warning(
                    "pseudo-labeling is off now: %d unlabeled records queued in the checkpoint "
                    "will not be decided (use --pseudo-label to carry on)",
                    waiting,
                )
        if join is not None:
            join.auditor = None
        return None, join
    pseudo = _labeler(
        settings,
        old_pseudo,
        model_spec=model_spec,
        lr=lr,
        lr_from_flag=lr_from_flag,
        follow=follow,
        classes=classes,
    )
    pseudo.attach(join)
    if model is not None:
        _log_weighting(model, pseudo.weight)
    return pseudo, join


def _log_weighting(model: object, weight: float) -> None:
    """Say at start how an accepted pseudo-label's weight reaches the student."""
    from streamlearn.models.weights import describe_weighting, takes_weight

    level = logging.INFO if takes_weight(model) or weight >= 1.0 else logging.WARNING
    log.log(level, "pseudo-labels: %s", describe_weighting(model, weight))


def _join(settings: PseudoSettings, old: object) -> LabelJoin | None:
    """The delayed-label join: restored (its waiting features kept), new, or None when off."""
    ttl_given = settings.label_ttl is not None
    if not (ttl_given or settings.pseudo_label or old is not None):
        return None
    try:
        ttl = LabelTtl.parse(settings.label_ttl or DEFAULT_TTL)
    except ValueError as exc:
        raise PseudoSettingsError(str(exc), "label_ttl") from None
    max_pending = int(settings.max_pending_labels)
    if max_pending < 1:
        raise PseudoSettingsError("keep at least 1 pending label", "max_pending_labels")
    if not isinstance(old, LabelJoin):
        return LabelJoin(ttl, max_pending)
    if ttl_given:
        old.ttl = ttl
    old.max_pending = max_pending
    log.info("delayed-label join restored with %d waiting features", len(old.pending))
    return old


def _labeler(
    settings: PseudoSettings,
    old: object,
    *,
    model_spec: str,
    lr: float,
    lr_from_flag: bool,
    follow: bool,
    classes: ClassSpace | None,
) -> PseudoLabeler:
    """The side loop: the restored one under the new knobs (and teacher), or a new one."""
    from streamlearn.labels.classpseudo import CLASS_THRESHOLD, ClassPseudoLabeler

    deterministic = settings.deterministic
    if deterministic is None:
        deterministic = not follow
    threshold = settings.pseudo_threshold
    if threshold is None:
        threshold = REGRESSION_THRESHOLD if classes is None else CLASS_THRESHOLD
    knobs: dict[str, Any] = {
        "threshold": float(threshold),
        "weight": float(settings.pseudo_weight),
        "window": int(settings.pseudo_window),
        "max_fraction": float(settings.pseudo_max_fraction),
        "queue_size": int(settings.pseudo_queue),
        "deterministic": bool(deterministic),
    }
    teachers = _Teachers(settings, model_spec=model_spec, lr=lr, lr_from_flag=lr_from_flag)
    guard = bool(settings.pseudo_guard)
    margin, records = float(settings.pseudo_guard_margin), int(settings.pseudo_guard_records)
    wanted = PseudoLabeler if classes is None else ClassPseudoLabeler
    if type(old) is not wanted:  # none restored, or the other task's: a new one
        if classes is not None:
            class_teacher = teachers.of_classes(classes)
        else:
            teacher = teachers.new(None)
        try:
            if classes is not None:
                class_effect = ClassPseudoEffect(guard=guard, margin=margin, records=records)
                return ClassPseudoLabeler(class_teacher, classes, **knobs, effect=class_effect)
            effect = PseudoEffect(guard=guard, margin=margin, records=records)
            return PseudoLabeler(teacher, **knobs, effect=effect)
        except ValueError as exc:
            raise _knob_error(exc) from None
    assert isinstance(old, PseudoLabeler)
    try:
        old.configure(**knobs)
        old.effect.configure(guard=guard, margin=margin, records=records)
    except ValueError as exc:
        raise _knob_error(exc) from None
    expected = teacher_name(teachers.spec, model_spec, teachers.k)
    if old.teacher.name == expected or not settings.teacher_from_flag:
        log.info(
            "pseudo-labels: the checkpoint's teacher carries on: %s (%d true labels learned)",
            old.teacher.name,
            old.teacher.learned,
        )
    else:
        log.warning(
            "the checkpoint's teacher is %r, not %r: starting a new teacher",
            old.teacher.name,
            expected,
        )
        old.teacher = teachers.new(classes)
    if isinstance(old, ClassPseudoLabeler) and classes is not None:
        old.use_classes(classes)  # the learner's own space (a threaded teacher's was a copy)
    return old


class _Teachers:
    """Builds the teacher ``settings.teacher`` names; a ``ValueError`` names the setting."""

    def __init__(
        self, settings: PseudoSettings, *, model_spec: str, lr: float, lr_from_flag: bool
    ) -> None:
        self.spec, self.k = str(settings.teacher), int(settings.teacher_k)
        self.model_spec, self.lr, self.lr_from_flag = model_spec, lr, lr_from_flag
        self.trust_pickle = settings.trust_pickle

    def new(self, classes: ClassSpace | None) -> Teacher:
        """A regressor's teacher, or (``classes`` given) a classifier's."""
        if classes is not None:
            return self.of_classes(classes)
        return self._built(build_teacher)

    def of_classes(self, classes: ClassSpace) -> ClassTeacher:
        """A classifier's teacher, speaking the codes of ``classes``."""
        from streamlearn.labels.classteachers import build_class_teacher

        return self._built(partial(build_class_teacher, classes=classes))

    def _built(self, builder: Callable[..., T]) -> T:
        try:
            return builder(
                self.spec,
                model_spec=self.model_spec,
                lr=self.lr,
                k=self.k,
                trust_pickle=self.trust_pickle,
                lr_from_flag=self.lr_from_flag,
            )
        except ValueError as exc:
            raise PseudoSettingsError(str(exc), "teacher") from None


def _knob_error(exc: ValueError) -> PseudoSettingsError:
    text = str(exc)
    field = next((name for knob, name in _KNOB_FIELDS if text.startswith(knob)), "pseudo_label")
    return PseudoSettingsError(text, field)
