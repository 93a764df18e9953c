"""Checkpoints: their format, the store of generations, the background writer.

Importers use this package's names (``from streamlearn.state import CheckpointStore``),
not the modules behind them.
"""

from __future__ import annotations

from streamlearn.state.checkpoint import (
    FORK_MODES,
    FORMAT_VERSION,
    MAGIC,
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
    "FORK_MODES",
    "FORMAT_VERSION",
    "MAGIC",
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
