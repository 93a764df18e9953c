"""Progress on a terminal: percent, bar, records, the rate now, the error, elapsed and time left.

Run under a pseudo-terminal (python's ``pty``), the way a person sees it; without a terminal
nothing is drawn. Log lines written while a bar is up start on a line of their own.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from streamhelpers import STREAMLEARN, cli, make_regression, write_csv

#: One drawing of a bar with a known total: percent, bar, records, rate, time so far < left.
BAR = re.compile(
    r"(?P<percent>\d+)%\|(?P<bar>[^|]*)\| (?P<records>[\d,]+) (?P<noun>records|rows)"
    r"(?:, (?P<rate>[\d,]+) (?:records|rows)/s)?(?:, MAE (?P<mae>[\d.e+-]+))?"
    r" \[(?P<elapsed>\d\d:\d\d)<(?P<left>\d\d:\d\d|\?)\]"
)


def on_terminal(
    args: Sequence[str], columns: int | None = None, timeout: float = 120
) -> tuple[int, str]:
    """Run ``args`` with stderr on a pseudo-terminal (``columns`` wide, or one that does not
    say); its exit code and everything it drew there."""
    main_fd, terminal_fd = pty.openpty()
    if columns is not None:
        fcntl.ioctl(terminal_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    try:
        proc = subprocess.Popen(args, stderr=terminal_fd, stdout=subprocess.DEVNULL)
        os.close(terminal_fd)
        chunks = []
        while True:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:  # the other side closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = proc.wait(timeout=timeout)
    finally:
        os.close(main_fd)
    return code, b"".join(chunks).decode()


def read_all(fd: int) -> str:
    """Everything written so far to the terminal whose other side is ``fd``."""
    chunks = []
    while select.select([fd], [], [], 0.2)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def drawings(shown: str) -> list[re.Match[str]]:
    """Each drawing of the bar, in order (a drawing starts with a carriage return)."""
    return [m for part in shown.split("\r") if (m := BAR.search(part))]


@pytest.fixture
def stream(tmp_path: Path) -> Path:
    X, y, _ = make_regression(3000, d=3, seed=4)
    path = tmp_path / "stream.csv"
    write_csv(path, X, y)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("columns", [None, 120])
def test_replay_draws_percent_bar_rate_error_and_time_left(stream: Path, columns: int | None):
    # 3 s at this rate: drawings while it runs, whatever start-up costs on a busy machine.
    code, shown = on_terminal([*STREAMLEARN, "replay", str(stream), "--rate", "1000"], columns)
    assert code == 0, shown
    drawn = drawings(shown)
    assert len(drawn) >= 3, shown
    middle = [d for d in drawn if 0 < int(d["percent"]) < 100]
    assert middle, shown
    assert any(d["rate"] and d["mae"] and d["left"] != "?" for d in middle), shown
    assert all("█" in d["bar"] or int(d["percent"]) < 10 for d in drawn)
    last = drawn[-1]
    assert last["percent"] == "100" and last["records"] == "3,000"
    assert last["bar"].strip("█") == ""  # full
    # Records a second over the last seconds (--rate's pacer catches up on start-up's delay).
    assert int(last["rate"].replace(",", "")) > 300
    if columns is not None:
        widths = {len(line) for line in shown.split("\r") if BAR.search(line)}
        assert max(widths) <= columns
    # The summary comes after the bar, on its own line.
    assert re.search(r"\r\nlearned 3000 records", shown)


def test_without_a_terminal_nothing_is_drawn(stream: Path):
    result = cli("replay", str(stream), "--rate", "5000")
    assert "\r" not in result.stderr
    assert "records/s" not in result.stderr and "%|" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("learned 3000 records")


def test_no_progress_draws_nothing_on_a_terminal(stream: Path):
    code, shown = on_terminal([*STREAMLEARN, "replay", str(stream), "--no-progress"])
    assert code == 0
    assert not drawings(shown) and "%|" not in shown


def test_the_rate_shown_is_the_rate_now():
    """1000 records a second for 10 s, then 100 a second: the bar says about 100, not 700."""
    from streamlearn.observe.progress import ProgressBar

    now = [0.0]
    main_fd, terminal_fd = pty.openpty()
    terminal = os.fdopen(terminal_fd, "w")
    try:
        bar = ProgressBar(20_000, stream=terminal, clock=lambda: now[0])
        records = 0
        for step in range(1, 61):  # a drawing every 0.25 s
            now[0] = step * 0.25
            records += 250 if now[0] <= 10 else 25
            bar.show(records, records)
        bar.close(records, records)
        terminal.flush()
        last = drawings(read_all(main_fd))[-1]
    finally:
        terminal.close()
        os.close(main_fd)
    assert last["records"] == "10,500"
    assert 90 <= int(last["rate"].replace(",", "")) <= 110


def test_log_lines_go_above_the_bar():
    """A record logged while a bar is up starts a line of its own, and the bar comes back."""
    from streamlearn.cli.group import configure_logging
    from streamlearn.observe.progress import ProgressBar

    main_fd, terminal_fd = pty.openpty()
    terminal = os.fdopen(terminal_fd, "w")
    saved = sys.stderr
    sys.stderr = terminal
    try:
        configure_logging("info")
        bar = ProgressBar(100, stream=terminal)
        bar.show(40, 40, "MAE 0.5")
        logging.getLogger("streamlearn.test").info("a line of its own")
        bar.show(41, 41, "MAE 0.5")
        bar.close(100, 100)
        logging.getLogger("streamlearn.test").info("after the bar")
        terminal.flush()
        shown = read_all(main_fd)
    finally:
        sys.stderr = saved
        terminal.close()
        os.close(main_fd)
    lines = shown.replace("\r\n", "\n").split("\n")
    logged = [line for line in lines if "a line of its own" in line]
    assert len(logged) == 1
    # Cleared of the bar before it: what follows the last carriage return is the record.
    assert re.match(r"\d{4}-\d\d-\d\d \S+ INFO streamlearn.test: a line", logged[0].split("\r")[-1])
    after = shown[shown.index("a line of its own") :]
    assert BAR.search(after), "the bar is drawn again under the log line"
    assert re.search(r"\n\d{4}-\d\d-\d\d \S+ INFO streamlearn.test: after the bar", shown)


@pytest.mark.kafka
def test_produce_draws_the_same_bar(kafka_bootstrap: str, kafka_topic_factory: Callable[..., str],
                                    tmp_path: Path):  # fmt: skip
    path = tmp_path / "rows.csv"
    path.write_text("a,y\n" + "".join(f"{i},{2 * i}\n" for i in range(2000)))
    topic = kafka_topic_factory(1)
    code, shown = on_terminal(
        [*STREAMLEARN, "produce", str(path), "-b", kafka_bootstrap, "-t", topic, "--rate", "2000"]
    )
    assert code == 0, shown
    drawn = drawings(shown)
    assert any(0 < int(d["percent"]) < 100 and d["rate"] and d["left"] != "?" for d in drawn)
    last = drawn[-1]
    assert (last["percent"], last["records"], last["noun"]) == ("100", "2,000", "rows")
    # Without a terminal: no bar.
    result = cli("produce", str(path), "-b", kafka_bootstrap, "-t", topic)
    assert "\r" not in result.stderr and "rows/s" not in result.stderr
