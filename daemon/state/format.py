"""The on-disk frame of a checkpoint: a header (magic, version, SHA-256, size), then the pickle.

A checkpoint file is ``frame(dump(state))``: ``decode`` checks every field of the
header before it unpickles, so a torn or foreign file is refused, never half-read.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import pickle
import struct
from collections.abc import Iterator
from typing import Any

#: The first bytes of every checkpoint file.
MAGIC = b"SLCKPT\x00\x01"
#: The newest frame layout this code writes and reads; older ones are read too.
FORMAT_VERSION = 1
_HEADER = struct.Struct(">8sI32sQ")  # magic, format version, sha256 of payload, payload size


class CheckpointError(Exception):
    """No usable checkpoint although one was expected (every generation is corrupt)."""


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No garbage collection while a state is pickled or unpickled.

    Neither makes garbage, but both allocate: the collections their allocations
    trigger would walk every object of a big model again and again (figures:
    docs/design.md, "Checkpoints").
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def encode(state: dict[str, Any]) -> bytes:
    """Serialise a state with its header and checksum.

    >>> decode(encode({"records_learned": 3}))
    {'records_learned': 3}
    """
    return frame(dump(state))


def dump(state: dict[str, Any]) -> bytes:
    """The pickled state: the part of ``encode`` that must run where the state is consistent."""
    with _gc_paused():
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def header(digest: bytes, size: int) -> bytes:
    """The header of a payload of ``size`` bytes whose SHA-256 is ``digest``.

    Takes no lock, so the forked checkpoint child may call it.
    """
    return _HEADER.pack(MAGIC, FORMAT_VERSION, digest, size)


def frame(payload: bytes) -> bytes:
    """A pickled state with its header and checksum: the rest of ``encode``.

    Any thread may do this (``BackgroundWriter`` does): hashlib releases the GIL
    while it hashes, so the checksum costs the learning loop nothing.
    """
    return header(hashlib.sha256(payload).digest(), len(payload)) + payload


def decode(blob: bytes) -> dict[str, Any]:
    """Check and deserialise a checkpoint; ``CheckpointError`` says what is wrong.

    >>> blob = bytearray(encode({"records_learned": 3}))
    >>> blob[-2] ^= 1  # one bit flipped on the disk
    >>> try:
    ...     decode(bytes(blob))
    ... except CheckpointError as exc:
    ...     print(exc)
    checksum mismatch
    """
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
    with _gc_paused():
        state = pickle.loads(payload)
    if not isinstance(state, dict):
        raise CheckpointError("payload is not a state")
    return state
