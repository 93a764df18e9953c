"""Starting a partition's learner fast: forked from a server that has imported the daemon.

A learner is a process of its own (its partition's keys learn on their own core). Started
with a fresh interpreter it spends seconds importing the daemon (numpy, River, the Kafka
client) before it reads a record, and on a rebalance that is the pause of every partition
that moves. ``multiprocessing``'s fork server imports them once; each learner is forked from
it, ready. The fork server, not the member, is the learners' parent: each learner watches the
member's process (a pidfd) and exits the moment it ends, SIGKILL included.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
from multiprocessing.context import ForkServerContext
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ctypes import c_double
    from multiprocessing.process import BaseProcess

    from streamlearn.config import Settings

__all__ = ["Learning", "start_learner", "warm_up"]

#: What the fork server imports once, for every learner it forks.
PRELOAD = [
    "streamlearn.scaleout.child",
    "streamlearn.app",
    "streamlearn.loop.daemon",
    "streamlearn.keys.build",
    "streamlearn.sources.kafka",
    "streamlearn.models.registry",
]

_context: ForkServerContext | None = None


def _fork_server() -> ForkServerContext:
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        assert isinstance(context, ForkServerContext)
        context.set_forkserver_preload(PRELOAD)
        _context = context
    return _context


class Learning:
    """A running learner, with ``subprocess.Popen``'s calls: ``poll``, ``wait``, ``kill``."""

    def __init__(self, process: BaseProcess, ready: c_double) -> None:
        self._process = process
        self._ready = ready

    @property
    def ready_at(self) -> float | None:
        """When (``time.monotonic()``, one clock for every process of the host) the learner had
        loaded its checkpoint and opened its partition; None while it starts."""
        moment = float(self._ready.value)
        return moment if moment > 0 else None

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def poll(self) -> int | None:
        """The exit status (negative: killed by that signal), None while it runs."""
        return self._process.exitcode

    def send_signal(self, signum: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, signum)

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired(f"learner {self.pid}", timeout or 0.0)
        return code

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def warm_up() -> None:
    """Start the fork server now (it imports the daemon): not in the first rebalance, where
    the client's network thread would wait on it."""
    from multiprocessing import forkserver

    _fork_server()
    forkserver.ensure_running()


def start_learner(settings: Settings, log_level: str, name: str) -> Learning:
    """Fork a learner of ``settings``' partition from the fork server."""
    from streamlearn.scaleout.child import serve_partition

    context = _fork_server()
    # Shared memory the learner writes once it is ready: how long the take-over took.
    ready = context.Value("d", 0.0, lock=False)
    process = context.Process(
        target=serve_partition, args=(settings, log_level, os.getpid(), ready), name=name
    )
    process.start()
    return Learning(process, ready)
