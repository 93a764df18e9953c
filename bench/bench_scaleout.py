"""Rebalance pause of a scaled-out keyed run: from a member's SIGTERM to its partition
learning again on the other instance, by keys per partition.

Two instances of one group share a 2-partition topic (one partition each); each partition
holds K keys, ``--rounds`` records each (2), all learned and checkpointed. Then the second
instance gets SIGTERM and the first takes its partition over. Read from the instances' logs
(one clock):

- stop: SIGTERM received -> the member left (its learner's final checkpoint, offsets committed)
- rebalance: SIGTERM -> the other member was assigned the partition
- take-over: assigned -> the new epoch made, the previous one's state carried in
- resume: take-over -> its learner reads the partition from the checkpoint's offset
- pause: SIGTERM -> reading again (the sum, what a partition waits)

    python bench/bench_scaleout.py --keys 1000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from streamlearn.broker import LocalBroker
from streamlearn.scaleout.inspect import shared_summary

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _stamp(line: str) -> float:
    found = STAMP.match(line)
    assert found, line
    moment = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
    return moment.timestamp()


def _first(log: Path, pattern: str, after: float = 0.0) -> float | None:
    for line in log.read_text(errors="replace").splitlines():
        if re.search(pattern, line) and STAMP.match(line) and _stamp(line) >= after:
            return _stamp(line)
    return None


def _wait(condition, what: str, timeout: float = 600.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def _instance(bootstrap: str, topic: str, state: Path, name: str, logs: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "streamlearn.cli", "run", f"kafka://{bootstrap}/{topic}?group=g",
        "--key-by", ":key", "--state-dir", str(state), "--checkpoint-interval", "2",
        "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000",
    ]  # fmt: skip
    log = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - the process's stderr, kept open
    env = {**os.environ, "STREAMLEARN_INSTANCE_ID": name}
    return subprocess.Popen(command, stderr=log, stdout=subprocess.DEVNULL, env=env)


def measure(broker: LocalBroker, keys: int, rounds: int, work: Path) -> dict[str, float]:
    topic = f"pause-{keys}"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20)
    for partition in (0, 1):
        for round_ in range(rounds):
            for k in range(keys):
                value = json.dumps({"a": (k % 7) / 7, "y": round_ + k % 3}).encode()
                producer.send(topic, value, key=f"p{partition}-k{k}".encode(), partition=partition)
    producer.flush()
    producer.close()
    state = work / f"state-{keys}"
    members = {name: _instance(broker.bootstrap, topic, state, name, work) for name in "ab"}
    total = 2 * rounds * keys

    def settled() -> bool:
        try:
            summary = shared_summary(state)
        except Exception:
            return False
        owners = {entry["owner"] for entry in summary["partitions"]}
        return summary["records_learned"] == total and owners == {"a", "b"}

    _wait(settled, f"{total} records learned by a and b", 1800)
    time.sleep(3)  # a quiet moment: the learners idle, checkpoints written
    b_log, a_log = work / "b.log", work / "a.log"
    members["b"].send_signal(signal.SIGTERM)
    members["b"].wait(600)
    term = _first(b_log, "received SIGTERM")
    assert term is not None
    left = _first(b_log, "left group")
    resumed = r"partition 1 epoch \d+\] .*reading Kafka topic"
    _wait(lambda: _first(a_log, resumed, term) is not None, "the partition read again")
    reading = _first(a_log, resumed, term)
    assigned = _first(a_log, r"instance a owns partitions \[0, 1\]", term)
    took = [
        _stamp(line)
        for line in a_log.read_text().splitlines()
        if "took partition" in line and STAMP.match(line) and _stamp(line) >= term
    ]
    members["a"].send_signal(signal.SIGTERM)
    members["a"].wait(600)
    assert left and assigned and reading and took, (left, assigned, reading, took)
    return {
        "stop": left - term,
        "rebalance": assigned - term,
        "take_over": max(took) - assigned,
        "resume": reading - max(took),
        "pause": reading - term,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--rounds", type=int, default=2, help="records per key")
    args = parser.parse_args()
    broker = LocalBroker().start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            print("keys/partition  stop s  rebalance s  take-over s  resume s  pause s")
            for keys in args.keys:
                got = measure(broker, keys, args.rounds, Path(folder))
                print(
                    f"{keys:>14}  {got['stop']:>6.2f}  {got['rebalance']:>11.2f}  "
                    f"{got['take_over']:>11.2f}  {got['resume']:>8.2f}  {got['pause']:>7.2f}",
                    flush=True,
                )
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
