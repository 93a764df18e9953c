"""The on-disk frame of a checkpoint: a header (magic, version, SHA-256, size), then the pickle.

A checkpoint file is ``frame(dump(state))``: ``decode`` checks every field of the
header before it unpickles, so a torn or foreign file is refused, never half-read.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import pickle
import struct
from collections.abc import Iterator
from typing import Any

#: The first bytes of every checkpoint file.
MAGIC = b"SLCKPT\x00\x01"
#: The newest frame layout this code writes and reads; older ones are read too.
FORMAT_VERSION = 1
_HEADER = struct.Struct(">8sI32sQ")  # magic, format version, sha256 of payload, payload size

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


def load(payload: bytes) -> Any:
    """Unpickle what ``dump`` (or an older streamlearn) pickled: the inverse of ``dump``.

    Also for pickles nested in a state (a part that pickles some of itself apart).

    >>> load(dump({"records_learned": 3}))
    {'records_learned': 3}
    """
    with _gc_paused():
        return _Unpickler(io.BytesIO(payload)).load()


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
    state = load(payload)
    if not isinstance(state, dict):
        raise CheckpointError("payload is not a state")
    return state
