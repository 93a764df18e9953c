"""The forked checkpoint child: pickle the copy-on-write state into a file, report, exit.

It runs in a process where only the forking thread exists: a lock another thread
of the parent held at the fork stays locked for ever, so nothing here may wait on
one. Whatever it needs that could take a lock (a C library's function) is looked
up in the parent, before the fork.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import importlib
import os
import pickle
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn, Protocol

from .format import CheckpointError, header
from .key import Sha256, StateKey

#: Signals the child ignores: a Ctrl+C or a service manager's SIGTERM reaches the whole
#: process group, and the parent waits for the child's checkpoint before it exits anyway.
CHILD_IGNORES = frozenset({signal.SIGINT, signal.SIGTERM})

_PR_SET_PDEATHSIG = 1


class Deferred:
    """A part of a checkpoint's state made where the state is pickled: in the forked child
    (``made(True)``, off the loop) or on the loop (``made(False)``); what it makes is
    pickled in its place. A keyed run's keys (``streamlearn.keys.childsave``) are one: the
    child pickles and writes the keys changed, the loop learns on.
    """

    def guess(self) -> float:
        """Seconds making it is expected to cost (the writer's fork decision counts them)."""
        return 0.0

    def locks(self) -> Sequence[Lock]:
        """Locks held across the fork (a thread of the parent may take them meanwhile)."""
        return ()

    def made(self, child: bool) -> object:
        """The value pickled in its place; ``child``: in the forked child (no lock, no log)."""
        raise NotImplementedError

    def forked(self) -> None:
        """In the parent, right after the fork: the child makes it."""


def made_in_place(state: dict[str, Any], child: bool) -> dict[str, Any]:
    """``state`` with each ``Deferred`` value replaced by what it makes."""
    return {
        name: part.made(child) if isinstance(part, Deferred) else part
        for name, part in state.items()
    }


class Lock(Protocol):
    """What ``BackgroundWriter.snapshot`` holds across a fork (``threading`` locks, conditions)."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


def _lock_free_sha256() -> Sha256:
    """CPython's own SHA-256, which takes no lock (OpenSSL's may be held by a parent's thread)."""
    for name in ("_sha2", "_sha256"):  # 3.12+, 3.11
        with contextlib.suppress(ImportError, AttributeError):
            sha256: Sha256 = importlib.import_module(name).sha256
            return sha256
    return hashlib.sha256


#: The SHA-256 the child signs with (``StateKey.mac``): the same digest as ``hashlib.sha256``.
CHILD_SHA256 = _lock_free_sha256()


def parent_death_signal() -> Callable[[], object] | None:
    """Linux: a call that makes the calling child die with SIGKILL when its parent dies.

    Called in the parent: loading a library in the child could wait on a loader
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
    fds: Iterable[int]
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = range(3, min(os.sysconf("SC_OPEN_MAX"), 65536))
    for fd in fds:
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def run_child(
    state: dict[str, Any],
    key: StateKey,
    path: Path,
    report: int,
    parent: int,
    hold: Sequence[Lock],
    mask: set[int | signal.Signals],
    death_signal: Callable[[], object] | None,
    pause: float = 0.0,
) -> NoReturn:
    """Pickle ``state`` into ``path``, signed with ``key``, report on ``report``, exit.

    Never returns. ``report`` receives ``ok SECONDS`` (how long pickling took), or
    what went wrong. No logging, no stdio, no OpenSSL (the HMAC is computed with
    CPython's own SHA-256 instead), no writer or store object: each may take a lock.
    ``hold`` were taken by this very thread for the fork, so they can be released.
    ``pause``: seconds to sleep halfway through the file (tests kill the daemon
    meanwhile). Whatever happens, the child ends in ``os._exit``: it never returns
    into the loop.
    """
    status = 1
    try:
        for signum in CHILD_IGNORES:
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
        payload = pickle.dumps(made_in_place(state, True), protocol=pickle.HIGHEST_PROTOCOL)
        pickled = time.perf_counter() - started
        mac = key.mac(payload, CHILD_SHA256)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            _write_all(fd, header(key, mac, len(payload)))
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
