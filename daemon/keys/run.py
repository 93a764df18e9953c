"""A keyed run's parts as the loop holds them, and what ``inspect`` says of them.

:class:`KeyedRun` is the keyed store, the tally the loop sees as its learner, and how a key
without a model is predicted (``--key-fallback``). :func:`keyed_summary` is the keyed part
of ``inspect --json``; :func:`key_object` and :func:`key_rows` read one key and all of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamlearn.classify.learner import ClassLearner
from streamlearn.learner import Learner

from ..state.key import StateKey
from .codec import LearnerCodec
from .manifest import KeysManifest
from .pseudo import JOIN, KeyLabelers
from .store import KeyedModels
from .tally import ClassTally, RegressionTally, Tally
from .units import KeyClassifier, KeyRegressor

__all__ = [
    "SORTS",
    "KeyedRun",
    "key_object",
    "key_rows",
    "keyed_summary",
    "read_keys",
    "sorted_rows",
]

#: How ``inspect --keys`` may sort: by score (worst first), records, or key.
SORTS = ("score", "records", "key")

KeyLearner = Learner | ClassLearner


@dataclass
class KeyedRun:
    """The parts of a keyed run (``--key-by``) the loop and its faces use."""

    #: Key -> learner, spilled beyond ``--max-live-keys``.
    models: KeyedModels[KeyLearner]
    #: The whole stream's metrics; it holds the ``global`` fallback and the keyed counts.
    tally: Tally
    #: ``--key-fallback``: none, warm or global.
    fallback: str = "none"
    #: Model A as a learner that only predicts (``--key-fallback warm``).
    warm: KeyLearner | None = None
    #: Late labels' keys waiting at most (``--max-pending-labels``).
    pending_bound: int = 100_000
    #: Fresh models (a key's drift action ``reset``) and B rebuilt from A (``rollback``).
    model_factory: Callable[[], Any] | None = None
    warm_model_factory: Callable[[], Any] | None = None
    #: Each key's pseudo-label side loop (``--pseudo-label``; ``keys.pseudo``), else None.
    labelers: KeyLabelers | None = None

    @property
    def score_name(self) -> str:
        return self.models.codec.score_name

    def fallback_learner(self) -> KeyLearner | None:
        """What predicts for a key without a model: model A, the global model, or nothing."""
        if self.fallback == "warm":
            return self.warm
        if self.fallback == "global":
            return self.tally.keyed.fallback
        return None

    def summary(self) -> dict[str, Any]:
        """The keyed part of ``inspect --json`` of the live run."""
        models = self.models
        return {
            **_counts(self.tally),
            "keyed": True,
            "key_fallback": self.fallback,
            "keys_total": len(models),
            "keys_live": models.live,
            "max_live_keys": models.max_live,
            "key_spills": models.spills,
            "key_loads": models.loads,
        }

    def serving(self, key: str) -> tuple[KeyLearner | None, str | None]:
        """What predicts for ``key`` (HTTP): its learner, else the fallback and its name."""
        learner = self.models.peek(key)
        if learner is not None and learner.records_learned:
            return learner, None
        fallback = self.fallback_learner()
        return fallback, self.fallback if fallback is not None else None

    def key(self, key: str) -> dict[str, Any] | None:
        """``inspect --key``'s object of ``key`` (None: no such key)."""
        learner = self.models.peek(key)
        return None if learner is None else key_object(key, learner)

    def rows(self) -> list[dict[str, Any]]:
        """``inspect --keys``: every key, its records and score."""
        return key_rows(self.models.entries(), self.score_name)


def read_keys(directory: Path, key: StateKey, state: Mapping[str, Any]) -> KeyedModels[Any]:
    """The keys of a checkpointed keyed run, to look at (``inspect``): nothing is written.

    ``directory`` is the state dir, ``state`` the checkpoint's (its tally names the objects
    the keys share); ``AppError``-free: a state that is not keyed raises ``ValueError``.
    """
    tally = state["learner"]
    if not isinstance(tally, RegressionTally | ClassTally):
        raise ValueError("this state holds one model, not one per key (no --key-by)")
    shared = dict(tally.keyed.shared)
    if isinstance(tally, ClassTally):
        shared["classes"] = tally.classes
    join = state.get("extensions", {}).get(JOIN)
    if join is not None:  # the keys' pseudo-label loops name it
        shared[JOIN] = join
    codec: LearnerCodec[Any] = LearnerCodec(
        lambda: None, shared=shared, score_name="accuracy" if shared.get("classes") else "mae"
    )
    manifest = state.get("keys")
    if manifest is None:  # a keyed run killed before its first checkpoint: no key yet
        return KeyedModels(codec, max_live=1)
    return KeyedModels(
        codec, directory=directory / "keys", key=key, manifest=manifest, read_only=True
    )


def keyed_summary(tally: Tally, manifest: KeysManifest | None) -> dict[str, Any]:
    """The keyed part of ``inspect --json`` of a checkpoint (``manifest``: its keys)."""
    out: dict[str, Any] = {**_counts(tally), "keyed": True}
    out["whole_stream_scored"] = tally.records_learned
    if manifest is not None:
        out.update(manifest.summary())
        out["keys_live"] = int(manifest.extra.get("live", 0))
    else:
        out.update(keys_total=0, keys_live=0)
    return out


def _counts(tally: Tally) -> dict[str, Any]:
    """The keyed counts, and the whole run's pseudo-label figures (every key's, summed)."""
    counts = tally.keyed
    out = counts.summary()
    if counts.pseudo is not None:
        out["pseudo_labels"] = counts.pseudo.summary()
    return out


def key_object(key: str, learner: KeyLearner) -> dict[str, Any]:
    """One key's learner as ``inspect --key`` shows it: records, metrics, weights."""
    from streamlearn.loop.summary import model_summary

    out: dict[str, Any] = {
        "key": key,
        "records_learned": learner.records_learned,
        "metrics": learner.summary(),
        "rolling_metrics": learner.rolling_summary(),
        "rolling_window": learner.rolling_window,
        "drift_events": [],
    }
    if isinstance(learner, KeyRegressor):
        learner.hear_held()  # its monitor as it is after every record learned
    if isinstance(learner, KeyRegressor | KeyClassifier) and learner.drift is not None:
        out.update(learner.drift.summary())  # drift_events, and drift: the key's monitor
    if isinstance(learner, KeyRegressor | KeyClassifier) and learner.pseudo is not None:
        out.update(learner.pseudo.summary())  # pseudo_labels: the key's side loop
        out["pseudo_learned"] = learner.pseudo_learned  # what its model learned of them
    out.update(model_summary(learner.model))
    return out


def key_rows(entries: Iterable[tuple[str, int, float]], score_name: str) -> list[dict[str, Any]]:
    """Rows of ``inspect --keys``: key, records learned, score (None: none yet).

    >>> key_rows([("a", 3, 0.5), ("b", 0, math.nan)], "mae")[1]
    {'key': 'b', 'records_learned': 0, 'mae': None}
    """
    return [
        {"key": key, "records_learned": records, score_name: None if math.isnan(s) else s}
        for key, records, s in entries
    ]


def sorted_rows(
    rows: list[dict[str, Any]], score_name: str, sort: str = "score", top: int | None = None
) -> list[dict[str, Any]]:
    """``rows`` sorted (by score: worst first, keys without a score last), at most ``top``.

    >>> rows = key_rows([("a", 3, 0.5), ("b", 1, 2.0), ("c", 0, math.nan)], "mae")
    >>> [row["key"] for row in sorted_rows(rows, "mae", top=2)]
    ['b', 'a']
    """
    if sort == "score":
        sign = 1.0 if score_name == "accuracy" else -1.0  # worst first

        def by_score(row: Mapping[str, Any]) -> tuple[bool, float, str]:
            value = row[score_name]
            return value is None, sign * value if value is not None else 0.0, row["key"]

        rows = sorted(rows, key=by_score)
    elif sort == "records":
        rows = sorted(rows, key=lambda row: (-row["records_learned"], row["key"]))
    else:
        rows = sorted(rows, key=lambda row: row["key"])
    return rows if top is None else rows[:top]
