"""``streamlearn sign``: sign, once, the checkpoints a state dir holds from before signing.

Checkpoints of format 1 carry a plain SHA-256, which anyone who can write the
directory can forge, so they are never unpickled as they are. Their owner vouches
for them by signing them: each one whose SHA-256 still checks out is framed again,
signed with the directory's key. Nothing is unpickled on the way.
"""

from __future__ import annotations

import os
from pathlib import Path

from .format import CheckpointError, UnsignedCheckpoint, frame, verify
from .store import START_NAME, CheckpointStore


def sign_unsigned(store: CheckpointStore) -> list[str]:
    """Sign every unsigned checkpoint of a locked ``store``; the names of those signed.

    A file signed already is left as it is; one whose old checksum fails is refused
    (``CheckpointError``) before anything is rewritten.

    >>> import tempfile
    >>> store = CheckpointStore(tempfile.mkdtemp())
    >>> store.save({"n": 1})
    1
    >>> sign_unsigned(store)
    []
    >>> store.close()
    """
    key = store.signing_key
    paths = [store.path(generation) for generation in store.generations()]
    paths += [path for path in [store.directory / START_NAME] if path.exists()]
    payloads: list[tuple[Path, bytes]] = []
    for path in paths:
        blob = path.read_bytes()
        try:
            verify(blob, key)
            continue  # signed with this key already
        except UnsignedCheckpoint:
            pass
        except CheckpointError as exc:
            raise CheckpointError(f"{path.name} is not signed with this key: {exc}") from None
        try:
            payloads.append((path, verify(blob, None, unsigned=True)))
        except CheckpointError as exc:
            raise CheckpointError(f"{path.name} cannot be signed: {exc}") from None
    for path, payload in payloads:
        temporary = store.temporary()
        with open(temporary, "wb") as handle:
            handle.write(frame(payload, key))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    if payloads:
        fd = os.open(store.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return [path.name for path, _ in payloads]
