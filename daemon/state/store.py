"""The state directory: checkpoint generations written atomically, under an exclusive lock.

One file per generation holds the model, the source position, the counters and
the metric state together, so a crash can never pair a model with the wrong
position. A write goes to a temporary file, is fsynced, renamed into place, and
the directory is fsynced. The previous generation is kept: a corrupt latest one
falls back to it loudly. An unreadable state never turns silently into an empty
model. The directory is locked so that exactly one daemon owns a model; deleted
under a running daemon, it is recreated and locked again. Until the
first generation exists, the state a run started from (``start.ckpt``, generation 0)
is what a restart resumes: it holds the sinks' sizes before any record was written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import logging
import os
import pickle
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .epoch import Fence, Fenced
from .format import CheckpointError, UnsignedCheckpoint, decode, encode
from .key import KEY_NAME, KEY_VARIABLE, StateKey, check_owner, disk_full, state_key

log = logging.getLogger(__name__)

_NAME = re.compile(r"^gen-(\d{10})\.ckpt$")
#: Where a run starts again while no generation exists (no checkpoint of learned records).
START_NAME = "start.ckpt"


class StateLocked(Exception):
    """Another process holds the state directory."""

    def __init__(self, message: str, owner: str) -> None:
        super().__init__(message)
        #: The pid the lock file names (``unknown`` when it names none).
        self.owner = owner


class StateLost(CheckpointError):
    """The state directory was deleted under this daemon and another process locked the new one.

    This daemon no longer owns the model: it stops without writing a checkpoint.
    """


@dataclass(frozen=True, slots=True)
class Loaded:
    """A checkpoint read back: its state, generation and any generations skipped as corrupt."""

    state: dict[str, Any]
    generation: int
    skipped: tuple[str, ...] = ()


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in directory ``path`` durable (fsync of the directory)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock_directory(directory: Path, shared: bool = False) -> IO[str]:
    """Take the exclusive lock on ``directory`` (its ``lock`` file, which names the owner's pid).

    The lock is held as long as the returned file stays open; ``StateLocked`` when
    another process holds it. ``shared``: a shared lock, which the instances of one
    group hold together (their epoch fences the writes), and a plain run's refuses.
    """
    handle = open(directory / "lock", "a+")  # noqa: SIM115 - held for the store's lifetime
    try:
        fcntl.flock(handle.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
            raise
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        message = _locked_message(directory, shared, handle, owner)
        handle.close()
        raise StateLocked(message, owner) from None
    if shared:
        return handle
    try:
        os.ftruncate(handle.fileno(), 0)
        os.pwrite(handle.fileno(), f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        # The pid only helps whoever finds the directory locked; a full disk (the daemon
        # waits for space later) must not stop it from taking the lock.
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            handle.close()
            raise
    return handle


def _locked_message(directory: Path, shared: bool, holder: IO[str], owner: str) -> str:
    """Why ``directory`` is locked, and what to do: instances of one model share it with
    ``--standby`` (a shared lock, which names no pid: ``owner`` may be an old run's)."""
    try:  # a shared lock taken too: the holders are --standby instances
        fcntl.flock(holder.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        if shared:
            return (
                f"state dir {directory} is in use by a streamlearn without --standby (pid "
                f"{owner}): stop it, or start every instance of the group with --standby"
            )
        return (
            f"state dir {directory} is in use by another streamlearn (pid {owner}); stop it "
            "first or use another --state-dir (instances of one model: each with --standby)"
        )
    return (
        f"state dir {directory} is in use by the --standby instances of a group: start this "
        "one with --standby (and their ?group=) to join them, or use another --state-dir"
    )


def _identity(handle: IO[str]) -> tuple[int, int]:
    """Device and inode of an open file: the lock file's say whether the directory is ours."""
    status = os.fstat(handle.fileno())
    return status.st_dev, status.st_ino


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
    trust
        Read a directory (and key) another user owns (``inspect --trust``); else
        ``NotOwned`` for a read-only store of such a directory.
    unsigned
        Also load checkpoints of format 1, which are not signed (``streamlearn sign``).
    shared
        Lock the directory shared with other instances of one group (``run --standby``):
        only the one holding the newest epoch (``fence``) may install a generation.

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

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        keep: int = 2,
        lock: bool = True,
        trust: bool = False,
        unsigned: bool = False,
        shared: bool = False,
    ) -> None:
        if keep < 2:
            raise ValueError("keep at least 2 generations, so a corrupt latest can fall back")
        self.directory = Path(directory)
        self.keep = keep
        self._lock_file: IO[str] | None = None
        self._lock_identity = (0, 0)
        self._shared = shared
        #: Set by the instance that took the model over: each install is checked against it.
        self.fence: Fence | None = None
        # Taken by the loop and the checkpoint writer's thread to check the directory.
        self._keeping = threading.Lock()
        if lock:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CheckpointError(
                    f"cannot create state dir {self.directory}: {exc.strerror}"
                ) from None
            try:
                self._lock_file = _lock_directory(self.directory, shared)
            except OSError as exc:
                raise CheckpointError(
                    f"cannot lock state dir {self.directory}: {exc.strerror}"
                ) from None
            self._lock_identity = _identity(self._lock_file)
            # Half-written files of a writer that died (SIGKILL mid-write): never a generation.
            # (Not in a shared dir: another instance may be writing one.)
            if not shared:
                self._remove_temporaries()
        elif not self.directory.is_dir():
            raise CheckpointError(f"no state dir at {self.directory}")
        else:
            check_owner(self.directory, trust=trust)
        #: The key checkpoints are signed and checked with (made at first use; None:
        #: a read-only store of a directory without one).
        self.key = state_key(self.directory, create=lock, trust=trust)
        #: A key made on a full disk is not in its file yet: written before the first
        #: checkpoint signed with it (``_writable``).
        self._key_unwritten = (
            lock
            and self.key is not None
            and self.key.origin != KEY_VARIABLE
            and not (self.directory / KEY_NAME).exists()
        )
        self.unsigned = unsigned
        self.generation = max(self.generations(), default=0)
        self._temporaries = itertools.count(1)
        #: Seconds ``load`` took to check and unpickle the generation it returned (None:
        #: nothing loaded): the first hint of what pickling this state costs.
        self.load_seconds: float | None = None

    def generations(self) -> list[int]:
        """The generation numbers present, oldest first."""
        found = []
        for entry in os.listdir(self.directory):
            match = _NAME.match(entry)
            if match:
                found.append(int(match.group(1)))
        return sorted(found)

    def path(self, generation: int) -> Path:
        """The file of ``generation`` (present or not)."""
        return self.directory / f"gen-{generation:010d}.ckpt"

    def load(self, *, start: bool = False) -> Loaded | None:
        """The newest readable generation; None when the directory has none at all.

        ``start``: without a generation, the state the last run started from
        (generation 0), which a restarting daemon resumes; readers of what was
        learned (``inspect``, reports) leave it out.
        """
        generations = self.generations()
        if not generations:
            return self._load_start() if start else None
        skipped: list[str] = []
        unsigned = False
        for generation in reversed(generations):
            path = self.path(generation)
            started = time.perf_counter()
            try:
                state = decode(path.read_bytes(), self.key, unsigned=self.unsigned)
            except (CheckpointError, pickle.UnpicklingError, EOFError, OSError) as exc:
                unsigned = unsigned or isinstance(exc, UnsignedCheckpoint)
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
        if unsigned:
            raise UnsignedCheckpoint(
                f"the checkpoints in {self.directory} are not signed (streamlearn before it "
                "signed them wrote them, or someone else did); if you trust them, sign them "
                f"once with `streamlearn sign {self.directory}`"
            )
        raise CheckpointError(
            f"every checkpoint in {self.directory} is corrupt ({'; '.join(skipped)}); "
            "refusing to start from an empty model: move the directory away or use --reset"
        )

    def _load_start(self) -> Loaded | None:
        path = self.directory / START_NAME
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            state = decode(blob, self.key, unsigned=self.unsigned)
        except (CheckpointError, pickle.UnpicklingError, EOFError) as exc:
            raise CheckpointError(
                f"the start state {path} is corrupt ({exc}); refusing to guess what the "
                "sinks held: move the directory away or use --reset"
            ) from None
        return Loaded(state, 0)

    def write_start(self, blob: bytes) -> None:
        """Write the encoded state a run starts from, durably, as generation 0.

        Written before the run hands its first record to a sink, so that a restart
        before the first generation cuts the sinks back to their sizes at the start
        (nothing in them twice). The first generation replaces it.

        >>> import tempfile
        >>> store = CheckpointStore(tempfile.mkdtemp())
        >>> store.write_start(store.encode({"records_learned": 0}))
        >>> store.load() is None
        True
        >>> loaded = store.load(start=True)
        >>> loaded.generation, loaded.state
        (0, {'records_learned': 0})
        >>> store.save({"records_learned": 3}), store.load(start=True).generation
        (1, 1)
        >>> store.close()
        """
        self._writable()
        temporary = self._write_temporary(blob)
        with self._fenced(temporary):
            os.replace(temporary, self.directory / START_NAME)
        fsync_dir(self.directory)  # outside the fence: see _fenced

    def save(self, state: dict[str, Any]) -> int:
        """Write the next generation durably; returns its number."""
        return self.write(self.encode(state))

    @property
    def signing_key(self) -> StateKey:
        """The key this store signs with; ``CheckpointError`` for a store that has none."""
        if self.key is None:
            raise CheckpointError(f"no state key for {self.directory}: it was opened read-only")
        return self.key

    def encode(self, state: dict[str, Any]) -> bytes:
        """``state`` as a checkpoint file's bytes, signed with this store's key."""
        return encode(state, self.signing_key)

    def write(self, blob: bytes) -> int:
        """Write an encoded state as the next generation, durably; returns its number."""
        self._writable()
        return self.install(self._write_temporary(blob))

    def _write_temporary(self, blob: bytes) -> Path:
        """``blob`` in a new, fsynced temporary file of the state directory."""
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
        return temporary

    def temporary(self) -> Path:
        """A new path in the state directory for a checkpoint being written, to ``install``."""
        self._writable()
        return self.directory / f"next.tmp.{os.getpid()}.{next(self._temporaries)}"

    def install(self, temporary: Path) -> int:
        """Make a written and fsynced file the next generation, durably; returns its number.

        The rename is atomic and the directory is fsynced after it, so a crash
        leaves either the previous generations or these too, never a torn file.
        """
        self._writable()
        with self._fenced(temporary):
            if self.fence is not None:  # an earlier owner's generations are on disk too
                self.generation = max([self.generation, *self.generations()])
            generation = self.generation + 1
            os.replace(temporary, self.path(generation))
        fsync_dir(self.directory)  # outside the fence: see _fenced
        self.generation = generation
        stale = [self.path(old) for old in self.generations()[: -self.keep]]
        for old_path in [self.directory / START_NAME, *stale]:
            with contextlib.suppress(FileNotFoundError):
                old_path.unlink()
        return generation

    def take_over(self) -> int:
        """Own the model of a shared dir: raise its epoch (``Fence``), so that every earlier
        owner's installs are refused from now on; returns the new epoch."""
        self.fence = Fence(self.directory)
        epoch = self.fence.take_over()
        # Files the earlier owners were writing: none of them can be installed any more.
        for entry in os.listdir(self.directory):
            if entry.startswith("next.tmp."):
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / entry).unlink()
        return epoch

    @contextlib.contextmanager
    def _fenced(self, temporary: Path) -> Iterator[None]:
        """Hold the fence (if any) across an install's check and rename, not its fsync (an owner
        paused there must not block a takeover); a refused one's file is removed."""
        if self.fence is None:
            yield
            return
        try:
            with self.fence.holding():
                yield
        except Fenced:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise

    def _writable(self) -> None:
        if self._lock_file is None:
            raise CheckpointError("this store was opened read-only")
        self.keep_directory()
        if self._key_unwritten:
            self._write_key()

    def _write_key(self) -> None:
        """Write the key made on a full disk, before the first checkpoint signed with it.

        ``OSError`` while the disk is still full, as a checkpoint's own write would: the
        loop pauses and tries again.
        """
        assert self.key is not None
        with self._keeping:
            try:
                self.key.keep_in(self.directory)
            except CheckpointError as exc:
                error = disk_full(exc)
                if error is None:
                    raise
                raise error from None
            self._key_unwritten = False

    def keep_directory(self) -> None:
        """Recreate the state directory and lock it again if it was deleted or replaced.

        Its lock file is no longer the one this store locked (another inode, or none):
        someone removed the directory under the running daemon. Said in one line; the
        next checkpoint goes to the new directory, and its lock stops a second daemon.
        ``StateLost`` when another process took the new directory's lock first.
        """
        with self._keeping:
            if self._lock_file is None:
                return
            try:
                now = os.stat(self.directory / "lock")
            except OSError:
                now = None
            if now is not None and (now.st_dev, now.st_ino) == self._lock_identity:
                return
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                handle = _lock_directory(self.directory, self._shared)
            except StateLocked as exc:
                raise StateLost(
                    f"state dir {self.directory} was deleted while this daemon ran, and another "
                    f"streamlearn (pid {exc.owner}) holds it now: stopping without a checkpoint"
                ) from None
            except OSError as exc:
                raise CheckpointError(
                    f"state dir {self.directory} was deleted and cannot be recreated: "
                    f"{exc.strerror}"
                ) from None
            if self.key is not None:
                self.key.keep_in(self.directory)
            log.warning(
                "state dir %s was deleted while running: recreated and locked again; "
                "the next checkpoint goes there",
                self.directory,
            )
            self._lock_file.close()
            self._lock_file, self._lock_identity = handle, _identity(handle)
            fsync_dir(self.directory.parent)

    def clear(self) -> None:
        """Remove every generation (``--reset``)."""
        for generation in self.generations():
            self.path(generation).unlink()
        with contextlib.suppress(FileNotFoundError):
            (self.directory / START_NAME).unlink()
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
