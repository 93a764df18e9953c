"""Total learning rate of a keyed scale-out: 2 instances against 1 on the same backlog.

An instance is modelled as one CPU, as a Kubernetes pod with a 1-CPU limit is: each instance
(its member, fork server and forked learners, which inherit the affinity) is pinned to one CPU
with ``sched_setaffinity``. One instance on CPU 0 learns the backlog of a P-partition topic
(a River spec per key); then two instances of a fresh group on CPUs 0 and 1 learn the same
backlog again. Each run is timed from its first learner reading its partition (its log) to
every partition's checkpointed next offset at its log end (the records the producer had
acknowledged on the new topic; the shared store, polled); the
broker's CPU seconds in each run are read from /proc, and the instances' too.

    python bench/bench_scaleout_rate.py --partitions 4 --keys 400 --records 80000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_scaleout import STAMP, _stamp
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from streamlearn.broker import LocalBroker
from streamlearn.scaleout.inspect import partition_states

SPEC = "StandardScaler | LinearRegression"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds of the live processes of process group ``pgid`` (a member and its
    learners: started in a session of their own)."""
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def produce(bootstrap: str, topic: str, partitions: int, keys: int, records: int) -> dict[int, int]:
    """Write the backlog; the records sent to each partition (its log end: a new topic)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, partitions, 1)])
    admin.close()
    rng = random.Random(7)
    truth = {k: [rng.uniform(-2, 2) for _ in range(3)] for k in range(keys)}
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, batch_size=1 << 18)
    sent = dict.fromkeys(range(partitions), 0)
    for _ in range(records):
        k = rng.randrange(keys)
        x = [rng.uniform(-1, 1) for _ in range(3)]
        y = sum(w * v for w, v in zip(truth[k], x, strict=True)) + 0.5
        value = json.dumps({"a": x[0], "b": x[1], "c": x[2], "y": y}).encode()
        producer.send(topic, value, key=f"k{k}".encode(), partition=k % partitions)
        sent[k % partitions] += 1
    producer.flush()
    producer.close()
    return sent


def instance(
    bootstrap: str, topic: str, group: str, state: Path, name: str, cpu: int, logs: Path
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "streamlearn.cli", "run", f"kafka://{bootstrap}/{topic}?group={group}",
        "--key-by", ":key", "--model", SPEC, "--state-dir", str(state),
        "--checkpoint-interval", "1",
        "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000",
    ]  # fmt: skip
    log = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - the process's stderr, kept open
    return subprocess.Popen(
        command,
        stderr=log,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "STREAMLEARN_INSTANCE_ID": name},
        start_new_session=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )


def checkpointed(state: Path) -> dict[int, tuple[int, float]]:
    """Each partition's checkpointed next offset and when that checkpoint was written (its
    file's mtime: the poll may lag behind); partitions without one are left out."""
    found: dict[int, tuple[int, float]] = {}
    try:
        items = partition_states(state)
    except Exception:  # a checkpoint being written, or no partition yet: next poll
        return {}
    for item in items:
        if item["state"] is None:
            continue
        offset = item["state"]["source"].get("next_offsets", {}).get(str(item["partition"]))
        written = item["directory"] / f"gen-{item['generation']:010d}.ckpt"
        try:
            found[item["partition"]] = (int(offset or 0), written.stat().st_mtime)
        except FileNotFoundError:  # collected since: the next poll reads its successor
            continue
    return found


def measure(
    broker: LocalBroker, topic: str, ends: dict[int, int], cpus: list[int], work: Path, turn: int
) -> dict[str, float]:
    """Learn the backlog with one instance per CPU in ``cpus``; seconds, CPU, rebalances."""
    run = f"{len(cpus)}x-{turn}"
    state, logs = work / f"state-{run}", work / f"logs-{run}"
    logs.mkdir()
    assert broker.pid is not None
    broker_before = cpu_seconds(broker.pid)
    load_before = os.getloadavg()[0]
    names = [f"{run}-cpu{cpu}" for cpu in cpus]
    members = {
        name: instance(broker.bootstrap, topic, f"g-{run}", state, name, cpu, logs)
        for name, cpu in zip(names, cpus, strict=True)
    }
    deadline = time.monotonic() + 1800
    first: tuple[float, float] | None = None  # a checkpoint first seen: when, instances' CPU
    while True:
        found = checkpointed(state)
        if {p: offset for p, (offset, _) in found.items()} == ends:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{run}: the backlog was not learned in 30 minutes")
        if found and first is None:
            first = time.time(), sum(group_cpu_seconds(m.pid) for m in members.values())
        time.sleep(0.5)
    finished = max(written for _, written in found.values())
    seen = time.time()
    broker_cpu = cpu_seconds(broker.pid) - broker_before
    instances_cpu = sum(group_cpu_seconds(m.pid) for m in members.values())
    # The share of their CPUs the instances got while learning (between two polls): the
    # machine's other processes run on the same CPUs.
    share = (
        (instances_cpu - first[1]) / ((seen - first[0]) * len(cpus))
        if first is not None and seen > first[0]
        else float("nan")
    )
    load_after = os.getloadavg()[0]
    for member in members.values():
        member.send_signal(signal.SIGTERM)
    for member in members.values():
        member.wait(300)
    text = "\n".join((logs / f"{name}.log").read_text(errors="replace") for name in names)
    reading = [
        _stamp(line)
        for line in text.splitlines()
        if STAMP.match(line) and "reading Kafka topic" in line
    ]
    rebalances = len(re.findall(r"instance \S+ owns partitions", text))
    started = min(reading)
    return {
        "seconds": finished - started,
        "records": float(sum(ends.values())),
        "broker_cpu": broker_cpu,
        "instances_cpu": instances_cpu,
        "share": share,
        "assignments": float(rebalances),
        "learner_starts": float(len(reading)),
        "load_before": load_before,
        "load_after": load_after,
    }


def report(cpus: list[int], got: dict[str, float]) -> None:
    rate = got["records"] / got["seconds"]
    print(
        f"{len(cpus)} instance(s) on CPU {cpus}: {got['seconds']:.1f} s, {rate:,.0f} rec/s; "
        f"broker CPU {got['broker_cpu']:.1f} s; instances CPU {got['instances_cpu']:.1f} s, "
        f"{got['share']:.0%} of their CPUs while learning; "
        f"{got['assignments']:.0f} assignments, "
        f"{got['learner_starts']:.0f} learner starts; load "
        f"{got['load_before']:.1f} -> {got['load_after']:.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--keys", type=int, default=400)
    parser.add_argument("--records", type=int, default=80_000)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each; the order alternates (1 2 2 1 ...)"
    )
    args = parser.parse_args()
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        raise SystemExit(f"needs 2 CPUs, this process may use {allowed}")
    print(f"$ python bench/bench_scaleout_rate.py {' '.join(sys.argv[1:])}", flush=True)
    broker = LocalBroker().start()
    try:
        topic = f"rate-{args.partitions}"
        ends = produce(broker.bootstrap, topic, args.partitions, args.keys, args.records)
        print(f"backlog: {sum(ends.values())} records, {args.keys} keys, {ends}", flush=True)
        seconds: dict[int, float] = {1: 0.0, 2: 0.0}
        with tempfile.TemporaryDirectory() as folder:
            for turn in range(args.repeat):
                order = ([allowed[0]], allowed[:2])
                for cpus in order if turn % 2 == 0 else order[::-1]:
                    got = measure(broker, topic, ends, cpus, Path(folder), turn)
                    seconds[len(cpus)] += got["seconds"]
                    report(cpus, got)
        ratio = seconds[1] / seconds[2]
        print(f"total rate, 2 instances / 1 instance: {ratio:.2f}x", flush=True)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
