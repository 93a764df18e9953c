"""Membership of the coordination group: whoever the group assigns ``G.active``'s partition leads.

Each instance joins the consumer group ``G.active`` subscribed to the topic ``G.active`` (one
partition, created when missing). Kafka's group protocol does the rest: one member holds
the partition at a time; a member that leaves (``close``) hands it over at once, one that
dies or stalls hands it over after its session timeout. The cooperative-sticky assignor
keeps it where it is while standbys join and leave (an eager one would revoke it from the
active instance at each join).

A member leaves in a settled generation (``streamlearn.sources.kafka_group``): on the test
broker a member that leaves mid-rebalance stalls the group for good.

A revoke is answered before the partition moves on: the callback stops the learner and
waits (up to the rebalance timeout) until its last checkpoint is durable, so in a planned
handover the next instance starts from everything the last one learned.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kafka import ConsumerRebalanceListener

from streamlearn.sources.base import SourceError
from streamlearn.sources.kafka_config import KafkaSettings, client_kwargs
from streamlearn.sources.kafka_group import leave_group

__all__ = ["SESSION_TIMEOUT_MS", "Coordinator", "coordination_name"]

log = logging.getLogger(__name__)

#: The coordination member's session timeout unless ``-X session.timeout.ms`` says otherwise:
#: how long a dead or stalled active instance holds the model before a standby takes over.
SESSION_TIMEOUT_MS = 10_000
#: How long a revoked instance may take to stop learning and checkpoint (the rebalance timeout).
REBALANCE_TIMEOUT_MS = 30_000


def coordination_name(group: str) -> str:
    """The coordination topic and group of data group ``group``.

    >>> coordination_name("model-a")
    'model-a.active'
    """
    return f"{group}.active"


class Coordinator:
    """This instance's membership of the coordination group, polled on a thread of its own.

    ``active`` is set while this member holds the partition. ``stop_learning`` (set by the
    runner while it leads) is called on a revoke; the revoke then waits for ``idle``.
    """

    def __init__(self, kafka: KafkaSettings) -> None:
        if kafka.group_id is None:
            raise ValueError("a group of instances needs a consumer group (?group=G)")
        self.name = coordination_name(kafka.group_id)
        self.config = _consumer_config(kafka, self.name)
        self.active = threading.Event()
        #: Set while no learner runs in this instance (a revoke waits for it).
        self.idle = threading.Event()
        self.idle.set()
        self.stop_learning: Callable[[], None] | None = None
        #: The group's last stable generation seen, the one this instance last took the model
        #: over in, and the one it was fenced in (no leading again until a newer one).
        self.generation = -1
        self.led_generation = -1
        self._barred = -1
        #: Seconds a revoke waits for ``idle``.
        self.revoke_wait = 0.9 * self.config["max_poll_interval_ms"] / 1000
        self._closing = threading.Event()
        self._closed = threading.Event()
        self._admin_config = {
            **client_kwargs(kafka.client_config, "admin"),
            "bootstrap_servers": list(kafka.bootstrap_servers),
        }
        self._thread = threading.Thread(target=self._poll, name="coordination", daemon=True)

    def start(self) -> None:
        """Create the coordination topic when missing, join the group, poll from a thread.

        ``SourceError`` (one line) when the brokers cannot be reached or refuse.
        """
        from kafka.errors import KafkaError

        try:
            _ensure_topic(self._admin_config, self.name)
        except KafkaError as exc:
            raise SourceError(
                f"cannot set up the coordination topic {self.name} on "
                f"{','.join(self._admin_config['bootstrap_servers'])}: {exc}"
            ) from None
        self._thread.start()
        log.info(
            "joining group %s on topic %s (session timeout %d ms, cooperative-sticky "
            "assignment): the member holding its partition is the active learner",
            self.name,
            self.name,
            self.config["session_timeout_ms"],
        )

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s to be made active; True when this member is."""
        return self.active.wait(timeout)

    def bar(self) -> None:
        """Fenced: another instance took the model over while this one believed it led.

        It leads again only once the group assigns it the partition in a newer generation
        than the one it led in and the one it believes in now (a member that was paused can
        believe it still holds the partition until it hears from the broker).
        """
        self._barred = max(self.led_generation, self.generation)
        self.active.clear()

    def close(self) -> None:
        """Leave the group (the partition moves on at once); calling it twice is fine."""
        self._closing.set()
        if self._thread.is_alive():
            # Leaving may wait up to the session timeout for a settled generation.
            self._thread.join(timeout=self.config["session_timeout_ms"] / 1000 + 30)

    # -- the group's callbacks (on the polling thread) -----------------------------------------

    def on_partitions_assigned(self, assigned: Any) -> None:
        if any(tp.partition == 0 for tp in assigned):
            log.info("assigned %s: this instance becomes the active learner", self.name)
            self.active.set()

    def on_partitions_revoked(self, revoked: Any) -> None:
        if not any(tp.partition == 0 for tp in revoked):
            return
        log.info("%s revoked: this instance stops learning and becomes a standby", self.name)
        self._give_up()

    def on_partitions_lost(self, lost: Any) -> None:
        if any(tp.partition == 0 for tp in lost):
            log.warning("%s lost (session expired): stops learning", self.name)
            self._give_up()

    def _give_up(self) -> None:
        self.active.clear()
        stop = self.stop_learning
        if stop is not None:
            stop()
        if not self.idle.wait(self.revoke_wait):
            log.warning("the learner did not stop within %.0f s of the revoke", self.revoke_wait)

    def _observe(self, consumer: Any) -> None:
        """The assignment as it stands after a poll, in a stable generation; nothing while the
        group is joining or rebalancing (the next stable generation decides).

        Callbacks tell of changes; this tells of the state, also where the client saw no
        change (a paused member that rejoins still owning the partition in its own view).
        """
        # kafka-python has no public call for the generation (the group's, not ours).
        generation = consumer._coordinator.generation_if_stable()
        if generation is None:
            return
        holds = _holds(consumer, self.name)
        if generation.generation_id != self.generation:  # each rebalance of the group, once
            log.info(
                "%s: generation %d, this instance %s its partition",
                self.name,
                generation.generation_id,
                "holds" if holds else "does not hold",
            )
        self.generation = generation.generation_id
        if holds:
            if self.generation > self._barred and not self.active.is_set():
                log.info("holding %s in generation %d: active", self.name, self.generation)
                self.active.set()
        elif self.active.is_set():
            self._give_up()

    def _poll(self) -> None:
        from kafka import KafkaConsumer

        consumer = None
        try:
            while not self._closing.is_set():
                try:
                    if consumer is None:
                        consumer = KafkaConsumer(**self.config)
                        consumer.subscribe([self.name], listener=_Listener(self))
                    consumer.poll(timeout_ms=200)
                    self._observe(consumer)
                except Exception as exc:  # the broker out of reach: try again, said once a try
                    log.warning("coordination group %s: %s", self.name, exc)
                    self._closing.wait(1.0)
        finally:
            if consumer is not None:
                self.active.clear()
                try:
                    # In a settled generation: a standby is assigned at once.
                    leave_group(consumer)
                except Exception as exc:
                    log.warning("leaving %s: %s", self.name, exc)
                self.active.clear()  # a callback while it settled may have set it
            self._closed.set()


class _Listener(ConsumerRebalanceListener):
    """kafka-python's listener calling the coordinator's methods."""

    def __init__(self, coordinator: Coordinator) -> None:
        self._coordinator = coordinator

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._coordinator.on_partitions_assigned(assigned)

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._coordinator.on_partitions_revoked(revoked)

    def on_partitions_lost(self, lost: Any) -> None:
        self._coordinator.on_partitions_lost(lost)


def _holds(consumer: Any, name: str) -> bool:
    return any(tp.topic == name and tp.partition == 0 for tp in consumer.assignment())


def _consumer_config(kafka: KafkaSettings, name: str) -> dict[str, Any]:
    from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor

    given = client_kwargs(kafka.client_config, "consumer")
    session = int(given.get("session_timeout_ms", SESSION_TIMEOUT_MS))
    return {
        **given,
        "bootstrap_servers": list(kafka.bootstrap_servers),
        "group_id": name,
        "enable_auto_commit": False,
        "session_timeout_ms": session,
        "heartbeat_interval_ms": int(given.get("heartbeat_interval_ms", max(session // 6, 100))),
        "max_poll_interval_ms": int(given.get("max_poll_interval_ms", REBALANCE_TIMEOUT_MS)),
        "partition_assignment_strategy": [CooperativeStickyAssignor],
    }


def _ensure_topic(admin_config: dict[str, Any], name: str) -> None:
    """Create the one-partition coordination topic unless it exists (as Connect does its own)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(**admin_config)
    try:
        if name in admin.list_topics():
            return
        try:
            admin.create_topics([NewTopic(name, 1, 1)])
            log.info("created the coordination topic %s (1 partition)", name)
        except TopicAlreadyExistsError:
            pass  # another instance made it first
    finally:
        admin.close()
