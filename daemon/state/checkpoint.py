"""The names that lived here, until every importer uses ``streamlearn.state``."""

from __future__ import annotations

from . import (
    FORK_GUESS_SECONDS,
    FORK_MODES,
    FORMAT_VERSION,
    MAGIC,
    PICKLE_GUESS_SECONDS_PER_BLOCK,
    BackgroundWriter,
    CheckpointError,
    CheckpointStore,
    Loaded,
    Lock,
    StateLocked,
    decode,
    dump,
    encode,
    fork_mode,
    frame,
)

__all__ = [
    "FORK_GUESS_SECONDS",
    "FORK_MODES",
    "FORMAT_VERSION",
    "MAGIC",
    "PICKLE_GUESS_SECONDS_PER_BLOCK",
    "BackgroundWriter",
    "CheckpointError",
    "CheckpointStore",
    "Loaded",
    "Lock",
    "StateLocked",
    "decode",
    "dump",
    "encode",
    "fork_mode",
    "frame",
]
