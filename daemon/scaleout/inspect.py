"""``inspect`` of a shared state store: every partition's owner, epoch, next offset and keys.

A scaled-out keyed run keeps each partition in ``<state-dir>/partitions/<topic>-<p>/epoch-<N>``
(``streamlearn.scaleout.partitions``); the newest epoch of each is its truth. ``shared_summary``
reads them all without a lock (while the instances run); ``find_key`` names the partition
directory that holds a key, for ``inspect --key``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamlearn.scaleout.partitions import PARTITIONS, latest, read_owner

if TYPE_CHECKING:
    from streamlearn.keys.pseudo import PseudoTotals

__all__ = [
    "find_key",
    "is_shared_store",
    "locate_key",
    "partition_states",
    "shared_summary",
]


def is_shared_store(state_dir: str | os.PathLike[str]) -> bool:
    """Whether ``state_dir`` is the shared store of a scaled-out run (it has partitions)."""
    return (Path(state_dir) / PARTITIONS).is_dir()


def partition_states(state_dir: Path, trust: bool = False) -> list[dict[str, Any]]:
    """Per partition (topic, partition order): its newest epoch's directory, owner record,
    and its latest checkpoint's state (None: not checkpointed yet)."""
    from streamlearn.state import CheckpointStore

    root = Path(state_dir) / PARTITIONS
    found: list[dict[str, Any]] = []
    for name in os.listdir(root):
        topic, _, number = name.rpartition("-")
        newest = latest(root / name)
        if not number.isdigit() or newest is None:
            continue
        epoch, directory = newest
        store = CheckpointStore(directory, lock=False, trust=trust)
        loaded = store.load()
        found.append(
            {
                "topic": topic,
                "partition": int(number),
                "epoch": epoch,
                "directory": directory,
                "store": store,
                "owner": read_owner(directory) or {},
                "state": loaded.state if loaded is not None else None,
                "generation": loaded.generation if loaded is not None else 0,
            }
        )
    return sorted(found, key=lambda item: (item["topic"], item["partition"]))


#: The whole-run figures of a partition's own ``inspect --json`` (``keyed_summary``) that add
#: up over the partitions; the pseudo-label totals are added by ``PseudoTotals.merge``.
SUMMED = ("keys_total", "records_learned", "unserved_unlabeled", "fallback_predictions")


def shared_summary(state_dir: Path, trust: bool = False) -> dict[str, Any]:
    """``inspect --json`` of a shared store: the partitions, and the totals over them."""
    from streamlearn.keys.pseudo import PseudoTotals

    partitions: list[dict[str, Any]] = []
    pseudo: PseudoTotals | None = None
    for item in partition_states(state_dir, trust):
        entry, totals = _partition(item)
        partitions.append(entry)
        if totals is not None:
            if pseudo is None:
                pseudo = PseudoTotals(totals.teacher, totals.classes)
            pseudo.merge(totals)
    out: dict[str, Any] = {
        "shared_store": True,
        "partitions": partitions,
        "partitions_total": len(partitions),
    }
    out.update({name: sum(entry[name] for entry in partitions) for name in SUMMED})
    if pseudo is not None:
        out["pseudo_labels"] = pseudo.summary()
    return out


def _partition(item: dict[str, Any]) -> tuple[dict[str, Any], PseudoTotals | None]:
    """A partition's line of ``shared_summary``, with its whole-run figures as its own
    ``inspect --json`` shows them; and its pseudo-label totals (None: none)."""
    from streamlearn.keys.run import keyed_summary
    from streamlearn.keys.tally import ClassTally, RegressionTally

    state = item["state"]
    entry: dict[str, Any] = {
        "topic": item["topic"],
        "partition": item["partition"],
        "epoch": item["epoch"],
        "owner": item["owner"].get("instance"),
        "owner_host": item["owner"].get("host"),
        "taken_at": item["owner"].get("taken_at"),
        "generation": item["generation"],
        "next_offset": None,
        **dict.fromkeys(SUMMED, 0),
    }
    if state is None:
        return entry, None
    offsets = state["source"].get("next_offsets", {})
    entry["next_offset"] = offsets.get(str(item["partition"]))
    tally = state["learner"]
    if not isinstance(tally, RegressionTally | ClassTally):  # not a keyed run's partition
        entry["records_learned"] = tally.records_learned
        return entry, None
    summary = keyed_summary(tally, state.get("keys"))
    entry.update({name: summary[name] for name in SUMMED})
    if "pseudo_labels" in summary:
        entry["pseudo_labels"] = summary["pseudo_labels"]
    return entry, tally.keyed.pseudo


def describe_shared(summary: dict[str, Any]) -> str:
    """The readable ``inspect`` of a shared store: one line per partition.

    >>> print(describe_shared({"partitions": [{"topic": "t", "partition": 0, "epoch": 2,
    ...     "owner": "a", "next_offset": 7, "keys_total": 3}], "partitions_total": 1,
    ...     "keys_total": 3, "records_learned": 7}))
    topic                   partition  epoch  owner                next offset    keys
    t                               0      2  a                              7       3
    1 partitions, 3 keys, 7 records learned
    """
    lines = [
        f"{'topic':<24}{'partition':>9}{'epoch':>7}  {'owner':<20}{'next offset':>12}{'keys':>8}"
    ]
    for entry in summary["partitions"]:
        offset = "n/a" if entry["next_offset"] is None else str(entry["next_offset"])
        lines.append(
            f"{entry['topic'][:23]:<24}{entry['partition']:>9}{entry['epoch']:>7}  "
            f"{str(entry['owner'])[:19]:<20}{offset:>12}{entry['keys_total']:>8}"
        )
    lines.append(
        f"{summary['partitions_total']} partitions, {summary['keys_total']} keys, "
        f"{summary['records_learned']} records learned"
    )
    return "\n".join(lines)


def locate_key(state_dir: Path, key: str, trust: bool = False) -> dict[str, Any] | None:
    """The partition (``partition_states``' item) whose newest checkpoint holds ``key``;
    None when none does."""
    from streamlearn.keys.run import read_keys

    for item in partition_states(state_dir, trust):
        store, state = item["store"], item["state"]
        if state is None or store.key is None:
            continue
        models = read_keys(item["directory"], store.key, state)
        try:
            if key in models:
                return item
        finally:
            models.close()
    return None


def find_key(state_dir: Path, key: str, trust: bool = False) -> tuple[Any, dict[str, Any]] | None:
    """The store and state of the partition holding ``key`` (None: no partition has it)."""
    item = locate_key(state_dir, key, trust)
    return None if item is None else (item["store"], item["state"])
