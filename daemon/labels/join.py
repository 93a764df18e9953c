"""The delayed-label join: features wait, under their record id, for a label that comes later.

Labels that arrive after their features (``{"id": ..., "y": ...}``) are joined by id within
a time-to-live given in seconds or records (``600s``, ``10m``, ``5000r``). The prediction
made when the features came waits with them (a regressor's value, or a classifier's class
probabilities by code, kept as given), so the late label is scored with it. Each waiting
entry also holds the pseudo-label decision on its record, so that the true label audits the
pseudo-label it replaces: the join hands both to its ``Auditor`` (the pseudo-label loop).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from streamlearn.labels.ttl import DEFAULT_TTL, LabelTtl

if TYPE_CHECKING:
    from streamlearn.interfaces import Prediction
    from streamlearn.records import Label, Record

__all__ = [
    "DEFAULT_MAX_PENDING",
    "QUEUED",
    "Auditor",
    "Decision",
    "LabelJoin",
    "LateLabel",
    "PendingFeatures",
]

#: The most features kept waiting unless ``--max-pending-labels`` says otherwise.
DEFAULT_MAX_PENDING = 100_000

#: The decision noted on a record while it waits in the pseudo-label queue.
QUEUED = "queued"

#: A record's pseudo-label decision: ``QUEUED``, or ``(outcome, pseudo_label)`` once
#: decided (``outcome`` is ``"accepted"`` or ``"rejected"``; the label is None when the
#: teacher gave none).
Decision = str | tuple[str, float | None]


class LateLabel(NamedTuple):
    """The true label ``y`` of the record at ``stream_index``, which had a pseudo-label
    ``decision``; ``yhat`` was predicted then, and ``twin_yhat`` by the student's twin
    (``note_twin``), if it predicted it."""

    stream_index: int
    decision: Decision
    yhat: Prediction
    y: float
    twin_yhat: Prediction | None


class Auditor(Protocol):
    """Who is told when a true label comes for a record that had a pseudo-label decision."""

    def audit(self, late: LateLabel) -> None:
        """A true label came for a record with a pseudo-label decision."""
        ...


class PendingFeatures(NamedTuple):
    """Features that waited for their label, with the prediction made when they arrived."""

    x: dict[str, float]
    yhat: Prediction  # a regressor's value, or a classifier's probabilities by class code
    stream_index: int
    time: float


# Fields of a join entry. Entries are plain lists, not objects: a checkpoint pickles up
# to --max-pending-labels of them, and lists of builtins pickle several times faster.
# (_TWIN is missing from the entries of a join pickled by an earlier streamlearn.)
_X, _YHAT, _INDEX, _TIME, _DECISION, _TWIN = range(6)


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

    Each entry also holds the pseudo-label decision of its record (noted by
    ``mark``), which ``take`` hands to the ``auditor`` with the true label.

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
        self.auditor: Auditor | None = None  # set by the pseudo-label loop it feeds
        self.remembered = 0
        self.joined = 0
        self.expired = 0
        self.evicted = 0
        self.unjoined = 0
        self.duplicate_ids = 0
        self.delay_records = 0  # summed over joined labels, for the mean delay

    def remember(self, record: Record, yhat: Prediction, index: int) -> None:
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
        kept = yhat if isinstance(yhat, tuple) else float(yhat)  # a classifier's: as given
        pending[record_id] = [record.x, kept, index, now, None, None]
        self.remembered += 1
        while len(pending) > self.max_pending:
            pending.popitem(last=False)
            self.evicted += 1

    def mark(self, record_id: str, index: int, decision: Decision) -> None:
        """Note the pseudo-label decision on the record ``(record_id, index)``, if it waits here."""
        entry = self.pending.get(record_id)
        if entry is not None and entry[_INDEX] == index:
            entry[_DECISION] = decision

    def note_twin(self, record_id: str, index: int, yhat: Prediction) -> None:
        """Note the twin's prediction of the record ``(record_id, index)``, if it waits here:
        its late label scores the twin as the student, with a prediction made then."""
        entry = self.pending.get(record_id)
        if entry is not None and entry[_INDEX] == index:
            if len(entry) > _TWIN:
                entry[_TWIN] = yhat
            else:
                entry.append(yhat)

    def take(self, label: Label, index: int) -> PendingFeatures | None:
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
        decision = entry[_DECISION]
        if decision is not None and self.auditor is not None:
            twin = entry[_TWIN] if len(entry) > _TWIN else None
            late = LateLabel(entry[_INDEX], decision, entry[_YHAT], float(label.y), twin)
            self.auditor.audit(late)
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

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A join pickled by an earlier streamlearn names its auditor "pseudo".
        if "pseudo" in state:
            state["auditor"] = state.pop("pseudo")
        self.__dict__.update(state)
