"""The pseudo-labeling side loop: unlabeled records learned from a teacher's confident labels.

The recipe: train on the labeled data, predict the unlabeled data, pick the predictions
judged right "in a certain order", and learn them together with the labeled data. On a
stream that becomes:

- every unlabeled record enters a bounded queue (``PseudoLabeler.offer``);
- a teacher (``streamlearn.labels.teachers``) that learns only from true labels gives
  each queued record a label and a confidence in ``[0, 1]``;
- within each window of ``window`` queued records the most confident are accepted first
  (``streamlearn.labels.window``), at most ``max_fraction`` of the window, and only those
  whose confidence reaches ``threshold``; the student learns them with weight ``weight``
  (never scored: the prequential metrics stay for true labels);
- in deterministic mode a window is decided, and its accepted pseudo-labels learned, the
  moment its last record is offered: the window alone says where in the stream they are
  learned, so a replay gives the same models at any batch size or ``--rate``;
- every unlabeled record ends as exactly one of accepted or rejected (with one of the
  ``PSEUDO_REJECT_REASONS``); a true label that comes later (the delayed-label join)
  audits the pseudo-label it replaces: ``audit_mae`` says whether the threshold is right;
- a twin of the student learns only the true labels (``streamlearn.labels.effect``): the
  two errors say whether pseudo-labels help, and the guard pauses them when they hurt.
"""

from __future__ import annotations

import logging
import math
import pickle
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from streamlearn.labels.effect import PseudoEffect
from streamlearn.labels.join import QUEUED, LabelJoin, LateLabel
from streamlearn.labels.sidethread import SideThread
from streamlearn.labels.teachers import Teacher
from streamlearn.labels.window import Candidate, Verdict, decide_window
from streamlearn.state import load

if TYPE_CHECKING:
    from streamlearn.interfaces import ModelHost, Prediction
    from streamlearn.records import Record

log = logging.getLogger(__name__)

__all__ = ["PseudoLabeler"]

# Runtime-only attributes: the side thread, its locks and what this process reported.
_RUNTIME = frozenset(
    ("_cond", "_busy", "_thread", "_stopping", "_error", "_reported_accepted", "_reported_rejected")
)


class PseudoLabeler(SideThread):
    """The pseudo-labeling side loop: queue, teacher, ordered acceptance, weighted learning.

    The loop calls ``offer`` per unlabeled record (a full window is decided and
    learned there, on the loop thread, into ``host.learner``), ``observe_labeled``
    per true label and ``drain`` after each batch (expiry, telemetry, and in
    threaded mode the side thread's verdicts); the ``LabelJoin`` calls ``audit``.
    Picklable (the checkpoint holds it, with the queue and the teacher).

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
        confident first. A window is decided when it is full (in deterministic
        mode as its last record is offered); ``flush`` decides a partial one (the
        end of a replay).
    max_fraction
        At most ``floor(max_fraction * window)`` of a window are accepted.
    queue_size
        Most records waiting for a decision; when full, the oldest is rejected
        (``overflow``). At least ``window``. In deterministic mode the loop's
        ``offer`` decides each window as it fills, so the queue holds less than
        a window; in threaded mode it fills while the teacher is behind (and one
        more window may be with the teacher).
    deterministic
        Decide on the loop thread as each window fills (reproducible), or on a
        side thread (its verdicts are learned when the loop next sees them).
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
    >>> class Host:  # what drain() uses of the loop's ModelHost
    ...     learner, telemetry = Learner(SGDRegressor(lr=0.1)), None
    >>> pseudo = PseudoLabeler(Teacher(), threshold=0.5, window=4, max_fraction=0.5)
    >>> for i, a in enumerate([1.0, -1.0, 3.0, 2.0, 5.0]):
    ...     pseudo.offer(Record({"a": a}, None, None, Raw(b"", i)), 0.0, i)
    >>> pseudo.drain(Host)   # one full window; the fifth record waits for the next
    >>> s = pseudo.summary()["pseudo_labels"]
    >>> s["accepted"], s["rejected"], s["queued"], s["rejected_by_reason"]
    (2, 2, 1, {'threshold': 1, 'window_cap': 1})
    >>> Host.learner.pseudo_learned
    2
    >>> pseudo.flush(Host)   # end of the stream: the partial window too
    >>> s = pseudo.summary()["pseudo_labels"]
    >>> s["accepted"] + s["rejected"] == s["offered"] == 5
    True
    """

    # The knobs are typed by ``configure``, which sets them; this one it reads first.
    deterministic: bool

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
        effect: PseudoEffect | None = None,
    ) -> None:
        self.teacher = teacher
        #: The student's twin and the guard (``streamlearn.labels.effect``).
        self.effect = effect if effect is not None else PseudoEffect()
        self.pending: deque[Candidate] = deque()
        # Indexes of queued records whose true label came first: counted as rejected
        # (superseded) at once, skipped when their window is decided.
        self.superseded: set[int] = set()
        self.teach: deque[tuple[dict[str, float], float]] = deque()  # threaded mode only
        self.ready_decisions: deque[Verdict] = deque()  # threaded mode: made, not applied
        self.offered = 0
        self.accepted = 0
        self.rejected = 0
        self.rejected_by_reason: dict[str, int] = {}
        self.audit_counts = {"accepted": 0, "rejected": 0}
        self.audit_abs = {"accepted": 0.0, "rejected": 0.0}  # |pseudo-label - true label|
        self.audit_student_abs = {"accepted": 0.0, "rejected": 0.0}  # |student's yhat - y|
        self._init_runtime()
        self.configure(
            threshold=threshold,
            weight=weight,
            window=window,
            max_fraction=max_fraction,
            queue_size=queue_size,
            deterministic=deterministic,
        )
        self.join: LabelJoin | None = None
        self.attach(join)

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
        """Set (or, on a restored labeler, change) the knobs; checks them first.

        A ``ValueError`` names the knob it is about first (``threshold ...``).
        """
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
        if self._thread is not None and deterministic != self.deterministic:
            raise ValueError("cannot switch between threaded and deterministic while running")
        self.threshold = float(threshold)
        self.weight = float(weight)
        self.window = int(window)
        self.max_fraction = float(max_fraction)
        self.queue_size = int(queue_size)
        self.deterministic = bool(deterministic)

    def attach(self, join: LabelJoin | None) -> None:
        """Link to the delayed-label join (None: no join): it notes decisions, then audits them."""
        self.join = join
        if join is not None:
            join.auditor = self

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

    def offer(
        self, record: Record, yhat: Prediction, index: int, host: ModelHost | None = None
    ) -> None:
        """Queue an unlabeled record (after its prediction was written).

        With the loop's ``host``, a window is decided and its accepted pseudo-labels
        learned the moment it fills (deterministic mode): where they are learned in the
        stream depends on the window alone, never on how the loop batches records.
        Without it, full windows wait for ``drain``. In threaded mode, the verdicts the
        side thread has made are learned here.
        """
        given = yhat if isinstance(yhat, tuple) else float(yhat)  # a classifier's: as given
        candidate = Candidate(index, record.id, record.x, given)
        self.offered += 1
        if host is not None:
            self.effect.begin(host)
        if self.join is not None and record.id is not None:
            self.join.mark(record.id, index, QUEUED)
            twin = self.effect.twin_prediction(record.x)
            if twin is not None:  # its late label scores the twin with it
                self.join.note_twin(record.id, index, twin)
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
        if self.deterministic:
            if host is not None and len(self.pending) >= self.window:
                self._decide_full_windows(host)
            return
        self._ensure_thread()
        if host is not None and self.ready_decisions:
            self._apply_ready(host)

    def observe_labeled(
        self, x: dict[str, float], y: float, yhat: Prediction, host: ModelHost
    ) -> None:
        """A true label the student predicted as ``yhat``, then learned: the twin is scored
        and learns it, the guard judges, and the teacher learns it."""
        self.effect.observe(x, y, yhat, host)
        if self.deterministic:
            self._teach(x, y)
            return
        self._ensure_thread()
        limit = max(self.queue_size, 1000)
        with self._cond:
            # Back-pressure rather than loss: a teacher far behind slows the loop down.
            while len(self.teach) >= limit and self._error is None:
                self._cond.wait(0.1)
            self.teach.append((x, y))
            self._cond.notify_all()

    def drain(self, host: ModelHost) -> None:
        """Decide what is due and learn the accepted pseudo-labels (after each batch)."""
        if self.join is not None:
            self.join.expire(host.records_seen - 1)  # labels may stop coming: free memory
        if self.deterministic:
            self._decide_full_windows(host)
        else:
            self._apply_ready(host)
        self._report(host)

    def _decide_full_windows(self, host: ModelHost) -> None:
        """Decide each full window in the queue and learn its accepted pseudo-labels."""
        while len(self.pending) >= self.window:
            window = [self.pending.popleft() for _ in range(self.window)]
            self._apply(self._decide(window, self.window), host)

    def _apply_ready(self, host: ModelHost) -> None:
        """Threaded mode: learn the verdicts the side thread has made meanwhile."""
        self._raise_if_failed()
        with self._cond:
            verdicts = list(self.ready_decisions)
            self.ready_decisions.clear()
        self._apply(verdicts, host)

    def flush(self, host: ModelHost) -> None:
        """Decide everything still queued, partial window included (end of a replay)."""
        self._raise_if_failed()
        with self._busy:  # the side thread, if any, is between steps: the teacher is ours
            with self._cond:
                teach = list(self.teach)
                self.teach.clear()
                verdicts = list(self.ready_decisions)
                self.ready_decisions.clear()
                queued = list(self.pending)
                self.pending.clear()
                self._cond.notify_all()
            for x, y in teach:
                self._teach(x, y)
            for start in range(0, len(queued), self.window):
                verdicts.extend(self._decide(queued[start : start + self.window], None))
        self._apply(verdicts, host)
        self._report(host)

    def audit(self, late: LateLabel) -> None:
        """The true label ``y`` came for the record at ``index`` (called by ``LabelJoin.take``).

        ``decision`` is what ``LabelJoin.mark`` noted: ``QUEUED`` or
        ``(outcome, pseudo_label)``; ``yhat`` the student's prediction then, and
        ``twin_yhat`` its twin's (which ``observe_labeled`` scores next). The audit
        measures the accuracy of the pseudo-labels, not their benefit (``effect``).
        """
        index, decision, yhat, y, twin_yhat = late
        self.effect.late_label(index, twin_yhat)
        if isinstance(decision, str):  # QUEUED
            # Still undecided: the true label is learned instead, never the pseudo-label.
            self.superseded.add(index)
            self._count("rejected", "superseded")
            return
        outcome, label = decision
        if label is None:
            return  # decided without a teacher label (overflow, warm-up): nothing to audit
        self._audit_label(outcome, label, yhat, y)

    def _audit_label(self, outcome: str, label: float, yhat: Prediction, y: float) -> None:
        """Count how far the pseudo-label (and the student's ``yhat``) was from ``y``."""
        assert not isinstance(yhat, tuple)  # a regressor's (ClassPseudoLabeler audits classes)
        self.audit_counts[outcome] += 1
        self.audit_abs[outcome] += abs(label - y)
        self.audit_student_abs[outcome] += abs(yhat - y)

    # -- deciding ---------------------------------------------------------------------

    def _teach(self, x: dict[str, float], y: float) -> None:
        """The teacher learns a true label (on the thread that owns the teacher)."""
        self.teacher.learn(x, y)

    def _decide(self, window: list[Candidate], size: int | None) -> list[Verdict]:
        """The verdicts on one window (``_rule``, ``decide_window``, under this labeler's
        knobs)."""
        return self._rule()(
            window,
            size,
            teacher=self.teacher,
            threshold=self.threshold,
            max_fraction=self.max_fraction,
            superseded=self.superseded,
        )

    def _rule(self) -> Callable[..., list[Verdict]]:
        """How a window is decided: ``decide_window`` (a classifier's adds its shares)."""
        return decide_window

    def _apply(self, verdicts: Sequence[Verdict], host: ModelHost) -> None:
        """Record verdicts and learn the accepted ones: on the loop thread only."""
        if not verdicts:
            return
        learner = host.learner
        learned_before = learner.pseudo_learned
        weight = self.weight
        superseded = self.superseded
        paused = self.effect.paused
        for candidate, label, _, accept, reason in verdicts:
            if candidate.stream_index in superseded:
                superseded.discard(candidate.stream_index)  # counted when its true label came
                continue
            if accept and paused:
                self._finish(candidate, "rejected", "guard_paused", label)
            elif accept:
                assert label is not None
                learner.learn_weighted(candidate.x, label, weight)
                self._finish(candidate, "accepted", None, label)
            else:
                self._finish(candidate, "rejected", reason, label)
        telemetry = host.telemetry
        if telemetry is not None and learner.pseudo_learned > learned_before:
            telemetry.learned(learner.pseudo_learned - learned_before, label="pseudo")

    def _report(self, host: ModelHost) -> None:
        """Send decisions made since the last report (overflow and superseded included)."""
        telemetry = host.telemetry
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

    # -- state --------------------------------------------------------------------------

    def snapshot_locks(self) -> tuple[threading.Lock, threading.Condition]:
        """The locks ``__getstate__`` takes, in its order: a forked checkpoint holds them."""
        return (self._busy, self._cond)

    def __getstate__(self) -> dict[str, Any]:
        with self._busy, self._cond:
            state = {key: value for key, value in self.__dict__.items() if key not in _RUNTIME}
            state["pending"] = deque(self.pending)
            state["teach"] = deque(self.teach)
            state["ready_decisions"] = deque(self.ready_decisions)
            state["audit_counts"] = dict(self.audit_counts)
            state["audit_abs"] = dict(self.audit_abs)
            state["audit_student_abs"] = dict(self.audit_student_abs)
            state["superseded"] = set(self.superseded)
            state["rejected_by_reason"] = dict(self.rejected_by_reason)
            state.update(self._copied_state())
            if self._thread is not None:
                # Pickled now, while the side thread is held at rest: later it moves on.
                state["teacher"] = None
                state["_teacher_blob"] = pickle.dumps(self.teacher, pickle.HIGHEST_PROTOCOL)
        return state

    def _copied_state(self) -> dict[str, Any]:
        """A subclass's containers, copied while the side thread rests (``__getstate__``)."""
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        blob = state.pop("_teacher_blob", None)
        state.setdefault("effect", PseudoEffect())  # pickled before the twin was measured
        self.__dict__.update(state)
        if blob is not None:
            self.teacher = load(blob)  # as its checkpoint is: finds the classes that moved
        self._init_runtime()

    # -- reporting ----------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The ``pseudo_labels`` part of ``inspect --json`` (``streamlearn.labels.summary``)."""
        from streamlearn.labels.summary import pseudo_summary

        return {"pseudo_labels": pseudo_summary(self)}
