"""A standby whose join the broker leaves unanswered joins again as a new member.

The test broker has been seen to keep a standby's join waiting for good, even after the
active instance left, so that no instance took the model over (a CI run of
test_standby_handover). A join a broker answers takes at most the rebalance timeout;
past twice that, a standby closes its member and joins with a new one. An active
instance never does: it would give the model up.
"""

from __future__ import annotations

from streamlearn.sources.kafka_config import KafkaSettings
from streamlearn.standby.coordinator import REBALANCE_TIMEOUT_MS, Coordinator


def _coordinator(*extra: str) -> Coordinator:
    kafka = KafkaSettings.build("kafka://127.0.0.1:9/t?group=g", extra=list(extra), environ={})
    return Coordinator(kafka)


def test_a_standby_joins_again_past_twice_the_rebalance_timeout() -> None:
    coordinator = _coordinator("max.poll.interval.ms=10000")
    assert coordinator.join_deadline == 20.0
    assert not coordinator.rejoin_due(stable_at=100.0, now=119.9)
    assert coordinator.rejoin_due(stable_at=100.0, now=120.1)


def test_the_default_deadline_follows_the_default_rebalance_timeout() -> None:
    assert _coordinator().join_deadline == 2 * REBALANCE_TIMEOUT_MS / 1000


def test_an_active_instance_never_joins_again_on_its_own() -> None:
    coordinator = _coordinator("max.poll.interval.ms=10000")
    coordinator.active.set()
    assert not coordinator.rejoin_due(stable_at=100.0, now=1000.0)
