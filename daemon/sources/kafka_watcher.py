"""The background thread of a Kafka source: every call that may block on the broker.

:class:`WatcherBase` observes the topic (partitions, log bounds, the group's committed offsets)
into an :class:`Observation`, sends the offset commits the reader asks for, and says whether
the broker answers. A client library subclasses it with the client calls.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from streamlearn.sources.kafka_config import KafkaSettings

__all__ = ["WATCHER_REQUEST_TIMEOUT_S", "Fatal", "Observation", "WatcherBase"]

log = logging.getLogger(__name__)

#: Metadata and offset look-ups give up after this long, so a hung broker is noticed quickly.
WATCHER_REQUEST_TIMEOUT_S = 3.0


class Closable(Protocol):
    """A client that can be closed (both libraries' consumers)."""

    def close(self) -> None: ...


#: The watcher's own look-up client.
ClientT = TypeVar("ClientT")
#: The fetching consumer the watcher may build and hand to the reader.
ConsumerT = TypeVar("ConsumerT", bound=Closable)


@dataclass(frozen=True, slots=True)
class Observation:
    """What the watcher saw in one round; replaced whole, never mutated."""

    started_at: float  # time.monotonic() when the round began
    topic_exists: bool
    partitions: frozenset[int] = frozenset()
    log_start: Mapping[int, int] = field(default_factory=dict)
    log_end: Mapping[int, int] = field(default_factory=dict)
    committed: Mapping[int, int] = field(default_factory=dict)
    #: With ``--from`` a time, while ``WatcherBase.look_up_times``: each partition's first
    #: offset stamped at or after it (-1: none that late).
    at_time: Mapping[int, int] = field(default_factory=dict)


class Fatal(Exception):
    """A watcher failure that retrying cannot fix (authentication, authorization, config)."""


class WatcherBase(threading.Thread, Generic[ClientT, ConsumerT]):
    """Background thread that owns every call that may block on the broker.

    Every ``interval`` seconds it observes the topic through a look-up client of its own
    (partitions, log start and end offsets, the group's committed offsets) and sends the newest
    offsets the reader asked it to commit. Failures are retried with backoff, except those
    ``_is_fatal`` names; each connected/disconnected change is logged once. The subclass makes
    the client calls: ``_connect``, the look-ups ``_observe`` makes (``_partitions``,
    ``_log_bounds``, ``_offsets_at``, ``_group_offsets``), ``_send_commit``, ``_close_client``.
    """

    #: Where it logs: the client module's logger, so log names say which client it is.
    _log: ClassVar[logging.Logger] = log

    def __init__(
        self, settings: KafkaSettings, interval: float, max_backoff: float, name: str
    ) -> None:
        super().__init__(name=f"{name}-{settings.topic}", daemon=True)
        self.settings = settings
        self.interval = interval
        self.max_backoff = max_backoff
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self.observed = threading.Event()  # set after every round; the reader clears it
        self.observation: Observation | None = None
        self.connected = False
        self.fatal: BaseException | None = None
        self.committed_offsets: dict[int, int] = {}  # what our own commits confirmed
        self.commit_failures = 0
        self._handoff: ConsumerT | None = None  # built here, for the reader to take
        self._pending_commit: dict[int, int] | None = None
        self._ever_connected = False
        self._state_logged = False
        #: Whether each look also asks for the offsets of the ``--from`` time; the reader
        #: turns it off once its partitions are placed.
        self.look_up_times = settings.start_at.kind == "time"

    # -- called from the reading thread ---------------------------------------------------------

    def take_consumer(self) -> ConsumerT | None:
        """The fetching consumer this thread built, once (None if it built none)."""
        with self._lock:
            consumer, self._handoff = self._handoff, None
            return consumer

    def request_commit(self, offsets: dict[int, int]) -> None:
        with self._lock:
            self._pending_commit = dict(offsets)  # only the newest checkpoint matters
        self._wake.set()

    def refresh(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def close_consumer(self, consumer: ConsumerT) -> None:
        """Close a fetching consumer without committing anything (positions are ours)."""
        consumer.close()

    # -- what the client library does -----------------------------------------------------------

    @abstractmethod
    def _connect(self) -> ClientT:
        """The look-up client (may raise; retried like any round)."""

    def _observe(self, client: ClientT) -> Observation:
        """One look at the topic: its partitions, their log bounds, the ``--from`` time's
        offsets while ``look_up_times``, the group's committed offsets when there is a group.

        Metadata comes first, and for a topic that does not exist nothing else is asked: on
        tansu a look-up of offsets in an unknown topic creates it.
        """
        started = time.monotonic()
        partitions = self._partitions(client)
        if partitions is None:
            return Observation(started, topic_exists=False)
        log_start, log_end = self._log_bounds(client, partitions)
        at_time: dict[int, int] = {}
        if self.look_up_times and partitions:
            at_time = self._offsets_at(client, partitions, self.settings.start_at.value)
        committed: dict[int, int] = {}
        group = self.settings.group_id
        if group is not None and partitions:
            committed = self._group_offsets(client, group, partitions)
        return Observation(
            started_at=started,
            topic_exists=True,
            partitions=partitions,
            log_start=log_start,
            log_end=log_end,
            committed=committed,
            at_time=at_time,
        )

    @abstractmethod
    def _partitions(self, client: ClientT) -> frozenset[int] | None:
        """The topic's partitions that have a leader, from metadata only; None: no such topic.

        Raises :class:`Fatal` when we may not read the topic.
        """

    @abstractmethod
    def _log_bounds(
        self, client: ClientT, partitions: frozenset[int]
    ) -> tuple[dict[int, int], dict[int, int]]:
        """Each partition's log start and log end offsets."""

    @abstractmethod
    def _offsets_at(
        self, client: ClientT, partitions: frozenset[int], moment: int
    ) -> dict[int, int]:
        """Each partition's first offset stamped at or after ``moment`` (ms since the epoch;
        -1: none that late); a partition the broker could not answer for is left out."""

    @abstractmethod
    def _group_offsets(
        self, client: ClientT, group: str, partitions: frozenset[int]
    ) -> dict[int, int]:
        """The offsets ``group`` has committed, for the partitions that have one."""

    @abstractmethod
    def _send_commit(
        self, client: ClientT, group: str, offsets: dict[int, int]
    ) -> tuple[dict[int, int], dict[int, Any]]:
        """Commit ``offsets`` for ``group``: (partition -> offset confirmed, partition -> error)."""

    @abstractmethod
    def _close_client(self, client: ClientT) -> None:
        """Release the look-up client."""

    def _is_fatal(self, exc: Exception) -> bool:
        """Whether retrying cannot fix ``exc`` (the source then raises it to the run loop)."""
        return isinstance(exc, Fatal)

    def _is_transient(self, exc: Exception) -> bool:
        """Whether ``exc`` (not fatal) is retried; anything else stops the thread as a bug."""
        return True

    # -- the thread ----------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # a bug here must not leave the source looking healthy
            self.fatal = exc
            self.connected = False
            self._log.exception("the Kafka watcher for topic %r stopped", self.settings.topic)
        finally:
            self.observed.set()

    def _run(self) -> None:
        client: ClientT | None = None
        backoff = 0.25
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                wait = self.interval
                try:
                    if client is None:
                        client = self._connect()
                    self._publish(self._observe(client))
                    self._set_connected(True, None)
                    self._commit(client)
                    backoff = 0.25
                except Exception as exc:
                    if self._is_fatal(exc):
                        self.fatal = exc
                        self._set_connected(False, exc)
                        return
                    if not self._is_transient(exc):
                        raise
                    self._set_connected(False, exc)  # down, hung, restarting: retry with backoff
                    wait = backoff
                    backoff = min(backoff * 2, self.max_backoff)
                finally:
                    self.observed.set()
                self._wake.wait(wait)
        finally:
            if client is not None:
                if self.connected:
                    # The last checkpoint's offsets go out before we leave (bounded by the
                    # request timeout); failing here is harmless, the checkpoint is the truth.
                    try:
                        self._commit(client)
                    except Exception as exc:
                        self._log.warning(
                            "final offset commit for %s failed: %s", self.settings.topic, exc
                        )
                self._close_client(client)
            leftover = self.take_consumer()
            if leftover is not None:
                self.close_consumer(leftover)

    def _publish(self, observation: Observation) -> None:
        with self._lock:
            self.observation = observation

    def _commit(self, client: ClientT) -> None:
        with self._lock:
            offsets, self._pending_commit = self._pending_commit, None
        group = self.settings.group_id
        if not offsets or group is None:
            return
        try:
            confirmed, failed = self._send_commit(client, group, offsets)
        except Exception as exc:
            self.commit_failures += 1
            with self._lock:  # keep it for the next round unless a newer checkpoint came
                if self._pending_commit is None:
                    self._pending_commit = offsets
            self._log.warning("committing offsets of group %r failed (will retry): %s", group, exc)
            raise
        if failed:
            self.commit_failures += 1
            self._log.warning(
                "committing offsets of group %r failed for partitions %s", group, failed
            )
        self.committed_offsets.update(confirmed)

    def _set_connected(self, connected: bool, error: BaseException | None) -> None:
        """Record the connection state; log only when it changes (and the first failure)."""
        if connected == self.connected and self._state_logged:
            return
        servers = ",".join(self.settings.bootstrap_servers)
        if connected:
            verb = "reconnected" if self._ever_connected else "connected"
            self._log.info("%s to Kafka at %s (topic %r)", verb, servers, self.settings.topic)
            self._ever_connected = True
        else:
            self._log.warning(
                "cannot reach Kafka at %s (%s: %s); retrying with backoff",
                servers,
                type(error).__name__,
                error,
            )
        self._state_logged = True
        self.connected = connected
