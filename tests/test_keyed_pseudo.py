"""Each key's pseudo-label side loop is its own (``--pseudo-label --key-by``).

The oracle: a run of the daemon once per key, with ``--pseudo-label``, on that key's rows
in the same order. Each key's weights, pseudo-label counts, audit and twin equal that
run's, bit for bit, also when only 2 of the 4 keys' learners (and their loops, queues and
teachers) stay in memory, and after a restart in the middle of the stream.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from keyed_pseudo_rows import KEYS, build_keyed, keyed_stream, run, stream

from streamhelpers import run_until_seen
from streamlearn.keys.run import key_object


def per_key_runs(rows: list[tuple[str, str, str]], tmp: Path) -> dict[str, dict[str, Any]]:
    """The oracle: each key's rows replayed by a daemon of its own."""
    out = {}
    for key in KEYS:
        path = tmp / f"{key}.csv"
        path.write_text("id,a,b,y\n" + "".join(f"{row}\n" for k, _, row in rows if k == key))
        app = run(path)
        try:
            learner, pseudo = app.daemon.learner, app.daemon.pseudo
            out[key] = {
                "weights": learner.model.weights,
                "intercept": learner.model.intercept,
                "records_learned": learner.records_learned,
                "pseudo_labels": pseudo.summary()["pseudo_labels"],
            }
        finally:
            app.close()
    return out


def key_outcome(app: Any, key: str) -> dict[str, Any]:
    learner = app.daemon.keyed.models.peek(key)
    got = key_object(key, learner)
    return {
        "weights": learner.model.weights,
        "intercept": learner.model.intercept,
        "records_learned": got["records_learned"],
        "pseudo_labels": got["pseudo_labels"],
    }


@pytest.mark.slow
@pytest.mark.parametrize("max_live", [10, 2])
def test_each_key_pseudo_labels_as_a_run_of_its_own(tmp_path: Path, max_live: int) -> None:
    rows = stream()
    oracle = per_key_runs(rows, tmp_path)
    path = tmp_path / "keyed.csv"
    keyed_stream(rows, path)
    app = run(path, key_by="store", max_live_keys=max_live)
    try:
        for key in KEYS:
            assert key_outcome(app, key) == oracle[key], key
        if max_live == 2:
            assert app.daemon.keyed.models.spills > 0  # loops went to disk and came back
    finally:
        app.close()
    decided = oracle["north"]["pseudo_labels"]
    assert decided["accepted"] > 0 and decided["rejected"] > 0 and decided["queued"] == 0
    assert sum(o["pseudo_labels"]["audited"] for o in oracle.values()) > 0  # late labels


@pytest.mark.slow
def test_a_restart_resumes_each_key_pseudo_label_loop(tmp_path: Path) -> None:
    """Half the stream followed, stopped (a checkpoint, windows half full), a new daemon
    on the rest: each key as one pass of its own."""
    rows = stream(seed=4)
    oracle = per_key_runs(rows, tmp_path)
    half = len(rows) // 2
    path = tmp_path / "keyed.csv"
    keyed_stream(rows[:half], path)
    keyed = {"key_by": "store", "max_live_keys": 2, "state_dir": str(tmp_path / "state")}
    first = build_keyed(path, follow=True, **keyed)
    run_until_seen(first, half)
    assert first.daemon.counters.records_seen == half
    with path.open("a") as out:
        out.write("".join(f"{k},{row}\n" for k, _, row in rows[half:]))
    app = run(path, **keyed)
    try:
        for key in KEYS:
            assert key_outcome(app, key) == oracle[key], key
    finally:
        app.close()


@pytest.mark.slow
def test_each_key_classifier_pseudo_labels_as_a_run_of_its_own(tmp_path: Path) -> None:
    """Logistic per key, labels as text: each key's class loop (class shares, disagreement
    between the committee's members) equals a run of its own."""
    rng = random.Random(1)
    rows = []
    for i in range(600):
        key = rng.choice(KEYS[:3])
        a, b = rng.uniform(-1, 1), rng.uniform(-1, 1)
        label = "yes" if a + KEYS.index(key) * 0.3 * b > 0 else "no"
        rows.append((key, f"{a!r},{b!r},{label if i < 30 or rng.random() < 0.3 else ''}"))
    options: dict[str, Any] = {
        "target": "y", "id_column": None, "model": "logistic", "lr": 0.5,
        "pseudo": {"pseudo_threshold": 0.5},
    }  # fmt: skip
    oracle = {}
    for key in KEYS[:3]:
        path = tmp_path / f"{key}.csv"
        path.write_text("a,b,y\n" + "".join(f"{row}\n" for k, row in rows if k == key))
        app = run(path, **options)
        try:
            oracle[key] = (app.daemon.learner.model.weights, app.daemon.pseudo.summary())
        finally:
            app.close()
    path = tmp_path / "keyed.csv"
    path.write_text("store,a,b,y\n" + "".join(f"{k},{row}\n" for k, row in rows))
    app = run(path, key_by="store", max_live_keys=1, **options)
    try:
        for key in KEYS[:3]:
            learner = app.daemon.keyed.models.peek(key)
            assert (learner.model.weights, learner.pseudo.summary()) == oracle[key], key
    finally:
        app.close()
    assert all(summary["pseudo_labels"]["accepted"] > 0 for _, summary in oracle.values())
