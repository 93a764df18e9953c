"""Which file a saved position belongs to: its inode, a checksum of its first bytes.

A file source's checkpoint names the file it read by device and inode and by a
checksum of its first bytes, so that a resume refuses another file, and finds a
file that was renamed away (rotated) while the daemon was down.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: How many leading bytes identify a file (enough to cover a CSV header and a row).
FINGERPRINT_BYTES = 1024


def checksum(data: bytes) -> str:
    """A short hex checksum of ``data`` (128 bits of SHA-256).

    >>> checksum(b"")
    'e3b0c44298fc1c149afbf4c8996fb924'
    """
    return hashlib.sha256(data).hexdigest()[:32]


def fingerprint(fd: int, length: int) -> str:
    """The checksum of the first ``length`` bytes of the open file ``fd``."""
    return checksum(os.pread(fd, length, 0))


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
