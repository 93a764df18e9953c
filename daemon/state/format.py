"""The on-disk frame of a checkpoint: a header (magic, version, key id, HMAC, size), the pickle.

A checkpoint file is ``frame(dump(state), key)``: ``decode`` checks every field of the
header, and the HMAC-SHA256 of the payload under the state dir's key
(``streamlearn.state.key``), before it unpickles, so a torn, foreign or forged file is
refused, never half-read and never run. Frames of format 1 (streamlearn before it
signed checkpoints) carry a plain SHA-256: they are read only when the reader says it
trusts them (``streamlearn sign`` re-signs them once).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import hmac
import io
import pickle
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .key import Sha256, StateKey

#: The first bytes of every checkpoint file.
MAGIC = b"SLCKPT\x00\x01"
#: The frame layout this code writes; format 1 is read only when trusted (``unsigned``).
FORMAT_VERSION = 2
_PREFIX = struct.Struct(">8sI")  # magic, format version: the same in every format
_HEADER_V1 = struct.Struct(">8sI32sQ")  # magic, 1, sha256 of payload, payload size
_HEADER = struct.Struct(">8sI8s32sQ")  # magic, 2, key id, HMAC-SHA256 of payload, payload size

# A pickle names each class (and each function it holds, such as an MLP's activations) by
# module and name. Checkpoints written before the package was arranged in subsystem folders
# (streamlearn 1091d7a and earlier) name the flat modules and the old class names; this
# table says where each of those lives now, so that an upgraded daemon resumes them rather
# than refusing them. A declarative table (longer than a function would be, one entry a
# name): exactly the names that a checkpoint can hold and that moved, nothing else.
#: ``(old module, old name) -> (module, name)``, for ``load``.
RENAMED: dict[tuple[str, str], tuple[str, str]] = {
    # drift.py and adwin.py -> drift/
    ("streamlearn.adwin", "ADWIN"): ("streamlearn.drift.adwin", "ADWIN"),
    ("streamlearn.drift", "DriftMonitor"): ("streamlearn.drift.monitor", "DriftMonitor"),
    ("streamlearn.drift", "DriftConfig"): ("streamlearn.drift.config", "DriftConfig"),
    ("streamlearn.drift", "_Watch"): ("streamlearn.drift.detectors", "SignalWatch"),
    ("streamlearn.drift", "_Challenger"): ("streamlearn.drift.challenger", "Challenger"),
    # pseudo.py -> labels/
    ("streamlearn.pseudo", "PseudoLabeler"): ("streamlearn.labels.pseudo", "PseudoLabeler"),
    ("streamlearn.pseudo", "LabelJoin"): ("streamlearn.labels.join", "LabelJoin"),
    ("streamlearn.pseudo", "LabelTtl"): ("streamlearn.labels.ttl", "LabelTtl"),
    ("streamlearn.pseudo", "Candidate"): ("streamlearn.labels.window", "Candidate"),
    ("streamlearn.pseudo", "_Decision"): ("streamlearn.labels.window", "Verdict"),
    ("streamlearn.pseudo", "CommitteeTeacher"): ("streamlearn.labels.teachers", "CommitteeTeacher"),
    ("streamlearn.pseudo", "ModelTeacher"): ("streamlearn.labels.teachers", "ModelTeacher"),
    # models/transfer.py -> models/wrappers.py (transfer.py still re-exports them)
    ("streamlearn.models.transfer", "FrozenRegressor"):
        ("streamlearn.models.wrappers", "FrozenRegressor"),
    ("streamlearn.models.transfer", "RenamedRegressor"):
        ("streamlearn.models.wrappers", "RenamedRegressor"),
    # learner.py's learning curve -> curve.py (learner.py still imports it)
    ("streamlearn.learner", "Curve"): ("streamlearn.curve", "Curve"),
    # models/mlp.py's activation functions -> models/activations.py (mlp.py keeps aliases)
    ("streamlearn.models.mlp", "_relu"): ("streamlearn.models.activations", "relu"),
    ("streamlearn.models.mlp", "_relu_grad"): ("streamlearn.models.activations", "relu_grad"),
    ("streamlearn.models.mlp", "_tanh"): ("streamlearn.models.activations", "tanh"),
    ("streamlearn.models.mlp", "_tanh_grad"): ("streamlearn.models.activations", "tanh_grad"),
    ("streamlearn.models.mlp", "_logistic"): ("streamlearn.models.activations", "logistic"),
    ("streamlearn.models.mlp", "_logistic_grad"):
        ("streamlearn.models.activations", "logistic_grad"),
    ("streamlearn.models.mlp", "_identity"): ("streamlearn.models.activations", "identity"),
    ("streamlearn.models.mlp", "_identity_grad"):
        ("streamlearn.models.activations", "identity_grad"),
}  # fmt: skip


class _Unpickler(pickle.Unpickler):
    """Unpickles a state, finding what moved since it was written through ``RENAMED``."""

    def find_class(self, module: str, name: str) -> Any:
        module, name = RENAMED.get((module, name), (module, name))
        return super().find_class(module, name)


class CheckpointError(Exception):
    """No usable checkpoint although one was expected (every generation is corrupt)."""


class UnsignedCheckpoint(CheckpointError):
    """A frame of format 1, from before checkpoints were signed: nothing proves who wrote it."""


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


def encode(state: dict[str, Any], key: StateKey) -> bytes:
    """Serialise a state with its header, signed with ``key``.

    >>> from streamlearn.state.key import StateKey
    >>> key = StateKey(bytes(range(32)))
    >>> decode(encode({"records_learned": 3}, key), key)
    {'records_learned': 3}
    """
    return frame(dump(state), key)


def dump(state: dict[str, Any]) -> bytes:
    """The pickled state: the part of ``encode`` that must run where the state is consistent."""
    with _gc_paused():
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


def header(key: StateKey, mac: bytes, size: int) -> bytes:
    """The header of a payload of ``size`` bytes whose HMAC under ``key`` is ``mac``.

    Takes no lock, so the forked checkpoint child may call it.
    """
    return _HEADER.pack(MAGIC, FORMAT_VERSION, key.id, mac, size)


def frame(payload: bytes, key: StateKey, sha256: Sha256 = hashlib.sha256) -> bytes:
    """A pickled state with its header, signed with ``key``: the rest of ``encode``.

    Any thread may do this (``BackgroundWriter`` does): hashlib releases the GIL
    while it hashes, so the HMAC costs the learning loop nothing.
    """
    return header(key, key.mac(payload, sha256), len(payload)) + payload


def load(payload: bytes) -> Any:
    """Unpickle what ``dump`` (or an older streamlearn) pickled: the inverse of ``dump``.

    Only for bytes ``verify`` passed, or pickles nested in such a state (a part that
    pickles some of itself apart).

    >>> load(dump({"records_learned": 3}))
    {'records_learned': 3}
    """
    with _gc_paused():
        return _Unpickler(io.BytesIO(payload)).load()


def verify(
    blob: bytes, key: StateKey | None, *, unsigned: bool = False, sha256: Sha256 = hashlib.sha256
) -> bytes:
    """The payload of a checkpoint whose header and HMAC check out under ``key``.

    ``unsigned``: also accept a format-1 frame (plain SHA-256), which anyone who could
    write the file could have made: only for checkpoints the reader vouches for.
    ``CheckpointError`` says what is wrong (``UnsignedCheckpoint`` for format 1).

    >>> from streamlearn.state.key import StateKey
    >>> key = StateKey(bytes(range(32)))
    >>> blob = bytearray(encode({"records_learned": 3}, key))
    >>> blob[-2] ^= 1  # one bit flipped on the disk
    >>> try:
    ...     verify(bytes(blob), key)
    ... except CheckpointError as exc:
    ...     print(exc)
    checksum mismatch (HMAC-SHA256): corrupt, or not written with this key
    """
    if len(blob) < _PREFIX.size:
        raise CheckpointError("truncated header")
    magic, version = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise CheckpointError("not a streamlearn checkpoint")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"format version {version} is newer than this streamlearn "
            f"understands ({FORMAT_VERSION})"
        )
    if version == 1:
        return _verify_unsigned(blob, unsigned)
    if len(blob) < _HEADER.size:
        raise CheckpointError("truncated header")
    _, _, key_id, mac, size = _HEADER.unpack_from(blob)
    payload = _payload(blob, _HEADER.size, size)
    if key is None:
        raise CheckpointError(
            "signed, but there is no state key to check it with (the state dir's hmac.key, "
            "or STREAMLEARN_STATE_KEY)"
        )
    if key_id != key.id:
        raise CheckpointError(
            f"signed with another key (id {key_id.hex()}; {key.origin} has id {key.id.hex()})"
        )
    if not hmac.compare_digest(key.mac(payload, sha256), mac):
        raise CheckpointError(
            "checksum mismatch (HMAC-SHA256): corrupt, or not written with this key"
        )
    return payload


def _verify_unsigned(blob: bytes, unsigned: bool) -> bytes:
    if len(blob) < _HEADER_V1.size:
        raise CheckpointError("truncated header")
    _, _, digest, size = _HEADER_V1.unpack_from(blob)
    payload = _payload(blob, _HEADER_V1.size, size)
    if not unsigned:
        raise UnsignedCheckpoint(
            "not signed (written by a streamlearn from before checkpoints were signed, "
            "or by someone else)"
        )
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError("checksum mismatch")
    return payload


def _payload(blob: bytes, start: int, size: int) -> bytes:
    payload = blob[start:]
    if len(payload) != size:
        raise CheckpointError(f"truncated: {len(payload)} of {size} bytes")
    return payload


def decode(blob: bytes, key: StateKey | None, *, unsigned: bool = False) -> dict[str, Any]:
    """Check (``verify``) and deserialise a checkpoint; ``CheckpointError`` says what is wrong.

    >>> from streamlearn.state.key import StateKey
    >>> blob = encode({"records_learned": 3}, StateKey(bytes(range(32))))
    >>> try:
    ...     decode(blob, StateKey(bytes(range(1, 33))))
    ... except CheckpointError as exc:
    ...     print(exc)
    signed with another key (id ...; a key given in code has id ...)
    """
    state = load(verify(blob, key, unsigned=unsigned))
    if not isinstance(state, dict):
        raise CheckpointError("payload is not a state")
    return state
