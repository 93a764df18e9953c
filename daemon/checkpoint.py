"""Atomic, checksummed checkpoints of the whole learning state, as generations.

One file per generation holds the model, the source position, the counters and
the metric state together, so a crash can never pair a model with the wrong
position. A write goes to a temporary file, is fsynced, renamed into place, and
the directory is fsynced. The previous generation is kept: a corrupt latest one
falls back to it loudly. An unreadable state never turns silently into an empty
model. The state directory is locked so that exactly one daemon owns a model.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import pickle
import re
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

MAGIC = b"SLCKPT\x00\x01"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">8sI32sQ")  # magic, format version, sha256 of payload, payload size
_NAME = re.compile(r"^gen-(\d{10})\.ckpt$")


class CheckpointError(Exception):
    """No usable checkpoint although one was expected (every generation is corrupt)."""


class StateLocked(Exception):
    """Another process holds the state directory."""


@dataclass(frozen=True, slots=True)
class Loaded:
    """A checkpoint read back: its state, generation and any generations skipped as corrupt."""

    state: dict[str, Any]
    generation: int
    skipped: tuple[str, ...] = ()


def encode(state: dict[str, Any]) -> bytes:
    """Serialise a state with its header and checksum."""
    return frame(dump(state))


def dump(state: dict[str, Any]) -> bytes:
    """The pickled state: the part of ``encode`` that must run where the state is consistent."""
    return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def frame(payload: bytes) -> bytes:
    """A pickled state with its header and checksum: the rest of ``encode``.

    Any thread may do this (``BackgroundWriter`` does): hashlib releases the GIL
    while it hashes, so the checksum costs the learning loop nothing.
    """
    digest = hashlib.sha256(payload).digest()
    return _HEADER.pack(MAGIC, FORMAT_VERSION, digest, len(payload)) + payload


def decode(blob: bytes) -> dict[str, Any]:
    """Check and deserialise a checkpoint; ``CheckpointError`` says what is wrong."""
    if len(blob) < _HEADER.size:
        raise CheckpointError("truncated header")
    magic, version, digest, size = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise CheckpointError("not a streamlearn checkpoint")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"format version {version} is newer than this streamlearn "
            f"understands ({FORMAT_VERSION})"
        )
    payload = blob[_HEADER.size :]
    if len(payload) != size:
        raise CheckpointError(f"truncated: {len(payload)} of {size} bytes")
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError("checksum mismatch")
    state = pickle.loads(payload)
    if not isinstance(state, dict):
        raise CheckpointError("payload is not a state")
    return state


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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

    def __init__(self, directory: str | os.PathLike[str], *, keep: int = 2, lock: bool = True):
        if keep < 2:
            raise ValueError("keep at least 2 generations, so a corrupt latest can fall back")
        self.directory = Path(directory)
        self.keep = keep
        self._lock_file: IO[str] | None = None
        if lock:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CheckpointError(
                    f"cannot create state dir {self.directory}: {exc.strerror}"
                ) from None
            self._lock()
        elif not self.directory.is_dir():
            raise CheckpointError(f"no state dir at {self.directory}")
        self.generation = max(self.generations(), default=0)

    def _lock(self) -> None:
        path = self.directory / "lock"
        handle = open(path, "a+")  # noqa: SIM115 - held for the store's lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                raise
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise StateLocked(
                f"state dir {self.directory} is in use by another streamlearn (pid {owner}); "
                "stop it first or use another --state-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def generations(self) -> list[int]:
        """The generation numbers present, oldest first."""
        found = []
        for entry in os.listdir(self.directory):
            match = _NAME.match(entry)
            if match:
                found.append(int(match.group(1)))
        return sorted(found)

    def path(self, generation: int) -> Path:
        return self.directory / f"gen-{generation:010d}.ckpt"

    def load(self) -> Loaded | None:
        """The newest readable generation; None when the directory has none at all."""
        generations = self.generations()
        if not generations:
            return None
        skipped: list[str] = []
        for generation in reversed(generations):
            path = self.path(generation)
            try:
                state = decode(path.read_bytes())
            except (CheckpointError, pickle.UnpicklingError, EOFError, OSError) as exc:
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
            if skipped:
                log.warning(
                    "LOADED AN OLDER CHECKPOINT (generation %d): newer ones were corrupt: %s",
                    generation,
                    "; ".join(skipped),
                )
            return Loaded(state, generation, tuple(skipped))
        raise CheckpointError(
            f"every checkpoint in {self.directory} is corrupt ({'; '.join(skipped)}); "
            "refusing to start from an empty model: move the directory away or use --reset"
        )

    def save(self, state: dict[str, Any]) -> int:
        """Write the next generation durably; returns its number."""
        return self.write(encode(state))

    def write(self, blob: bytes) -> int:
        """Write an encoded state as the next generation, durably; returns its number."""
        if self._lock_file is None:
            raise CheckpointError("this store was opened read-only")
        generation = self.generation + 1
        final = self.path(generation)
        temporary = final.with_suffix(f".tmp.{os.getpid()}")
        with open(temporary, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        _fsync_dir(self.directory)
        self.generation = generation
        for old in self.generations()[: -self.keep]:
            with contextlib.suppress(FileNotFoundError):
                self.path(old).unlink()
        return generation

    def clear(self) -> None:
        """Remove every generation (``--reset``)."""
        for generation in self.generations():
            self.path(generation).unlink()
        for entry in os.listdir(self.directory):
            if ".tmp." in entry:
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / entry).unlink()
        self.generation = 0

    def close(self) -> None:
        """Release the lock; calling it twice is fine."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


class BackgroundWriter:
    """Writes checkpoints on a thread, so fsync does not hold up learning.

    The loop pickles the state itself (a consistent snapshot, taken between
    batches) and hands the bytes over; the checksum and header are added here
    (``framed=False``). If a newer checkpoint arrives while one is
    being written, the older pending one is dropped: only the latest matters.
    Before each write the given sync callbacks run (sinks' fsync), so a durable
    checkpoint never points past durable sink output. ``durable()`` returns the
    tags of checkpoints that have reached the disk since the last call; the loop
    commits source offsets for those (Kafka consumers are not thread-safe).
    """

    def __init__(self, store: CheckpointStore, syncs: tuple[Any, ...] = ()) -> None:
        self.store = store
        self.syncs = syncs
        self._condition = threading.Condition()
        self._pending: tuple[bytes, Any, bool] | None = None
        self._busy = False
        self._done: list[Any] = []
        self._error: BaseException | None = None
        self._closed = False
        self.write_seconds: list[float] = []
        self._thread = threading.Thread(target=self._work, name="checkpoint-writer", daemon=True)
        self._thread.start()

    def submit(self, blob: bytes, tag: Any, *, framed: bool = True) -> None:
        """Queue an encoded state; ``tag`` comes back from ``durable()`` once written.

        ``framed=False``: ``blob`` is ``dump(state)``, framed on the writer thread.
        """
        with self._condition:
            self._raise_error()
            self._pending = (blob, tag, framed)
            self._condition.notify_all()

    @property
    def idle(self) -> bool:
        """True when nothing is waiting or being written (a new checkpoint goes straight on).

        Also True after a failed write, so that the next ``submit`` raises it.
        """
        with self._condition:
            return (self._pending is None and not self._busy) or self._error is not None

    def durable(self) -> list[Any]:
        """Tags of the checkpoints written since the last call, oldest first."""
        with self._condition:
            self._raise_error()
            done, self._done = self._done, []
        return done

    def wait(self) -> None:
        """Block until nothing is pending or being written."""
        with self._condition:
            while (self._pending is not None or self._busy) and self._error is None:
                self._condition.wait()
            self._raise_error()

    def close(self) -> None:
        """Finish what is pending, then stop the thread; calling it twice is fine."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._thread.join()
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise CheckpointError(f"writing a checkpoint failed: {error}") from error

    def _work(self) -> None:
        while True:
            with self._condition:
                while self._pending is None and not self._closed:
                    self._condition.wait()
                if self._pending is None:
                    return
                blob, tag, framed = self._pending
                self._pending = None
                self._busy = True
            started = time.perf_counter()
            try:
                if not framed:
                    blob = frame(blob)
                for sync in self.syncs:
                    sync()
                generation = self.store.write(blob)
            except BaseException as exc:  # reported to the loop on its next call
                with self._condition:
                    self._error = exc
                    self._busy = False
                    self._condition.notify_all()
                continue
            with self._condition:
                self.write_seconds.append(time.perf_counter() - started)
                del self.write_seconds[:-1000]
                self._done.append((generation, tag))
                self._busy = False
                self._condition.notify_all()


def now() -> float:
    """Wall-clock seconds, the unit of every timestamp in the state."""
    return time.time()
