"""One model per key: the keyed store, its segments and index, its checkpoint, its scores.

Importers use this package's names (``from streamlearn.keys import KeyedModels``). The
modules behind them: ``store`` (key -> learner, spilled beyond ``max_live``), ``segments``
(append-only files of signed frames), ``index`` (key -> where its state lies, in shards),
``manifest`` (what a checkpoint holds), ``codec`` (how a learner is made and pickled),
``scores`` (the keys' score histogram and worst keys), ``stream`` (the whole stream's
metrics), ``tempdir`` (the spill directory of a run without a state dir).
"""

from __future__ import annotations

from .codec import KeyCodec, LearnerCodec, describe_regression
from .index import Entry, KeyIndex, ShardTable
from .manifest import KeysManifest
from .scores import KeyScores
from .segments import Ref, SegmentLog
from .store import (
    DEFAULT_MAX_KEYS,
    DEFAULT_MAX_LIVE,
    KEY_REASONS,
    MAX_KEY_CHARS,
    KeyedModels,
    KeyEvents,
    KeyRejected,
    check_key,
    clear_directory,
)
from .stream import whole_stream

__all__ = [
    "DEFAULT_MAX_KEYS",
    "DEFAULT_MAX_LIVE",
    "KEY_REASONS",
    "MAX_KEY_CHARS",
    "Entry",
    "KeyCodec",
    "KeyEvents",
    "KeyIndex",
    "KeyRejected",
    "KeyScores",
    "KeyedModels",
    "KeysManifest",
    "LearnerCodec",
    "Ref",
    "SegmentLog",
    "ShardTable",
    "check_key",
    "clear_directory",
    "describe_regression",
    "whole_stream",
]
