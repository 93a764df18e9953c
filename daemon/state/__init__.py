"""Checkpoints: their on-disk format, the store of generations, the background writer.

Importers use this package's names (``from streamlearn.state import CheckpointStore``).
The modules behind them: ``format`` (the frame of one file), ``store`` (generations in
a locked directory), ``writer`` (pickling and fsync off the loop) and ``child`` (the
forked process that pickles a big state).
"""

from __future__ import annotations

from .child import Lock
from .format import (
    FORMAT_VERSION,
    MAGIC,
    CheckpointError,
    decode,
    dump,
    encode,
    frame,
    load,
)
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
    "load",
]
