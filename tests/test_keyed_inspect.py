"""``inspect`` of a keyed run: ``--keys`` worst first, ``--key K``, and the keyed totals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_keyed_run import FEATURES, KEYS, keyed_csv, replay

from streamhelpers import cli


@pytest.mark.slow
def test_inspect_keys_lists_worst_first(tmp_path: Path) -> None:
    *_, path = keyed_csv(tmp_path, 600, seed=11)
    state = tmp_path / "state"
    replay(path, state, "--model", "sgd")
    rows = json.loads(cli("inspect", str(state), "--keys", "--json", "--top", "5").stdout)
    assert len(rows) == 5
    maes = [row["mae"] for row in rows]
    assert maes == sorted(maes, reverse=True)
    everything = json.loads(cli("inspect", str(state), "--keys", "--json").stdout)
    assert sum(row["records_learned"] for row in everything) == 600
    assert max(row["mae"] for row in everything) == maes[0]
    one = json.loads(cli("inspect", str(state), "--key", rows[0]["key"], "--json").stdout)
    assert one["records_learned"] == rows[0]["records_learned"] and set(one["weights"]) == set(
        FEATURES
    )
    missing = cli("inspect", str(state), "--key", "nope", check=False)
    assert missing.returncode == 1 and "no key 'nope'" in missing.stderr
    whole = json.loads(cli("inspect", str(state), "--json").stdout)
    assert (whole["keys_total"], whole["records_learned"]) == (KEYS, 600)


def test_inspect_text_names_the_keys(tmp_path: Path) -> None:
    keys, *_, path = keyed_csv(tmp_path, 200, seed=12)
    state = tmp_path / "state"
    replay(path, state, "--model", "sgd")
    text = cli("inspect", str(state)).stdout
    assert f"keys             {len(set(keys))} held, {len(set(keys))} in memory then" in text
    listing = cli("inspect", str(state), "--keys", "--top", "3").stdout.splitlines()
    assert listing[0].split() == ["key", "records", "mae"] and len(listing) == 4
