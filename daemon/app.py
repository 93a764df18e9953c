"""Wiring: turn resolved ``Settings`` into a ready ``Daemon`` (source, decoder, model, state).

Every user mistake found here becomes an ``AppError`` with a message that says
what to do; the CLI prints it on one line and exits non-zero.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamlearn.config import Settings
from streamlearn.sources.base import Source, SourceError

log = logging.getLogger(__name__)


class AppError(Exception):
    """A problem the user can fix (bad path, locked state, mismatched file)."""


class AppUsageError(AppError):
    """A mistake in how the command was called (a bad model spec): exit code 2.

    ``option`` names the option to change (without its dashes) when one option is at fault.
    """

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


@dataclass
class App:
    """A daemon and the resources to release after it ran."""

    daemon: Any
    resources: ExitStack

    def close(self) -> None:
        self.resources.close()


def detect_format(path: Path, declared: str) -> str:
    """``csv`` or ``jsonl``: the declared format, else by extension, else by the first byte."""
    if declared != "auto":
        return declared
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    try:
        with open(path, "rb") as handle:
            head = handle.read(64).lstrip()
    except OSError:
        return "csv"
    return "jsonl" if head.startswith(b"{") else "csv"


def source_path(source: str) -> Path:
    """The file a SOURCE argument names (``file:PATH`` or a plain path)."""
    return Path(source[5:] if source.startswith("file:") else source)


def _read_header(path: Path, follow: bool, stopping: Callable[[], bool]) -> bytes:
    """The CSV header line; in follow mode, waits for the file and its first line."""
    logged = False
    while True:
        try:
            with open(path, "rb") as handle:
                line = handle.readline(1 << 20)
            if line.endswith(b"\n") or (line and not follow):
                return line
        except FileNotFoundError:
            if not follow:
                raise AppError(f"no such file: {path}") from None
        except IsADirectoryError:
            raise AppError(f"{path} is a directory, not a file") from None
        except PermissionError:
            raise AppError(f"{path} is not readable (permission denied)") from None
        if not follow:
            raise AppError(f"{path} is empty: a CSV needs a header line")
        if stopping():
            raise AppError(f"stopped while waiting for {path}")
        if not logged:
            log.info("waiting for %s and its header line", path)
            logged = True
        time.sleep(0.2)


def build_decoder(settings: Settings, fmt: str, header: bytes | None) -> Any:
    from streamlearn.records import CsvDecoder, JsonDecoder, parse_csv_header

    if fmt == "jsonl":
        return JsonDecoder(
            target=settings.target, features=settings.features, id_field=settings.id_column
        )
    assert header is not None
    try:
        columns = parse_csv_header(header)
        return CsvDecoder(
            columns,
            target=settings.target,
            features=settings.features,
            id_column=settings.id_column,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise AppError(str(exc)) from None


def kafka_settings(settings: Settings) -> Any:
    """The Kafka settings of a kafka:// source, or an ``AppUsageError`` saying what is wrong."""
    from streamlearn.sources.kafka_config import KafkaSettings

    try:
        return KafkaSettings.build(
            settings.source,
            bootstrap_servers=settings.bootstrap_servers,
            topic=settings.topic,
            group_id=settings.group_id,
            extra=settings.kafka_options,
            config_file=settings.kafka_config,
            start_from=settings.start_from,
            on_data_loss=settings.on_data_loss,
        )
    except (ValueError, OSError) as exc:
        raise AppUsageError(str(exc)) from None


def open_source(settings: Settings, resume: dict[str, Any] | None, kafka: Any = None) -> Source:
    try:
        if kafka is not None:
            if settings.kafka_client == "confluent":
                try:
                    from streamlearn.sources.kafka_confluent import ConfluentKafkaSource
                except ImportError:
                    raise AppError(
                        "--kafka-client confluent needs: pip install 'streamlearn[confluent]'"
                    ) from None
                return ConfluentKafkaSource(kafka, resume)
            from streamlearn.sources.kafka import KafkaSource

            return KafkaSource(kafka, resume)
        from streamlearn.sources.file import FileSource

        return FileSource(
            source_path(settings.source),
            follow=settings.follow,
            resume=resume,
            max_line_bytes=settings.max_line_bytes,
        )
    except SourceError as exc:  # PositionMismatch included: says to use --reset
        raise AppError(str(exc)) from None


def open_sink(spec: str | None, kafka: Any = None) -> Any:
    from streamlearn.sinks.jsonlines import JsonLinesSink, NullSink

    if spec is None:
        return NullSink()
    if spec.startswith("kafka://"):
        from streamlearn.sinks.kafka import open_sink as open_kafka_sink

        try:
            config = None
            if kafka is not None:
                config = {**kafka.client_config, "bootstrap_servers": kafka.bootstrap_servers}
            return open_kafka_sink(spec, client_config=config)
        except (ValueError, RuntimeError) as exc:
            raise AppError(f"cannot open {spec}: {exc}") from None
    try:
        return JsonLinesSink(spec)
    except OSError as exc:
        raise AppError(f"cannot write {spec}: {exc.strerror}") from None


def _check_compatible(settings: Settings, state: dict[str, Any], decoder_settings: dict) -> None:
    saved = state.get("settings", {})
    for key in ("target", "features", "id_column", "format", "source"):
        if key == "source" and not settings.is_kafka:
            continue  # a file's identity is checked by the file source itself
        if key in saved and saved[key] != decoder_settings[key]:
            raise AppError(
                f"the state in {settings.state_dir} was learned with {key}={saved[key]!r}, "
                f"not {decoder_settings[key]!r}; use --reset to start a new model"
            )
    if settings.model_from_flag and state.get("model_spec") != decoder_settings["model_spec"]:
        raise AppError(
            f"the state in {settings.state_dir} holds a {state.get('model_spec')!r} model, "
            f"not {decoder_settings['model_spec']!r}; use --reset to start a new model"
        )


@dataclass
class Warm:
    """A warm start: model B, the frozen A as baseline, and how to rebuild B (rollback)."""

    model: Any
    baseline: Any
    rebuild: Callable[[], Any]
    spec: str


def warm_start(settings: Settings, stream_features: list[str] | None) -> Warm | None:
    """Build B from A (``--warm-start``); feature mismatches fail here, before any record."""
    if settings.warm_start is None:
        return None
    from streamlearn.models.transfer import (
        TransferError,
        frozen_baseline,
        load_batch_model,
        parse_feature_map,
    )
    from streamlearn.models.transfer import (
        warm_start as start_from,
    )

    try:
        a = load_batch_model(settings.warm_start)
        feature_map = parse_feature_map(settings.feature_map) if settings.feature_map else None
        linear = "river" if settings.model.startswith("LinearRegression") else "sgd"

        def rebuild() -> Any:
            return start_from(
                a,
                settings.transfer_mode,
                settings.trainable_layers,
                feature_map,
                stream_features,
                lr=settings.lr,
                linear_model=linear,
            )

        model = rebuild()
        baseline = frozen_baseline(a, feature_map, stream_features)
    except (TransferError, OSError) as exc:
        raise AppUsageError(str(exc)) from None
    name = Path(settings.warm_start).name
    return Warm(model, baseline, rebuild, f"warm-start({settings.transfer_mode}, {name})")


def _cold_copy(model: Any) -> Any:
    """A fresh model of B's shape, from random or zero weights (the ``reset`` drift action)."""
    params = model._get_params() if hasattr(model, "_get_params") else {}
    if "initial_coefs" in params:
        return model.clone({"initial_coefs": None, "initial_intercepts": None})
    if "initial_weights" in params:
        return model.clone({"initial_weights": None, "initial_intercept": 0.0})
    return model.clone()


def serve_http(settings: Settings, daemon: Any, telemetry: Any, resources: ExitStack) -> Any:
    """Start the HTTP face (/metrics, /healthz, /readyz, /predict, /model) for a daemon."""
    from streamlearn.observe.http import MetricsServer, MetricsServerError, ModelUnavailable

    def predict(features: dict[str, float]) -> tuple[float, int]:
        # The loop holds the lock for a batch at a time; never read a half-learned model.
        if not daemon.lock.acquire(timeout=2.0):
            raise ModelUnavailable("the model is busy; try again")
        try:
            return daemon.learner.predict(features), daemon.learner.records_learned
        finally:
            daemon.lock.release()

    def model_info() -> dict[str, Any]:
        with daemon.lock:
            return daemon.inspect()

    expected = list(daemon.decoder.features) if daemon.decoder.features is not None else []
    server = MetricsServer(
        settings.metrics_host,
        settings.metrics_port or 0,
        telemetry.registry,
        ready=lambda: daemon.ready,
        predict=predict,
        model_info=model_info,
        expected_features=lambda: expected,
        telemetry=telemetry,
    )
    try:
        server.start()
    except MetricsServerError as exc:
        raise AppError(str(exc)) from None
    resources.callback(server.stop)
    return server


def make_telemetry(settings: Settings, daemon: Any, source: Source) -> Any:
    """Prometheus metrics of a daemon; model metrics are read at scrape time under its lock."""
    from streamlearn.observe.telemetry import Telemetry

    learner_of = lambda: daemon.learner  # noqa: E731 - the learner object can be swapped

    def model_metrics() -> dict[tuple[str, str], float]:
        with daemon.lock:
            cumulative = learner_of().summary()
            rolling = learner_of().rolling_summary()
        out = {(k, "cumulative"): v for k, v in cumulative.items() if v is not None}
        out.update({(k, "rolling"): v for k, v in rolling.items() if v is not None})
        return out

    def baseline_metrics() -> dict[tuple[str, str], float]:
        with daemon.lock:
            summary = learner_of().baseline_summary() or {}
        return {(k, "cumulative"): v for k, v in summary.items() if v is not None}

    lag = None
    if hasattr(source, "lag"):
        topic = getattr(getattr(source, "settings", None), "topic", "")

        def lag() -> dict[tuple[str, int], int]:
            return {(topic, p): n for p, n in source.lag().items()}

    monitor = daemon.monitor
    kwargs: dict[str, Any] = monitor.telemetry_labels() if monitor is not None else {}
    return Telemetry(
        source=source.kind,
        model_spec=daemon.model_spec,
        model_metrics=model_metrics,
        baseline_metrics=baseline_metrics if daemon.learner.baseline is not None else None,
        lag=lag,
        ready=lambda: daemon.ready,
        **kwargs,
    )


def build(settings: Settings, *, stopping: Callable[[], bool] = lambda: False) -> App:
    """Assemble the daemon for ``run``/``replay``; raises ``AppError`` on user mistakes."""
    from streamlearn.learner import Learner
    from streamlearn.loop.daemon import Daemon, RunOptions
    from streamlearn.models.registry import SpecError, build_model
    from streamlearn.records import JsonDecoder
    from streamlearn.state.checkpoint import CheckpointError, CheckpointStore, StateLocked

    resources = ExitStack()
    try:
        kafka = kafka_settings(settings) if settings.is_kafka else None
        if kafka is not None and settings.format == "csv":
            # One CSV row per message, no header: the features, then the target. That is
            # the layout the compiled fast path learns a fetch at a time.
            if not settings.features or settings.id_column is not None:
                raise AppUsageError(
                    "CSV values from Kafka need --features (the columns are the features, "
                    "then the target) and no --id-column"
                )
            fmt = "csv"
            columns = [*settings.features, settings.target]
            decoder: Any = build_decoder(settings, fmt, ",".join(columns).encode())
            where = f"kafka:{kafka.topic}"
        elif kafka is not None:
            fmt = "json"
            decoder = JsonDecoder(
                target=settings.target,
                features=settings.features,
                id_field=settings.id_column,
                skip_blank=False,  # an empty message is a record that went wrong
            )
            where = f"kafka:{kafka.topic}"
        else:
            path = source_path(settings.source)
            if not settings.follow and not path.exists():
                raise AppError(f"no such file: {path}")
            if path.is_dir():
                raise AppError(f"{path} is a directory, not a file")
            fmt = detect_format(path, settings.format)
            header = _read_header(path, settings.follow, stopping) if fmt == "csv" else None
            decoder = build_decoder(settings, fmt, header)
            where = str(path)
        stream_features = list(decoder.features) if decoder.features is not None else None

        try:
            fresh_model = build_model(settings.model, lr=settings.lr)  # checks the spec early
        except SpecError as exc:
            raise AppUsageError(str(exc)) from None
        warm = warm_start(settings, stream_features)
        spec = warm.spec if warm is not None else settings.model
        run_settings = {
            "target": settings.target,
            "features": stream_features,
            "id_column": settings.id_column,
            "format": fmt,
            "source": where,
            "model_spec": spec,
            "lr": settings.lr,
        }

        store = None
        state = None
        if settings.state_dir is not None:
            try:
                store = CheckpointStore(settings.state_dir)
            except (StateLocked, CheckpointError) as exc:
                raise AppError(str(exc)) from None
            resources.callback(store.close)
            if settings.reset:
                store.clear()
            try:
                loaded = store.load()
            except CheckpointError as exc:
                raise AppError(str(exc)) from None
            if loaded is not None:
                state = loaded.state
                _check_compatible(settings, state, run_settings)
                log.info(
                    "resuming %s from generation %d: %d records learned",
                    state.get("model_spec"),
                    loaded.generation,
                    state["learner"].records_learned,
                )
        if state is not None:
            learner = state["learner"]
            spec = state["model_spec"]
        elif warm is not None:
            learner = Learner(
                warm.model, rolling_window=settings.rolling_window, baseline=warm.baseline
            )
        else:
            learner = Learner(fresh_model, rolling_window=settings.rolling_window)

        if warm is not None:
            warm_model = warm.model

            def new_model() -> Any:
                return _cold_copy(warm_model)
        else:

            def new_model() -> Any:
                return build_model(settings.model, lr=settings.lr)

        source = open_source(settings, state["source"] if state is not None else None, kafka)
        resources.callback(source.close)
        dead_letters = open_sink(settings.dead_letter, kafka)
        resources.callback(dead_letters.close)
        predictions = open_sink(settings.predictions, kafka)
        resources.callback(predictions.close)
        options = RunOptions(
            checkpoint_every=settings.checkpoint_every,
            checkpoint_interval=settings.checkpoint_interval,
            batch_size=settings.batch_size,
            rate=settings.rate,
            progress=settings.progress,
        )
        extensions = state.get("extensions", {}) if state is not None else {}
        pseudo, join = _pseudo_parts(settings, spec, extensions)
        monitor = _drift_monitor(settings, extensions, stream_features)
        daemon = Daemon(
            source,
            decoder,
            learner,
            model_spec=spec,
            settings=run_settings,
            store=store,
            dead_letters=dead_letters,
            predictions=predictions,
            options=options,
            model_factory=new_model,
            restored=state,
            pseudo=pseudo,
            join=join,
            monitor=monitor,
            warm_model_factory=warm.rebuild if warm is not None else None,
            divergence_factor=settings.divergence_factor,
        )
        if pseudo is not None:
            resources.callback(pseudo.close)
        if settings.metrics_port is not None:
            daemon.telemetry = make_telemetry(settings, daemon, source)
            serve_http(settings, daemon, daemon.telemetry, resources)
        return App(daemon, resources)
    except BaseException:
        resources.close()
        raise


def _pseudo_parts(settings: Settings, spec: str, extensions: dict[str, Any]) -> tuple[Any, Any]:
    """The pseudo-label side loop and the delayed-label join, when asked for."""
    from streamlearn.labels.pseudo import build_pseudo

    restored = {k: extensions[k] for k in ("pseudo", "join") if k in extensions}
    try:
        return build_pseudo(
            settings.extra,
            model_spec=spec,
            lr=settings.lr,
            restored=restored,
            follow=settings.follow,
        )
    except ValueError as exc:
        raise AppUsageError(str(exc)) from None


def _drift_monitor(
    settings: Settings, extensions: dict[str, Any], stream_features: list[str] | None
) -> Any:
    """The drift monitor (ADWIN on the prequential error, alerting, unless told otherwise)."""
    from streamlearn.drift.monitor import build_monitor

    try:
        return build_monitor(
            settings.extra, restored=extensions.get("drift"), known_features=stream_features
        )
    except ValueError as exc:
        raise AppUsageError(str(exc)) from None
