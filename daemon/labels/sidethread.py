"""The threaded mode of the pseudo-label side loop: a side thread teaches and decides windows.

The loop thread queues unlabeled records and true labels; the side thread teaches the
teacher the true labels (a chunk at a time, first) and decides each full window; the loop
thread learns the verdicts when it next sees them (``PseudoLabeler.offer`` and ``drain``).
The teacher never slows the loop down, at the price of reproducibility: where a
pseudo-label is learned depends on timing.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamlearn.labels.teachers import Teacher
    from streamlearn.labels.window import Candidate, Verdict

log = logging.getLogger(__name__)

__all__ = ["SideThread"]


class SideThread:
    """The side thread's part of ``PseudoLabeler`` (a base class: it shares the labeler's state).

    ``_cond`` guards the deques shared with the thread; ``_busy`` is held while the thread
    uses the teacher, so a checkpoint or a flush sees it at rest.
    """

    teacher: Teacher
    window: int
    pending: deque[Candidate]
    teach: deque[tuple[dict[str, float], float]]
    ready_decisions: deque[Verdict]
    _cond: threading.Condition
    _busy: threading.Lock
    _thread: threading.Thread | None
    _stopping: bool
    _error: BaseException | None

    def _decide(self, window: list[Candidate], size: int | None) -> list[Verdict]:
        raise NotImplementedError  # PseudoLabeler's

    def _teach(self, x: dict[str, float], y: float) -> None:
        raise NotImplementedError  # PseudoLabeler's

    def close(self) -> None:
        """Stop the side thread (queued records stay queued, in the next checkpoint)."""
        thread = self._thread
        if thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread.join()
        self._thread = None
        self._stopping = False

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._work, name="streamlearn-pseudo", daemon=True
            )
            self._thread.start()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"the pseudo-label side loop failed: {self._error!r}") from (
                self._error
            )

    def _work(self) -> None:
        try:
            while True:
                with self._cond:
                    while not (self._stopping or self.teach or len(self.pending) >= self.window):
                        self._cond.wait()
                    if self._stopping:
                        return
                self._step()
        except BaseException as exc:  # surfaced on the loop thread by drain()
            log.exception("the pseudo-label side loop failed")
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _step(self) -> None:
        """One unit of side-loop work: a chunk of true labels, else one window."""
        with self._busy:
            with self._cond:
                chunk = [self.teach.popleft() for _ in range(min(256, len(self.teach)))]
                window: list[Candidate] = []
                if not chunk and len(self.pending) >= self.window:
                    window = [self.pending.popleft() for _ in range(self.window)]
                self._cond.notify_all()  # room for a producer waiting on back-pressure
            for x, y in chunk:
                self._teach(x, y)
            if window:
                verdicts = self._decide(window, self.window)
                with self._cond:
                    self.ready_decisions.extend(verdicts)
