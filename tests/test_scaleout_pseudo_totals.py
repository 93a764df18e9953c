"""Issue 15, point 6: ``inspect --json`` of a shared store adds up the whole run's figures
of its partitions: keys, records learned, and the pseudo-label totals (``--pseudo-label``).

No broker: the shared store is laid out as members leave it (``take_over`` makes each
partition's epoch), each partition holding the checkpoint of a one-process keyed replay of
its keys' rows. The oracle: each partition's own ``inspect --json``, added up.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from keyed_pseudo_rows import keyed_stream, run, stream

from streamhelpers import cli
from streamlearn.scaleout.partitions import take_over

#: Which partition each key's rows go to (as a keyed producer's hash would put them).
PARTITION = {"north": 0, "south": 0, "east": 1, "west": 2}
#: Whole-run figures of a partition's own inspect that add up over partitions.
SUMMED = ("keys_total", "records_learned", "unserved_unlabeled", "fallback_predictions")
#: The pseudo-label figures that add up (the audit's means are checked through their sums).
COUNTS = (
    "keys_with_loop", "offered", "accepted", "rejected", "queued", "overflow", "learned",
    "audited", "audited_rejected",
)  # fmt: skip
MEANS = ("audit_mae", "audit_student_mae", "audit_mae_rejected", "audit_student_mae_rejected")


def added(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The partitions' own ``pseudo_labels`` added up (means weighted by their audited)."""
    out: dict[str, Any] = {name: sum(p[name] for p in parts) for name in COUNTS}
    reasons: dict[str, int] = {}
    for part in parts:
        for reason, n in part["rejected_by_reason"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    out["rejected_by_reason"] = dict(sorted(reasons.items()))
    for mean in MEANS:
        audited = "audited_rejected" if mean.endswith("_rejected") else "audited"
        total = sum(p[mean] * p[audited] for p in parts if p[audited])
        out[mean] = total / out[audited] if out[audited] else None
    return out


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """A shared store of three partitions (keyed pseudo-label replays), and their own
    state dirs."""
    work = tmp_path_factory.mktemp("pseudo")
    rows = stream(seed=11, rows=900)
    store = work / "shared"
    own: list[Path] = []
    for partition in sorted(set(PARTITION.values())):
        path = work / f"p{partition}.csv"
        keyed_stream([row for row in rows if PARTITION[row[0]] == partition], path)
        state = work / f"state-{partition}"
        run(path, key_by="store", state_dir=str(state), max_live_keys=1).close()
        _, directory = take_over(store, "t", partition, f"i{partition}")
        for entry in state.iterdir():
            if entry.is_dir():
                shutil.copytree(entry, directory / entry.name)
            elif entry.name != "lock":
                shutil.copy2(entry, directory / entry.name)
        own.append(state)
    return store, own


@pytest.mark.slow
def test_shared_inspect_adds_up_the_partitions_figures(shared: tuple[Path, list[Path]]) -> None:
    store, own = shared
    total = json.loads(cli("inspect", str(store), "--json").stdout)
    each = [json.loads(cli("inspect", str(state), "--json").stdout) for state in own]
    assert total["partitions_total"] == len(each) == 3
    for name in SUMMED:
        assert total[name] == sum(part[name] for part in each), name
    for entry, part in zip(total["partitions"], each, strict=True):
        assert entry["records_learned"] == part["records_learned"]
        assert entry["pseudo_labels"] == part["pseudo_labels"]
    want = added([part["pseudo_labels"] for part in each])
    shown = total["pseudo_labels"]
    assert want["accepted"] > 0 and want["rejected"] > 0 and want["audited"] > 0
    for name, value in want.items():
        if isinstance(value, float):
            assert math.isclose(shown[name], value, rel_tol=1e-12), name
        else:
            assert shown[name] == value, name
    assert shown["teacher"] == each[0]["pseudo_labels"]["teacher"]
