"""One partition's learner: an ordinary keyed run of that partition in its epoch directory.

The group member (``streamlearn.scaleout.member``) starts one per partition it owns
(``serve_partition``, forked by ``streamlearn.scaleout.spawn``) with the run's ``Settings``
for it: the partition, the epoch directory as the state dir, no group (the member commits)
and a loopback HTTP port. SIGTERM stops it as it stops any run: the batch finished, a final
checkpoint, exit 0.

Before each checkpoint is made durable it checks that no newer epoch of its partition
exists; if one does, another instance owns the partition now: it refuses to write, says so,
and exits with ``FENCED_EXIT`` at once.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from streamlearn.scaleout.partitions import epoch_of, newer_epoch

if TYPE_CHECKING:
    from ctypes import c_double

    from streamlearn.config import Settings

__all__ = ["FENCED_EXIT", "Fenced", "main", "run_partition", "serve_partition"]

log = logging.getLogger("streamlearn.scaleout.child")

#: The exit status of a learner that found its partition taken over (fenced).
FENCED_EXIT = 75
#: The exit status of a learner whose member ended without stopping it (SIGKILL).
MEMBER_GONE = 76


class Fenced:
    """A keyed store whose checkpoints are refused once a newer epoch of its partition exists.

    It stands between the checkpointer and the keyed store (``KeyedState``): ``sync`` runs
    before every generation file is written, the last moment to refuse it.
    """

    def __init__(self, keys: Any, directory: Path, partition: int) -> None:
        self._keys = keys
        self.directory = directory
        self.partition = partition
        self.epoch = epoch_of(directory)

    def checkpoint(self) -> Any:
        return self._keys.checkpoint()

    def checkpoint_part(self) -> Any:
        return self._keys.checkpoint_part()

    @property
    def in_flight(self) -> bool:
        return bool(self._keys.in_flight)

    def abandon(self) -> None:
        self._keys.abandon()

    def sync(self) -> None:
        newer = newer_epoch(self.directory)
        if newer is not None:
            log.error(
                "FENCED: partition %d was taken over (epoch %d, ours %d): refusing to write "
                "this checkpoint; dropping the partition",
                self.partition,
                newer,
                self.epoch,
            )
            logging.shutdown()
            os._exit(FENCED_EXIT)  # from the writer's thread too: nothing more may be written
        self._keys.sync()

    def durable(self, seq: int) -> None:
        self._keys.durable(seq)


def serve_partition(settings: Settings, log_level: str, member: int, ready: c_double) -> None:
    """A forked learner's entry: dies with the member (pid ``member``), runs, and exits with
    ``run_partition``'s status; ``ready`` gets the moment its checkpoint is loaded."""
    _die_with(member)

    def loaded() -> None:
        ready.value = time.monotonic()

    sys.exit(run_partition(settings, log_level, loaded))


def _die_with(pid: int) -> None:
    """Exit at once when process ``pid`` (the member) ends, however it ends (SIGKILL too).

    The fork server, not the member, is the learner's parent, so Linux's parent-death signal
    does not say when the member dies: a process file descriptor of the member does.
    """
    try:
        handle = os.pidfd_open(pid)
    except OSError:  # gone already
        os._exit(MEMBER_GONE)

    def watch() -> None:
        select.select([handle], [], [])  # readable once the process has ended
        os._exit(MEMBER_GONE)

    threading.Thread(target=watch, name="streamlearn-member-watch", daemon=True).start()


def main() -> int:
    """Run the partition's learner the pickled ``Settings`` on stdin describe."""
    settings = pickle.load(sys.stdin.buffer)
    return run_partition(settings, os.environ.get("STREAMLEARN_LOG_LEVEL", "info"))


def run_partition(
    settings: Settings, log_level: str, loaded: Callable[[], None] | None = None
) -> int:
    """Learn the partition ``settings`` names until SIGTERM; the exit status. ``loaded`` is
    called once the checkpoint is restored and the partition opened, before the first read."""
    from streamlearn.app import AppError, build
    from streamlearn.cli.group import configure_logging
    from streamlearn.sources.base import SourceError
    from streamlearn.state import CheckpointError

    assert settings.state_dir is not None and settings.partition is not None
    directory = Path(settings.state_dir)
    configure_logging(log_level)
    tag = f"[partition {settings.partition} epoch {epoch_of(directory)}]"
    for handler in logging.getLogger().handlers:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {tag} %(name)s: %(message)s")
        )
    early: list[int] = []

    def starting(signum: int, frame: FrameType | None) -> None:
        early.append(signum)

    signal.signal(signal.SIGTERM, starting)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the member, which stops us
    try:
        app = build(settings, stopping=lambda: bool(early))
    except AppError as exc:
        log.error("%s", exc)
        return 1
    try:
        daemon = app.daemon
        daemon.checkpoints.keys = Fenced(daemon.checkpoints.keys, directory, settings.partition)
        daemon.install_signal_handlers()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if loaded is not None:
            loaded()
        if early:
            daemon.stop()
        daemon.run()
    except (CheckpointError, SourceError, AppError) as exc:
        log.error("%s", exc)
        return 1
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
