"""A single model's handover between two ``run --standby`` instances: how long learning stops.

Two instances of one group on a local tansu broker, records produced at a steady rate; the
active instance gets SIGTERM (a planned handover) or SIGKILL (a crash), and the pause is
the time from the signal until the newest checkpoint in the shared state dir holds more
records than the signalled instance left there (the new active instance has taken over,
resumed and checkpointed; ``--checkpoint-interval 0.3`` adds up to 0.3 s). SIGKILL is measured with
the given session timeouts: a dead member is only noticed when its session expires.

Run: python bench/bench_failover.py [--rounds 3] [--sessions 3000,10000]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from streamlearn.broker import LocalBroker, free_port
from streamlearn.state import CheckpointError, CheckpointStore

_ROLE = re.compile(r'^streamlearn_role\{role="(\w+)"\} 1\.0$', re.MULTILINE)


def learned(state: Path) -> int:
    """Records in the newest checkpoint (-1 before the first)."""
    try:
        store = CheckpointStore(state, lock=False)
        try:
            loaded = store.load()
        finally:
            store.close()
    except (CheckpointError, OSError):
        return -1
    return -1 if loaded is None else int(loaded.state["learner"].records_learned)


def role(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as answer:
            found = _ROLE.search(answer.read().decode())
    except OSError:
        return None
    return found.group(1) if found else None


def until(predicate, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out")
        time.sleep(0.02)


def instance(bootstrap: str, topic: str, state: Path, session_ms: int, log: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    with open(log, "a") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlearn.cli",
                "run",
                f"kafka://{bootstrap}/{topic}?group={topic}",
                "--standby",
                "--state-dir",
                str(state),
                "--checkpoint-interval",
                "0.3",
                "--metrics-port",
                str(port),
                "-X",
                f"session.timeout.ms={session_ms}",
                "-X",
                f"heartbeat.interval.ms={max(session_ms // 6, 100)}",
            ],
            stderr=out,
            stdout=subprocess.DEVNULL,
            env=dict(os.environ),
        )
    return proc, port


def one_round(
    bootstrap: str, how: signal.Signals, session_ms: int, number: int, root: Path
) -> float:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"failover-{number}-{how.name.lower()}-{session_ms}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    state = root / topic
    stop = threading.Event()

    def produce() -> None:
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        i = 0
        while not stop.is_set():
            producer.send(topic, f'{{"a": {i % 7}.0, "y": {2 * (i % 7)}.0}}'.encode())
            i += 1
            time.sleep(0.005)  # about 200 records/s
        producer.flush()
        producer.close()

    first, first_port = instance(bootstrap, topic, state, session_ms, root / f"{topic}-0.log")
    second, second_port = instance(bootstrap, topic, state, session_ms, root / f"{topic}-1.log")
    feeder = threading.Thread(target=produce, daemon=True)
    try:
        until(lambda: {role(first_port), role(second_port)} == {"active", "standby"})
        active = first if role(first_port) == "active" else second
        feeder.start()
        until(lambda: learned(state) > 200)
        started = time.monotonic()
        at_signal = learned(state)
        active.send_signal(how)
        # A SIGTERMed instance writes its final checkpoint first: count from that one.
        active.wait(timeout=60)
        handed_over = learned(state)
        until(lambda: learned(state) > max(at_signal, handed_over))
        return time.monotonic() - started
    finally:
        stop.set()
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--sessions", default="3000,10000", help="session timeouts (ms) for SIGKILL"
    )
    args = parser.parse_args()
    broker = LocalBroker().start()
    cases = [(signal.SIGTERM, 3000)] + [
        (signal.SIGKILL, int(ms)) for ms in args.sessions.split(",")
    ]
    try:
        with tempfile.TemporaryDirectory() as folder:
            number = 0
            for how, session_ms in cases:
                pauses = []
                for _ in range(args.rounds):
                    number += 1
                    pauses.append(
                        one_round(broker.bootstrap, how, session_ms, number, Path(folder))
                    )
                print(
                    f"{how.name:8s} session {session_ms:5d} ms: learning stopped for "
                    f"median {statistics.median(pauses):.1f} s "
                    f"(min {min(pauses):.1f}, max {max(pauses):.1f}, {len(pauses)} rounds)",
                    flush=True,
                )
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
