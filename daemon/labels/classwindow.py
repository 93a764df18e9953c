"""Ordered acceptance for a classifier: each class within its share of the true labels.

The rule, exactly (``class_quotas``). Let ``n_c`` be the true labels of class ``c`` among the
last ``R`` the teacher learned (``R`` is ``--pseudo-guard-records``, the effect's window of
true labels; ``ClassShares`` keeps them), ``n`` their sum, and ``m_c`` the records of the
window the teacher gives class ``c`` with a confidence of at least the threshold. The window
accepts ``T``: the largest number, at most its cap ``floor(max_fraction * size)``, such that
every class with ``n_c > 0`` has at least ``floor(n_c * T / n)`` such records. Class ``c``
then accepts ``floor(n_c * T / n)`` of them, most confident first (ties in stream order), and
a class with no true label among the last ``R`` accepts none. So a class with 20 % of the
true labels gets at most 20 % of ``T`` (rounded down, in integers: no float rounding), and a
teacher that never names a class the true labels hold cannot fill the window with the others.
The accepted are learned most confident first over all classes, as for a regressor.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from streamlearn.labels.window import Candidate, Verdict, open_window

if TYPE_CHECKING:
    from streamlearn.labels.classteachers import ClassTeacher

__all__ = ["ClassShares", "class_quotas", "decide_class_window"]


class ClassShares:
    """The classes of the last true labels the teacher learned: their codes and counts.

    >>> shares = ClassShares()
    >>> for code in [0, 1, 1, 2, 1]:
    ...     shares.add(code, keep=4)
    >>> shares.counts   # of the last 4: 1, 1, 2, 1
    [0, 3, 1]
    """

    def __init__(self) -> None:
        self.recent: deque[int] = deque()
        self.counts: list[int] = []

    def add(self, code: int, keep: int) -> None:
        """One more true label of class ``code``; only the last ``keep`` count."""
        counts = self.counts
        if code >= len(counts):
            counts.extend([0] * (code + 1 - len(counts)))
        counts[code] += 1
        recent = self.recent
        recent.append(code)
        while len(recent) > keep:
            counts[recent.popleft()] -= 1

    def copy(self) -> ClassShares:
        """A copy (a checkpoint's, taken while the teacher rests)."""
        other = ClassShares()
        other.recent = deque(self.recent)
        other.counts = list(self.counts)
        return other


def class_quotas(
    confident: Mapping[int, int], counts: Sequence[int], cap: int
) -> tuple[dict[int, int], int]:
    """How many of each class a window accepts, and ``T`` (see the module's rule).

    ``confident``: records given each class at or above the threshold (``m_c``);
    ``counts``: true labels by class code (``n_c``); ``cap``: the window's cap.

    >>> class_quotas({0: 60, 1: 60}, [400, 100], cap=50)   # 80 % / 20 %
    ({0: 40, 1: 10}, 50)
    >>> class_quotas({0: 60, 1: 4}, [400, 100], cap=50)    # few of class 1: T falls to 24
    ({0: 19, 1: 4}, 24)
    >>> class_quotas({0: 60}, [250, 250], cap=50)          # class 1 never named: T is 1
    ({0: 0, 1: 0}, 1)
    """
    n = sum(counts)
    if n == 0:
        return {}, 0
    total = cap
    for code, n_c in enumerate(counts):
        if n_c:
            # floor(n_c * T / n) <= m_c  <=>  T <= ((m_c + 1) * n - 1) // n_c
            total = min(total, ((confident.get(code, 0) + 1) * n - 1) // n_c)
    return {code: n_c * total // n for code, n_c in enumerate(counts) if n_c}, total


def decide_class_window(
    window: list[Candidate],
    size: int | None,
    *,
    teacher: ClassTeacher,
    threshold: float,
    max_fraction: float,
    superseded: Collection[int],
    counts: Sequence[int],
) -> list[Verdict]:
    """The verdicts on one window of a classifier's unlabeled records (nothing is written).

    As ``decide_window`` (``size`` None: a partial window, its cap a fraction of what it
    holds; ``superseded`` records rejected as such), with the teacher's votes and the
    classes' quotas (``class_quotas`` of ``counts``, the true labels by class). A confident
    record beyond its class's quota is rejected as ``window_cap`` when its class got its
    whole share of the cap, else as ``class_share`` (another class held the window back).
    A verdict's label is the class code (a float), None when the teacher gave no class.
    """
    cap, verdicts, live = open_window(
        window, size, teacher=teacher, max_fraction=max_fraction, superseded=superseded
    )
    if not live:
        return verdicts
    votes = teacher.vote([c.x for c in live])
    # Most confident first; ties keep stream order, so a replay decides the same.
    order = sorted(range(len(live)), key=lambda i: (-votes[i].confidence, live[i].stream_index))
    confident: dict[int, int] = {}
    for vote in votes:
        if vote.refusal is None and vote.confidence >= threshold:
            confident[vote.code] = confident.get(vote.code, 0) + 1
    quotas, _ = class_quotas(confident, counts, cap)
    n = sum(counts)
    taken: dict[int, int] = {}
    for i in order:
        code, confidence, refusal = votes[i]
        if refusal is not None:
            verdicts.append(Verdict(live[i], None, None, False, refusal))
            continue
        label = float(code)
        if confidence < threshold:
            verdicts.append(Verdict(live[i], label, confidence, False, "threshold"))
        elif taken.get(code, 0) < quotas.get(code, 0):
            taken[code] = taken.get(code, 0) + 1
            verdicts.append(Verdict(live[i], label, confidence, True, None))
        else:
            share_of_cap = counts[code] * cap // n if n and code < len(counts) else 0
            full = share_of_cap > 0 and quotas.get(code) == share_of_cap
            reason = "window_cap" if full else "class_share"
            verdicts.append(Verdict(live[i], label, confidence, False, reason))
    return verdicts
