"""``build_pseudo``: the side loop and the join that ``PseudoSettings`` ask for, new or restored."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from streamlearn.labels.effect import PseudoEffect
from streamlearn.labels.join import LabelJoin
from streamlearn.labels.pseudo import PseudoLabeler
from streamlearn.labels.settings import PseudoSettings, PseudoSettingsError
from streamlearn.labels.teachers import Teacher, build_teacher, teacher_name
from streamlearn.labels.ttl import DEFAULT_TTL, LabelTtl

log = logging.getLogger(__name__)

__all__ = ["build_pseudo"]

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
        settings, old_pseudo, model_spec=model_spec, lr=lr, lr_from_flag=lr_from_flag, follow=follow
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
) -> PseudoLabeler:
    """The side loop: the restored one under the new knobs (and teacher), or a new one."""
    deterministic = settings.deterministic
    if deterministic is None:
        deterministic = not follow
    knobs: dict[str, Any] = {
        "threshold": float(settings.pseudo_threshold),
        "weight": float(settings.pseudo_weight),
        "window": int(settings.pseudo_window),
        "max_fraction": float(settings.pseudo_max_fraction),
        "queue_size": int(settings.pseudo_queue),
        "deterministic": bool(deterministic),
    }
    spec, k = str(settings.teacher), int(settings.teacher_k)

    def new_teacher() -> Teacher:
        try:
            return build_teacher(
                spec,
                model_spec=model_spec,
                lr=lr,
                k=k,
                trust_pickle=settings.trust_pickle,
                lr_from_flag=lr_from_flag,
            )
        except ValueError as exc:
            raise PseudoSettingsError(str(exc), "teacher") from None

    guard = bool(settings.pseudo_guard)
    margin, records = float(settings.pseudo_guard_margin), int(settings.pseudo_guard_records)
    if not isinstance(old, PseudoLabeler):
        teacher = new_teacher()
        try:
            effect = PseudoEffect(guard=guard, margin=margin, records=records)
            return PseudoLabeler(teacher, **knobs, effect=effect)
        except ValueError as exc:
            raise _knob_error(exc) from None
    try:
        old.configure(**knobs)
        old.effect.configure(guard=guard, margin=margin, records=records)
    except ValueError as exc:
        raise _knob_error(exc) from None
    expected = teacher_name(spec, model_spec, k)
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
        old.teacher = new_teacher()
    return old


def _knob_error(exc: ValueError) -> PseudoSettingsError:
    text = str(exc)
    field = next((name for knob, name in _KNOB_FIELDS if text.startswith(knob)), "pseudo_label")
    return PseudoSettingsError(text, field)
