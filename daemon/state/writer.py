"""The background checkpoint writer: pickling, signing and fsync off the learning loop.

A state that pickles faster than the process forks is pickled on the loop and
handed to a writer thread as bytes; a bigger one is pickled by a forked child
(``streamlearn.state.child``), whose copy-on-write memory is the loop's at the
moment of the checkpoint, while the loop learns on. Why, and what each costs:
docs/design.md, "Checkpoints".
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import select
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .child import CHILD_IGNORES, Deferred, Lock, made_in_place, parent_death_signal, run_child
from .format import CheckpointError, dump, frame
from .store import CheckpointStore

log = logging.getLogger(__name__)

#: How checkpoints are pickled (``STREAMLEARN_CHECKPOINT_FORK``): ``auto`` in a forked
#: child once pickling costs the loop more than a fork does, ``always`` in a child,
#: ``never`` on the loop thread (the only way where ``os.fork`` is missing).
FORK_MODES = ("auto", "always", "never")

#: What a fork is assumed to hold the loop up until one was measured.
FORK_GUESS_SECONDS = 0.02

#: What pickling is assumed to cost per small object (pymalloc block) the process gained
#: since the writer started, until a checkpoint of this model was pickled or loaded:
#: pickling costs per object, and a model grows by its objects. About what the River
#: models measured cost; so a fresh tree's first checkpoint forks and a linear model's
#: is pickled on the loop.
PICKLE_GUESS_SECONDS_PER_BLOCK = 1e-6


def fork_mode() -> str:
    """The checkpoint fork mode from ``STREAMLEARN_CHECKPOINT_FORK`` (default ``auto``).

    The one place that reads the setting; ``ValueError`` names the allowed values.

    >>> fork_mode() in FORK_MODES
    True
    """
    mode = os.environ.get("STREAMLEARN_CHECKPOINT_FORK", "auto").strip().lower() or "auto"
    if mode not in FORK_MODES:
        raise ValueError(
            f"STREAMLEARN_CHECKPOINT_FORK={mode!r}: use one of {', '.join(FORK_MODES)}"
        )
    return mode


@dataclass
class _Job:
    """A checkpoint for the writer thread: pickled bytes, or a child writing ``path``."""

    tag: Any
    blob: bytes = b""
    framed: bool = True
    pid: int = 0
    report: int = -1
    path: Path | None = None


class BackgroundWriter:
    """Writes checkpoints off the loop, so neither pickling nor fsync holds up learning.

    ``snapshot`` is called by the loop between batches, where the state is
    consistent. A state that pickles faster than the process forks is pickled
    right there and handed over as bytes; a bigger one is pickled by a forked
    child, whose copy-on-write memory is the loop's at that moment, while the
    loop learns on (``fork``: ``auto``, see ``FORK_MODES``; what pickling costs is
    known from the last checkpoint, at first from loading the restored one, for a
    new model guessed from how much the process grew, ``pickle_guess``; what a
    fork costs, from the last three). Either way the same bytes reach the disk
    through the same steps: HMAC under the store's key, the given sync callbacks (sinks' fsync, so
    a durable checkpoint never points past durable sink output), fsync, atomic
    rename.

    ``durable()`` returns the tags of checkpoints that have reached the disk since
    the last call; the loop commits source offsets for those (Kafka consumers are
    not thread-safe). A failed write raises ``CheckpointError`` from the next
    ``snapshot``, ``submit`` or ``durable``; after a failed child the next
    checkpoint is pickled on the loop, so a process that cannot fork still
    checkpoints. If a newer pickled checkpoint arrives while one is waiting, the
    older is dropped: only the latest matters.

    Examples
    --------
    >>> import tempfile
    >>> store = CheckpointStore(tempfile.mkdtemp())
    >>> writer = BackgroundWriter(store, fork="always")
    >>> writer.snapshot({"records_learned": 3}, tag="offset 10")
    'fork'
    >>> writer.wait()
    >>> writer.durable(), store.load().state
    ([(1, 'offset 10')], {'records_learned': 3})
    >>> writer.close(); store.close()
    """

    #: Tests only: seconds a forked child sleeps halfway through writing its file, so
    #: that a test can look at it or kill the daemon meanwhile. Set on an instance, or
    #: on the class before the daemon makes its writer (tests/pausing_checkpoints.py).
    child_pause: float = 0.0

    def __init__(
        self,
        store: CheckpointStore,
        syncs: tuple[Callable[[], object], ...] = (),
        *,
        fork: str | None = None,
        child_timeout: float = 300.0,
    ) -> None:
        mode = fork_mode() if fork is None else fork
        if mode not in FORK_MODES:
            raise ValueError(f"fork={mode!r}: use one of {', '.join(FORK_MODES)}")
        self.fork = mode if hasattr(os, "fork") else "never"
        self.child_timeout = child_timeout
        self.store = store
        self.syncs = syncs
        #: Seconds the last pickling took (on the loop, or in a child; before the first,
        #: loading the restored state), and the last forks held the loop up: ``auto``
        #: forks when the first is larger. With neither a pickling nor a load measured
        #: (a new model), ``auto`` guesses from how much the process has grown since.
        self.pickle_seconds = store.load_seconds or 0.0
        self._pickle_measured = store.load_seconds is not None
        self._blocks = sys.getallocatedblocks()
        self.fork_seconds: list[float] = []
        self.forked = 0
        self.pickled = 0
        self._inline_next = False
        self._death_signal = parent_death_signal() if self.fork != "never" else None
        self._condition = threading.Condition()
        self._pending: _Job | None = None
        self._current: _Job | None = None  # being written by the thread
        self._done: list[Any] = []
        self._error: BaseException | None = None
        self._closed = False
        self.write_seconds: list[float] = []
        self._thread = threading.Thread(target=self._work, name="checkpoint-writer", daemon=True)
        self._thread.start()

    def snapshot(self, state: dict[str, Any], tag: Any, *, hold: Sequence[Lock] = ()) -> str:
        """Take a snapshot of ``state`` for the disk; returns ``"fork"`` or ``"inline"``.

        Call it where ``state`` is consistent. ``hold``: locks that other threads
        take to change parts of ``state``, in the order its pickling takes them.
        They are held across the fork, so no such thread is halfway through a
        change in the child's copy, and the child can take them again.
        """
        with self._condition:
            self._raise_error()
            child = any(job.pid for job in (self._pending, self._current) if job is not None)
        deferred = [part for part in state.values() if isinstance(part, Deferred)]
        if self._use_fork(sum(part.guess() for part in deferred)):
            if child:
                self.wait()  # one child at a time (the loop only checkpoints when idle)
            try:
                job = self._fork(state, tag, [*hold, *(x for p in deferred for x in p.locks())])
            except OSError as exc:
                log.warning("cannot fork for a checkpoint (%s): pickling it on the loop", exc)
            else:
                for part in deferred:
                    part.forked()
                self.forked += 1
                self._queue(job)
                return "fork"
        state = made_in_place(state, False)
        started = time.perf_counter()
        blob = dump(state)
        self.pickle_seconds = time.perf_counter() - started
        self._pickle_measured = True
        self.pickled += 1
        self.submit(blob, tag, framed=False)
        return "inline"

    def submit(self, blob: bytes, tag: Any, *, framed: bool = True) -> None:
        """Queue an encoded state; ``tag`` comes back from ``durable()`` once written.

        ``framed=False``: ``blob`` is ``dump(state)``, framed (signed) on the writer thread.
        """
        self._queue(_Job(tag, blob=blob, framed=framed))

    def _queue(self, job: _Job) -> None:
        with self._condition:
            # A child is never dropped (it writes its file and must be reaped): wait for
            # the thread to take a waiting one, and queue a new one even after a failure.
            # A waiting pickled checkpoint is replaced by this newer one.
            while self._pending is not None and self._pending.pid:
                self._condition.wait()
            if not job.pid:
                self._raise_error()
            self._pending = job
            self._condition.notify_all()

    def _use_fork(self, deferred: float = 0.0) -> bool:
        """Whether to fork: pickling (and ``deferred`` seconds of ``Deferred`` parts) is
        expected to hold the loop up longer than a fork."""
        if self.fork == "never":
            return False
        if self._inline_next:
            self._inline_next = False
            return False
        if self.fork == "always":
            return True
        # The median of the last three forks: one outlier, fast or slow, does not flip it.
        forks = sorted(self.fork_seconds)
        fork = forks[len(forks) // 2] if forks else FORK_GUESS_SECONDS
        return self.pickle_guess() + deferred > fork

    def pickle_guess(self) -> float:
        """Seconds pickling the state is expected to take: the last measured, else a guess.

        The guess (a new model, before its first checkpoint): the small objects the
        process gained since the writer started, at ``PICKLE_GUESS_SECONDS_PER_BLOCK``.
        A fresh tree or forest grows by many objects before its first checkpoint, and
        pickling it on the loop would stall learning; a linear model grows by few.
        """
        if self._pickle_measured:
            return self.pickle_seconds
        grown = max(sys.getallocatedblocks() - self._blocks, 0)
        return grown * PICKLE_GUESS_SECONDS_PER_BLOCK

    def _fork(self, state: dict[str, Any], tag: Any, hold: Sequence[Lock]) -> _Job:
        key = self.store.signing_key
        path = self.store.temporary()
        report, report_child = os.pipe()
        parent = os.getpid()
        for lock in hold:
            lock.acquire()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, CHILD_IGNORES)
        # The parent's collections leave the snapshot's objects alone while the child
        # reads them: walking them would copy every page of the heap (copy-on-write).
        gc.freeze()
        pid = -1
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # 3.12+ warns on fork in a threaded process: the child only pickles and writes.
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                run_child(
                    state,
                    key,
                    path,
                    report_child,
                    parent,
                    hold,
                    mask,
                    self._death_signal,
                    self.child_pause,
                )
        finally:
            # Only the parent gets here: the child ends in os._exit.
            if pid > 0:
                self.fork_seconds.append(time.perf_counter() - started)
                del self.fork_seconds[:-3]
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            for lock in reversed(hold):
                lock.release()
            os.close(report_child)
            if pid < 0:
                gc.unfreeze()
                os.close(report)
        return _Job(tag, pid=pid, report=report, path=path)

    @property
    def idle(self) -> bool:
        """True when nothing is waiting or being written (a new checkpoint goes straight on).

        Also True after a failed write, so that the next ``submit`` raises it.
        """
        with self._condition:
            return (self._pending is None and self._current is None) or self._error is not None

    def durable(self) -> list[Any]:
        """Tags of the checkpoints written since the last call, oldest first."""
        with self._condition:
            self._raise_error()
            done, self._done = self._done, []
        return done

    def wait(self) -> None:
        """Block until nothing is pending or being written, then raise a failure if any."""
        with self._condition:
            while self._pending is not None or self._current is not None:
                self._condition.wait()
            self._raise_error()

    def close(self) -> None:
        """Finish what is pending, then stop the thread; calling it twice is fine."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._thread.join()
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise CheckpointError(f"writing a checkpoint failed: {error}") from error

    def _work(self) -> None:
        while True:
            with self._condition:
                while self._pending is None and not self._closed:
                    self._condition.wait()
                job = self._pending
                if job is None:
                    return
                self._pending, self._current = None, job
                self._condition.notify_all()
            started = time.perf_counter()
            try:
                generation = self._write(job)
            except BaseException as exc:  # reported to the loop on its next call
                with self._condition:
                    self._error = exc
                    self._current = None
                    self._condition.notify_all()
                continue
            with self._condition:
                self.write_seconds.append(time.perf_counter() - started)
                del self.write_seconds[:-1000]
                self._done.append((generation, job.tag))
                self._current = None
                self._condition.notify_all()

    def _write(self, job: _Job) -> int:
        if not job.pid:
            blob = job.blob if job.framed else frame(job.blob, self.store.signing_key)
            for sync in self.syncs:
                sync()
            return self.store.write(blob)
        assert job.path is not None
        try:
            self._reap(job)
            for sync in self.syncs:
                sync()
            return self.store.install(job.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                job.path.unlink()
            raise

    def _reap(self, job: _Job) -> None:
        """Wait for a child and reap it; raise unless it wrote its file.

        A child that gives no sign of life for ``child_timeout`` seconds (20 times
        its last pickling, if longer) is killed. After any failure the next
        checkpoint is pickled on the loop.
        """
        timeout = max(self.child_timeout, 20 * self.pickle_seconds)
        report, killed, status = self._read_report(job, timeout)
        code = os.waitstatus_to_exitcode(status)
        text = report.decode(errors="replace")
        if code == 0 and text.startswith("ok "):
            self.pickle_seconds = float(text[3:])
            self._pickle_measured = True
            return
        self._inline_next = True
        if killed:
            why = f"gave no sign of life in {timeout:.0f} s and was killed"
        elif code < 0:
            name = signal.Signals(-code).name
            hint = " (out of memory? the child may copy the whole heap)" if -code == 9 else ""
            why = f"was killed by {name}{hint}"
        else:
            why = f"failed: {text or f'exit status {code}'}"
        raise CheckpointError(
            f"the checkpoint child (pid {job.pid}) {why}; "
            "the next checkpoint is pickled on the loop"
        )

    @staticmethod
    def _read_report(job: _Job, timeout: float) -> tuple[bytes, bool, int]:
        """The child's report, whether it was killed for silence, and its wait status.

        The child is always reaped (no zombie), and the parent's collector unfrozen.
        """
        deadline = time.monotonic() + timeout
        report = bytearray()
        killed = False
        try:
            while True:
                remaining = deadline - time.monotonic()
                if not killed and (
                    remaining <= 0 or not select.select([job.report], [], [], remaining)[0]
                ):
                    os.kill(job.pid, signal.SIGKILL)  # its end of the pipe closes: EOF
                    killed = True
                    continue
                chunk = os.read(job.report, 65536)
                if not chunk:
                    break
                report += chunk
        finally:
            os.close(job.report)
            _, status = os.waitpid(job.pid, 0)
            gc.unfreeze()
        return bytes(report), killed, status
