"""Instances of a scaled-out keyed run as real processes, and what the shared store says.

Used by ``tests/test_scaleout_*.py``: start members of a group (``Instance``), wait on what
can be observed (the owner records of the partitions' epochs, the learned counts of their
checkpoints), and read every key's model back from the newest epoch of its partition.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamhelpers import STREAMLEARN
from streamlearn.keys.run import read_keys
from streamlearn.learner import Learner
from streamlearn.models.sgd import SGDRegressor
from streamlearn.scaleout.partitions import PARTITIONS, latest, read_owner
from streamlearn.state import CheckpointStore

LR = 0.05
Row = tuple[str, dict[str, float], float]


def keyed_rows(count: int, keys: int = 20, seed: int = 3) -> list[Row]:
    """``count`` rows of ``keys`` keys, each key with its own weights."""
    rng = random.Random(seed)
    truth = {f"k{i}": (rng.uniform(-2, 2), rng.uniform(-2, 2)) for i in range(keys)}
    out: list[Row] = []
    for _ in range(count):
        key = f"k{rng.randrange(keys)}"
        a, b = rng.uniform(-1, 1), rng.uniform(-1, 1)
        wa, wb = truth[key]
        out.append((key, {"a": a, "b": b}, wa * a + wb * b + 0.5))
    return out


def send_rows(send: Any, topic: str, rows: list[Row], ids_from: int | None = None) -> None:
    """Send ``rows`` to ``topic`` keyed by their keys; with ``ids_from``, each with the column
    ``id`` (``--id-column``): ``r<ids_from>``, ``r<ids_from + 1>``, ... (its index in the run)."""
    records = [{**x, "y": y} for _, x, y in rows]
    if ids_from is not None:
        records = [{"id": f"r{ids_from + i}", **record} for i, record in enumerate(records)]
    send(
        topic,
        [json.dumps(record).encode() for record in records],
        keys=[key.encode() for key, _, _ in rows],
    )


class Producer(threading.Thread):
    """10 rows (with their ids) every 0.2 s from row ``sent`` on, until stopped."""

    def __init__(self, send: Any, topic: str, rows: list[Row], sent: int) -> None:
        super().__init__(daemon=True)
        self.send, self.topic, self.rows, self.sent = send, topic, rows, sent
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set() and self.sent < len(self.rows):
            send_rows(self.send, self.topic, self.rows[self.sent : self.sent + 10], self.sent)
            self.sent += 10
            time.sleep(0.2)


def predicting_every_record(
    bootstrap: str, topic_factory: Any, send: Any, monkeypatch: pytest.MonkeyPatch, seed: int
) -> tuple[str, str, list[Row], Producer]:
    """The scene of the re-learning tests: a topic of 2 partitions holding the first 100 of
    3000 rows of 10 keys (ids r0, r1, ...); a topic of predictions that every learner writes
    each labeled record's prediction to as it learns it (set in the instances' environment,
    as a deployment would), so a record learned twice is predicted twice; and the
    ``Producer`` of the other rows, not started. Returns the two topics, the rows, the
    producer."""
    topic, predictions = topic_factory(2), topic_factory(1)
    monkeypatch.setenv("STREAMLEARN_ID_COLUMN", "id")
    monkeypatch.setenv("STREAMLEARN_PREDICTIONS", f"kafka://{bootstrap}/{predictions}")
    monkeypatch.setenv("STREAMLEARN_PREDICTIONS_ALL", "true")
    rows = keyed_rows(3000, keys=10, seed=seed)
    send_rows(send, topic, rows[:100], ids_from=0)
    return topic, predictions, rows, Producer(send, topic, rows, 100)


class Instance:
    """``streamlearn run kafka://.../topic?group=G --key-by :key`` as a process of its own."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        state: Path,
        name: str,
        logs: Path,
        *,
        metrics_port: int | None = None,
        options: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.log_path = logs / f"{name}.log"
        command = [
            *STREAMLEARN, "run", f"kafka://{bootstrap}/{topic}?group=g-{topic}",
            "--key-by", ":key", "--lr", str(LR), "--state-dir", str(state),
            "--checkpoint-interval", "0.5",
            "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000",
        ]  # fmt: skip
        if metrics_port is not None:
            command += ["--metrics-port", str(metrics_port)]
        command += options  # after the defaults above: the last of an option counts
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                stderr=log,
                stdout=subprocess.DEVNULL,
                env={**os.environ, "STREAMLEARN_INSTANCE_ID": name},
                start_new_session=True,  # its learners in its process group
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the member and its learners (its process group), whatever is left of it
        (a SIGSTOPped process ends too)."""
        with contextlib.suppress(ProcessLookupError):
            self.signal(signal.SIGKILL)
        self.process.wait(10)

    def learner_pids(self) -> list[int]:
        """The learners this instance started (from its log)."""
        return [int(pid) for pid in re.findall(r"\(learner pid (\d+)\)", self.log())]


@contextlib.contextmanager
def running(instances: dict[str, Instance], tail: int = 6000) -> Iterator[dict[str, Instance]]:
    """Kill every instance in ``instances`` (the test adds to it) at the end; when an assertion
    fails, print the last ``tail`` characters of each one's log first."""
    try:
        yield instances
    except AssertionError:
        for instance in instances.values():
            print(f"--- {instance.name}\n{instance.log()[-tail:]}")
        raise
    finally:
        for instance in instances.values():
            instance.kill()


def group_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """The offsets the instances' group (``Instance``'s) has committed for ``topic``."""
    from kafka import KafkaAdminClient, TopicPartition

    group = f"g-{topic}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        found = admin.list_group_offsets({group: tps}).get(group, {})
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in found.items() if meta is not None}


def metric(port: int, name: str, labels: str = "") -> float | None:
    """The value of the series ``name`` (``labels``: its ``k="v"`` text) at ``port``."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} " if labels else f"{name} "):
            return float(line.split()[1])
    return None


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def partition_dirs(state: Path) -> dict[int, tuple[int, Path]]:
    """Partition -> its newest epoch and that epoch's directory."""
    out: dict[int, tuple[int, Path]] = {}
    root = state / PARTITIONS
    if not root.is_dir():
        return out
    for name in os.listdir(root):
        found = latest(root / name)
        if found is not None:
            out[int(name.rpartition("-")[2])] = found
    return out


def owners(state: Path) -> dict[int, str]:
    """Partition -> the instance that took its newest epoch over."""
    out: dict[int, str] = {}
    for p, (_, directory) in partition_dirs(state).items():
        owner = read_owner(directory)
        if owner is not None:
            out[p] = owner["instance"]
    return out


def checkpoint(directory: Path) -> dict[str, Any] | None:
    try:
        loaded = CheckpointStore(directory, lock=False).load()
    except Exception:
        return None
    return None if loaded is None else loaded.state


def learned(state: Path) -> int:
    """Records learned, summed over the newest checkpoint of each partition's newest epoch."""
    total = 0
    for _, directory in partition_dirs(state).values():
        found = checkpoint(directory)
        if found is not None:
            total += found["learner"].records_learned
    return total


def models(state: Path) -> dict[str, Learner]:
    """Every key's learner, from the newest epoch of its partition."""
    out: dict[str, Learner] = {}
    for _, directory in partition_dirs(state).values():
        store = CheckpointStore(directory, lock=False)
        loaded = store.load()
        if loaded is None:
            continue
        held = read_keys(directory, store.key, loaded.state)  # type: ignore[arg-type]
        for key, _, _ in held.entries():
            learner = held.peek(key)
            assert key not in out, f"key {key} is in two partitions"
            out[key] = learner
        held.close()
    return out


def oracle(rows: list[Row]) -> dict[str, Learner]:
    """Each key's learner after one pass over its rows in order (the one-process replay)."""
    out: dict[str, Learner] = {}
    for key, x, y in rows:
        out.setdefault(key, Learner(SGDRegressor(lr=LR))).step(x, y)
    return out


def assert_one_pass(state: Path, rows: list[Row]) -> dict[str, Learner]:
    """Every key's model in the store is one pass over its rows (``oracle``): the same keys,
    records learned, and weights and intercept to 1e-12. Returns the oracle's learners."""
    got, want = models(state), oracle(rows)
    assert sorted(got) == sorted(want)
    for key, learner in want.items():
        assert got[key].records_learned == learner.records_learned, key
        assert got[key].model.weights == pytest.approx(learner.model.weights, abs=1e-12), key
        assert got[key].model.intercept == pytest.approx(learner.model.intercept, abs=1e-12), key
    return want
