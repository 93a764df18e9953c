"""Real processes and signals: SIGKILL at any moment loses and duplicates nothing; SIGTERM and
SIGINT are honoured within a second in every state the daemon can be in."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from streamhelpers import STREAMLEARN, cli, inspect_json


def _wait_for(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def test_sigkill_before_the_first_checkpoint_duplicates_no_dead_letter_or_prediction(tmp_path):
    # Bad rows (dead letters) and unlabeled rows (predictions), 1,000 of each, replayed slowly
    # enough to be killed mid-way, long before the first checkpoint is due.
    rows = []
    for i in range(1000):
        rows.append(f"{i},1,{i}")  # good
        rows.append(f"{i},oops{i},1")  # non_numeric: a dead letter
        rows.append(f"{i},2,")  # unlabeled: a prediction
    path = tmp_path / "rows.csv"
    path.write_text("a,b,y\n" + "\n".join(rows) + "\n")
    state, dead, predictions = tmp_path / "state", tmp_path / "dead.jsonl", tmp_path / "pred.jsonl"
    common = [
        "replay",
        str(path),
        "--state-dir",
        str(state),
        "--dead-letter",
        str(dead),
        "--predictions",
        str(predictions),
    ]
    proc = subprocess.Popen(
        [*STREAMLEARN, *common, "--rate", "3000", "--checkpoint-interval", "3600"],
        stderr=subprocess.DEVNULL,
    )
    try:
        # Past the sinks' buffers: some entries have reached the files, no checkpoint has.
        _wait_for(lambda: _size(dead) > 20_000 and _size(predictions) > 20_000, "sink output")
        assert not list(state.glob("gen-*.ckpt"))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    cli(*common)
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert len(letters) == 1000
    assert len({entry["position"]["offset"] for entry in letters}) == 1000
    predicted = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(predicted) == 1000
    assert len({entry["position"]["offset"] for entry in predicted}) == 1000
    assert inspect_json(state)["records_learned"] == 1000


def test_sigkill_while_waiting_for_the_file_then_restart_follows_it(tmp_path):
    # The start state of a run whose file was not there yet resumes as a fresh start.
    path, state = tmp_path / "events.jsonl", tmp_path / "state"
    args = [*STREAMLEARN, "run", str(path), "--state-dir", str(state)]
    proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: (state / "start.ckpt").exists(), "the start state")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    path.write_text("".join(f'{{"a": {i}, "y": {2 * i}}}\n' for i in range(50)))
    proc = subprocess.Popen(
        [*args, "--checkpoint-interval", "0.2"], stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(
            lambda: list(state.glob("gen-*.ckpt")) and inspect_json(state)["records_learned"] == 50,
            "50 records learned",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert not (state / "start.ckpt").exists()
