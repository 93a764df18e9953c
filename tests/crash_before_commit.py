"""Runs the ``streamlearn`` command, killed between a durable checkpoint and its source commit.

``python tests/crash_before_commit.py GENERATION ARGS...`` is ``streamlearn ARGS...`` that
SIGKILLs itself as soon as checkpoint generation GENERATION (or a later one) is durable,
before the source commits it (the Kafka group offsets): the window a crash must be safe in.
The daemon's ``on_durable`` hook is where it dies.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from streamlearn import app


def crash_from(generation: int) -> Callable[[int], None]:
    """An ``on_durable`` hook that kills the process once ``generation`` is durable."""

    def on_durable(written: int) -> None:
        if written >= generation:
            os.kill(os.getpid(), signal.SIGKILL)

    return on_durable


def main() -> None:
    hook = crash_from(int(sys.argv[1]))
    build = app.build

    def build_crashing(*args: Any, **kwargs: Any) -> app.App:
        built = build(*args, **kwargs)
        built.daemon.on_durable = hook
        return built

    app.build = build_crashing  # before the command line imports it
    from streamlearn.cli import main as streamlearn

    sys.argv = ["streamlearn", *sys.argv[2:]]
    streamlearn()


if __name__ == "__main__":
    main()
