"""The daemon's observable face: its Prometheus telemetry and its HTTP server, wired to a
built daemon (model metrics are read at scrape time, under the daemon's lock).

A classifier's telemetry has its own metric grid (accuracy, log loss ...), per-class counts
from its confusion matrix, and no absolute-error histogram; a baseline guard's error rates
(it compares the 0/1 errors) are exported as accuracies.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from streamlearn.classify.learner import ClassLearner
from streamlearn.config import AppError, Settings

if TYPE_CHECKING:
    from streamlearn.endpoints import LagReader
    from streamlearn.interfaces import DriftLabels, LearnerLike
    from streamlearn.loop import Daemon
    from streamlearn.observe.class_counts import ClassTally
    from streamlearn.observe.http import MetricsServer
    from streamlearn.observe.telemetry import Telemetry
    from streamlearn.sources.base import Source

__all__ = ["make_telemetry", "serve_http"]


def make_telemetry(daemon: Daemon, source: Source, lag: LagReader | None) -> Telemetry:
    """Prometheus metrics of a daemon; model metrics are read at scrape time under its lock."""
    from streamlearn.observe.telemetry import DEFAULT_ERROR_BUCKETS, Telemetry

    learner_of = lambda: daemon.learner  # noqa: E731 - the learner object can be swapped
    classifier = isinstance(daemon.learner, ClassLearner)

    def model_metrics() -> dict[tuple[str, str], float]:
        with daemon.lock:
            cumulative = learner_of().summary()
            rolling = learner_of().rolling_summary()
        # Numbers only: a classifier's summary holds its confusion matrix too.
        out = {(k, "cumulative"): v for k, v in cumulative.items() if isinstance(v, float)}
        out.update({(k, "rolling"): v for k, v in rolling.items() if isinstance(v, float)})
        return out

    def baseline_metrics() -> dict[tuple[str, str], float]:
        with daemon.lock:
            learner = learner_of()
            summary = learner.baseline_summary() or {}
            rolling = learner.guard.rolling()[1] if learner.guard is not None else {}
        out = {(k, "cumulative"): v for k, v in summary.items() if isinstance(v, float)}
        rolled = {(k, "rolling"): v for k, v in rolling.items() if v is not None}
        out.update(_as_accuracy(rolled) if classifier else rolled)
        return out

    def class_counts() -> list[ClassTally]:
        from streamlearn.observe.class_counts import class_tallies

        with daemon.lock:
            learner = learner_of()
            assert isinstance(learner, ClassLearner)
            return class_tallies(learner.classes.labels, learner.metrics.confusion)

    monitor = daemon.monitor
    labels: DriftLabels = monitor.telemetry_labels() if monitor is not None else {}
    telemetry = Telemetry(
        source=source.kind,
        model_spec=daemon.model_spec,
        model_metrics=model_metrics,
        baseline_metrics=baseline_metrics if daemon.learner.baseline is not None else None,
        lag=lag,
        ready=lambda: daemon.ready,
        paused=lambda: daemon.paused_reason,
        **labels,
        model_metric_names=_metric_names(daemon.learner),
        class_counts=class_counts if classifier else None,
        error_buckets=None if classifier else DEFAULT_ERROR_BUCKETS,
    )
    if daemon.pseudo is not None:
        _pseudo_effect_metrics(daemon, telemetry)
    if daemon.learner.guard is not None:
        _serving_metrics(daemon, telemetry, classifier)
    return telemetry


def _metric_names(learner: LearnerLike) -> tuple[str, ...]:
    """The metric grid of ``streamlearn_model_metric``: ``inspect --json``'s names."""
    from streamlearn.classify.metrics import BINARY_METRICS, MULTICLASS_METRICS
    from streamlearn.observe.scrape import MODEL_METRICS

    if not isinstance(learner, ClassLearner):
        return MODEL_METRICS
    return BINARY_METRICS if learner.classes.binary else MULTICLASS_METRICS


def _as_accuracy(values: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    """A classifier's baseline guard compares 0/1 errors: their mean is an error rate, exported
    as the accuracy ``1 - rate`` (its RMSE and R2 mean nothing)."""
    return {("accuracy", window): 1.0 - v for (name, window), v in values.items() if name == "mae"}


def _serving_metrics(daemon: Daemon, telemetry: Telemetry, classifier: bool) -> None:
    """``streamlearn_served_metric`` and ``streamlearn_serving_baseline``: the baseline guard's
    (``streamlearn.models.champion``) served predictions and which model serves them."""
    from prometheus_client.metrics_core import GaugeMetricFamily

    from streamlearn.observe.scrape import ScrapeTimeCollector, metric_family

    def produce() -> list[GaugeMetricFamily]:
        with daemon.lock:
            guard = daemon.learner.guard
            summary = guard.summary() if guard is not None else None
        if summary is None:
            return []
        values = {(k, "cumulative"): v for k, v in summary["served_metrics"].items()}
        values.update({(k, "rolling"): v for k, v in summary["served_rolling_metrics"].items()})
        values = {key: value for key, value in values.items() if value is not None}
        served = metric_family(
            "streamlearn_served_metric",
            "Prequential metric of the predictions served (the online model's or, while the "
            "baseline guard serves it, the frozen warm-start model's).",
            _as_accuracy(values) if classifier else values,
            telemetry.model_metric_names,
        )
        serving = GaugeMetricFamily(
            "streamlearn_serving_baseline",
            "1 while predictions are served from the frozen warm-start model A, 0 from B.",
            value=1.0 if summary["serving"] == "baseline" else 0.0,
        )
        return [served, serving]

    telemetry.registry.register(ScrapeTimeCollector("streamlearn_served_metric", produce))


def _pseudo_effect_metrics(daemon: Daemon, telemetry: Telemetry) -> None:
    """The twin's and the model's errors, and the pseudo-label guard (``labels.effect``)."""
    from streamlearn.observe.pseudo_metrics import register_pseudo_metrics

    def read() -> dict[str, Any] | None:
        with daemon.lock:
            pseudo = daemon.pseudo
            summary = pseudo.summary()["pseudo_labels"] if pseudo is not None else None
        return summary["effect"] if summary is not None else None

    register_pseudo_metrics(telemetry.registry, read)


def serve_http(
    settings: Settings, daemon: Daemon, telemetry: Telemetry, resources: ExitStack
) -> MetricsServer:
    """Start the HTTP face (/metrics, /healthz, /readyz, /predict, /model) for a daemon."""
    from streamlearn.observe.http import MetricsServer, MetricsServerError
    from streamlearn.observe.serving import ModelService

    service = ModelService(
        daemon,
        daemon.decoder.features,
        strict_features=settings.strict_features,
        learn=settings.http_learn,
        keyed=daemon.keyed,
    )

    def model_info() -> dict[str, Any]:
        with daemon.lock:
            return daemon.inspect()

    expected = list(daemon.decoder.features) if daemon.decoder.features is not None else []
    server = MetricsServer(
        settings.metrics_host,
        settings.metrics_port or 0,
        telemetry.registry,
        ready=lambda: daemon.ready,
        predict=service.predict,
        predict_many=service.predict_many,
        learn=service.learn if settings.http_learn else None,
        download=service.download if settings.http_download else None,
        target=settings.target,
        labels=daemon.learner.task == "classification",
        model_info=model_info,
        expected_features=lambda: expected,
        telemetry=telemetry,
        not_ready=lambda: daemon.not_ready_reason,
    )
    if settings.standby:  # an instance of a group serves while it is the active learner
        server.role = lambda: "active"
    keyed = daemon.keyed
    if keyed is not None:

        def key_info(key: str) -> dict[str, Any] | None:
            with daemon.lock:
                return keyed.key(key)

        server.key_info = key_info
    try:
        server.start()
    except MetricsServerError as exc:
        raise AppError(str(exc)) from None
    resources.callback(server.stop)
    return server
