"""Each key's divergence guard is its own: a key whose model predicts NaN gets its last
written state back (else a fresh model), counted once a divergence; the other keys learn on
as runs of their own."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from streamhelpers import cli


@pytest.mark.slow
def test_a_diverging_key_is_restored_and_the_others_learn_on(tmp_path: Path) -> None:
    rng = random.Random(2)
    rows: list[tuple[str, str]] = []
    for i in range(300):
        key = rng.choice(["good", "bad", "fine"])
        a = rng.uniform(-1, 1)
        scale = 1e150 if key == "bad" and i > 150 else 1.0  # finite, but it blows sgd up
        rows.append((key, f"{a * scale!r},{(2 * a + 1) * scale!r}"))
    path = tmp_path / "keyed.csv"
    path.write_text("store,a,y\n" + "".join(f"{k},{row}\n" for k, row in rows))
    state = tmp_path / "state"
    args = ["--target", "y", "--lr", "0.5", "--checkpoint-every", "20"]
    result = cli("replay", str(path), "--key-by", "store", "--state-dir", str(state), *args)
    assert "the model of key 'bad' diverged" in result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads(cli("inspect", str(state), "--json").stdout)
    assert summary["divergence_events"] > 0
    bad = json.loads(cli("inspect", str(state), "--key", "bad", "--json").stdout)
    assert all(math.isfinite(w) for w in bad["weights"].values())
    for key in ("good", "fine"):
        own = tmp_path / f"{key}.csv"
        own.write_text("a,y\n" + "".join(f"{row}\n" for k, row in rows if k == key))
        alone = tmp_path / f"alone-{key}"
        cli("replay", str(own), "--state-dir", str(alone), *args)
        want = json.loads(cli("inspect", str(alone), "--json").stdout)
        got = json.loads(cli("inspect", str(state), "--key", key, "--json").stdout)
        assert got["weights"] == want["weights"], key
        assert got["records_learned"] == want["records_learned"], key
