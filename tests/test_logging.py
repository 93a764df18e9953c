"""What a daemon says in its log unasked, read from the stderr of real ``run``/``replay``.

A start banner (source, model, state dir, fresh or resumed and from where, features), a
heartbeat every ``--log-every`` seconds (records a second, rolling error, Kafka lag), rejected
records at most once every 10 s with their top reasons, and a warning for a ``run`` that
keeps nothing (no ``--state-dir``).
"""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_progress import BAR, on_terminal

from streamhelpers import STREAMLEARN, cli, make_regression, write_csv

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"


def run_for(args: list[str], until: Callable[[str], bool], log: Path, timeout: float = 60) -> str:
    """Start ``streamlearn run ARGS``, stop it (SIGTERM) once ``until(stderr so far)``; its
    stderr (kept in the file ``log``). The daemon must exit 0."""
    with open(log, "w") as sink:
        proc = subprocess.Popen([*STREAMLEARN, "run", *args], stderr=sink, text=True)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not until(log.read_text()):
                assert proc.poll() is None, log.read_text()
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, log.read_text()
        finally:
            proc.kill()
    return log.read_text()


@pytest.fixture
def stream(tmp_path: Path) -> Path:
    X, y, _ = make_regression(2000, d=2, seed=7)
    path = tmp_path / "stream.csv"
    write_csv(path, X, y, names=["a", "b"])
    return path


def test_replay_starts_with_a_banner(stream: Path, tmp_path: Path):
    state = tmp_path / "state"
    first = cli("replay", str(stream), "--state-dir", str(state)).stderr
    assert re.search(
        rf"^{STAMP} INFO streamlearn: replay file:{re.escape(str(stream))}: model sgd, fresh, "
        rf"state dir {re.escape(str(state))}; features a, b$",
        first,
        re.M,
    ), first
    size = stream.stat().st_size
    again = cli("replay", str(stream), "--state-dir", str(state)).stderr
    assert (
        f"model sgd, resumed from generation 1 in {state} (2,000 records learned, at byte "
        f"{size:,}); features a, b" in again
    ), again
    assert "--state-dir" not in first + again  # replay is not warned: it keeps what it means to


def test_a_wholly_rejected_input_is_not_silent(tmp_path: Path):
    path = tmp_path / "bad.csv"
    rows = ["x,y"] + ["oops,1"] * 1990 + ["1,2,3"] * 10
    path.write_text("\n".join(rows) + "\n")
    result = cli("replay", str(path))
    assert re.search(
        rf"^{STAMP} WARNING streamlearn: rejected 2,000 of 2,000 records in the last "
        r"[\d.]+ s: non_numeric 1,990, field_count 10$",
        result.stderr,
        re.M,
    ), result.stderr


def test_run_without_a_state_dir_is_warned_about(stream: Path, tmp_path: Path):
    warning = "WARNING streamlearn: no --state-dir: the model and its position live in memory"
    banner = "INFO streamlearn: run "
    err = run_for([str(stream)], until=lambda text: banner in text, log=tmp_path / "1.log")
    assert warning in err and "nothing survives a restart" in err
    err = run_for(
        [str(stream), "--state-dir", str(tmp_path / "state")],
        until=lambda text: banner in text,
        log=tmp_path / "2.log",
    )
    assert banner in err and warning not in err


@pytest.mark.slow
def test_run_logs_a_heartbeat_every_log_every_seconds(stream: Path, tmp_path: Path):
    beat = re.compile(
        rf"^{STAMP} INFO streamlearn: (?:([\d,]+) records in the last ([\d.]+) s \(([\d,]+)/s\)"
        r"|idle: no records in the last ([\d.]+) s), ([\d,]+) in all; rolling MAE [\d.e-]+$",
        re.M,
    )
    err = run_for(
        [str(stream), "--log-every", "0.5"],
        until=lambda text: len(beat.findall(text)) >= 3,
        log=tmp_path / "1.log",
    )
    beats = beat.findall(err)
    assert beats[0][0] and int(beats[0][2].replace(",", "")) > 0  # the first: records, rate
    assert all(b[4] == "2,000" for b in beats[1:])  # the file is read: idle, 2,000 in all
    assert "idle: no records in the last" in err
    # Off with 0: nothing in 1.5 s of a run that has read its file.
    started = time.monotonic()
    quiet = run_for(
        [str(stream), "--log-every", "0"],
        until=lambda text: time.monotonic() - started > 1.5,
        log=tmp_path / "2.log",
    )
    assert "INFO streamlearn: run " in quiet and not beat.search(quiet)


def test_rejections_are_told_at_most_every_10_s():
    from streamlearn.observe.logbook import Logbook

    now = [0.0]
    lines: list[tuple[float, str]] = []
    book = Logbook(0, error=lambda: None, clock=lambda: now[0])
    counts = SimpleNamespace(records_seen=0, records_rejected=0, rejected_by_reason={})

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append((now[0], record.getMessage()))

    handler = Catch()
    logging.getLogger("streamlearn").addHandler(handler)
    try:
        for tick in range(1, 351):  # 35 s, a batch of 100 bad records every 0.1 s
            now[0] = tick / 10
            counts.records_seen += 100
            counts.records_rejected += 100
            reasons = counts.rejected_by_reason
            reasons["non_numeric"] = reasons.get("non_numeric", 0) + 99
            reasons["field_count"] = reasons.get("field_count", 0) + 1
            book.tick(counts)
        book.close(counts)
    finally:
        logging.getLogger("streamlearn").removeHandler(handler)
    told = [(when, text) for when, text in lines if text.startswith("rejected")]
    assert [when for when, _ in told] == [10.0, 20.0, 30.0, 35.0]
    assert told[0][1] == (
        "rejected 10,000 of 10,000 records in the last 10 s: non_numeric 9,900, field_count 100"
    )
    assert told[-1][1].startswith("rejected 5,000 of 5,000 records in the last 5.0 s")


@pytest.mark.slow
def test_heartbeat_lines_do_not_break_the_progress_bar(tmp_path: Path):
    X, y, _ = make_regression(3000, d=2, seed=8)
    path = tmp_path / "stream.csv"
    write_csv(path, X, y)
    code, shown = on_terminal(
        [*STREAMLEARN, "replay", str(path), "--rate", "1000", "--log-every", "0.5"]
    )
    assert code == 0, shown
    lines = shown.replace("\r\n", "\n").split("\n")
    beats = [
        line for line in lines if "INFO streamlearn:" in line and "records in the last" in line
    ]
    assert len(beats) >= 2, shown
    for line in beats:
        # The bar was cleared first: after the last carriage return, the log line alone.
        assert re.match(rf"{STAMP} INFO streamlearn: ", line.split("\r")[-1]), repr(line)
        assert not BAR.search(line.split("\r")[-1])
    assert BAR.search(shown[shown.rindex("records in the last") :])  # drawn again after it


@pytest.mark.kafka
def test_heartbeat_of_a_kafka_run_names_the_lag(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
):
    topic = kafka_topic_factory(2)
    path = tmp_path / "rows.csv"
    path.write_text("a,y\n" + "".join(f"{i % 7},{i % 5}\n" for i in range(1000)))
    cli("produce", str(path), "-b", kafka_bootstrap, "-t", topic)
    lag = re.compile(r"; Kafka lag (\d+) \(p0=\d+ p1=\d+\)$", re.M)
    err = run_for(
        [
            f"kafka://{kafka_bootstrap}/{topic}",
            "--log-every",
            "0.5",
            "--state-dir",
            str(tmp_path / "s"),
        ],
        until=lambda text: "1,000 in all" in text and bool(lag.search(text)),
        log=tmp_path / "run.log",
    )
    assert "INFO streamlearn: run kafka" in err
    assert lag.search(err)
