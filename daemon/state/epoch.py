"""Fencing of a shared state dir: the epoch of the instance that owns the single model.

Several instances (``run --standby``) share one state dir; the one the consumer group makes
active takes the model over by raising the dir's epoch (``take_over``). Every generation
it installs afterwards is checked against the epoch on disk, under one lock together with
the rename (``holding``): an instance that lost the model without knowing it (paused past
its session timeout, cut off from the broker) finds a newer epoch there, and its write is
refused (``Fenced``), logged and counted, instead of overwriting the new owner's model.

The epoch file is written like a checkpoint: a temporary file, fsync, atomic rename, fsync
of the directory. Beside it, ``epoch.holder`` names the instance that raised it (for
``inspect``; it fences nothing). The lock is ``flock`` on ``fence.lock`` (never renamed),
so a check and the rename it guards are one step for every process that reaches the
directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from .format import CheckpointError

__all__ = [
    "EPOCH_NAME",
    "FENCE_NAME",
    "HOLDER_NAME",
    "Fence",
    "Fenced",
    "fenced_cause",
    "read_epoch",
    "read_holder",
]

log = logging.getLogger(__name__)

#: The state dir's epoch: the number of takeovers so far, as decimal text.
EPOCH_NAME = "epoch"
#: Held (``flock``) while the epoch is raised or a generation is installed under it.
FENCE_NAME = "fence.lock"
#: JSON naming the instance that raised the epoch: ``epoch``, ``instance``, ``host``, ``pid``,
#: ``since`` (Unix seconds).
HOLDER_NAME = "epoch.holder"


class Fenced(CheckpointError):
    """A newer instance took the model over: this one's checkpoint was refused."""

    def __init__(self, message: str, mine: int, current: int) -> None:
        super().__init__(message)
        #: The epoch this instance wrote under, and the newer one the dir holds.
        self.mine = mine
        self.current = current


def read_epoch(directory: Path) -> int:
    """The epoch of ``directory`` (0 before any takeover).

    >>> import tempfile
    >>> read_epoch(Path(tempfile.mkdtemp()))
    0
    """
    try:
        text = (directory / EPOCH_NAME).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return 0
    try:
        return int(text)
    except ValueError:
        raise CheckpointError(
            f"the epoch file {directory / EPOCH_NAME} is corrupt ({text[:40]!r})"
        ) from None


def read_holder(directory: Path) -> dict[str, object] | None:
    """Who raised the epoch ``directory`` holds now; None when unknown (no record, an
    unreadable one, or one of an earlier epoch: its writer died between the two renames)."""
    try:
        holder = json.loads((directory / HOLDER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(holder, dict) or holder.get("epoch") != read_epoch(directory):
        return None
    return holder


def _instance() -> str:
    # The same id a scaled-out member gives itself (streamlearn.scaleout.member.instance_id).
    return os.environ.get("STREAMLEARN_INSTANCE_ID") or f"{socket.gethostname()}-{os.getpid()}"


def _write(path: Path, text: str) -> None:
    """``text`` into ``path`` by a temporary file, fsync and atomic rename."""
    temporary = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


class Fence:
    """This instance's epoch in a shared state dir, and the check of every write against it.

    >>> import tempfile
    >>> directory = Path(tempfile.mkdtemp())
    >>> first, second = Fence(directory), Fence(directory)
    >>> first.take_over(), second.take_over()
    (1, 2)
    >>> with second.holding():
    ...     pass
    >>> try:
    ...     with first.holding():
    ...         pass
    ... except Fenced as refused:
    ...     refused.mine, refused.current, first.refusals
    (1, 2, 1)
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        #: The epoch this instance took the model over in (0: it has not).
        self.epoch = 0
        #: Writes refused because a newer epoch held the dir.
        self.refusals = 0

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.directory / FENCE_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # held for a rename only: a long wait is a paused holder
                log.warning(
                    "waiting for %s: another instance is installing a checkpoint (an "
                    "instance paused there holds it until it resumes)",
                    self.directory / FENCE_NAME,
                )
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def take_over(self) -> int:
        """Raise the dir's epoch by one, durably, and own it; returns the new epoch.

        From here on a write of any earlier owner is refused.
        """
        with self._locked():
            epoch = read_epoch(self.directory) + 1
            holder = {
                "epoch": epoch,
                "instance": _instance(),
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "since": time.time(),
            }
            try:
                _write(self.directory / EPOCH_NAME, f"{epoch}\n")
                _write(self.directory / HOLDER_NAME, json.dumps(holder) + "\n")
            except OSError as exc:
                raise CheckpointError(
                    f"cannot raise the epoch of {self.directory}: {exc.strerror}"
                ) from exc
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self.epoch = epoch
        log.info("took the model in %s over: epoch %d", self.directory, epoch)
        return epoch

    @contextlib.contextmanager
    def holding(self) -> Iterator[int]:
        """Hold the fence while a generation is installed; ``Fenced`` when a newer epoch rules.

        Yields this instance's epoch. The refusal is logged and counted (``refusals``).
        """
        with self._locked():
            current = read_epoch(self.directory)
            if current > self.epoch:
                self.refusals += 1
                message = (
                    f"checkpoint refused: the model in {self.directory} was taken over by "
                    f"another instance (epoch {current}, this one wrote under {self.epoch}); "
                    "this instance stops learning"
                )
                log.error("%s", message)
                raise Fenced(message, self.epoch, current)
            yield self.epoch


def fenced_cause(exc: BaseException | None) -> Fenced | None:
    """The ``Fenced`` refusal behind ``exc`` (itself, or its cause: the background writer
    reports a failed write as a ``CheckpointError`` caused by it), else None."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, Fenced):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None
