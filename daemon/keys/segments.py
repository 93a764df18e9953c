"""Append-only segment files of signed frames: where spilled and checkpointed per-key state lives.

A segment is a 12-byte header, then entries: a 15-byte entry header (magic, kind, name
length, frame length), the entry's name (a key's text, or an index shard's number) and a
frame of :mod:`streamlearn.state.format` (HMAC-SHA256 under the state key). Nothing is ever
overwritten: a new version of a key is a new entry, the old one stays readable for the
checkpoint generations that name it until the segment holding it is collected.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from ..state.format import CheckpointError, frame, verify
from ..state.key import Sha256, StateKey
from ..state.store import fsync_dir

__all__ = [
    "MODEL",
    "SEGMENT_BYTES",
    "SHARD",
    "Ref",
    "SegmentLog",
    "clear_directory",
]

#: Bytes a segment grows to before the next entry goes to a new one.
SEGMENT_BYTES = 64 * 1024 * 1024
#: Entry kinds: the state of one key, one shard of the key index.
MODEL = 1
SHARD = 2

_FILE_MAGIC = b"SLKEYSEG"
_FILE_HEADER = struct.Struct(">8sI")  # magic, version
_VERSION = 1
_ENTRY_MAGIC = b"SLKE"
_ENTRY = struct.Struct(">4sBHQ")  # magic, kind, name length, frame length
#: Segment files read at once (each an open descriptor); the least recently read is closed.
_OPEN_READERS = 64


class Ref(NamedTuple):
    """Where a frame lies: its segment, the offset of its first byte, its length."""

    segment: int
    offset: int
    length: int


def segment_name(number: int) -> str:
    """The file name of segment ``number``.

    >>> segment_name(7)
    'seg-0000000007.keys'
    """
    return f"seg-{number:010d}.keys"


def segment_number(name: str) -> int | None:
    """The number of a segment file's name; None for any other file."""
    if name.startswith("seg-") and name.endswith(".keys") and len(name) == 19:
        digits = name[4:14]
        if digits.isdigit():
            return int(digits)
    return None


class SegmentLog:
    """The segments of one directory: append, read back, account live bytes, collect.

    Parameters
    ----------
    directory
        Holds the segment files (created by the caller).
    key
        Signs every frame written and checks every frame read.
    first
        The number of the first segment this log writes: never one that exists, so that a
        crashed run's torn tail is never appended to.
    live
        Bytes of frames in use per segment (a checkpoint's, when resuming).
    durable
        Checkpoints name these frames: a segment no longer in use is deleted only once the
        ``keep`` newest durable checkpoints were made after it fell out of use
        (``collect``). Else (a temporary spill directory) it is deleted at once.
    segment_bytes
        Size at which the next entry goes to a new segment.
    read_only
        Only read (``inspect``): no append, no deletion.

    Examples
    --------
    >>> import tempfile
    >>> log = SegmentLog(Path(tempfile.mkdtemp()), StateKey(bytes(range(32))), durable=False)
    >>> ref = log.append(MODEL, "store-7", b"payload")
    >>> log.read(ref), log.live
    (b'payload', {1: 67})
    >>> log.retire(ref)  # a newer version replaced it
    >>> log.roll(), log.segments()  # a segment no longer in use is gone
    (None, [])
    """

    def __init__(
        self,
        directory: Path,
        key: StateKey,
        *,
        first: int = 1,
        live: dict[int, int] | None = None,
        durable: bool = True,
        segment_bytes: int = SEGMENT_BYTES,
        read_only: bool = False,
    ) -> None:
        if segment_bytes < 4096:
            raise ValueError("segment_bytes must be at least 4096")
        self.directory = directory
        self.key = key
        self.durable = durable
        self.segment_bytes = segment_bytes
        self.read_only = read_only
        self.live: dict[int, int] = dict(live or {})
        present = self.segments()
        #: The segment appends go to (its file is made at the first append).
        self.current = max([first, *(number + 1 for number in present)])
        self._fd = -1
        self._size = 0
        self._broken = False
        self._readers: OrderedDict[int, int] = OrderedDict()
        self._sizes: dict[int, int] = {}
        #: The checkpoint sequence number a segment falling out of use now is dead since
        #: (the next checkpoint's): set by the owner before and after each checkpoint.
        self.seq = 0
        #: Dead segments -> the first checkpoint sequence number that does not name them.
        self.dead: dict[int, int] = {}
        # Segments written since the last ``sync`` (it runs on the checkpoint writer's
        # thread while the loop appends), and whether a segment file was created meanwhile.
        self._sync_lock = threading.Lock()
        self._unsynced: set[int] = set()
        self._created = False
        #: Bytes appended and copied (compaction) by this process.
        self.bytes_written = 0
        #: The SHA-256 frames are signed and checked with (a forked child's takes no lock).
        self.sha256: Sha256 = hashlib.sha256
        if not read_only:
            for number in present:
                if number not in self.live:
                    self.dead[number] = 0  # named by no checkpoint this log resumed from

    def segments(self) -> list[int]:
        """The segment numbers present on disk, oldest first."""
        found = []
        for entry in os.listdir(self.directory):
            number = segment_number(entry)
            if number is not None:
                found.append(number)
        return sorted(found)

    def path(self, number: int) -> Path:
        return self.directory / segment_name(number)

    # -- writing ------------------------------------------------------------------------------

    def append(self, kind: int, name: str, payload: bytes) -> Ref:
        """Sign ``payload`` and append it as an entry; returns where its frame lies.

        The bytes go to the operating system at once (no buffer in this process), so a
        ``sync`` on another thread covers every entry appended before it.
        """
        return self.append_frame(kind, name, frame(payload, self.key, self.sha256))

    def append_frame(self, kind: int, name: str, framed: bytes) -> Ref:
        """Append an already signed frame (compaction copies one as it is)."""
        if self.read_only:
            raise CheckpointError("this key store was opened read-only")
        encoded = name.encode()
        header = _ENTRY.pack(_ENTRY_MAGIC, kind, len(encoded), len(framed))
        size = len(header) + len(encoded) + len(framed)
        if self._broken or (
            self._fd >= 0
            and self._size > _FILE_HEADER.size
            and self._size + size > self.segment_bytes
        ):
            self.roll()
        if self._fd < 0:
            self._open_current()
        start = self._size
        try:
            _write_all(self._fd, [header, encoded, framed])
        except BaseException:
            self._broken = True  # a partial entry: never append after it
            raise
        self._size += size
        self.bytes_written += size
        segment = self.current
        self.live[segment] = self.live.get(segment, 0) + len(framed)
        with self._sync_lock:
            self._unsynced.add(segment)
        return Ref(segment, start + len(header) + len(encoded), len(framed))

    def _open_current(self) -> None:
        path = self.path(self.current)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, [_FILE_HEADER.pack(_FILE_MAGIC, _VERSION)])
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            raise
        self._fd, self._size = fd, _FILE_HEADER.size
        with self._sync_lock:
            self._created = True

    def roll(self) -> None:
        """Close the current segment; the next append starts a new one."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            closed = self.current
            self.current += 1
            if not self.live.get(closed):
                self._die(closed)
        self._broken = False

    def reserve(self) -> int:
        """A segment number this log has not written to: a forked child's (``skip`` it)."""
        return self.current + 1

    def skip(self, number: int) -> None:
        """Appends go past segment ``number`` from now on (a forked child writes it)."""
        if self.current <= number:
            self.roll()
            self.current = max(self.current, number + 1)

    def in_child(self, number: int, sha256: Sha256) -> None:
        """In a forked checkpoint child: append to segment ``number`` only (never roll), sign
        with ``sha256``; the parent's descriptors are closed already (forgotten here)."""
        self._readers.clear()
        self._fd, self._size, self._broken = -1, 0, False
        self.current = number
        self.segment_bytes = 1 << 62
        self.sha256 = sha256

    def adopt(self, ref: Ref) -> None:
        """The frame at ``ref``, appended by a forked child, is in use."""
        self.live[ref.segment] = self.live.get(ref.segment, 0) + ref.length

    def drop(self, number: int, since: int) -> None:
        """Segment ``number`` (a forked child's) is in use by no checkpoint from ``since``."""
        if not self.live.get(number):
            self.dead.setdefault(number, since)

    def retire(self, ref: Ref) -> None:
        """The frame at ``ref`` is no longer in use (a newer version replaced it)."""
        segment = ref.segment
        left = self.live.get(segment, 0) - ref.length
        if left > 0:
            self.live[segment] = left
            return
        self.live.pop(segment, None)
        if segment != self.current:
            self._die(segment)

    def _die(self, segment: int) -> None:
        if self.durable:
            self.dead[segment] = self.seq
        else:
            self._delete(segment)

    def collect(self, safe_seq: int) -> list[int]:
        """Delete the dead segments no kept checkpoint names: dead since ``safe_seq`` or before.

        Returns the segments deleted.
        """
        gone = [number for number, since in self.dead.items() if since <= safe_seq]
        for number in gone:
            del self.dead[number]
            self._delete(number)
        return gone

    def _delete(self, segment: int) -> None:
        if self.read_only:
            return
        self._sizes.pop(segment, None)
        reader = self._readers.pop(segment, None)
        if reader is not None:
            os.close(reader)
        with contextlib.suppress(FileNotFoundError):
            self.path(segment).unlink()

    def sync(self) -> None:
        """Make every entry appended so far durable: fsync the segments written since the
        last call, then the directory when a segment file was created.

        Safe on the checkpoint writer's thread while the loop appends.
        """
        with self._sync_lock:
            segments, self._unsynced = self._unsynced, set()
            created, self._created = self._created, False
        for segment in sorted(segments):
            try:
                fd = os.open(self.path(segment), os.O_RDONLY)
            except FileNotFoundError:
                continue  # collected meanwhile: nothing names it
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if created:
            fsync_dir(self.directory)

    # -- reading ------------------------------------------------------------------------------

    def read(self, ref: Ref) -> bytes:
        """The payload of the frame at ``ref``, its signature checked (``CheckpointError``)."""
        return verify(self.read_frame(ref), self.key, sha256=self.sha256)

    def read_frame(self, ref: Ref) -> bytes:
        """The frame at ``ref`` as it lies on disk, unchecked."""
        fd = self._reader(ref.segment)
        blob = os.pread(fd, ref.length, ref.offset)
        if len(blob) != ref.length:
            raise CheckpointError(
                f"{segment_name(ref.segment)} is truncated: {len(blob)} of {ref.length} bytes "
                f"at offset {ref.offset}"
            )
        return blob

    def _reader(self, segment: int) -> int:
        fd = self._readers.get(segment)
        if fd is not None:
            self._readers.move_to_end(segment)
            return fd
        try:
            fd = os.open(self.path(segment), os.O_RDONLY)
        except FileNotFoundError:
            raise CheckpointError(
                f"{self.path(segment)} is missing: the keys' state is incomplete"
            ) from None
        self._readers[segment] = fd
        while len(self._readers) > _OPEN_READERS:
            os.close(self._readers.popitem(last=False)[1])
        return fd

    def entries(self, segment: int) -> Iterator[tuple[int, str, Ref]]:
        """The entries of a segment, in order: (kind, name, where its frame lies).

        Stops at the first entry that is not whole (a crashed writer's torn tail).
        """
        with open(self.path(segment), "rb") as handle:
            head = handle.read(_FILE_HEADER.size)
            if len(head) < _FILE_HEADER.size or head[:8] != _FILE_MAGIC:
                return
            offset = _FILE_HEADER.size
            size = os.fstat(handle.fileno()).st_size
            while offset + _ENTRY.size <= size:
                handle.seek(offset)
                magic, kind, name_length, length = _ENTRY.unpack(handle.read(_ENTRY.size))
                start = offset + _ENTRY.size + name_length
                if magic != _ENTRY_MAGIC or start + length > size:
                    return
                name = handle.read(name_length).decode(errors="replace")
                yield kind, name, Ref(segment, start, length)
                offset = start + length

    def size(self, segment: int) -> int:
        """Bytes of a segment file on disk (0 when it is gone)."""
        if segment == self.current and self._fd >= 0:
            return self._size
        size = self._sizes.get(segment)
        if size is None:  # a closed segment never grows: looked up once
            try:
                size = os.stat(self.path(segment)).st_size
            except FileNotFoundError:
                return 0
            self._sizes[segment] = size
        return size

    def sparse(self, ratio: float = 0.5) -> list[int]:
        """Closed segments whose frames in use are under ``ratio`` of their size, emptiest first."""
        found = []
        for segment, live in self.live.items():
            if segment != self.current:
                size = self.size(segment)
                if size and live < ratio * size:
                    found.append((live, segment))
        return [segment for _, segment in sorted(found)]

    def close(self) -> None:
        """Close every descriptor; calling it twice is fine."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        while self._readers:
            os.close(self._readers.popitem()[1])


def _write_all(fd: int, parts: list[bytes]) -> None:
    """Write ``parts`` in full (``os.writev`` may write less than asked, e.g. near ENOSPC)."""
    views = [memoryview(part) for part in parts if part]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


def clear_directory(directory: str | os.PathLike[str]) -> int:
    """Remove every segment of a keys directory (``--reset``); returns how many."""
    path = Path(directory)
    if not path.is_dir():
        return 0
    removed = 0
    for entry in os.listdir(path):
        if segment_number(entry) is not None:
            (path / entry).unlink()
            removed += 1
    return removed
