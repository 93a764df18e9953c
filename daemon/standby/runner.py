"""``run --standby``: follow as a hot standby until the group makes this instance active, lead,
and follow again when the model is taken from it.

Leading is an ordinary run (``streamlearn.app.build``) on a store shared with the group and
fenced by the epoch it raises as it opens (``open_state``): it resumes from the last durable
checkpoint and its Kafka offsets. It ends when the coordination partition is revoked (the
learner finishes its batch and checkpoints before the partition moves on), when a write is
refused because another instance took over (``Fenced``: nothing more is written), or on
SIGTERM/SIGINT (checkpoint, then leave the group, so a standby takes over at once).
"""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import TYPE_CHECKING, Any

from streamlearn.config import AppUsageError, Settings, require_kafka_sinks
from streamlearn.loop.stopflag import StopFlag
from streamlearn.state.epoch import fenced_cause

from .coordinator import Coordinator
from .follower import Follower
from .role import Role

if TYPE_CHECKING:
    from streamlearn.loop import Daemon

__all__ = ["check_standby", "run_group"]

log = logging.getLogger(__name__)


def check_standby(settings: Settings) -> None:
    """``--standby`` with what it needs, or a usage error naming what is missing."""
    if not settings.standby:
        return
    if not settings.is_kafka:
        raise AppUsageError("--standby needs a kafka:// source", option="standby")
    if settings.key_by is not None:
        raise AppUsageError(
            "--standby elects one learner of a single model; with --key-by the group "
            "spreads the partitions instead",
            option="standby",
        )
    if settings.state_dir is None:
        raise AppUsageError(
            "--standby needs a --state-dir every instance reaches (a standby takes over from "
            "the active instance's checkpoint)",
            option="standby",
        )
    if not settings.follow:
        raise AppUsageError("--standby is for run (a replay has its end)", option="standby")
    if settings.no_learn:
        raise AppUsageError("--standby learns when active: not with --no-learn", option="standby")
    if settings.reset:
        raise AppUsageError(
            "--reset with --standby would clear the model at every takeover: stop the group "
            "and clear the state dir once",
            option="reset",
        )
    require_kafka_sinks(
        settings,
        "with --standby the instances take turns writing it: give a kafka:// topic, not a file",
    )


class GroupRun:
    """One instance of a group: its membership, its role, the learner while it leads."""

    def __init__(self, settings: Settings, coordinator: Coordinator) -> None:
        self.settings = settings
        self.coordinator = coordinator
        self.role = Role()
        self.stopping = StopFlag()  # set by the signal handler
        self.daemon: Daemon | None = None
        #: The summary of the last time this instance led (None: it never did).
        self.summary: dict[str, Any] | None = None

    def stop(self) -> None:
        """SIGTERM/SIGINT: stop leading (checkpoint) or following, then leave the group."""
        self.stopping.set()
        daemon = self.daemon
        if daemon is not None:
            daemon.stop()

    def run(self) -> dict[str, Any] | None:
        while not self.stopping.is_set():
            if self.coordinator.active.is_set():
                self.lead()
            else:
                self.follow()
        return self.summary

    def follow(self) -> None:
        """Serve the latest checkpoint until this instance is made active (or stopped)."""
        self.role.become("standby")
        follower = Follower(self.settings, self.role)
        try:
            log.info("standby: following %s", self.settings.state_dir)
            follower.follow(
                lambda: self.stopping.is_set() or self.coordinator.active.is_set(),
                self.stopping.wait,
            )
        finally:
            follower.close()

    def lead(self) -> None:
        """Take the model over and learn until revoked, fenced or stopped."""
        from streamlearn.app import build
        from streamlearn.observe.telemetry import Telemetry

        coordinator = self.coordinator
        coordinator.idle.clear()
        coordinator.led_generation = coordinator.generation
        try:
            app = build(self.settings, stopping=self.stopping.is_set)
            try:
                daemon = app.daemon
                telemetry = daemon.telemetry
                if isinstance(telemetry, Telemetry):  # --metrics-port: its registry says the role
                    self.role.register(telemetry.registry)
                self.role.takeovers += 1
                self.role.become("active")
                self.daemon = daemon
                coordinator.stop_learning = daemon.stop
                if self.stopping.is_set() or not coordinator.active.is_set():
                    daemon.stop()  # revoked or stopped while it was being built
                self.summary = daemon.run()
            finally:
                self.daemon = None
                coordinator.stop_learning = None
                self.role.become("standby")
                app.close()
        except Exception as exc:
            fenced = fenced_cause(exc)
            if fenced is None:
                raise
            self.role.refused()
            log.warning("standby again: %s", fenced)
            coordinator.bar()  # until the group assigns the partition anew
        finally:
            coordinator.idle.set()


def run_group(settings: Settings) -> dict[str, Any] | None:
    """Run one instance of the group until SIGTERM/SIGINT; its last summary as a leader."""
    from streamlearn.endpoints import kafka_settings

    kafka = kafka_settings(settings)
    if kafka.group_id is None:
        raise AppUsageError(
            "--standby needs a consumer group (kafka://HOST:PORT/TOPIC?group=G or --group-id): "
            "its instances elect the active learner in G.active",
            option="standby",
        )
    coordinator = Coordinator(kafka)
    group = GroupRun(settings, coordinator)

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s: leaving the group", signal.Signals(signum).name)
        group.stop()
        signal.signal(signum, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    coordinator.start()
    try:
        return group.run()
    finally:
        coordinator.close()
