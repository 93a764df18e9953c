"""Chaos: SIGKILL, SIGSTOP/SIGCONT, rotation, copy-truncate and a full disk at random moments,
each kind a few times, during a followed file and a Kafka run. At the end every record is learned
exactly once (the weights are the numpy oracle's over the rows in the order they were learned),
and every dead letter and prediction is in its file exactly once, in stream order.

The events come from a seeded generator: a failure names its seed, and
``STREAMLEARN_CHAOS_SEED=N`` runs that schedule again (the timing of real processes still
varies). The small disk is a tmpfs the test mounts, so these run as root; elsewhere they are
skipped with the reason (in CI, where they must run, that is a failure).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamhelpers import (
    STREAMLEARN,
    fill_disk,
    inspect_json,
    saved,
    small_tmpfs,
    state_and_sinks,
)

#: Each kind of event happens this many times in each test, then the stream ends and the daemon
#: drains and stops (20 to 50 s of chaos: a kind that needs a running daemon comes seldom).
ROUNDS = 3
#: Seconds of chaos at the most (a kind that cannot happen then fails the test).
CHAOS_SECONDS = 60.0
#: The chaos schedule's seed; set it to replay the schedule of a failure.
SEED = int(os.environ.get("STREAMLEARN_CHAOS_SEED", "16"))
LR = 0.01
TRUE_WEIGHTS = np.array([0.5, -1.25, 2.0])
INTERCEPT = 1.5


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for this test (state dir and sinks), unmounted after it."""
    with small_tmpfs(tmp_path, "4m") as mount:
        yield mount


# -- reading what the daemon made durable --------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The entries of a sink file; a torn line fails the test."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- the daemon and the chaos around it ----------------------------------------------------


class Daemon:
    """One daemon command line, started, killed, stopped and continued by the chaos."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.args = args
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False

    @property
    def up(self) -> bool:
        return self.proc is not None

    def start(self) -> None:
        with open(self.log, "ab") as log:  # a file: an unread pipe would block the daemon
            self.proc = subprocess.Popen(
                [*STREAMLEARN, *self.args], stdout=subprocess.DEVNULL, stderr=log
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)  # a stopped process dies too
        self.proc.wait()
        self.proc, self.frozen = None, False

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.frozen = False

    def check(self) -> None:
        """Fail when the daemon exited without being told to."""
        if self.proc is not None and self.proc.poll() is not None:
            code, self.proc = self.proc.returncode, None
            raise AssertionError(f"the daemon exited by itself ({code}):\n{self.tail()}")

    def terminate(self) -> int:
        """SIGTERM, then the exit code (it must come within 30 s)."""
        assert self.proc is not None and not self.frozen
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Disk:
    """The small disk, filled to its last byte and freed again."""

    def __init__(self, mount: Path) -> None:
        self.mount = mount
        self.filler = mount / "filler"
        self.full = False

    def fill(self) -> None:
        self.filler = fill_disk(self.mount)
        self.full = True

    def free(self) -> None:
        self.filler.unlink()
        self.full = False


#: An event: whether it can happen now, and what it does.
Event = tuple[Callable[[], bool], Callable[[], None]]


class Chaos:
    """Events at random moments; the kinds done least so far are the likeliest next."""

    def __init__(self, rng: random.Random, daemon: Daemon, disk: Disk) -> None:
        self.rng = rng
        self.daemon = daemon
        self.disk = disk
        self.counts: Counter[str] = Counter()
        self.events: dict[str, Event] = {
            "sigkill": (lambda: daemon.up, daemon.kill),
            "restart": (lambda: not daemon.up, daemon.start),
            "sigstop": (lambda: daemon.up and not daemon.frozen, daemon.freeze),
            "sigcont": (lambda: daemon.frozen, daemon.thaw),
            "disk_full": (lambda: not disk.full, disk.fill),
            "disk_freed": (lambda: disk.full, disk.free),
        }

    def run(self, rounds: int, seconds: float) -> None:
        """Events until each kind has happened ``rounds`` times, for ``seconds`` at the most."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and min(self.counts[n] for n in self.events) < rounds:
            self.sleep(self.rng.uniform(0.05, 1.2))
            possible = [name for name, (can, _) in self.events.items() if can()]
            name = self.rng.choices(possible, [1 / (1 + self.counts[n]) for n in possible])[0]
            self.events[name][1]()
            self.counts[name] += 1
            self.daemon.check()

    def settle(self) -> None:
        """The chaos is over: space returns, and the daemon runs."""
        if self.disk.full:
            self.disk.free()
        if self.daemon.frozen:
            self.daemon.thaw()
        if not self.daemon.up:
            self.daemon.start()

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.daemon.check()
            time.sleep(0.05)

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            self.daemon.check()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.daemon.tail()}")
            time.sleep(0.1)


@contextlib.contextmanager
def replayable(chaos: Chaos) -> Iterator[None]:
    """A failure says the seed that replays it, and the events done until then."""
    try:
        yield
    except AssertionError as exc:
        raise AssertionError(
            f"chaos seed {SEED} (STREAMLEARN_CHAOS_SEED={SEED} replays it), "
            f"events {dict(chaos.counts)}: {exc}"
        ) from exc


def check_the_end(
    chaos: Chaos, started: float, state: Path, stream: Writer | Producer
) -> dict[str, Any]:
    """After the daemon stopped: no traceback, every kind of event done, and each record of the
    stream learned, rejected or taken as unlabeled once. The state's ``inspect --json``."""
    log = chaos.daemon.log.read_text()
    assert "Traceback" not in log, log
    print(f"chaos seed {SEED}: {dict(chaos.counts)} in {time.monotonic() - started:.1f} s")
    assert set(chaos.counts) == set(chaos.events), "an event never happened"
    summary = inspect_json(state)
    assert summary["records_learned"] == stream.count("labeled")
    assert summary["records_rejected"] == stream.count("bad")
    assert summary["records_unlabeled"] == stream.count("unlabeled")
    assert summary["divergence_events"] == 0
    return summary


# -- the followed file ---------------------------------------------------------------------

COLUMNS = ["x0", "x1", "x2", "y"]


@dataclass
class Row:
    """A row as written: what it is, its values, its line and where the line went."""

    kind: str  # "labeled", "unlabeled" or "bad"
    x: np.ndarray
    y: float
    raw: bytes
    offset: int


class Writer:
    """Appends rows to the followed CSV, as an application logging to it would.

    Rows are labeled, unlabeled (an empty target: a prediction) or bad (a dead letter), each
    distinct, in one global order that is also the order of the files: a rotation renames the
    file, starts a new one (its header's columns shuffled half the time), writes a few more
    rows to the old one (the writer has not reopened yet) and then goes on in the new one.
    ``lock`` is held while a row is written: the chaos takes it to pause the writer.
    """

    def __init__(self, path: Path, seed: int, rate: float = 150.0) -> None:
        self.path = path
        self.rng = np.random.default_rng(seed)
        self.interval = 1.0 / rate
        self.rows: list[Row] = []
        self.lock = threading.Lock()
        self.columns = list(COLUMNS)
        self._fd = self._create(path, self.columns)
        self._rotated = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _create(path: Path, columns: list[str]) -> int:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        os.write(fd, (",".join(columns) + "\n").encode())
        return fd

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self._fd)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                self._write(self._fd, self.columns)
            time.sleep(self.interval)

    def _write(self, fd: int, columns: list[str]) -> None:
        seq = len(self.rows)
        x = self.rng.normal(size=3)
        y = float(x @ TRUE_WEIGHTS + INTERCEPT + self.rng.normal(scale=0.1))
        cells = {f"x{j}": repr(float(x[j])) for j in range(3)} | {"y": repr(y)}
        draw = self.rng.random()
        kind = "labeled" if draw >= 0.18 else "unlabeled" if draw >= 0.08 else "bad"
        if kind == "unlabeled":
            cells["y"] = ""
        elif kind == "bad" and draw < 0.04:
            cells["x1"] = f"oops{seq}"  # non_numeric
        elif kind == "bad":
            del cells["x2"]  # field_count
            cells["y"] = repr(float(seq))
        raw = (",".join(cells[c] for c in columns if c in cells) + "\n").encode()
        offset = os.fstat(fd).st_size  # O_APPEND, and the only writer: the line starts here
        os.write(fd, raw)
        self.rows.append(Row(kind, x, y, raw, offset))

    def rotate(self, rng: random.Random) -> None:
        """``mv`` to ``NAME.N`` and a new file; some rows still go to the old one."""
        with self.lock:
            self._rotated += 1
            os.rename(self.path, self.path.with_name(f"{self.path.name}.{self._rotated}"))
            columns = list(COLUMNS)
            if rng.random() < 0.5:
                rng.shuffle(columns)
            new_fd = self._create(self.path, columns)
            for _ in range(rng.randint(0, 20)):
                self._write(self._fd, self.columns)
            os.close(self._fd)
            self._fd, self.columns = new_fd, columns

    def copy_truncate(self, caught_up: Callable[[], None]) -> None:
        """``cp NAME NAME.ctN`` then truncate NAME (logrotate's copytruncate).

        Rows the follower has not read by the truncation are only in the copy: the writer
        is paused and the daemon caught up first (``caught_up``), so nothing is lost.
        """
        with self.lock:
            caught_up()
            self._rotated += 1
            shutil.copyfile(self.path, self.path.with_name(f"{self.path.name}.ct{self._rotated}"))
            os.truncate(self.path, 0)

    def oracle(self) -> tuple[np.ndarray, float, list[float]]:
        """The sgd weights after the rows in order, and each unlabeled row's prediction."""
        theta, theta0, predictions = np.zeros(3), 0.0, []
        for row in self.rows:
            if row.kind == "bad":
                continue
            yhat = float(row.x @ theta + theta0)
            if row.kind == "unlabeled":
                predictions.append(yhat)
                continue
            error = yhat - row.y
            theta = theta - LR * error * row.x
            theta0 = theta0 - LR * error
        return theta, theta0, predictions

    def count(self, kind: str) -> int:
        return sum(row.kind == kind for row in self.rows)


def reading(state: Path, path: Path) -> bool:
    """Whether the last checkpoint reads the file now at ``path`` (not a rotated one)."""
    return caught_up(state, path, whole=False)


def caught_up(state: Path, path: Path, *, whole: bool = True, learned: int | None = None) -> bool:
    """Whether the last checkpoint holds every line of the file now at ``path`` (``whole``)
    and, with ``learned``, that many records learned."""
    summary = saved(state)
    if summary is None or summary["position"].get("draining"):
        return False
    position = summary["position"]
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return (
        position.get("inode") == now.st_ino
        and (not whole or position["offset"] == now.st_size)
        and (learned is None or summary["records_learned"] == learned)
    )


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_chaos_on_a_followed_file_learns_every_row_exactly_once(tmp_path, small_disk):
    started = time.monotonic()
    path, state = tmp_path / "events.csv", small_disk / "state"
    dead, predictions = small_disk / "dead.jsonl", small_disk / "predictions.jsonl"
    rng = random.Random(SEED)
    writer = Writer(path, SEED)
    daemon = Daemon(
        [
            "run",
            str(path),
            *state_and_sinks(state, dead, predictions),
            "--checkpoint-interval",
            "0.2",
            "--rotate-wait",
            "0.5",
        ],
        tmp_path / "daemon.log",
    )
    disk = Disk(small_disk)
    chaos = Chaos(rng, daemon, disk)
    with replayable(chaos):
        chaos.events["rotation"] = (lambda: reading(state, path), lambda: writer.rotate(rng))
        chaos.events["copy_truncate"] = (
            lambda: daemon.up and not daemon.frozen and not disk.full,
            lambda: writer.copy_truncate(
                lambda: chaos.wait_for(lambda: caught_up(state, path), "the daemon to catch up")
            ),
        )
        try:
            daemon.start()
            writer.start()
            chaos.run(ROUNDS, CHAOS_SECONDS)
            chaos.settle()
            time.sleep(0.5)  # rows after the last event, then the stream ends
            writer.stop()
            labeled = writer.count("labeled")
            chaos.wait_for(
                lambda: caught_up(state, path, learned=labeled),
                "every row learned",
            )
            assert daemon.terminate() == 0, daemon.tail()
        finally:
            daemon.close()
        summary = check_the_end(chaos, started, state, writer)
        letters = read_jsonl(dead)
        assert [(entry["raw"], entry["position"]["offset"]) for entry in letters] == [
            (row.raw.decode(), row.offset) for row in writer.rows if row.kind == "bad"
        ]
        predicted = read_jsonl(predictions)
        assert [entry["position"]["offset"] for entry in predicted] == [
            row.offset for row in writer.rows if row.kind == "unlabeled"
        ]
        theta, theta0, expected = writer.oracle()
        np.testing.assert_allclose(
            [entry["prediction"] for entry in predicted], expected, atol=1e-9
        )
        weights = [summary["weights"][f"x{j}"] for j in range(3)]
        np.testing.assert_allclose(weights, theta, rtol=0, atol=1e-12)
        assert abs(summary["intercept"] - theta0) < 1e-12


# -- the Kafka run -------------------------------------------------------------------------


@dataclass
class Message:
    """A message as produced: what it is, its values and value, and where it landed."""

    kind: str  # "labeled", "unlabeled" or "bad"
    x: np.ndarray
    y: float
    value: bytes
    partition: int = -1
    offset: int = -1


class Producer:
    """Produces JSON records to the topic, keyed and unkeyed, some bad, each distinct."""

    def __init__(self, bootstrap: str, topic: str, seed: int, rate: float = 100.0) -> None:
        from kafka import KafkaProducer

        self.topic = topic
        self.rng = np.random.default_rng(seed)
        self.interval = 1.0 / rate
        self.messages: list[Message] = []
        self._futures: list[Any] = []
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop producing; each message's partition and offset are known after this."""
        self._stop.set()
        self._thread.join()
        self._producer.flush()
        for message, future in zip(self.messages, self._futures, strict=True):
            metadata = future.get(timeout=30)
            message.partition, message.offset = metadata.partition, metadata.offset
        self._producer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._send()
            time.sleep(self.interval)

    def _send(self) -> None:
        seq = len(self.messages)
        x = self.rng.normal(size=3)
        y = float(x @ TRUE_WEIGHTS + INTERCEPT + self.rng.normal(scale=0.1))
        record: dict[str, Any] = {"a": float(x[0]), "b": float(x[1]), "c": float(x[2]), "y": y}
        draw = self.rng.random()
        kind = "labeled" if draw >= 0.18 else "unlabeled" if draw >= 0.08 else "bad"
        if kind == "unlabeled":
            del record["y"]
        value = json.dumps(record).encode()
        if kind == "bad":  # non_numeric, or bad_json
            value = json.dumps(record | {"b": f"oops{seq}"}).encode()
            if draw < 0.04:
                value = b"not json %d" % seq
        key = b"k%d" % (seq % 5) if self.rng.random() < 0.5 else None
        self.messages.append(Message(kind, x, y, value))
        self._futures.append(self._producer.send(self.topic, value=value, key=key))

    def ends(self) -> dict[str, int]:
        """The log end of each partition written to (after ``stop``)."""
        ends: dict[str, int] = {}
        for message in self.messages:
            key = str(message.partition)
            ends[key] = max(ends.get(key, 0), message.offset + 1)
        return ends

    def count(self, kind: str) -> int:
        return sum(message.kind == kind for message in self.messages)


def kafka_learned(state: Path, ends: dict[str, int], labeled: int) -> bool:
    """Whether the last checkpoint is at every partition's end, all labeled records learned."""
    summary = saved(state)
    if summary is None:
        return False
    offsets = {k: v for k, v in summary["position"]["next_offsets"].items() if v}
    return offsets == ends and summary["records_learned"] == labeled


def check_learned_order(entries: list[dict[str, Any]], producer: Producer) -> list[Message]:
    """The messages in the order the daemon learned them (``--predictions-all``): each good
    message once, a partition's in offset order."""
    where = {(m.partition, m.offset): m for m in producer.messages}
    order = [
        where[entry["position"]["partition"], entry["position"]["offset"]] for entry in entries
    ]
    assert len(set(map(id, order))) == len(order), "a record predicted twice"
    assert sorted((m.partition, m.offset) for m in order) == sorted(
        (m.partition, m.offset) for m in producer.messages if m.kind != "bad"
    )
    for partition in {m.partition for m in order}:
        offsets = [m.offset for m in order if m.partition == partition]
        assert offsets == sorted(offsets), f"partition {partition} learned out of order"
    assert [("label" in entry) for entry in entries] == [m.kind == "labeled" for m in order]
    return order


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.timeout(180)
def test_chaos_on_a_kafka_run_learns_every_record_exactly_once(
    kafka_bootstrap, kafka_topic_factory, tmp_path, small_disk
):
    started = time.monotonic()
    topic = kafka_topic_factory(3)
    state = small_disk / "state"
    dead, predictions = small_disk / "dead.jsonl", small_disk / "predictions.jsonl"
    rng = random.Random(SEED)
    producer = Producer(kafka_bootstrap, topic, SEED)
    daemon = Daemon(
        [
            "run",
            f"kafka://{kafka_bootstrap}/{topic}?group=chaos",
            *state_and_sinks(state, dead, predictions),
            "--predictions-all",  # every record's prediction: the order they were learned in
            "--checkpoint-interval",
            "0.2",
        ],
        tmp_path / "daemon.log",
    )
    chaos = Chaos(rng, daemon, Disk(small_disk))
    with replayable(chaos):
        try:
            daemon.start()
            producer.start()
            chaos.run(ROUNDS, CHAOS_SECONDS)
            producer.stop()
            chaos.settle()
            ends, labeled = producer.ends(), producer.count("labeled")
            chaos.wait_for(lambda: kafka_learned(state, ends, labeled), "every record learned")
            assert daemon.terminate() == 0, daemon.tail()
        finally:
            daemon.close()
        summary = check_the_end(chaos, started, state, producer)
        assert len(ends) == 3, ends  # keyed and unkeyed records reached every partition
        letters = read_jsonl(dead)
        positions = [(e["position"]["partition"], e["position"]["offset"]) for e in letters]
        assert len(positions) == len(set(positions)), "a dead letter written twice"
        bad = {
            (m.partition, m.offset): m.value.decode() for m in producer.messages if m.kind == "bad"
        }
        assert {p: e["raw"] for p, e in zip(positions, letters, strict=True)} == bad
        entries = read_jsonl(predictions)
        order = check_learned_order(entries, producer)
        theta, theta0, expected = np.zeros(3), 0.0, []
        for message in order:  # the oracle, in the order the daemon learned
            yhat = float(message.x @ theta + theta0)
            expected.append(yhat)
            if message.kind == "labeled":
                error = yhat - message.y
                theta, theta0 = theta - LR * error * message.x, theta0 - LR * error
        np.testing.assert_allclose([e["prediction"] for e in entries], expected, atol=1e-9)
        weights = [summary["weights"][name] for name in "abc"]
        np.testing.assert_allclose(weights, theta, rtol=0, atol=1e-12)
        assert abs(summary["intercept"] - theta0) < 1e-12
