"""Checkpoints: their on-disk format, the store of generations, the background writer.

Importers use this package's names (``from streamlearn.state import CheckpointStore``).
The modules behind them: ``format`` (the frame of one file), ``key`` (the key that signs
it), ``store`` (generations in a locked directory), ``writer`` (pickling and fsync off the
loop), ``child`` (the forked process that pickles a big state) and ``sign`` (signing
checkpoints written before they were signed).
"""

from __future__ import annotations

from .child import Lock
from .format import (
    FORMAT_VERSION,
    MAGIC,
    CheckpointError,
    UnsignedCheckpoint,
    decode,
    dump,
    encode,
    frame,
    load,
    verify,
)
from .key import KEY_NAME, KEY_VARIABLE, NotOwned, StateKey, check_owner, state_key
from .sign import sign_unsigned
from .store import CheckpointStore, Loaded, StateLocked
from .writer import (
    FORK_GUESS_SECONDS,
    FORK_MODES,
    PICKLE_GUESS_SECONDS_PER_BLOCK,
    BackgroundWriter,
    fork_mode,
)

__all__ = [
    "FORK_GUESS_SECONDS",
    "FORK_MODES",
    "FORMAT_VERSION",
    "KEY_NAME",
    "KEY_VARIABLE",
    "MAGIC",
    "PICKLE_GUESS_SECONDS_PER_BLOCK",
    "BackgroundWriter",
    "CheckpointError",
    "CheckpointStore",
    "Loaded",
    "Lock",
    "NotOwned",
    "StateKey",
    "StateLocked",
    "UnsignedCheckpoint",
    "check_owner",
    "decode",
    "dump",
    "encode",
    "fork_mode",
    "frame",
    "load",
    "sign_unsigned",
    "state_key",
    "verify",
]
