"""Leaving a consumer group so that the group can form again without the member.

A member that leaves (LeaveGroup) while its group rebalances is, on the test broker (tansu
0.6), kept as the leader of that rebalance after it is gone: every later join is answered
with the departed leader, no member's SyncGroup ever completes, and the group never forms
again (a standby never takes the model over). A member that crashes is evicted after its
session timeout, which clears the leader. Kafka itself takes a leave at any time; waiting for
a settled generation costs it at most one heartbeat interval on a quiet group.

So ``leave_group`` polls until the member is settled: in a stable generation, with no rejoin
asked for, and a heartbeat answered since it began to leave (the broker had seen no join by
then: a join moves the generation on and the heartbeat is answered ``REBALANCE_IN_PROGRESS``).
It then leaves at once. A member that does not settle in time drops out without a LeaveGroup,
as a crashed one would.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

__all__ = ["leave_group"]

log = logging.getLogger(__name__)


class _Heartbeat(Protocol):
    #: ``time.monotonic()`` of the last heartbeat answered (``-inf``: none).
    last_receive: float


class _GroupCoordinator(Protocol):
    """The parts of kafka-python's group coordinator (``KafkaConsumer._coordinator``) read here:
    the client has no public call for its membership's state."""

    heartbeat: _Heartbeat

    def generation_if_stable(self) -> object | None: ...

    def need_rejoin(self) -> bool: ...

    def reset_generation(self) -> None: ...


def _settled(coordinator: _GroupCoordinator, since: float) -> bool:
    # Read in this order: an answer of REBALANCE_IN_PROGRESS asks for a rejoin before it
    # counts as a heartbeat received.
    answered = coordinator.heartbeat.last_receive > since
    return (
        answered
        and not coordinator.need_rejoin()
        and coordinator.generation_if_stable() is not None
    )


def leave_group(consumer: Any, within: float | None = None) -> bool:
    """Close kafka-python ``consumer``: leave its group once settled, else drop out.

    Polls for up to ``within`` seconds (default: the member's session timeout, after which a
    member that dropped out is gone anyway). Rebalance callbacks may run meanwhile: the
    caller makes them start nothing. True when it left with a LeaveGroup, False when it
    dropped out and the broker evicts it after its session timeout.
    """
    coordinator: _GroupCoordinator = consumer._coordinator
    if within is None:
        within = consumer.config["session_timeout_ms"] / 1000
    began = time.monotonic()
    settled = _settled(coordinator, began)
    while not settled and time.monotonic() - began < within:
        consumer.poll(timeout_ms=100)
        settled = _settled(coordinator, began)
    if not settled:
        log.warning(
            "group %s did not settle within %.1f s: leaving without a LeaveGroup (the broker "
            "drops this member after its session timeout)",
            consumer.config["group_id"],
            within,
        )
        coordinator.reset_generation()  # no member id: close() sends no LeaveGroup
    consumer.close(autocommit=False)
    return settled
