"""Issue 14 point 7 in a daemon without ``--state-dir``: the keys' histogram and the worst
``--metrics-top-keys`` gauges follow the keys (as a checkpoint would write them), and the
gauges change as a key gets worse, though no checkpoint is ever written."""

from __future__ import annotations

import pickle
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from prom_server import free_port
from streamlearn.app import build
from streamlearn.config import Settings
from streamlearn.keys.codec import describe_regression
from streamlearn.keys.scores import KeyScores

ROWS = 300


def _rows(start: int, count: int, slope: dict[int, float]) -> str:
    lines = []
    for i in range(start, start + count):
        k = i % 3
        a = (i % 7) / 7.0
        lines.append(f"s{k},{a!r},{slope[k] * a!r}\n")
    return "".join(lines)


def _worst(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("streamlearn_key_worst_rolling_metric{"):
            key = line.split('key="', 1)[1].split('"', 1)[0]
            out[key] = float(line.rsplit(" ", 1)[1])
        elif line.startswith('streamlearn_keys_rolling_metric_gcount{metric="mae"}'):
            out[":gcount"] = float(line.rsplit(" ", 1)[1])
    return out


def _wait(port: int, until, timeout: float = 30.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    got = _worst(port)
    while not until(got) and time.monotonic() < deadline:
        time.sleep(0.1)
        got = _worst(port)
    return got


@pytest.mark.slow
def test_worst_keys_follow_the_keys_without_a_state_dir(tmp_path: Path) -> None:
    data = tmp_path / "stream.csv"
    data.write_text("store,a,y\n" + _rows(0, ROWS, {0: 1.0, 1: 2.0, 2: 3.0}))
    port = free_port()
    settings = Settings(
        source=str(data),
        follow=True,
        metrics_port=port,
        checkpoint_interval=0.2,
        key_by="store",
        metrics_top_keys=2,
        lr=0.01,
    )
    app = build(settings)
    thread = threading.Thread(target=app.daemon.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while app.daemon.inspect()["records_learned"] < ROWS and time.monotonic() < deadline:
            time.sleep(0.05)
        keyed = app.daemon.keyed
        assert keyed is not None

        def score(key: str) -> float:
            learner = keyed.models.peek(key)
            assert learner is not None
            return describe_regression(learner)[1]

        # every key counted once; the worst two are the steepest, at their rolling MAE
        got = _wait(port, lambda got: got.get(":gcount") == 3 and len(got) == 3)
        assert got == {":gcount": 3.0, "s2": score("s2"), "s1": score("s1")}
        # s0's relation changes: it becomes the worst key, and s1 leaves the gauges
        with open(data, "a") as handle:
            handle.write(_rows(ROWS, 60, {0: -50.0, 1: 2.0, 2: 3.0}))
        got = _wait(port, lambda got: "s0" in got and "s1" not in got)
        assert set(got) == {":gcount", "s0", "s2"}, got
        assert got["s0"] > got["s2"]
    finally:
        app.daemon.stop()
        thread.join(30)
        app.close()


def test_a_key_counted_unwritten_counts_once_when_written() -> None:
    scores = KeyScores((1.0, 10.0), worst=2)
    scores.update("a", None, 0.5)  # written at 0.5
    scores.counted("a", 0.5, 5.0)  # then counted at 5.0, twice, unwritten
    scores.counted("a", 0.5, 50.0)
    scores.counted("b", None, 2.0)  # never written
    assert (scores.cumulative(), scores.worst_keys()) == ([0, 1, 2], [("a", 50.0), ("b", 2.0)])
    scores.update("a", 0.5, 0.2)  # written: replaces what was counted, not the 0.5
    scores.update("b", None, 3.0)
    assert (scores.cumulative(), scores.unscored) == ([1, 2, 2], 0)
    assert scores.score_sum == pytest.approx(3.2)
    # a checkpoint holds what was written: what is only counted is not carried over
    assert pickle.loads(pickle.dumps(scores))._unwritten == {}
