"""Instances of one group (``run --standby``) as real processes, and what each says it is.

Used by tests/test_standby_*.py: start an instance on a shared state dir with its own HTTP
port (a ``Group`` of them, killed at the end), read its role from ``/metrics``
(``streamlearn_role``), wait for a role, and watch every pair of polls so that a moment with
two active instances is caught; produce a CSV of rows to the topic, and check the final
model against one replay of it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from streamhelpers import (
    STREAMLEARN,
    cli,
    inspect_json,
    make_regression,
    records_learned,
    write_csv,
)
from streamlearn.broker import free_port
from streamlearn.producers.replay import produce

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

    def _get(self, path: str) -> str | None:
        """The text at ``path``, or None while it does not answer (starting, dead, stopped)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=1) as r:
                return str(r.read().decode())
        except OSError:
            return None

    def metrics(self) -> str | None:
        """Its ``/metrics`` text, or None while it does not answer."""
        return self._get("/metrics")

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
        return self._get("/readyz")

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

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL it, whatever is left of it (a SIGSTOPped process ends too)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Group:
    """The instances a test starts on one topic and state dir, numbered in order; each is
    killed when the ``with`` block ends. ``instances`` are the ones still counted (a test
    removes the one it killed)."""

    def __init__(self, bootstrap: str, topic: str, state: Path, log_dir: Path) -> None:
        self.bootstrap, self.topic, self.state, self.log_dir = bootstrap, topic, state, log_dir
        self.instances: list[Instance] = []
        self._started: list[Instance] = []

    def start(self) -> Instance:
        """One more instance (``instance-<n>.log``)."""
        instance = Instance(
            self.bootstrap, self.topic, self.state, self.log_dir, len(self._started)
        )
        self._started.append(instance)
        self.instances.append(instance)
        return instance

    def start_pair(self) -> tuple[Instance, Instance]:
        """An instance, once active, then a second one, once standby."""
        first = self.start()
        wait_for(lambda: first.role() == "active")
        second = self.start()
        wait_for(lambda: second.role() == "standby")
        return first, second

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        for instance in self._started:
            instance.kill()
        if kind is not None:  # a failed test: what each instance said, in pytest's report
            for instance in self._started:
                print(f"--- {instance.log.name}, its end ---\n{instance.log_text()[-4000:]}")


class _Poller:
    """Calls ``poll`` every 50 ms on a thread of its own, from construction until ``stop``
    (or the end of its ``with`` block)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def poll(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class RoleWatch(_Poller):
    """Polls every instance's role (``/metrics`` and ``/readyz``) on a thread; notes each poll
    in which two were active."""

    def __init__(self, instances: Callable[[], list[Instance]]) -> None:
        self._instances = instances
        self.polls = 0
        self.both_active: list[list[int]] = []
        self.active_seen = 0
        super().__init__()

    def poll(self) -> None:
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


class LearnedWatch(_Poller):
    """Polls the newest checkpoint's ``records_learned`` on a thread; notes each step back.

    A checkpoint of an instance that lost the model (a stale owner's) would carry fewer
    records than the new owner's before it: the newest generation must never go back.
    """

    def __init__(self, state: Path) -> None:
        self.state = state
        self.last = -1
        self.backwards: list[tuple[int, int]] = []
        super().__init__()

    def poll(self) -> None:
        now = records_learned(self.state)
        if now >= 0:
            if now < self.last:
                self.backwards.append((self.last, now))
            self.last = now


def regression_csv(folder: Path, rows: int, seed: int) -> Path:
    """``folder/rows.csv``: ``rows`` regression rows of three features."""
    X, y, _ = make_regression(rows, d=3, seed=seed)
    path = folder / "rows.csv"
    write_csv(path, X, y)
    return path


def producer(rows_csv: Path, bootstrap: str, topic: str, rate: float) -> threading.Thread:
    """A thread (not started) that produces ``rows_csv`` to ``topic`` at ``rate`` rows/s."""
    return threading.Thread(
        target=produce, args=(rows_csv, bootstrap, topic), kwargs={"rate": rate}
    )


def assert_one_replay(state: Path, rows_csv: Path, rows: int) -> dict[str, Any]:
    """The state's model learned the ``rows`` rows of the topic's one partition once: it is
    one ``replay`` of ``rows_csv`` (weights and intercept to 1e-12). Returns its summary."""
    summary = inspect_json(state)
    assert summary["records_learned"] == rows
    assert summary["position"]["next_offsets"] == {"0": rows}
    replay = json.loads(cli("replay", str(rows_csv), "--inspect-json").stdout)
    for name, value in replay["weights"].items():
        assert abs(summary["weights"][name] - value) < 1e-12
    assert abs(summary["intercept"] - replay["intercept"]) < 1e-12
    return summary
