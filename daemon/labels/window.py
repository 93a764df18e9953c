"""Ordered acceptance: the verdicts on one window of unlabeled records, most confident first.

Within a window the teacher labels every record; the records are then taken in order of
confidence (ties in stream order, so a replay decides the same), and each is accepted
while it reaches the threshold and the window's cap, ``floor(max_fraction * size)``, is
not used up.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from streamlearn.interfaces import Prediction
    from streamlearn.labels.teachers import Teacher

__all__ = ["PSEUDO_REJECT_REASONS", "Candidate", "Verdict", "decide_window", "open_window"]

#: Why an unlabeled record's pseudo-label was not learned (the keys of
#: ``pseudo_labels.rejected_by_reason``). Not to be confused with
#: ``streamlearn.records.REJECT_REASONS``: why a record went to the dead letters.
PSEUDO_REJECT_REASONS = (
    "threshold",  # the teacher's confidence was below --pseudo-threshold
    "window_cap",  # confident enough, but its window's --pseudo-max-fraction was used up
    "overflow",  # the queue was full: the oldest waiting record is decided, never lost
    "superseded",  # its true label arrived before the decision: the true label is learned
    "teacher_warmup",  # the teacher had not yet seen enough true labels to judge
    "non_finite",  # the teacher's label was NaN or infinite
    "guard_paused",  # accepted, but the guard paused pseudo-labeling: they were hurting
    # A classifier's (streamlearn.labels.classwindow):
    "class_share",  # confident enough, but its class's share of the window was used up
    "disagreement",  # the committee's members gave the record different classes
)


class Candidate(NamedTuple):
    """An unlabeled record offered to the side loop (a tuple: cheap to queue and to pickle)."""

    stream_index: int  # its place in the stream: unique, so it names the record
    id: str | None
    x: dict[str, float]
    yhat: Prediction  # the student's prediction when the record came


class Verdict(NamedTuple):
    """The verdict on one candidate (made on either thread, applied on the loop thread)."""

    candidate: Candidate
    label: float | None
    confidence: float | None
    accept: bool
    reason: str | None  # one of PSEUDO_REJECT_REASONS when not accepted


def open_window(
    window: list[Candidate],
    size: int | None,
    *,
    teacher: Teacher,
    max_fraction: float,
    superseded: Collection[int],
) -> tuple[int, list[Verdict], list[Candidate]]:
    """What every window decision starts with: the window's cap, the verdicts the teacher
    is not asked for (superseded records; all, before the teacher is ready), and the
    records left for it to judge.

    ``size`` is the full window size the cap is computed from, None for a partial window
    at the end of a replay (whose cap is then a fraction of what it holds).
    """
    cap = int(max_fraction * (size if size is not None else len(window)) + 1e-9)
    verdicts = [
        Verdict(c, None, None, False, "superseded") for c in window if c.stream_index in superseded
    ]
    live = [c for c in window if c.stream_index not in superseded]
    if live and not teacher.ready:
        return cap, verdicts + [Verdict(c, None, None, False, "teacher_warmup") for c in live], []
    return cap, verdicts, live


def decide_window(
    window: list[Candidate],
    size: int | None,
    *,
    teacher: Teacher,
    threshold: float,
    max_fraction: float,
    superseded: Collection[int],
) -> list[Verdict]:
    """The verdicts on one window, most confident first (nothing is written here).

    ``size`` is the full window size the cap is computed from, None for a partial
    window at the end of a replay (whose cap is then a fraction of what it holds).
    Records in ``superseded`` (stream indexes whose true label came first) are
    rejected as such without asking the teacher.
    """
    cap, verdicts, live = open_window(
        window, size, teacher=teacher, max_fraction=max_fraction, superseded=superseded
    )
    if not live:
        return verdicts
    labels = teacher.label([c.x for c in live])
    # Most confident first; ties keep stream order, so a replay decides the same.
    order = sorted(range(len(live)), key=lambda i: (-labels[i][1], live[i].stream_index))
    taken = 0
    for i in order:
        label, confidence = labels[i]
        if label - label != 0.0:
            verdicts.append(Verdict(live[i], None, None, False, "non_finite"))
        elif confidence < threshold:
            verdicts.append(Verdict(live[i], label, confidence, False, "threshold"))
        elif taken < cap:
            taken += 1
            verdicts.append(Verdict(live[i], label, confidence, True, None))
        else:
            verdicts.append(Verdict(live[i], label, confidence, False, "window_cap"))
    return verdicts
