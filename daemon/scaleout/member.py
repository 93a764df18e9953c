"""A member of the Kafka consumer group: owns partitions, runs one learner process per partition.

With ``--key-by`` and a group (``kafka://.../topic?group=G``) every instance subscribes to the
topic as a member of G; Kafka's group protocol spreads the partitions. Each partition the
member is assigned is taken over (``partitions.take_over``: its next epoch in the shared
store, the previous epoch's checkpoint carried in) and learned by a child process
(``streamlearn.scaleout.child``): an ordinary keyed run of that partition in that directory,
resumed from its checkpoint, or started per ``--from`` when it has none.

On revoke the member stops those children (each finishes its batch and writes its final
checkpoint), then commits their next offsets for the group; on a lost membership it stops them
without committing. The member's own consumer fetches nothing (its partitions are paused): it
only holds the membership. Assignment is eager (round robin): kafka-python has a
cooperative-sticky assignor, but against the test broker its second round left revoked
partitions unowned for many seconds (see the note of the scale-out issue).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from streamlearn.broker import free_port
from streamlearn.loop.stopflag import StopFlag
from streamlearn.scaleout.child import FENCED_EXIT
from streamlearn.scaleout.partitions import carried_bytes, newer_epoch, take_over
from streamlearn.scaleout.spawn import Learning, start_learner, warm_up

if TYPE_CHECKING:
    from kafka import KafkaConsumer, TopicPartition

    from streamlearn.config import Settings
    from streamlearn.sources.kafka_config import KafkaSettings

__all__ = ["Member", "MemberStats", "Restore", "instance_id", "member_kafka", "run_member"]

log = logging.getLogger(__name__)

#: Group settings unless ``-X`` says otherwise: a lost instance is noticed within seconds.
GROUP_DEFAULTS: dict[str, Any] = {
    "session_timeout_ms": 10_000,
    "heartbeat_interval_ms": 1_000,
    "max_poll_interval_ms": 120_000,  # the longest a revoke may take (final checkpoints)
}
#: Seconds between commits of the owned partitions' checkpointed offsets (for lag monitoring).
COMMIT_EVERY_S = 5.0
#: Seconds a learner may take to write its final checkpoint and exit before it is killed.
STOP_TIMEOUT_S = 90.0


def member_kafka(settings: Settings) -> KafkaSettings | None:
    """The Kafka settings when this run is a group member (keyed, following a topic in a
    group, every partition), else None; ``AppUsageError`` for what a member cannot do."""
    from streamlearn.config import AppUsageError, require_kafka_sinks
    from streamlearn.endpoints import kafka_settings
    from streamlearn.keys.build import check_keyed

    if settings.key_by is None or not settings.follow or not settings.is_kafka:
        return None
    kafka = kafka_settings(settings)
    if kafka.group_id is None or settings.partition is not None:
        return None
    check_keyed(settings)
    if settings.state_dir is None:
        raise AppUsageError(
            "a keyed run in a group keeps each partition's models in --state-dir, which every "
            "instance must reach (a shared volume): give one",
            option="state-dir",
        )
    require_kafka_sinks(
        settings,
        "--{option} {path}: instances of a group write it together; give a kafka:// topic, "
        "not a file",
    )
    return kafka


@dataclass
class Restore:
    """One take-over of a partition: from the new epoch made to its learner ready to read."""

    #: When it began (``time.monotonic()``).
    started: float
    #: Bytes of checkpoint and key segments carried into the new epoch (copied or linked).
    bytes: int
    #: Seconds to the learner's checkpoint loaded and partition opened; None while it loads.
    seconds: float | None = None


@dataclass
class MemberStats:
    """What the member counts (its metrics)."""

    #: The topic whose partitions the member owns (the label of the per-partition series).
    topic: str = ""
    rebalances: int = 0
    fencing_refusals: int = 0
    restore_seconds: float = 0.0
    owned: int = 0
    #: Seconds from the start of the last rebalance (revoke) to its learners started.
    last_rebalance_seconds: float = 0.0
    rebalance_seconds: float = 0.0
    #: Records behind the log end per owned partition, as of its latest checkpoint.
    lag: dict[int, int] = field(default_factory=dict)
    #: The take-over of each owned partition (replaced whole, never changed in place: the
    #: scrape reads it from another thread).
    restores: dict[int, Restore] = field(default_factory=dict)


@dataclass
class _Learner:
    partition: int
    epoch: int
    directory: Path
    process: Learning
    #: Where the learner serves ``/predict`` (loopback), None when the member serves no HTTP.
    http: str | None = None


class Member:
    """One instance of the group: its consumer, its learners, its counters."""

    def __init__(
        self,
        settings: Settings,
        kafka: KafkaSettings,
        instance: str,
        address: str | None = None,
    ) -> None:
        assert settings.state_dir is not None and kafka.group_id is not None
        self.settings = settings
        self.kafka = kafka
        self.instance = instance
        #: The HTTP address other instances send this one's keys' clients to (None: none).
        self.address = address
        self.state_dir = Path(settings.state_dir)
        self.learners: dict[int, _Learner] = {}
        self.stats = MemberStats(topic=kafka.topic)
        self.stopping = StopFlag()  # set by the signal handler
        self.failed: str | None = None
        self.consumer: KafkaConsumer | None = None
        #: The offsets last committed per partition (``commit_progress`` sends what moved).
        self._progress: dict[int, int] = {}
        #: When the rebalance under way began (its revoke), for its duration.
        self._rebalance_started: float | None = None
        #: In a rebalance listener (the client's network thread): no blocking client call.
        self._in_listener = False

    # -- the learners --------------------------------------------------------------------------

    def _child_settings(self, partition: int, directory: Path, port: int | None) -> Settings:
        servers = ",".join(self.kafka.bootstrap_servers)
        return replace(
            self.settings,
            source=f"kafka://{servers}/{self.kafka.topic}",
            bootstrap_servers=None,
            topic=None,
            group_id=None,  # the member commits, as the group's recognised owner
            partition=partition,
            state_dir=directory,
            reset=False,
            metrics_host="127.0.0.1",  # only the member forwards to it
            metrics_port=port,
        )

    def start(self, partition: int) -> None:
        started = time.monotonic()
        epoch, directory = take_over(
            self.state_dir, self.kafka.topic, partition, self.instance, self.address
        )
        restore = Restore(started, carried_bytes(directory))
        self.stats.restores = {**self.stats.restores, partition: restore}
        port = free_port() if self.address is not None else None
        level = logging.getLevelName(log.getEffectiveLevel())
        process = start_learner(
            self._child_settings(partition, directory, port), level, f"partition-{partition}"
        )
        http = f"http://127.0.0.1:{port}" if port is not None else None
        self.learners[partition] = _Learner(partition, epoch, directory, process, http)
        log.info(
            "instance %s took partition %d over: epoch %d in %s (learner pid %d)",
            self.instance, partition, epoch, directory, process.pid,
        )  # fmt: skip

    def stop(self, partitions: list[int], *, commit: bool) -> None:
        """Stop the learners of ``partitions`` (final checkpoints), then commit their offsets."""
        stopping = [self.learners.pop(p) for p in sorted(partitions) if p in self.learners]
        for learner in stopping:
            if learner.process.poll() is None:
                learner.process.send_signal(signal.SIGTERM)
        offsets: dict[int, int] = {}
        for learner in stopping:
            try:
                code = learner.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.error("the learner of partition %d did not stop: killed", learner.partition)
                learner.process.kill()
                code = learner.process.wait()
            if code == FENCED_EXIT:
                self.stats.fencing_refusals += 1
            elif code != 0:
                log.error("the learner of partition %d exited with %d", learner.partition, code)
            elif commit:
                offset = self._fenced_offset(learner)
                if offset is not None:
                    offsets[learner.partition] = offset
        if offsets:
            self._commit(offsets)
        self._count_owned()

    def _count_owned(self) -> None:
        """The owned count, and per-partition series of the owned partitions only."""
        stats = self.stats
        stats.owned = len(self.learners)
        stats.lag = {p: lag for p, lag in stats.lag.items() if p in self.learners}
        stats.restores = {p: r for p, r in stats.restores.items() if p in self.learners}

    def _note_restores(self) -> None:
        """The take-overs whose learner got ready since the last look: their durations."""
        for partition, restore in list(self.stats.restores.items()):
            learner = self.learners.get(partition)
            ready = learner.process.ready_at if learner is not None else None
            if restore.seconds is not None or ready is None:
                continue
            seconds = max(0.0, ready - restore.started)
            self.stats.restores = {
                **self.stats.restores,
                partition: replace(restore, seconds=seconds),
            }
            self.stats.restore_seconds += seconds
            log.info(
                "partition %d restored in %.3f s (%d bytes of state carried in)",
                partition, seconds, restore.bytes,
            )  # fmt: skip

    def commit_progress(self) -> None:
        """Commit the owned partitions' checkpointed offsets that moved (lag monitoring only:
        a partition's checkpoint, not the group, says where its next owner resumes)."""
        from streamlearn.state import CheckpointError

        offsets: dict[int, int] = {}
        for learner in list(self.learners.values()):
            try:
                offset = self._fenced_offset(learner)
            except (CheckpointError, OSError) as exc:  # being written or collected: next time
                log.debug("no offset of partition %d yet: %s", learner.partition, exc)
                continue
            if offset is not None and offset != self._progress.get(learner.partition):
                offsets[learner.partition] = offset
        if offsets:
            self._commit(offsets, quiet=True)
            self._progress.update(offsets)
        self._measure_lag()

    def _measure_lag(self) -> None:
        """Each owned partition's records behind the log end, from its last checkpoint."""
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        assert self.consumer is not None
        owned = {p: o for p, o in self._progress.items() if p in self.learners}
        if not owned:
            return
        try:
            ends = self.consumer.end_offsets([TopicPartition(self.kafka.topic, p) for p in owned])
        except KafkaError as exc:  # the broker away: the next round measures
            log.debug("no log ends: %s", exc)
            return
        self.stats.lag = {
            tp.partition: max(0, end - owned[tp.partition]) for tp, end in ends.items()
        }

    def _fenced_offset(self, learner: _Learner) -> int | None:
        """The learner's checkpointed next offset, unless its epoch is no longer the newest."""
        newer = newer_epoch(learner.directory)
        if newer is not None:
            self.stats.fencing_refusals += 1
            log.error(
                "FENCED: not committing partition %d: epoch %d took it over (ours %d)",
                learner.partition, newer, learner.epoch,
            )  # fmt: skip
            return None
        from streamlearn.state import CheckpointStore

        loaded = CheckpointStore(learner.directory, lock=False).load()
        if loaded is None:
            return None
        offsets = loaded.state["source"].get("next_offsets", {})
        found = offsets.get(str(learner.partition))
        return int(found) if found is not None else None

    def _commit(self, offsets: dict[int, int], *, quiet: bool = False) -> None:
        from kafka import TopicPartition
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata

        assert self.consumer is not None
        request = {
            TopicPartition(self.kafka.topic, p): OffsetAndMetadata(o, "", -1)
            for p, o in offsets.items()
        }
        if self._in_listener:
            # The listener runs on the client's network thread, which must not block on a
            # request: the commit is sent before the rebalance goes on, its answer heard later.
            self.consumer.commit_async(request, callback=self._committed)
            return
        try:
            self.consumer.commit(request)
        except KafkaError as exc:
            self._committed(request, exc)
            return
        if not quiet:
            self._committed(request, None)

    def _committed(self, request: dict[TopicPartition, Any], response: object) -> None:
        offsets = {tp.partition: meta.offset for tp, meta in request.items()}
        if isinstance(response, Exception):  # a stale generation: Kafka fences our commit
            self.stats.fencing_refusals += 1
            log.error("the group refused our commit of %s: %s", offsets, response)
        else:
            log.info("committed offsets %s for group %s", offsets, self.kafka.group_id)

    def check_learners(self) -> None:
        """Learners that ended by themselves: fenced ones drop their partition; a crash fails."""
        for partition, learner in list(self.learners.items()):
            code = learner.process.poll()
            if code is None:
                continue
            del self.learners[partition]
            if code == FENCED_EXIT:
                self.stats.fencing_refusals += 1
                log.error("partition %d was fenced: dropped", partition)
            elif code != 0:
                self.failed = f"the learner of partition {partition} failed (exit {code})"
        self._note_restores()
        self._count_owned()

    # -- the group -----------------------------------------------------------------------------

    def _listener(self) -> Any:
        from kafka import ConsumerRebalanceListener

        member = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
                member._revoked(revoked, commit=True)

            def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
                log.warning("instance %s lost its group membership", member.instance)
                member._revoked(lost, commit=False)

            def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
                member._assigned(assigned)

        return Listener()

    def _revoked(self, partitions: set[TopicPartition], *, commit: bool) -> None:
        self._rebalance_started = time.monotonic()
        mine = sorted(tp.partition for tp in partitions if tp.topic == self.kafka.topic)
        if mine:
            log.info("instance %s releases partitions %s", self.instance, mine)
            self._in_listener = True
            try:
                self.stop(mine, commit=commit)
            finally:
                self._in_listener = False

    def _assigned(self, partitions: set[TopicPartition]) -> None:
        assert self.consumer is not None
        self.stats.rebalances += 1
        if partitions:
            self.consumer.pause(*partitions)  # the learners read them, not this consumer
        mine = sorted(tp.partition for tp in partitions if tp.topic == self.kafka.topic)
        log.info(
            "instance %s owns partitions %s of %r (group %s, rebalance %d, eager assignment)",
            self.instance, mine, self.kafka.topic, self.kafka.group_id, self.stats.rebalances,
        )  # fmt: skip
        for p in mine:
            if p not in self.learners:
                self.start(p)
        if self._rebalance_started is not None:
            seconds = time.monotonic() - self._rebalance_started
            self.stats.last_rebalance_seconds = seconds
            self.stats.rebalance_seconds += seconds
            self._rebalance_started = None
        self._count_owned()

    def _consumer(self) -> KafkaConsumer:
        from kafka import KafkaConsumer
        from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

        from streamlearn.sources.kafka_config import client_kwargs

        config = {
            **GROUP_DEFAULTS,
            **client_kwargs(self.kafka.client_config, "consumer"),
            "bootstrap_servers": list(self.kafka.bootstrap_servers),
            "group_id": self.kafka.group_id,
            "enable_auto_commit": False,
            "max_poll_records": 1,
            "partition_assignment_strategy": [RoundRobinPartitionAssignor],
        }
        return KafkaConsumer(**config)

    def run(self) -> int:
        """Hold the membership until SIGTERM/SIGINT; returns the exit status."""
        warm_up()
        self.consumer = consumer = self._consumer()
        consumer.subscribe([self.kafka.topic], listener=self._listener())
        log.info(
            "instance %s joins group %s on topic %r (eager round-robin assignment; "
            "state store %s)",
            self.instance, self.kafka.group_id, self.kafka.topic, self.state_dir,
        )  # fmt: skip
        next_commit = time.monotonic() + COMMIT_EVERY_S
        try:
            while not self.stopping.is_set() and self.failed is None:
                consumer.poll(timeout_ms=300)  # heartbeats, rebalances; fetches nothing
                self.check_learners()
                if time.monotonic() >= next_commit:
                    self.commit_progress()
                    next_commit = time.monotonic() + COMMIT_EVERY_S
        finally:
            self.stop(list(self.learners), commit=self.failed is None)
            consumer.close(autocommit=False)
        if self.failed is not None:
            log.error("%s: instance %s stops", self.failed, self.instance)
            return 1
        log.info("instance %s left group %s", self.instance, self.kafka.group_id)
        return 0


def instance_id() -> str:
    """This instance's id: ``STREAMLEARN_INSTANCE_ID``, else host and pid."""
    return os.environ.get("STREAMLEARN_INSTANCE_ID") or f"{socket.gethostname()}-{os.getpid()}"


def run_member(settings: Settings, kafka: KafkaSettings) -> int:
    """Run this instance as a member of the group until SIGTERM/SIGINT."""
    from streamlearn.scaleout.serve import advertised_address

    member = Member(settings, kafka, instance_id(), advertised_address(settings))

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s: releasing the partitions", signal.Signals(signum).name)
        member.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if settings.metrics_port is not None:
        from streamlearn.scaleout.serve import serve_member
        from streamlearn.scaleout.telemetry import member_registry

        serve_member(settings, member, member_registry(member.stats))
    return member.run()
