"""``inspect`` on the state dir of a ``--standby`` group: its epoch (the takeovers so far)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamhelpers import cli, inspect_json, make_regression, write_csv
from streamlearn.state import CheckpointStore


@pytest.mark.slow
def test_inspect_shows_the_epoch_of_a_standby_groups_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y, _ = make_regression(200, d=3, seed=11)
    rows = tmp_path / "rows.csv"
    write_csv(rows, X, y)
    state = tmp_path / "state"
    cli("replay", str(rows), "--state-dir", str(state))
    assert "epoch" not in inspect_json(state)  # a lone daemon's dir has none
    for name in ("a", "b"):  # two instances take the model over in turn, as run --standby does
        monkeypatch.setenv("STREAMLEARN_INSTANCE_ID", name)
        store = CheckpointStore(state, shared=True)
        store.take_over()
        store.close()
    summary = inspect_json(state)
    assert summary["epoch"] == 2
    holder = summary["epoch_holder"]
    assert (holder["instance"], holder["epoch"], holder["pid"]) == ("b", 2, os.getpid())
    assert summary["records_learned"] == 200
    text = cli("inspect", str(state)).stdout
    assert "epoch            2 (takeovers of a --standby group, raised by b)" in text.splitlines()
    # A holder record of an earlier epoch (its writer died between the renames) names no one.
    (state / "epoch").write_text("3\n")
    assert inspect_json(state)["epoch_holder"] is None
    (state / "epoch").write_text("two\n")
    broken = cli("inspect", str(state), "--json", check=False)
    assert broken.returncode == 1
    assert broken.stdout == ""
    assert "Traceback" not in broken.stderr
    assert "the epoch file" in broken.stderr and "is corrupt" in broken.stderr
