"""The temporary spill directory of a run without a state dir: made, locked, removed at exit.

It holds a ``lock`` file, locked (``flock``) while the process lives. ``close`` and an
``atexit`` hook remove it; a directory left behind by a process killed with SIGKILL (its
lock free again) is removed by the next run that makes one.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO

__all__ = ["PREFIX", "SpillDir"]

log = logging.getLogger(__name__)

#: The name every temporary spill directory starts with.
PREFIX = "streamlearn-keys-"


class SpillDir:
    """A temporary directory for spilled keys, removed by ``close`` or at exit.

    ``parent``: where to make it (the system's temporary directory by default).

    >>> spill = SpillDir()
    >>> spill.path.name.startswith(PREFIX), spill.path.is_dir()
    (True, True)
    >>> spill.close()
    >>> spill.path.exists()
    False
    """

    def __init__(self, parent: str | os.PathLike[str] | None = None) -> None:
        base = Path(parent) if parent is not None else Path(tempfile.gettempdir())
        remove_abandoned(base)
        # Locked under a name no other run looks at, then renamed: a run cleaning up never
        # sees the directory before its lock is held.
        making = Path(tempfile.mkdtemp(prefix=f".{PREFIX}", dir=base))
        self._lock: IO[str] | None = open(making / "lock", "w")  # noqa: SIM115 - held
        fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.path = base / f"{PREFIX}{os.getpid()}-{making.name[len(PREFIX) + 1 :]}"
        os.rename(making, self.path)
        atexit.register(self.close)

    def close(self) -> None:
        """Remove the directory and all in it; calling it twice is fine."""
        if self._lock is None:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        self._lock.close()
        self._lock = None
        atexit.unregister(self.close)


def remove_abandoned(base: Path) -> list[Path]:
    """Remove spill directories under ``base`` whose process is gone (their lock is free)."""
    removed: list[Path] = []
    try:
        entries = [entry for entry in base.iterdir() if entry.name.startswith(PREFIX)]
    except OSError:
        return removed
    for entry in entries:
        try:
            handle = open(entry / "lock")  # noqa: SIM115 - closed below
        except OSError:
            continue  # not ours, or being made right now
        with contextlib.closing(handle):
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                    continue  # a live process holds it
                raise
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    if removed:
        log.info("removed %d spill directories of runs that were killed", len(removed))
    return removed
