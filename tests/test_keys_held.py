"""A River spec per key: each key's alert-only drift monitor hears of its errors a few at a
time (``keys.held``) and flags what a run of the key's rows alone flags record by record:
the same records, events and monitor state, with keys spilled at every row, across a
checkpoint and a resume, and without a state dir (the detections logged at the end)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamhelpers import cli

SPEC = "StandardScaler | LinearRegression"
ROWS = 7000
KEYS = ("drifty", "steady", "other")


def _stream() -> tuple[list[str], dict[str, list[str]], dict[str, list[int]]]:
    """Three keys interleaved at random: "drifty" changes its weights at its 1500th row, the
    others never. Returns the keyed lines, each key's lines alone and their positions."""
    rng = np.random.default_rng(23)
    which = rng.integers(len(KEYS), size=ROWS)
    X = rng.normal(size=(ROWS, 2))
    keyed: list[str] = []
    alone: dict[str, list[str]] = {key: [] for key in KEYS}
    positions: dict[str, list[int]] = {key: [] for key in KEYS}
    for i in range(ROWS):
        key = KEYS[which[i]]
        a, b = float(X[i, 0]), float(X[i, 1])
        if key == "drifty":
            w = (2.0, -1.0) if len(alone[key]) < 1500 else (-3.0, 4.0)
        else:
            w = (0.5, 0.5) if key == "steady" else (-1.0, 0.25)
        y = w[0] * a + w[1] * b + 0.05 * float(rng.normal())
        keyed.append(f"{key},{a!r},{b!r},{y!r}")
        alone[key].append(f"{a!r},{b!r},{y!r}")
        positions[key].append(i)
    return keyed, alone, positions


def _write(path: Path, header: str, lines: list[str]) -> Path:
    path.write_text(header + "\n" + "".join(line + "\n" for line in lines))
    return path


def _key(state: Path, key: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cli("inspect", str(state), "--key", key, "--json").stdout)
    return result


def _in_the_stream(own: dict[str, Any], positions: list[int]) -> dict[str, Any]:
    """A run of a key's rows alone, its drift summary in the keyed stream's positions."""
    events = [{**event, "record": positions[event["record"]]} for event in own["drift_events"]]
    drift = own["drift"]
    state = {**drift["state"]}
    del state["cooldown_until"]  # a position plus --drift-cooldown: compared as events
    return {"drift_events": events, "drift": {**drift, "state": state}}


def _comparable(key: dict[str, Any]) -> dict[str, Any]:
    drift = key["drift"]
    state = {**drift["state"]}
    del state["cooldown_until"]
    return {"drift_events": key["drift_events"], "drift": {**drift, "state": state}}


@pytest.mark.slow
def test_held_errors_flag_what_each_keys_rows_alone_flag(tmp_path: Path) -> None:
    keyed, alone, positions = _stream()
    common = ("--key-by", "store", "--model", SPEC, "--max-live-keys", "1")
    whole = _write(tmp_path / "keyed.csv", "store,a,b,y", keyed)
    one = tmp_path / "one"
    cli("replay", str(whole), "--state-dir", str(one), *common)
    # a checkpoint and a resume partway: the file grows, the replay goes on after its rows
    grown = _write(tmp_path / "grown.csv", "store,a,b,y", keyed[:3333])
    resumed = tmp_path / "resumed"
    cli("replay", str(grown), "--state-dir", str(resumed), *common)
    with open(grown, "a") as handle:
        handle.write("".join(line + "\n" for line in keyed[3333:]))
    cli("replay", str(grown), "--state-dir", str(resumed), *common)
    wants = {}
    for key in KEYS:
        path = _write(tmp_path / f"{key}.csv", "a,b,y", alone[key])
        own = json.loads(cli("replay", str(path), "--model", SPEC, "--inspect-json").stdout)
        wants[key] = want = _in_the_stream(own, positions[key])
        assert _comparable(_key(one, key)) == want, key
        assert _comparable(_key(resumed, key)) == want, key
        if key == "drifty":
            assert want["drift_events"], "the oracle run flags the change"
            assert want["drift"]["state"]["records_observed"] == len(positions[key])
        else:
            assert want["drift_events"] == [], key
    # no state dir, the stream ending at the first detection: it is heard of, and logged,
    # at the end of the run (the errors held then are not left unheard)
    first = wants["drifty"]["drift_events"][0]["record"]
    cut = _write(tmp_path / "cut.csv", "store,a,b,y", keyed[: first + 1])
    logged = cli("replay", str(cut), *common).stderr
    assert re.findall(r"drift at record (\d+): adwin", logged) == [str(first)]
