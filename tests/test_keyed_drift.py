"""Each key's drift monitor is its own: in a keyed replay, the key whose relation changes is
flagged exactly where a run of its own rows flags it, and the steady key never; a reset acts
on the drifting key's model only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamhelpers import cli

ROWS = 6000


def _stream(tmp_path: Path) -> tuple[Path, Path, list[int]]:
    """Two keys interleaved at random: "drifty" changes its weights halfway, "steady" never.
    Returns the keyed file, the file of drifty's rows alone, and their stream positions."""
    rng = np.random.default_rng(17)
    keys = rng.integers(2, size=ROWS)
    X = rng.normal(size=(ROWS, 2))
    seen = 0
    keyed, alone, positions = ["store,a,b,y"], ["a,b,y"], []
    for i in range(ROWS):
        a, b = float(X[i, 0]), float(X[i, 1])
        if keys[i] == 0:
            w = (2.0, -1.0) if seen < 1500 else (-3.0, 4.0)
            seen += 1
            y = w[0] * a + w[1] * b + 0.05 * float(rng.normal())
            keyed.append(f"drifty,{a!r},{b!r},{y!r}")
            alone.append(f"{a!r},{b!r},{y!r}")
            positions.append(i)
        else:
            y = 0.5 * a + 0.5 * b + 0.05 * float(rng.normal())
            keyed.append(f"steady,{a!r},{b!r},{y!r}")
    keyed_path, alone_path = tmp_path / "keyed.csv", tmp_path / "drifty.csv"
    keyed_path.write_text("\n".join(keyed) + "\n")
    alone_path.write_text("\n".join(alone) + "\n")
    return keyed_path, alone_path, positions


def _key(state: Path, key: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cli("inspect", str(state), "--key", key, "--json").stdout)
    return result


@pytest.mark.slow
def test_each_key_has_its_own_drift_monitor(tmp_path: Path) -> None:
    keyed, alone, positions = _stream(tmp_path)
    state = tmp_path / "keyed"
    cli("replay", str(keyed), "--key-by", "store", "--state-dir", str(state), "--lr", "0.05",
        "--max-live-keys", "1")  # fmt: skip
    own = json.loads(cli("replay", str(alone), "--lr", "0.05", "--inspect-json").stdout)
    assert own["drift_events"], "the oracle run flags the change"
    drifty, steady = _key(state, "drifty"), _key(state, "steady")
    assert steady["drift_events"] == [] and steady["drift"]["events_total"] == 0
    want = [(positions[event["record"]], event["detector"]) for event in own["drift_events"]]
    got = [(event["record"], event["detector"]) for event in drifty["drift_events"]]
    assert got == want
    assert drifty["drift"]["state"]["records_observed"] == len(positions)


def test_reset_acts_on_the_drifting_key_only(tmp_path: Path) -> None:
    keyed, _, _ = _stream(tmp_path)
    state = tmp_path / "keyed"
    cli("replay", str(keyed), "--key-by", "store", "--state-dir", str(state), "--lr", "0.05",
        "--on-drift", "reset")  # fmt: skip
    drifty, steady = _key(state, "drifty"), _key(state, "steady")
    assert drifty["drift"]["actions"]["reset"] >= 1
    assert steady["drift"]["actions"]["reset"] == 0
    # the reset model learned the new relation; the steady key kept learning its own
    assert abs(drifty["weights"]["a"] + 3.0) < 0.2 and abs(drifty["weights"]["b"] - 4.0) < 0.2
    assert abs(steady["weights"]["a"] - 0.5) < 0.05 and abs(steady["weights"]["b"] - 0.5) < 0.05
