"""A stop signal that lands at any instruction of the loop's idle wait ends the run.

A Python signal handler runs in the main thread between two of its instructions, wherever
they are. The loop idles on its stop flag between records, so that is where a SIGTERM
usually lands; a ``stop`` that takes a lock the interrupted wait holds waits for it forever
(a learner of a scaled-out group logged "received SIGTERM" and hung in CI). Here a tracer
plays the signal: it calls the daemon's ``stop``, what the SIGTERM handler calls, at the
k-th instruction of the wait's own code, for every k of a wait. The loop runs in a thread
of its own, so a hang fails the test instead of hanging it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from streamlearn.learner import Learner
from streamlearn.loop import Daemon
from streamlearn.loop.daemon import RunOptions
from streamlearn.loop.stopflag import StopFlag
from streamlearn.models.registry import build_model
from streamlearn.records import CsvDecoder
from streamlearn.testing import ListSource


def _idle_daemon() -> Daemon:
    return Daemon(
        ListSource([], follow=True),  # a live source with nothing to read: the loop idles
        CsvDecoder(["x0", "y"]),
        Learner(build_model("sgd", lr=0.01)),
        model_spec="sgd",
        options=RunOptions(idle_sleep=0.001),
    )


def _within_wait(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs a ``wait`` or code it called (a lock's, a condition's)."""
    while frame is not None:
        if frame.f_code.co_name == "wait":
            return True
        frame = frame.f_back
    return False


def _played_at(instruction: int, run: Callable[[], object], stop: Callable[[], None]) -> int:
    """Run ``run`` in a thread of its own, calling ``stop`` at the ``instruction``-th
    instruction it runs inside a ``wait``; the instructions traced. Fails when ``run`` does
    not end within 10 s."""
    traced = 0

    def step(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal traced
        if event == "opcode":
            if traced == instruction:
                stop()  # where a signal handler would run, between these instructions
            traced += 1
        return step

    def enter(frame: FrameType, event: str, arg: Any) -> Any:
        if _within_wait(frame):
            frame.f_trace_opcodes = True
            return step
        return None

    def traced_run() -> None:
        sys.settrace(enter)
        try:
            run()
        finally:
            sys.settrace(None)

    thread = threading.Thread(target=traced_run, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), f"it hung after a stop at instruction {instruction} of a wait"
    assert traced > instruction  # the stop came inside a wait
    return traced


# A wait of the loop on its stop flag runs 22 traced instructions (a threading.Event's,
# with its condition and lock, 124: a stop from its 8th instruction on hung).
@pytest.mark.parametrize("instruction", range(40))
def test_a_stop_at_any_instruction_of_the_idle_wait_ends_the_run(instruction: int) -> None:
    daemon = _idle_daemon()
    _played_at(instruction, daemon.run, daemon.stop)  # stop: what the SIGTERM handler calls
    assert daemon.stopping


@pytest.mark.parametrize("instruction", range(30))
def test_a_set_at_any_instruction_of_a_wait_wakes_it(instruction: int) -> None:
    # The flag the standby group run and the scale-out member wait on as well.
    flag = StopFlag()

    def wait() -> None:
        while not flag.is_set():  # short waits, as the idle loop's: each instruction is met
            flag.wait(0.001)

    _played_at(instruction, wait, flag.set)
