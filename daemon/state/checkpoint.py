"""Atomic, checksummed checkpoints of the whole learning state, as generations.

One file per generation holds the model, the source position, the counters and
the metric state together, so a crash can never pair a model with the wrong
position. A write goes to a temporary file, is fsynced, renamed into place, and
the directory is fsynced. The previous generation is kept: a corrupt latest one
falls back to it loudly. An unreadable state never turns silently into an empty
model. The state directory is locked so that exactly one daemon owns a model.

A model that takes long to pickle is pickled in a forked child (``BackgroundWriter``,
as Redis' BGSAVE): the child's memory is a copy-on-write image of the loop at the
moment of the checkpoint, so the loop goes on learning while the child pickles it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import gc
import hashlib
import importlib
import itertools
import logging
import os
import pickle
import re
import select
import signal
import struct
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

log = logging.getLogger(__name__)

MAGIC = b"SLCKPT\x00\x01"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">8sI32sQ")  # magic, format version, sha256 of payload, payload size
_NAME = re.compile(r"^gen-(\d{10})\.ckpt$")


class CheckpointError(Exception):
    """No usable checkpoint although one was expected (every generation is corrupt)."""


class StateLocked(Exception):
    """Another process holds the state directory."""


@dataclass(frozen=True, slots=True)
class Loaded:
    """A checkpoint read back: its state, generation and any generations skipped as corrupt."""

    state: dict[str, Any]
    generation: int
    skipped: tuple[str, ...] = ()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No garbage collection while a state is pickled or unpickled.

    Neither makes garbage, but both allocate: the collections their allocations
    trigger walk every object of a big model again and again. An ``ARFRegressor``
    of 1.7 million objects pickled in a half to a third of the time without them,
    and unpickled in a sixth.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def encode(state: dict[str, Any]) -> bytes:
    """Serialise a state with its header and checksum."""
    return frame(dump(state))


def dump(state: dict[str, Any]) -> bytes:
    """The pickled state: the part of ``encode`` that must run where the state is consistent."""
    with _gc_paused():
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def frame(payload: bytes) -> bytes:
    """A pickled state with its header and checksum: the rest of ``encode``.

    Any thread may do this (``BackgroundWriter`` does): hashlib releases the GIL
    while it hashes, so the checksum costs the learning loop nothing.
    """
    digest = hashlib.sha256(payload).digest()
    return _HEADER.pack(MAGIC, FORMAT_VERSION, digest, len(payload)) + payload


def decode(blob: bytes) -> dict[str, Any]:
    """Check and deserialise a checkpoint; ``CheckpointError`` says what is wrong."""
    if len(blob) < _HEADER.size:
        raise CheckpointError("truncated header")
    magic, version, digest, size = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise CheckpointError("not a streamlearn checkpoint")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"format version {version} is newer than this streamlearn "
            f"understands ({FORMAT_VERSION})"
        )
    payload = blob[_HEADER.size :]
    if len(payload) != size:
        raise CheckpointError(f"truncated: {len(payload)} of {size} bytes")
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError("checksum mismatch")
    with _gc_paused():
        state = pickle.loads(payload)
    if not isinstance(state, dict):
        raise CheckpointError("payload is not a state")
    return state


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointStore:
    """Generations of checkpoints in a locked state directory.

    Parameters
    ----------
    directory
        The state directory; created when missing.
    keep
        How many generations to keep (at least 2, so a corrupt latest can fall back).
    lock
        Take the exclusive lock (``inspect`` reads without it).

    Examples
    --------
    >>> import tempfile
    >>> store = CheckpointStore(tempfile.mkdtemp())
    >>> store.load() is None
    True
    >>> store.save({"records_learned": 3})
    1
    >>> store.load().state
    {'records_learned': 3}
    >>> store.close()
    """

    def __init__(self, directory: str | os.PathLike[str], *, keep: int = 2, lock: bool = True):
        if keep < 2:
            raise ValueError("keep at least 2 generations, so a corrupt latest can fall back")
        self.directory = Path(directory)
        self.keep = keep
        self._lock_file: IO[str] | None = None
        if lock:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CheckpointError(
                    f"cannot create state dir {self.directory}: {exc.strerror}"
                ) from None
            self._lock()
            # Half-written files of a writer that died (SIGKILL mid-write): never a generation.
            self._remove_temporaries()
        elif not self.directory.is_dir():
            raise CheckpointError(f"no state dir at {self.directory}")
        self.generation = max(self.generations(), default=0)
        self._temporaries = itertools.count(1)
        #: Seconds ``load`` took to check and unpickle the generation it returned (None:
        #: nothing loaded): the first hint of what pickling this state costs.
        self.load_seconds: float | None = None

    def _lock(self) -> None:
        path = self.directory / "lock"
        handle = open(path, "a+")  # noqa: SIM115 - held for the store's lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                raise
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise StateLocked(
                f"state dir {self.directory} is in use by another streamlearn (pid {owner}); "
                "stop it first or use another --state-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def generations(self) -> list[int]:
        """The generation numbers present, oldest first."""
        found = []
        for entry in os.listdir(self.directory):
            match = _NAME.match(entry)
            if match:
                found.append(int(match.group(1)))
        return sorted(found)

    def path(self, generation: int) -> Path:
        return self.directory / f"gen-{generation:010d}.ckpt"

    def load(self) -> Loaded | None:
        """The newest readable generation; None when the directory has none at all."""
        generations = self.generations()
        if not generations:
            return None
        skipped: list[str] = []
        for generation in reversed(generations):
            path = self.path(generation)
            started = time.perf_counter()
            try:
                state = decode(path.read_bytes())
            except (CheckpointError, pickle.UnpicklingError, EOFError, OSError) as exc:
                log.warning(
                    "checkpoint %s is unusable (%s); falling back to the previous generation",
                    path.name,
                    exc,
                )
                skipped.append(f"{path.name}: {exc}")
                continue
            except (AttributeError, ImportError, TypeError, ValueError) as exc:
                # Readable bytes but a model this code cannot rebuild: never guess.
                raise CheckpointError(f"{path} cannot be loaded by this version: {exc}") from None
            self.load_seconds = time.perf_counter() - started
            if skipped:
                log.warning(
                    "LOADED AN OLDER CHECKPOINT (generation %d): newer ones were corrupt: %s",
                    generation,
                    "; ".join(skipped),
                )
            return Loaded(state, generation, tuple(skipped))
        raise CheckpointError(
            f"every checkpoint in {self.directory} is corrupt ({'; '.join(skipped)}); "
            "refusing to start from an empty model: move the directory away or use --reset"
        )

    def save(self, state: dict[str, Any]) -> int:
        """Write the next generation durably; returns its number."""
        return self.write(encode(state))

    def write(self, blob: bytes) -> int:
        """Write an encoded state as the next generation, durably; returns its number."""
        self._writable()
        temporary = self.temporary()
        try:
            with open(temporary, "wb") as handle:
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        return self.install(temporary)

    def temporary(self) -> Path:
        """A new path in the state directory for a checkpoint being written, to ``install``."""
        return self.directory / f"next.tmp.{os.getpid()}.{next(self._temporaries)}"

    def install(self, temporary: Path) -> int:
        """Make a written and fsynced file the next generation, durably; returns its number.

        The rename is atomic and the directory is fsynced after it, so a crash
        leaves either the previous generations or these too, never a torn file.
        """
        self._writable()
        generation = self.generation + 1
        os.replace(temporary, self.path(generation))
        _fsync_dir(self.directory)
        self.generation = generation
        for old in self.generations()[: -self.keep]:
            with contextlib.suppress(FileNotFoundError):
                self.path(old).unlink()
        return generation

    def _writable(self) -> None:
        if self._lock_file is None:
            raise CheckpointError("this store was opened read-only")

    def clear(self) -> None:
        """Remove every generation (``--reset``)."""
        for generation in self.generations():
            self.path(generation).unlink()
        self._remove_temporaries()
        self.generation = 0

    def _remove_temporaries(self) -> None:
        for entry in os.listdir(self.directory):
            if ".tmp." in entry:
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / entry).unlink()

    def close(self) -> None:
        """Release the lock; calling it twice is fine."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


#: How checkpoints are pickled (``STREAMLEARN_CHECKPOINT_FORK``): ``auto`` in a forked
#: child once pickling costs the loop more than a fork does, ``always`` in a child,
#: ``never`` on the loop thread (the only way where ``os.fork`` is missing).
FORK_MODES = ("auto", "always", "never")

#: What a fork is assumed to hold the loop up until one was measured: a process of
#: 100 MB forks in 2 to 40 ms, of 450 MB in about 0.1 s, on a busy VM.
FORK_GUESS_SECONDS = 0.02

#: What pickling is assumed to cost per small object (pymalloc block) the process gained
#: since the writer started, until a checkpoint of this model was pickled or loaded:
#: pickling costs per object, and a model grows by its objects. Measured, seconds per
#: block gained: sgd 0.4e-6, `StandardScaler | LinearRegression` 1.2e-6,
#: `HoeffdingAdaptiveTreeRegressor` 1.0e-6 to 1.9e-6, `ARFRegressor` 1.0e-6, `KNNRegressor`
#: 0.3e-6. So a fresh tree's first checkpoint (0.1 s and more after 20,000 records) forks,
#: and sgd's (1,400 blocks after 100,000 records) is pickled on the loop.
PICKLE_GUESS_SECONDS_PER_BLOCK = 1e-6

#: Signals the child ignores: a Ctrl+C or a service manager's SIGTERM reaches the whole
#: process group, and the parent waits for the child's checkpoint before it exits anyway.
_CHILD_IGNORES = frozenset({signal.SIGINT, signal.SIGTERM})

_PR_SET_PDEATHSIG = 1


class Lock(Protocol):
    """What ``BackgroundWriter.snapshot`` holds across a fork (``threading`` locks, conditions)."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


def fork_mode() -> str:
    """The checkpoint fork mode from ``STREAMLEARN_CHECKPOINT_FORK`` (default ``auto``).

    >>> fork_mode() in FORK_MODES
    True
    """
    mode = os.environ.get("STREAMLEARN_CHECKPOINT_FORK", "auto").strip().lower() or "auto"
    if mode not in FORK_MODES:
        raise ValueError(
            f"STREAMLEARN_CHECKPOINT_FORK={mode!r}: use one of {', '.join(FORK_MODES)}"
        )
    return mode


def _lock_free_sha256() -> Callable[[bytes], Any]:
    """CPython's own SHA-256, which takes no lock (OpenSSL's may be held by a parent's thread)."""
    for name in ("_sha2", "_sha256"):  # 3.12+, 3.11
        with contextlib.suppress(ImportError, AttributeError):
            sha256: Callable[[bytes], Any] = importlib.import_module(name).sha256
            return sha256
    return hashlib.sha256


_CHILD_SHA256 = _lock_free_sha256()


def _parent_death_signal() -> Callable[[], object] | None:
    """Linux: a call that makes the calling child die with SIGKILL when its parent dies.

    Looked up in the parent: loading a library in the child could wait on a loader
    lock that a thread of the parent held at the fork.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _close_inherited(keep: int) -> None:
    """Close every descriptor but stdio and ``keep``.

    The child must not hold the state dir's lock (a restarted daemon would find it
    taken), the HTTP port, sockets or sink files, should it outlive its parent.
    """
    try:
        fds: Any = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = range(3, min(os.sysconf("SC_OPEN_MAX"), 65536))
    for fd in fds:
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _child(
    state: dict[str, Any],
    path: Path,
    report: int,
    parent: int,
    hold: Sequence[Lock],
    mask: set[int | signal.Signals],
    death_signal: Callable[[], object] | None,
    pause: float = 0.0,
) -> None:
    """The forked child: pickle ``state`` into ``path``, report on ``report``, exit. Never returns.

    Only this thread exists here. A lock that another thread of the parent held at
    the fork stays locked for ever, so nothing here may wait on one: no logging, no
    stdio, no OpenSSL (CPython's own SHA-256 instead), no writer or store object.
    ``hold`` were taken by this very thread for the fork, so they can be released.
    ``pause``: seconds to sleep halfway through the file (tests kill the daemon meanwhile).
    Whatever happens, the child ends in ``os._exit``: it never returns into the loop.
    """
    status = 1
    try:
        for signum in _CHILD_IGNORES:
            signal.signal(signum, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if death_signal is not None:
            death_signal()
        if os.getppid() != parent:
            raise CheckpointError("the daemon exited before its checkpoint child started")
        gc.disable()  # a collection would walk (and copy) every page of the parent's heap
        for lock in reversed(hold):
            lock.release()
        _close_inherited(report)
        started = time.perf_counter()
        payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        pickled = time.perf_counter() - started
        digest = _CHILD_SHA256(payload).digest()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            _write_all(fd, _HEADER.pack(MAGIC, FORMAT_VERSION, digest, len(payload)))
            body, half = memoryview(payload), len(payload) // 2
            _write_all(fd, body[:half])
            if pause:
                time.sleep(pause)
            _write_all(fd, body[half:])
            os.fsync(fd)
        finally:
            os.close(fd)
        _write_all(report, f"ok {pickled!r}".encode())
        status = 0
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            _write_all(report, f"{type(exc).__name__}: {exc}"[:2000].encode(errors="replace"))
    finally:
        os._exit(status)


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
    right there and handed over as bytes; a bigger one (an ``ARFRegressor``:
    seconds) is pickled by a forked child, whose copy-on-write memory is the loop's
    at that moment, while the loop learns on (``fork``: ``auto``, see
    ``FORK_MODES``; what pickling costs is known from the last checkpoint, at first
    from loading the restored one, for a new model guessed from how much the process
    grew, ``pickle_guess``; what a fork costs, from the last three). Either
    way the same bytes reach the disk through the same steps: checksum, the given
    sync callbacks (sinks' fsync, so a durable checkpoint never points past durable
    sink output), fsync, atomic rename.
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
        syncs: tuple[Any, ...] = (),
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
        self._death_signal = _parent_death_signal() if self.fork != "never" else None
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
        if self._use_fork():
            if child:
                self.wait()  # one child at a time (the loop only checkpoints when idle)
            try:
                job = self._fork(state, tag, hold)
            except OSError as exc:
                log.warning("cannot fork for a checkpoint (%s): pickling it on the loop", exc)
            else:
                self.forked += 1
                self._queue(job)
                return "fork"
        started = time.perf_counter()
        blob = dump(state)
        self.pickle_seconds = time.perf_counter() - started
        self._pickle_measured = True
        self.pickled += 1
        self.submit(blob, tag, framed=False)
        return "inline"

    def submit(self, blob: bytes, tag: Any, *, framed: bool = True) -> None:
        """Queue an encoded state; ``tag`` comes back from ``durable()`` once written.

        ``framed=False``: ``blob`` is ``dump(state)``, framed on the writer thread.
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

    def _use_fork(self) -> bool:
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
        return self.pickle_guess() > fork

    def pickle_guess(self) -> float:
        """Seconds pickling the state is expected to take: the last measured, else a guess.

        The guess (a new model, before its first checkpoint): the small objects the
        process gained since the writer started, at ``PICKLE_GUESS_SECONDS_PER_BLOCK``.
        A fresh tree or forest grows by hundreds of thousands before its first
        checkpoint, and pickling it on the loop would stall learning for a tenth of a
        second and more; a linear model grows by a few thousand.
        """
        if self._pickle_measured:
            return self.pickle_seconds
        grown = max(sys.getallocatedblocks() - self._blocks, 0)
        return grown * PICKLE_GUESS_SECONDS_PER_BLOCK

    def _fork(self, state: dict[str, Any], tag: Any, hold: Sequence[Lock]) -> _Job:
        path = self.store.temporary()
        report, report_child = os.pipe()
        parent = os.getpid()
        for lock in hold:
            lock.acquire()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _CHILD_IGNORES)
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
                _child(
                    state,
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
            blob = job.blob if job.framed else frame(job.blob)
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
            _, status = os.waitpid(job.pid, 0)  # always reaped: no zombie
            gc.unfreeze()
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


def now() -> float:
    """Wall-clock seconds, the unit of every timestamp in the state."""
    return time.time()
