"""Issue 14, end to end through the command line, where the other keyed tests stop at the
decoder or the store: bad keys reach the dead-letter file with their reason and lose no
record; a tampered spilled key is refused by name; ``inspect --keys --sort``; a run without
a state dir leaves no spill directory; each key's rolling MAE equals a numpy loop's."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_keyed_run import (
    FEATURES,
    by_key,
    held_keys,
    keyed_csv,
    keyed_rows,
    learners,
    replay,
    replayed_spec,
    write_keyed,
)

from streamhelpers import cli, sgd_oracle
from streamlearn.keys.tempdir import PREFIX

BAD_JSON = [
    ({"store": "a", "x": 1.0, "y": 2.0}, None),
    ({"x": 1.0, "y": 2.0}, "missing_key"),
    ({"store": None, "x": 1.0, "y": 2.0}, "missing_key"),
    ({"store": "", "x": 1.0, "y": 2.0}, "missing_key"),
    ({"store": "   ", "x": 1.0, "y": 2.0}, "missing_key"),
    ({"store": 7, "x": 1.0, "y": 2.0}, None),  # a number: the key "7"
    ({"store": 2.5, "x": 1.0, "y": 3.0}, None),
    ({"store": "7", "x": 2.0, "y": 2.0}, None),  # the same key as the number 7
    ({"store": {"a": 1}, "x": 1.0, "y": 2.0}, "bad_key"),
    ({"store": [1], "x": 1.0, "y": 2.0}, "bad_key"),
    ({"store": True, "x": 1.0, "y": 2.0}, "bad_key"),
]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _keys(state: Path) -> dict[str, int]:
    rows = json.loads(cli("inspect", str(state), "--keys", "--json").stdout)
    return {row["key"]: row["records_learned"] for row in rows}


@pytest.mark.slow
def test_bad_json_keys_are_dead_letters_and_numbers_are_keys_as_text(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(event) + "\n" for event, _ in BAD_JSON))
    dead, state = tmp_path / "dead.jsonl", tmp_path / "state"
    summary = json.loads(
        cli("replay", str(path), "--key-by", "store", "--dead-letter", str(dead),
            "--state-dir", str(state), "--inspect-json").stdout
    )  # fmt: skip
    letters = _lines(dead)
    assert [line["reason"] for line in letters] == [r for _, r in BAD_JSON if r is not None]
    assert all(line["detail"].startswith("key field 'store': ") for line in letters)
    assert [json.loads(line["raw"]) for line in letters] == [e for e, r in BAD_JSON if r]
    assert summary["records_seen"] == len(BAD_JSON)  # every record learned or dead-lettered
    assert summary["records_learned"] == 4
    assert summary["rejected_by_reason"] == {"missing_key": 4, "bad_key": 3}
    assert _keys(state) == {"a": 1, "7": 2, "2.5": 1}
    # --default-key takes the missing and empty keys; a bad key stays a dead letter
    dead2, state2 = tmp_path / "dead2.jsonl", tmp_path / "state2"
    cli("replay", str(path), "--key-by", "store", "--default-key", "other",
        "--dead-letter", str(dead2), "--state-dir", str(state2))  # fmt: skip
    assert [line["reason"] for line in _lines(dead2)] == ["bad_key"] * 3
    assert _keys(state2) == {"a": 1, "7": 2, "2.5": 1, "other": 4}


@pytest.mark.slow
def test_csv_keys_are_text_and_an_empty_key_is_a_dead_letter(tmp_path: Path) -> None:
    rows = ["store,a,y"]
    for i in range(60):
        key = ("007", "7", "", " ")[i % 4]  # "007" is not the key "7": CSV keys are text
        rows.append(f"{key},{i / 60!r},{(i % 4 + 1) * i / 60!r}")
    path = tmp_path / "keyed.csv"
    path.write_text("\n".join(rows) + "\n")
    dead, state = tmp_path / "dead.jsonl", tmp_path / "state"
    summary = json.loads(
        cli("replay", str(path), "--key-by", "store", "--dead-letter", str(dead), "--lr", "0.1",
            "--state-dir", str(state), "--inspect-json").stdout
    )  # fmt: skip
    assert [line["reason"] for line in _lines(dead)] == ["missing_key"] * 30
    assert summary["records_learned"] == 30 and summary["records_seen"] == 60
    assert _keys(state) == {"007": 15, "7": 15}
    for key, slope in (("007", 1), ("7", 2)):
        X = np.array([[i / 60] for i in range(60) if i % 4 == slope - 1])
        theta, theta0, _ = sgd_oracle(X, slope * X[:, 0], lr=0.1)
        got = json.loads(cli("inspect", str(state), "--key", key, "--json").stdout)
        assert (
            abs(got["weights"]["a"] - theta[0]) <= 1e-12 and abs(got["intercept"] - theta0) <= 1e-12
        )


def _frame_of(state: Path, key: str) -> tuple[Path, int, int]:
    from streamlearn.keys.segments import segment_name

    with held_keys(state) as models:
        entry = models.index.get(key)
        assert entry is not None
        return state / "keys" / segment_name(entry.segment), entry.offset, entry.length


@pytest.mark.slow
def test_a_tampered_spilled_key_is_refused_by_name(tmp_path: Path) -> None:
    keys, *_, path = keyed_csv(tmp_path, 300, seed=21)
    state = tmp_path / "state"
    replay(path, state, "--max-live-keys", "1")
    victim = sorted(set(keys))[3]
    segment, offset, length = _frame_of(state, victim)
    blob = bytearray(segment.read_bytes())
    blob[offset + length // 2] ^= 0x01
    segment.write_bytes(bytes(blob))
    refused = cli("inspect", str(state), "--key", victim, "--json", check=False)
    assert refused.returncode == 1 and refused.stdout == ""
    assert f"key {victim!r}" in refused.stderr and "checksum mismatch" in refused.stderr
    assert "Traceback" not in refused.stderr
    # a resumed run that meets the key stops with the same line: never a fresh model for it
    more = tmp_path / "more.csv"
    more.write_text(path.read_text() + f"{victim},0.5,0.5,0.5,1.0\n")
    resumed = cli("replay", str(more), "--key-by", "store", "--state-dir", str(state),
                  "--max-live-keys", "1", check=False)  # fmt: skip
    assert resumed.returncode == 1, resumed.stderr
    assert f"key {victim!r}" in resumed.stderr and "Traceback" not in resumed.stderr


@pytest.mark.slow
def test_inspect_keys_sorts_by_records_or_key(tmp_path: Path) -> None:
    path = tmp_path / "keyed.csv"
    counts = {"b": 5, "c": 9, "a": 2}
    lines = ["store,a,y"] + [f"{k},1.0,{n}" for k, n in counts.items() for _ in range(n)]
    path.write_text("\n".join(lines) + "\n")
    state = tmp_path / "state"
    cli("replay", str(path), "--key-by", "store", "--state-dir", str(state))
    by = {}
    for sort in ("records", "key"):
        listed = cli("inspect", str(state), "--keys", "--sort", sort, "--json").stdout
        by[sort] = [(row["key"], row["records_learned"]) for row in json.loads(listed)]
    assert by["records"] == [("c", 9), ("b", 5), ("a", 2)]
    assert by["key"] == [("a", 2), ("b", 5), ("c", 9)]
    help_text = " ".join(cli("inspect", "--help").stdout.split())
    assert "--sort [score|records|key] With --keys: the order" in help_text


@pytest.mark.slow
def test_a_run_without_a_state_dir_spills_to_a_directory_removed_at_exit(tmp_path: Path) -> None:
    keys, *_, path = keyed_csv(tmp_path, 400, seed=4)
    spill_root = tmp_path / "tmp"
    spill_root.mkdir()
    summary = json.loads(
        cli("replay", str(path), "--key-by", "store", "--max-live-keys", "2", "--inspect-json",
            env={"TMPDIR": str(spill_root)}).stdout
    )  # fmt: skip
    assert summary["key_spills"] > 100 and summary["keys_total"] == len(set(keys))
    assert [p.name for p in spill_root.iterdir() if p.name.startswith(PREFIX)] == []
    assert not os.listdir(spill_root)


@pytest.mark.slow
def test_each_keys_rolling_mae_equals_a_numpy_loop(tmp_path: Path) -> None:
    keys, X, y, path = keyed_csv(tmp_path, 2500, seed=8)
    replay(path, tmp_path / "state", "--model", "sgd", "--lr", "0.05", "--max-live-keys", "5")
    got = learners(tmp_path / "state")
    for key, rows in by_key(keys).items():
        _, _, predictions = sgd_oracle(X[rows], y[rows], lr=0.05)
        errors = np.abs(predictions - y[rows])
        rolling = got[key].rolling_summary()  # --rolling-window 50
        assert abs(rolling["mae"] - float(np.mean(errors[-50:]))) <= 1e-9, key
        rmse = float(np.sqrt(np.mean(errors[-50:] ** 2)))
        assert abs(rolling["rmse"] - rmse) <= 1e-9, key
    assert set(FEATURES) == set(got[keys[0]].model.weights)


@pytest.mark.slow
def test_a_river_specs_rolling_metrics_per_key_equal_progressive_val_score(tmp_path: Path) -> None:
    from river import evaluate, metrics, utils

    from streamlearn.models.registry import build_model

    spec = "StandardScaler | LinearRegression"
    for key, stream, learner in replayed_spec(tmp_path, spec, 900, 6, "--max-live-keys", "4"):
        mae = utils.Rolling(metrics.MAE, window_size=50)
        rmse = utils.Rolling(metrics.RMSE, window_size=50)
        evaluate.progressive_val_score(
            stream, build_model(spec, lr=0.01), metrics.base.Metrics([mae, rmse])
        )
        rolling = learner.rolling_summary()
        assert abs(rolling["mae"] - mae.get()) <= 1e-9, key
        assert abs(rolling["rmse"] - rmse.get()) <= 1e-9, key


@pytest.mark.slow
def test_inspect_keys_of_classifiers_lists_the_least_accurate_first(tmp_path: Path) -> None:
    keys, X, y = keyed_rows(600, seed=10)
    labels = ["1" if value > 0 else "0" for value in y]
    path = tmp_path / "keyed.csv"
    write_keyed(path, keys, X, labels)
    state = tmp_path / "state"
    replay(path, state, "--model", "logistic", "--lr", "0.1", "--max-live-keys", "6")
    rows = json.loads(cli("inspect", str(state), "--keys", "--json", "--top", "4").stdout)
    everything = json.loads(cli("inspect", str(state), "--keys", "--json").stdout)
    got = learners(state)
    assert len(rows) == 4 and len(everything) == len(got)
    scores = [row["accuracy"] for row in everything]
    assert scores == sorted(scores) and rows == everything[:4]  # the least accurate first
    for row in everything:
        learner = got[row["key"]]
        assert row["records_learned"] == learner.records_learned
        assert row["accuracy"] == pytest.approx(learner.rolling_summary()["accuracy"], abs=1e-12)
    whole = json.loads(cli("inspect", str(state), "--json").stdout)
    assert (whole["keys_total"], whole["keys_live"]) == (len(got), 6)
