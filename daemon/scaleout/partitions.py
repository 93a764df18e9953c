"""The shared store of a scaled-out keyed run: a subtree per partition, an epoch per take-over.

A partition's checkpoints live in ``<state-dir>/partitions/<topic>-<p>/epoch-<N>/``, an
ordinary state dir (generations, checksums, the keys' segments, its own lock). An instance
that is assigned the partition *takes it over*: it creates the next epoch's directory (an
atomic ``mkdir``: the store's counter, so two instances never get the same epoch), carries the
previous epoch's latest state into it (generation files copied, the append-only key segments
hard-linked) and learns there. The newest epoch is the partition's truth.

That makes fencing structural: an owner that lost the partition without knowing it (paused
past its session timeout, cut off) can only write into its own, older epoch, which nobody
reads again; before each checkpoint it looks for a newer epoch (``newer_epoch``) and, finding
one, refuses to write and drops the partition.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "OWNER_NAME",
    "PARTITIONS",
    "Owner",
    "carried_bytes",
    "epoch_of",
    "epochs",
    "latest",
    "newer_epoch",
    "partition_root",
    "take_over",
]

#: The subtree of the state dir that holds the partitions.
PARTITIONS = "partitions"
#: Who took an epoch over (written once, when the epoch is made).
OWNER_NAME = "owner.json"
_EPOCH = re.compile(r"^epoch-(\d{8})$")
#: Not carried to the next epoch: the lock, half-written files, the previous owner's record.
_NOT_CARRIED = ("lock", OWNER_NAME)
#: Epochs kept per partition: the newest (the truth) and the one before (a stale owner's).
KEEP_EPOCHS = 2


@dataclass(frozen=True, slots=True)
class Owner:
    """Who took a partition's epoch over: an instance id, its host and pid, when."""

    instance: str
    epoch: int
    host: str
    pid: int
    taken_at: float
    #: The HTTP address the instance serves on, when it has one.
    address: str | None = None


def partition_root(state_dir: Path, topic: str, partition: int) -> Path:
    """``<state-dir>/partitions/<topic>-<p>``."""
    return Path(state_dir) / PARTITIONS / f"{topic}-{partition}"


def epoch_dir(root: Path, epoch: int) -> Path:
    return root / f"epoch-{epoch:08d}"


def epochs(root: Path) -> list[int]:
    """The epochs of a partition's subtree, oldest first (none: never taken over)."""
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for name in names if (m := _EPOCH.match(name)))


def epoch_of(directory: Path) -> int:
    """The epoch of an epoch directory, from its name.

    >>> epoch_of(Path("s/partitions/t-0/epoch-00000003"))
    3
    """
    match = _EPOCH.match(Path(directory).name)
    if match is None:
        raise ValueError(f"{directory} is not a partition's epoch directory")
    return int(match.group(1))


def newer_epoch(directory: Path) -> int | None:
    """The partition's newest epoch when it is newer than ``directory``'s (fenced), else None."""
    directory = Path(directory)
    newest = max(epochs(directory.parent), default=0)
    return newest if newest > epoch_of(directory) else None


def latest(root: Path) -> tuple[int, Path] | None:
    """The newest epoch of a partition and its directory; None if never taken over."""
    found = epochs(root)
    return (found[-1], epoch_dir(root, found[-1])) if found else None


def read_owner(directory: Path) -> dict[str, Any] | None:
    """The owner record of an epoch directory (None: none readable)."""
    try:
        found = json.loads((Path(directory) / OWNER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def take_over(
    state_dir: Path, topic: str, partition: int, instance: str, address: str | None = None
) -> tuple[int, Path]:
    """Make the partition's next epoch, carry the previous one's state into it, record the owner.

    Returns the epoch and its directory, an ordinary state dir to learn in.
    """
    root = partition_root(state_dir, topic, partition)
    root.mkdir(parents=True, exist_ok=True)
    while True:
        found = latest(root)
        epoch = found[0] + 1 if found else 1
        target = epoch_dir(root, epoch)
        try:
            target.mkdir()  # atomic: exactly one instance makes each epoch
        except FileExistsError:
            continue
        break
    if found is not None:
        _carry(found[1], target)
    owner = Owner(instance, epoch, socket.gethostname(), os.getpid(), time.time(), address)
    _write_atomically(target / OWNER_NAME, json.dumps(asdict(owner), sort_keys=True).encode())
    _fsync_dir(root)
    for old in epochs(root)[:-KEEP_EPOCHS]:
        shutil.rmtree(epoch_dir(root, old), ignore_errors=True)
    return epoch, target


def carried_bytes(directory: Path) -> int:
    """Bytes of the state an epoch directory holds besides its owner record and lock: right
    after ``take_over``, what the new owner carried in (copied or linked) and will read.

    >>> import tempfile
    >>> store = Path(tempfile.mkdtemp())
    >>> carried_bytes(take_over(store, "t", 0, "a")[1])
    0
    """
    total = 0
    for path in Path(directory).rglob("*"):
        if path.name in _NOT_CARRIED or path.name.startswith("next.tmp."):
            continue
        with contextlib.suppress(FileNotFoundError):  # collected meanwhile
            if path.is_file():
                total += path.stat().st_size
    return total


def _carry(source: Path, target: Path) -> None:
    """The previous epoch's state into the new one: files copied, key segments hard-linked.

    Segments are append-only and a resumed run never appends to one that exists, so a link is
    as good as a copy (and free); the generation files are copied, so the previous owner can
    never change them under the new one.
    """
    for entry in sorted(os.listdir(source)):
        path = source / entry
        if entry in _NOT_CARRIED or entry.startswith("next.tmp."):
            continue
        if path.is_dir():
            (target / entry).mkdir()
            for inner in sorted(os.listdir(path)):
                _link_or_copy(path / inner, target / entry / inner)
            _fsync_dir(target / entry)
        else:
            with contextlib.suppress(FileNotFoundError):  # collected meanwhile: not needed
                shutil.copy2(path, target / entry)
    _fsync_dir(target)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except FileNotFoundError:
        return
    except OSError:  # a store without hard links
        with contextlib.suppress(FileNotFoundError):
            shutil.copy2(source, target)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
