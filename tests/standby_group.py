"""Instances of one group (``run --standby``) as real processes, and what each says it is.

Used by tests/test_standby_*.py: start an instance on a shared state dir with its own HTTP
port, read its role from ``/metrics`` (``streamlearn_role``), wait for a role, and watch
every pair of polls so that a moment with two active instances is caught.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from streamhelpers import STREAMLEARN, records_learned
from streamlearn.broker import free_port

#: The coordination member's session timeout in the tests: a dead instance is noticed in 3 s.
SESSION_MS = 3000

_ROLE = re.compile(r'^streamlearn_role\{role="(\w+)"\} 1\.0$', re.MULTILINE)
_REFUSALS = re.compile(r"^streamlearn_fencing_refusals_total ([0-9.e+]+)$", re.MULTILINE)


class Instance:
    """One ``run --standby`` process; its log in ``<log_dir>/instance-<n>.log``."""

    def __init__(self, bootstrap: str, topic: str, state: Path, log_dir: Path, number: int) -> None:
        self.port = free_port()
        self.log = log_dir / f"instance-{number}.log"
        with open(self.log, "a") as log:  # the child owns its copy of the descriptor
            self.proc = subprocess.Popen(
                [
                    *STREAMLEARN,
                    "run",
                    f"kafka://{bootstrap}/{topic}?group={topic}",  # a group (and G.active) per test
                    "--standby",
                    "--state-dir",
                    str(state),
                    "--checkpoint-every",
                    "50",
                    "--checkpoint-interval",
                    "0.3",
                    "--metrics-port",
                    str(self.port),
                    "-X",
                    f"session.timeout.ms={SESSION_MS}",
                    "-X",
                    "heartbeat.interval.ms=500",
                    "-X",
                    "max.poll.interval.ms=10000",
                ],
                stderr=log,
                text=True,
                env=dict(os.environ),
            )

    def metrics(self) -> str | None:
        """Its ``/metrics`` text, or None while it does not answer (starting, dead, stopped)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=1) as r:
                return str(r.read().decode())
        except OSError:
            return None

    def role(self) -> str | None:
        """``active`` or ``standby`` as its metrics say, None when it does not answer."""
        text = self.metrics()
        if text is None:
            return None
        found = _ROLE.search(text)
        return found.group(1) if found else None

    def refusals(self) -> float | None:
        text = self.metrics()
        found = _REFUSALS.search(text) if text is not None else None
        return float(found.group(1)) if found else None

    def readyz(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as r:
                return str(r.read().decode())
        except OSError:
            return None

    def predict(self, features: dict[str, float]) -> dict[str, object] | None:
        """Its ``POST /predict`` answer, None when it does not answer 200."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/predict",
            data=json.dumps(features).encode(),
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as r:
                answer: dict[str, object] = json.load(r)
                return answer
        except OSError:
            return None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class RoleWatch:
    """Polls every instance's role (``/metrics`` and ``/readyz``) on a thread; notes each poll
    in which two were active."""

    def __init__(self, instances: Callable[[], list[Instance]]) -> None:
        self._instances = instances
        self.polls = 0
        self.both_active: list[list[int]] = []
        self.active_seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            # An instance counts as active when either its metrics or its /readyz say so.
            active = [
                i.proc.pid
                for i in self._instances()
                if i.role() == "active" or i.readyz() == "ready: active\n"
            ]
            self.polls += 1
            self.active_seen += bool(active)
            if len(active) > 1:
                self.both_active.append(active)
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def wait_for(predicate: Callable[[], object], timeout: float = 60.0, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(step)


def the_active(instances: list[Instance]) -> Instance | None:
    """The one instance whose metrics say active (None: none does right now)."""
    active = [i for i in instances if i.role() == "active"]
    assert len(active) <= 1, f"two instances active: {[i.proc.pid for i in active]}"
    return active[0] if active else None


class LearnedWatch:
    """Polls the newest checkpoint's ``records_learned`` on a thread; notes each step back.

    A checkpoint of an instance that lost the model (a stale owner's) would carry fewer
    records than the new owner's before it: the newest generation must never go back.
    """

    def __init__(self, state: Path) -> None:
        self.state = state
        self.last = -1
        self.backwards: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = records_learned(self.state)
            if now >= 0:
                if now < self.last:
                    self.backwards.append((self.last, now))
                self.last = now
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
