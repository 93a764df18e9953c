"""Shared test helpers: data makers, the numpy oracle of the seed's update, CLI runners, and
what tests of real daemon processes share (waiting on checkpoints, signals, a small disk)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from streamlearn.loop.summary import inspect_state
from streamlearn.state import CheckpointError, CheckpointStore

if TYPE_CHECKING:
    from click.testing import Result

ROOT = Path(__file__).resolve().parent.parent
STREAMLEARN = [sys.executable, "-m", "streamlearn.cli"]


def make_regression(n: int, d: int = 3, seed: int = 0, noise: float = 0.1):
    """A linear target with noise: X (n, d), y (n,), true weights."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    y = X @ w + 1.5 + rng.normal(scale=noise, size=n)
    return X, y, w


def write_csv(
    path: Path,
    X: np.ndarray,
    y: np.ndarray | None,
    names: list[str] | None = None,
    unlabeled: set[int] = frozenset(),
) -> list[str]:  # type: ignore[assignment]
    """Write X (and y) as a CSV with header x0..x{d-1},y; rows in ``unlabeled`` get an empty y."""
    names = names or [f"x{j}" for j in range(X.shape[1])]
    with open(path, "w") as handle:
        handle.write(",".join([*names, "y"]) + "\n")
        for i in range(X.shape[0]):
            target = "" if (y is None or i in unlabeled) else repr(float(y[i]))
            handle.write(",".join(repr(float(v)) for v in X[i]) + "," + target + "\n")
    return names


def sgd_oracle(X: np.ndarray, y: np.ndarray, lr: float, labeled: np.ndarray | None = None):
    """The seed's update as a plain numpy loop: the oracle for the sgd model."""
    theta = np.zeros(X.shape[1])
    theta0 = 0.0
    predictions = []
    for i in range(X.shape[0]):
        if labeled is not None and not labeled[i]:
            continue
        yhat = float(X[i] @ theta + theta0)
        predictions.append(yhat)
        error = yhat - y[i]
        theta = theta - lr * error * X[i]
        theta0 = theta0 - lr * error
    return theta, theta0, np.array(predictions)


def cli(
    *args: str,
    check: bool = True,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """Run ``streamlearn ARGS`` in a subprocess (real process: signals, exit codes, stderr)."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        [*STREAMLEARN, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        **kwargs,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"streamlearn {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
        )
    return result


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """The real command line in this process (its signal handlers put back afterwards)."""
    from click.testing import CliRunner

    from streamlearn.cli import main

    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        return CliRunner().invoke(main, list(args), env=env)
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def inspect_json(state_dir: Path) -> dict[str, Any]:
    return json.loads(cli("inspect", str(state_dir), "--json").stdout)


def run_until_seen(app: Any, seen: int, timeout: float = 60.0) -> dict[str, Any]:
    """Run a built app's daemon until it has seen ``seen`` records (or ``timeout`` s), then
    stop it and close the app; returns the run's summary (a Kafka source never ends)."""
    import threading
    import time

    daemon = app.daemon

    def stop_when_done() -> None:
        deadline = time.monotonic() + timeout
        while daemon.counters.records_seen < seen and time.monotonic() < deadline:
            time.sleep(0.01)
        daemon.stop()

    stopper = threading.Thread(target=stop_when_done, daemon=True)
    stopper.start()
    try:
        summary: dict[str, Any] = daemon.run()
    finally:
        app.close()
    stopper.join()
    return summary


def read_jsonl(*paths: Path) -> list[list[dict[str, Any]]]:
    """Each JSON Lines file's records."""
    return [[json.loads(line) for line in path.read_text().splitlines()] for path in paths]


def assert_learned_once(
    state: Path, X: np.ndarray, y: np.ndarray, unlabeled: set[int], predictions: Path
) -> None:
    """The state dir learned each labeled row of ``X, y`` once, in order (the oracle's weights
    to the last digit), and each unlabeled row has one prediction in ``predictions``."""
    summary = inspect_json(state)
    labeled = np.array([i not in unlabeled for i in range(len(y))])
    assert summary["records_learned"] == int(labeled.sum())
    theta, theta0, _ = sgd_oracle(X, y, 0.01, labeled=labeled)
    np.testing.assert_allclose(
        [summary["weights"][f"x{j}"] for j in range(X.shape[1])], theta, rtol=0, atol=1e-12
    )
    assert abs(summary["intercept"] - theta0) < 1e-12
    ids = [json.loads(line)["position"]["offset"] for line in predictions.read_text().splitlines()]
    assert len(ids) == len(unlabeled) == len(set(ids))


def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 15.0) -> list[Any]:
    """The messages of every partition of ``topic``, from its start, once ``count`` came (or
    at ``timeout``)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    partitions = consumer.partitions_for_topic(topic)
    assert partitions, f"topic {topic} does not exist"
    consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
    consumer.close()
    return records


def read_to_end(bootstrap: str, topic: str, timeout: float = 15.0) -> list[Any]:
    """Every message of every partition of ``topic``: polled until it is at the partitions'
    end offsets and no message came for 2 s (``read_topic`` stops at a count, which leaves
    messages unread when the topic holds more; and under load a read that stopped at the end
    offsets taken just after the writer stopped still missed some of its messages)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    partitions = consumer.partitions_for_topic(topic)
    assert partitions, f"topic {topic} does not exist"
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    quiet_until = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        ends = consumer.end_offsets(assigned)
        behind = any(consumer.position(tp) < ends[tp] for tp in assigned)
        if not behind and time.monotonic() >= quiet_until:
            break
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
            quiet_until = time.monotonic() + 2.0
    consumer.close()
    return records


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets, as standard Kafka tooling sees them (lag = end - this)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        out = {}
        for partition in sorted(consumer.partitions_for_topic(topic) or ()):
            offset = consumer.committed(TopicPartition(topic, partition))
            if offset is not None:
                out[partition] = offset
        return out
    finally:
        consumer.close()


# -- real daemon processes ----------------------------------------------------------------


def state_and_sinks(state: Path, dead: Path, predictions: Path) -> list[str]:
    """``--state-dir STATE --dead-letter DEAD --predictions PREDICTIONS``."""
    return [
        "--state-dir",
        str(state),
        "--dead-letter",
        str(dead),
        "--predictions",
        str(predictions),
    ]


def saved(state: Path) -> dict[str, Any] | None:
    """The newest checkpoint's ``inspect --json`` summary (None before the first), read in
    this process: polling with a ``streamlearn inspect`` process each time would be slow."""
    if not any(state.glob("gen-*.ckpt")):
        return None
    try:
        store = CheckpointStore(state, lock=False)
        try:
            loaded = store.load()
        finally:
            store.close()
    except (CheckpointError, OSError):  # pruned, being written or deleted while we looked
        return None
    return None if loaded is None else inspect_state(loaded.state, loaded.generation)


def records_learned(state: Path) -> int:
    """Records learned by the newest checkpoint; -1 before the first."""
    summary = saved(state)
    return -1 if summary is None else int(summary["records_learned"])


def wait_for(
    condition: Callable[[], object],
    what: str,
    timeout: float = 20.0,
    *,
    proc: subprocess.Popen[Any] | None = None,
    every: float = 0.05,
) -> None:
    """Poll ``condition`` every ``every`` s until it holds; fail naming ``what`` after
    ``timeout`` s, or as soon as ``proc`` (the daemon waited on) has exited."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the daemon exited ({proc.returncode}) waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def wait_for_seen(state: Path, count: int, timeout: float = 30.0) -> int:
    """Records seen by the last checkpoint, once it reaches ``count`` (or at ``timeout``)."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        summary = saved(state)
        seen = -1 if summary is None else int(summary["records_seen"])
        if seen >= count:
            return seen
        time.sleep(0.2)
    return seen


def follow(path: Path, state: Path, *extra: str, rotate_wait: float) -> subprocess.Popen[str]:
    """``streamlearn run PATH`` following the file, checkpointing every 0.1 s; stderr piped."""
    env = {**os.environ, "STREAMLEARN_ROTATE_WAIT": str(rotate_wait)}
    args = [*STREAMLEARN, "run", str(path), "--state-dir", str(state), *extra]
    return subprocess.Popen(
        [*args, "--checkpoint-interval", "0.1"], env=env, stderr=subprocess.PIPE, text=True
    )


def sigterm(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """SIGTERM, then the process's stderr once it has exited (within ``timeout`` s)."""
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=timeout)
    return stderr


def kill_at_random_moments(
    command: Sequence[str],
    state: Path,
    checkpoint_every: Sequence[int],
    rng: random.Random,
    within: float,
) -> int:
    """Run ``streamlearn COMMAND --checkpoint-every N`` for each N in turn; SIGKILL each run
    at a random moment up to ``within`` s after its first checkpoint, so that the kill lands
    mid-run (a run that ended by then is not killed). How many runs were killed."""
    kills = 0
    for every in checkpoint_every:
        before = sorted(state.glob("gen-*.ckpt"))
        proc = subprocess.Popen(
            [*STREAMLEARN, *command, "--checkpoint-every", str(every)], stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while sorted(state.glob("gen-*.ckpt")) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, within))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    return kills


# -- a small disk ---------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``mount -o size=``, e.g. ``"2m"``) at ``folder/small``, unmounted
    after. Mounting needs root: elsewhere the test is skipped, and in CI (where these tests
    must run) it fails."""
    if os.geteuid() != 0:
        reason = "mounting a small tmpfs needs root"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (in CI these tests must run)", pytrace=False)
        pytest.skip(reason)
    mount = folder / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill_disk(mount: Path) -> Path:
    """Fill the disk at ``mount`` to its last byte; the filler file (delete it: space returns)."""
    filler = mount / "filler"
    with open(filler, "ab", buffering=0) as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 65536)
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 512)
    return filler
