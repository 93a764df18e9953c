"""The whole run's pseudo-label figures of a keyed run (``--pseudo-label --key-by``).

``inspect --json`` of a keyed run shows ``pseudo_labels``: what every key's side loop did,
summed over the keys (offered, accepted, rejected by reason, learned, audited), kept as
running sums while keys spill and load. The oracle: the sum of each key's own figures
(``inspect --key K``), and with one key, a single-model run on the same rows.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from keyed_pseudo_rows import KEYS, build_keyed, keyed_stream, run, stream

from streamhelpers import cli, run_until_seen
from streamlearn.app import build
from streamlearn.config import Settings
from streamlearn.keys.run import key_object

#: The figures that add up over keys (the audit's means are checked through their sums).
COUNTS = ("offered", "accepted", "rejected", "queued", "overflow", "audited", "audited_rejected")
#: The audit's means, over the audited records of every key.
MEANS = ("audit_mae", "audit_student_mae", "audit_mae_rejected", "audit_student_mae_rejected")
#: A classifier's.
CLASS_MEANS = tuple(name.replace("mae", "accuracy") for name in MEANS)


def summed(keys: list[dict[str, Any]], means: tuple[str, ...] = MEANS) -> dict[str, Any]:
    """What each key's ``inspect --key`` object says, added up (``means``: the audit's)."""
    out: dict[str, Any] = {name: sum(k["pseudo_labels"][name] for k in keys) for name in COUNTS}
    reasons: dict[str, int] = {}
    for k in keys:
        for reason, n in k["pseudo_labels"]["rejected_by_reason"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    out["rejected_by_reason"] = dict(sorted(reasons.items()))
    out["learned"] = sum(k["pseudo_learned"] for k in keys)
    for mean in means:
        audited = "audited_rejected" if mean.endswith("_rejected") else "audited"
        parts = [(k["pseudo_labels"][mean], k["pseudo_labels"][audited]) for k in keys]
        total = sum(value * n for value, n in parts if n)
        out[mean] = total / out[audited] if out[audited] else None
    return out


def assert_totals(totals: dict[str, Any], want: dict[str, Any]) -> None:
    """``totals`` has ``want``'s figures (means to 1e-12: sums in another order)."""
    for name, value in want.items():
        if isinstance(value, float):
            assert math.isclose(totals[name], value, rel_tol=1e-12), name
        else:
            assert totals[name] == value, name


def live_keys(app: Any) -> list[dict[str, Any]]:
    models = app.daemon.keyed.models
    return [key_object(key, models.peek(key)) for key in KEYS]


@pytest.mark.slow
def test_totals_are_the_sum_of_the_keys_figures(tmp_path: Path) -> None:
    """Four keys, two in memory: the live ``/model`` summary's and the checkpoint's totals
    are the keys' figures added up, also across a restart in the middle of the stream."""
    rows = stream(seed=5)
    half = len(rows) // 2
    path = tmp_path / "keyed.csv"
    state = tmp_path / "state"
    keyed_stream(rows[:half], path)
    keyed = {"key_by": "store", "max_live_keys": 2, "state_dir": str(state)}
    first = build_keyed(path, follow=True, **keyed)
    run_until_seen(first, half)
    with path.open("a") as out:
        out.write("".join(f"{k},{row}\n" for k, _, row in rows[half:]))
    app = run(path, **keyed)
    try:
        assert app.daemon.keyed.models.spills > 0  # keys went to disk and came back
        keys = live_keys(app)
        want = summed(keys)
        live = app.daemon.inspect()["pseudo_labels"]
        assert live == app.daemon.keyed.summary()["pseudo_labels"]
    finally:
        app.close()
    assert_totals(live, want)
    assert live["keys_with_loop"] == len(KEYS)
    assert {k["pseudo_labels"]["teacher"] for k in keys} == {live["teacher"]}
    assert want["accepted"] > 0 and want["rejected"] > 0 and want["audited"] > 0
    assert want["learned"] == want["accepted"]

    shown = json.loads(cli("inspect", str(state), "--json").stdout)["pseudo_labels"]
    each = [json.loads(cli("inspect", str(state), "--key", k, "--json").stdout) for k in KEYS]
    assert_totals(shown, summed(each))
    assert shown == live


def test_one_key_totals_are_a_single_model_run(tmp_path: Path) -> None:
    """One key: the totals are what the same rows give a run of one model."""
    rows = [row for row in stream(seed=6) if row[0] == "north"]
    single = tmp_path / "single.csv"
    single.write_text("id,a,b,y\n" + "".join(f"{row}\n" for _, _, row in rows))
    app = run(single)
    try:
        oracle = app.daemon.inspect()["pseudo_labels"]
        learned = app.daemon.learner.pseudo_learned
    finally:
        app.close()
    path = tmp_path / "keyed.csv"
    keyed_stream(rows, path)
    app = run(path, key_by="store")
    try:
        totals = app.daemon.inspect()["pseudo_labels"]
    finally:
        app.close()
    assert oracle["accepted"] > 0 and oracle["audited"] > 0
    for name in (*COUNTS, "rejected_by_reason", "teacher"):
        assert totals[name] == oracle[name], name
    assert_totals(totals, {name: oracle[name] for name in MEANS})
    assert totals["learned"] == learned


@pytest.mark.slow
def test_a_keyed_classifier_totals_are_the_sum_of_the_keys_figures(tmp_path: Path) -> None:
    """Logistic per key (labels yes/no), one key in memory: counts and the audit's
    accuracies are the keys' added up."""
    rows = []
    for key, _, row in stream(seed=7):
        rid, a, b, y = row.split(",")
        rows.append((key, ",".join((rid, a, b, y and ("yes" if float(y) > 0 else "no")))))
    path = tmp_path / "keyed.csv"
    path.write_text("store,id,a,b,y\n" + "".join(f"{k},{row}\n" for k, row in rows))
    app = run(path, key_by="store", max_live_keys=1, model="logistic", lr=0.5,
              pseudo={"pseudo_threshold": 0.6})  # fmt: skip
    try:
        keys = live_keys(app)
        totals = app.daemon.inspect()["pseudo_labels"]
    finally:
        app.close()
    want = summed(keys, CLASS_MEANS)
    assert want["accepted"] > 0 and want["audited"] > 0
    assert_totals(totals, want)
    assert totals["task"] == "classification"


def test_a_restored_key_takes_its_figures_back_out_of_the_totals(tmp_path: Path) -> None:
    """A key whose model diverges gets its last written state back, its loop's figures as
    they were then: the totals are still the keys' added up."""
    rng = random.Random(2)
    lines = []
    for i in range(400):
        key = rng.choice(["good", "bad", "fine"])
        a = rng.uniform(-1, 1)
        scale = 1e150 if key == "bad" and i > 250 else 1.0  # finite, but it blows sgd up
        y = f"{(2 * a + 1) * scale!r}" if i < 30 or rng.random() < 0.4 else ""
        lines.append(f"{key},r{i},{a * scale!r},{a!r},{y}\n")
    path = tmp_path / "keyed.csv"
    path.write_text("store,id,a,b,y\n" + "".join(lines))
    state = str(tmp_path / "state")
    app = run(path, key_by="store", state_dir=state, checkpoint_every=40, lr=0.5)
    try:
        assert app.daemon.counters.divergence_events > 0
        models = app.daemon.keyed.models
        keys = [key_object(key, models.peek(key)) for key in ("good", "bad", "fine")]
        totals = app.daemon.inspect()["pseudo_labels"]
    finally:
        app.close()
    want = summed(keys)
    assert want["accepted"] > 0
    assert_totals(totals, want)


def test_a_keyed_run_without_pseudo_labels_shows_none(tmp_path: Path) -> None:
    path = tmp_path / "keyed.csv"
    path.write_text("store,a,y\nn,1.0,2.0\ns,0.5,\n")
    app = build(Settings(source=str(path), follow=False, target="y", key_by="store"))
    try:
        app.daemon.run()
        shown = app.daemon.inspect()
    finally:
        app.close()
    assert shown["keyed"] is True and "pseudo_labels" not in shown
