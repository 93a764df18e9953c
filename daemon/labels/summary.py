"""The ``pseudo_labels`` object of ``inspect --json``: the side loop's knobs, counts, audit, effect.

Two measurements answer different questions. The audit (``audit_*``) is label accuracy:
when a true label comes later for a record that had a pseudo-label, how far the
pseudo-label was from it. It does not say whether pseudo-labels help the model: which rows
are chosen matters more than how accurate their labels are. The effect (``effect``) does:
the prequential error of the model with pseudo-labels against its twin's, which learns the
same true labels and no pseudo-label (``streamlearn.labels.effect``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamlearn.labels.pseudo import PseudoLabeler

__all__ = ["loop_summary", "pseudo_summary"]


def _mean(total: float, n: int) -> float | None:
    return total / n if n else None


def loop_summary(labeler: PseudoLabeler) -> dict[str, Any]:
    """What any side loop reports: its teacher, knobs and counts (a regressor's or a
    classifier's)."""
    reasons = labeler.rejected_by_reason
    return {
        "teacher": labeler.teacher.name,
        "teacher_learned": labeler.teacher.learned,
        "mode": "deterministic" if labeler.deterministic else "threaded",
        "threshold": labeler.threshold,
        "weight": labeler.weight,
        "window": labeler.window,
        "max_fraction": labeler.max_fraction,
        "queue_size": labeler.queue_size,
        "offered": labeler.offered,
        "accepted": labeler.accepted,
        "rejected": labeler.rejected,
        "queued": labeler.offered - labeler.accepted - labeler.rejected,
        "overflow": reasons.get("overflow", 0),
        "rejected_by_reason": dict(sorted(reasons.items())),
    }


def pseudo_summary(labeler: PseudoLabeler) -> dict[str, Any]:
    """What ``labeler`` did, for ``inspect --json``.

    ``audit_mae`` (``_rejected``): mean |pseudo-label - true label| of the accepted
    (rejected) records whose true label came later, label accuracy; ``audit_student_mae``:
    the student's own error on them, for scale. ``effect``: the benefit, measured.
    """
    scale = labeler.teacher.target_std
    audited, audit_abs = labeler.audit_counts, labeler.audit_abs
    student_abs = labeler.audit_student_abs
    return {
        **loop_summary(labeler),
        "threshold_in_target_units": None if scale is None else (1 - labeler.threshold) * scale,
        "target_std": scale,
        "audited": audited["accepted"],
        "audit_mae": _mean(audit_abs["accepted"], audited["accepted"]),
        "audit_student_mae": _mean(student_abs["accepted"], audited["accepted"]),
        "audited_rejected": audited["rejected"],
        "audit_mae_rejected": _mean(audit_abs["rejected"], audited["rejected"]),
        "audit_student_mae_rejected": _mean(student_abs["rejected"], audited["rejected"]),
        "effect": labeler.effect.summary(),
    }
