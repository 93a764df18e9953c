"""Probe the test broker's consumer groups: JoinGroup/SyncGroup with several kafka-python
members on a 6-partition topic, eager (round robin) or cooperative-sticky.

Three members join 8 s apart, the third leaves, then the other two; each member's listener
calls are printed with the seconds since the start.

    python scripts/probe_groups.py eager
    python scripts/probe_groups.py cooperative

Seen with tansu and kafka-python 3.0.12 (2026-12-03): eager splits 6/0 -> 3/3 -> 2/2/2 -> 3/3,
each rebalance 3 to 4 s after a join or leave. Cooperative-sticky: the first member gives up
the partitions that move (3, 4, 5 at 11 s), but the second round that should give them to the
new member never came while the members stayed: they were unowned until the third member left
(28 s), and the third member was never assigned a partition. Whether tansu or kafka-python's
young cooperative code is at fault is not known; the scale-out uses eager assignment.
"""

from __future__ import annotations

import sys
import threading
import time

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from streamlearn.broker import LocalBroker


def main(mode: str) -> None:
    assignor = CooperativeStickyAssignor if mode == "cooperative" else RoundRobinPartitionAssignor
    broker = LocalBroker().start()
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("probe", 6, 1)])
    admin.close()
    started = time.monotonic()
    events: list[tuple[float, int, str, list[int]]] = []
    stopping: dict[int, bool] = {}

    class Listener(ConsumerRebalanceListener):
        def __init__(self, member: int) -> None:
            self.member = member

        def note(self, what: str, partitions: set) -> None:  # type: ignore[type-arg]
            seen = sorted(tp.partition for tp in partitions)
            events.append((time.monotonic() - started, self.member, what, seen))

        def on_partitions_revoked(self, revoked: set) -> None:  # type: ignore[type-arg]
            self.note("revoked", revoked)

        def on_partitions_assigned(self, assigned: set) -> None:  # type: ignore[type-arg]
            self.note("assigned", assigned)

    def member(number: int) -> None:
        consumer = KafkaConsumer(
            bootstrap_servers=broker.bootstrap,
            group_id="probe",
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            max_poll_interval_ms=10000,
            partition_assignment_strategy=[assignor],
        )
        consumer.subscribe(["probe"], listener=Listener(number))
        while not stopping.get(number):
            consumer.poll(200)
        consumer.close()
        events.append((time.monotonic() - started, number, "closed", []))

    threads = {n: threading.Thread(target=member, args=(n,)) for n in range(3)}
    try:
        for thread in threads.values():
            thread.start()
            time.sleep(8)
        stopping[2] = True
        threads[2].join()
        time.sleep(8)
        stopping[0] = stopping[1] = True
        threads[0].join()
        threads[1].join()
    finally:
        broker.stop()
    for at, number, what, partitions in events:
        print(f"{at:6.1f} s  member {number}  {what:<8} {partitions}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "eager")
