"""A hot standby: the active instance's latest checkpoint, reloaded as it lands and served.

The standby reads the shared state dir under its shared lock and never writes it. Each
new generation (the store's number moves) is loaded and swapped in under a lock, so
``/predict`` answers from the newest durable model, never from one half loaded. Its HTTP
face (``--metrics-port``) says ``standby`` on ``/readyz`` and in ``streamlearn_role``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from streamlearn.config import AppError, Settings
from streamlearn.state import CheckpointError, CheckpointStore, StateLocked

from .role import Role

if TYPE_CHECKING:
    from streamlearn.interfaces import LabelJoin, LearnerLike
    from streamlearn.observe.http import MetricsServer
    from streamlearn.observe.json_bodies import Query
    from streamlearn.observe.serving import ModelService, Prediction
    from streamlearn.records import Decoded

__all__ = ["Follower"]

log = logging.getLogger(__name__)

#: Seconds between looks at the state dir for a new generation.
FOLLOW_SECONDS = 0.2


@dataclass
class _Counts:
    records_seen: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


class Follower:
    """The standby's copy of the model, refreshed from the shared state dir, and its HTTP face."""

    def __init__(self, settings: Settings, role: Role) -> None:
        assert settings.state_dir is not None
        try:
            self.store: CheckpointStore | None = CheckpointStore(settings.state_dir, shared=True)
        except (StateLocked, CheckpointError) as exc:
            raise AppError(str(exc)) from None
        self.settings = settings
        self.role = role
        self.lock = threading.Lock()
        self.join: LabelJoin | None = None
        self.counters = _Counts()
        #: The generation served (0: none yet), and what it held.
        self.generation = 0
        self.state: Mapping[str, Any] | None = None
        self._learner: LearnerLike | None = None
        self._service: ModelService | None = None
        self.server: MetricsServer | None = None
        try:
            self.refresh()
            if settings.metrics_port is not None:
                self.server = self._serve()
        except BaseException:
            self.close()
            raise

    # -- what ModelService asks of a daemon ------------------------------------------------------

    @property
    def learner(self) -> LearnerLike:
        if self._learner is None:
            from streamlearn.observe.serving import ModelUnavailable

            raise ModelUnavailable("standby: no checkpoint of the active instance yet")
        return self._learner

    def learn_items(self, items: list[Decoded], join: LabelJoin | None = None) -> None:
        from streamlearn.observe.serving import ModelUnavailable

        raise ModelUnavailable("a standby does not learn: send records to the active instance")

    # -- following ------------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Load the newest generation when it is not the one served; True when one was loaded."""
        assert self.store is not None
        newest = max(self.store.generations(), default=0)
        if newest == 0 or newest == self.generation:
            return False
        try:
            loaded = self.store.load()
        except (CheckpointError, OSError) as exc:  # pruned or half-renamed meanwhile: next time
            log.warning("standby: cannot load generation %d yet: %s", newest, exc)
            return False
        if loaded is None or loaded.generation == self.generation:
            return False
        self._swap(loaded.generation, loaded.state)
        return True

    def _swap(self, generation: int, state: Mapping[str, Any]) -> None:
        from streamlearn.observe.serving import ModelService

        learner: LearnerLike = state["learner"]
        features = state.get("settings", {}).get("features")
        with self.lock:
            self._learner, self.state, self.generation = learner, state, generation
            self._service = ModelService(
                self, features, strict_features=self.settings.strict_features
            )
        log.info(
            "standby: serving generation %d (%d records learned)",
            generation,
            learner.records_learned,
        )

    def follow(self, until: Callable[[], bool], wait: Callable[[float], object]) -> None:
        """Reload each new generation until ``until()``; ``wait(seconds)`` paces the looks."""
        while not until():
            self.refresh()
            wait(FOLLOW_SECONDS)

    # -- the HTTP face ----------------------------------------------------------------------------

    def _predict_many(self, queries: Sequence[Query], batch: bool = False) -> list[Prediction]:
        from streamlearn.observe.serving import ModelUnavailable

        service = self._service
        if service is None:
            raise ModelUnavailable("standby: no checkpoint of the active instance yet")
        return service.predict_many(queries, batch)

    def _predict(self, features: dict[str, float]) -> Prediction:
        from streamlearn.observe.json_bodies import Query

        return self._predict_many([Query(dict(features))])[0]

    def info(self) -> dict[str, Any]:
        """``/model``: the role, the generation served and what it learned."""
        state = self.state
        learner = self._learner
        return {
            "role": "standby",
            "generation": self.generation or None,
            "model_spec": state.get("model_spec") if state is not None else None,
            "records_learned": learner.records_learned if learner is not None else 0,
        }

    def _serve(self) -> MetricsServer:
        from streamlearn.observe.http import MetricsServer, MetricsServerError

        registry = CollectorRegistry()
        self.role.register(registry)
        server = MetricsServer(
            self.settings.metrics_host,
            self.settings.metrics_port or 0,
            registry,
            ready=lambda: True,  # a standby serves what it has (503 on /predict before any)
            predict=self._predict,
            predict_many=self._predict_many,
            model_info=self.info,
            expected_features=lambda: [],
        )
        server.role = lambda: "standby"
        try:
            server.start()
        except MetricsServerError as exc:
            raise AppError(str(exc)) from None
        return server

    def close(self) -> None:
        """Stop serving and release the state dir; calling it twice is fine."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.store is not None:
            self.store.close()
            self.store = None
