"""A file source's saved position: the file's identity and the offset in it.

The checkpoint names the file read by device and inode, by a checksum of its first
bytes and by a checksum of the last line before the offset, so that a resume refuses
another file (even one with the same first KiB) and finds a file that was renamed
away (rotated) while the daemon was down.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from streamlearn.sources.base import PositionMismatch

log = logging.getLogger(__name__)

#: How many leading bytes identify a file (enough to cover a CSV header and a row).
FINGERPRINT_BYTES = 1024
#: At most this much of the last line before an offset is checksummed.
LINE_BYTES = 4096


def checksum(data: bytes) -> str:
    """A short hex checksum of ``data`` (128 bits of SHA-256).

    >>> checksum(b"")
    'e3b0c44298fc1c149afbf4c8996fb924'
    """
    return hashlib.sha256(data).hexdigest()[:32]


def fingerprint(fd: int, length: int) -> str:
    """The checksum of the first ``length`` bytes of the open file ``fd``."""
    return checksum(os.pread(fd, length, 0))


def renamed_away(path: Path, saved: Mapping[str, Any]) -> bool:
    """True when the file ``saved`` was read from is no longer the one at ``path``."""
    if saved.get("device") is None or saved.get("inode") is None:
        return False
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return True
    return (current.st_dev, current.st_ino) != (saved["device"], saved["inode"])


def find_by_identity(directory: Path, device: int, inode: int) -> Path | None:
    """The regular file in ``directory`` with this device and inode, if there is one.

    Rename rotation (``mv events.csv events.csv.1``) keeps a file's inode: this is
    how a resumed source finds the file its checkpoint was reading.
    """
    try:
        entries = os.scandir(directory)
    except OSError:
        return None
    with entries:
        for entry in entries:
            try:
                if (
                    entry.inode() == inode
                    and entry.is_file(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_dev == device
                ):
                    return Path(entry.path)
            except OSError:  # removed while we looked
                continue
    return None


def last_line(fd: int, offset: int) -> bytes:
    """The last line before ``offset`` in the open file ``fd``, newline included.

    At most its last ``LINE_BYTES``; inside an over-long line, its part before ``offset``.

    >>> import tempfile
    >>> with tempfile.TemporaryFile() as handle:
    ...     _ = handle.write(b"a,y\\n1,2\\n3,4\\n")
    ...     handle.flush()
    ...     [last_line(handle.fileno(), offset) for offset in (8, 10, 0)]
    [b'1,2\\n', b'3,', b'']
    """
    start = max(0, offset - LINE_BYTES)
    data = os.pread(fd, offset - start, start)
    return data[data.rfind(b"\n", 0, len(data) - 1) + 1 :]


def holds(fd: int, size: int, saved: Mapping[str, Any]) -> bool:
    """True when the open file ``fd`` (``size`` bytes) holds the position ``saved``.

    Its first bytes have the saved fingerprint and the last line before the offset the
    saved checksum (``tail``). A checkpoint written before ``tail`` was saved: a line
    ends at the offset (or the file does, or the offset is inside an over-long line).
    """
    offset = int(saved["offset"])
    length = int(saved.get("fingerprint_bytes", 0))
    if size < length or size < offset or fingerprint(fd, length) != saved.get("fingerprint"):
        return False
    if "tail" in saved:
        return checksum(last_line(fd, offset)) == saved["tail"]
    if offset in (0, size) or saved.get("discarding"):
        return True
    return os.pread(fd, 1, offset - 1) == b"\n"


def resume_offset(
    handle: IO[bytes],
    status: os.stat_result,
    path: Path,
    saved: Mapping[str, Any],
    *,
    truncated: bool,
) -> int:
    """Where to go on reading the open file ``handle`` (``status``) followed at ``path``.

    The saved offset when the file holds the position ``saved``. ``truncated`` (following):
    the file of the saved inode that does not hold it was truncated since (copy-truncate)
    and is read from its start, as a running follower reads it. Else ``PositionMismatch``.
    """
    offset = int(saved["offset"])
    if holds(handle.fileno(), status.st_size, saved):
        return offset
    if truncated and (status.st_dev, status.st_ino) == (saved.get("device"), saved.get("inode")):
        log.warning(
            "%s was truncated (copy-truncate) since the checkpoint: the bytes before byte %d "
            "changed; reading it from the start",
            handle.name,
            offset,
        )
        return 0
    raise PositionMismatch(
        f"{path} is not the file this state was learned from "
        f"(the checkpoint holds {saved.get('path')} up to byte {offset}); "
        "use --reset to start over with a fresh model, or point --state-dir elsewhere"
    )


def saved_position(
    path: Path,
    fd: int | None,
    stat: os.stat_result | None,
    offset: int,
    *,
    discarding: bool,
    draining: bool,
) -> dict[str, Any]:
    """The snapshot of a file source reading the open file ``fd`` (None: none yet) at ``offset``.

    JSON: ``path`` is the path followed; ``device`` and ``inode`` the file read (another
    file, renamed away, while ``draining``); ``discarding``: the offset is inside an
    over-long line whose head already went to the dead letters, and a resume skips its rest.
    """
    length = min(FINGERPRINT_BYTES, max(offset, 0)) if fd is not None else 0
    return {
        "kind": "file",
        "path": str(path),
        "device": stat.st_dev if stat is not None else None,
        "inode": stat.st_ino if stat is not None else None,
        "fingerprint_bytes": length,
        "fingerprint": fingerprint(fd, length) if fd is not None else checksum(b""),
        "tail": checksum(last_line(fd, offset) if fd is not None else b""),
        "offset": offset,
        "discarding": discarding,
        "draining": draining,
    }
