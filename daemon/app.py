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
from streamlearn.sources.base import PositionMismatch, Source, SourceError

log = logging.getLogger(__name__)


class AppError(Exception):
    """A problem the user can fix (bad path, locked state, mismatched file)."""


class AppUsageError(AppError):
    """A mistake in how the command was called (a bad model spec): exit code 2."""


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
            columns, target=settings.target, features=settings.features, id_column=settings.id_column
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise AppError(str(exc)) from None


def open_source(settings: Settings, resume: dict[str, Any] | None) -> Source:
    from streamlearn.sources.file import FileSource

    path = source_path(settings.source)
    try:
        return FileSource(
            path, follow=settings.follow, resume=resume, max_line_bytes=settings.max_line_bytes
        )
    except PositionMismatch as exc:
        raise AppError(str(exc)) from None
    except SourceError as exc:
        raise AppError(str(exc)) from None


def open_sink(spec: str | None) -> Any:
    from streamlearn.sinks import JsonLinesSink, NullSink

    if spec is None:
        return NullSink()
    if spec.startswith("kafka://"):
        try:
            from streamlearn.kafka_sink import open_sink as open_kafka_sink
        except ImportError:
            raise AppError("Kafka sinks are not available in this build") from None
        return open_kafka_sink(spec)
    try:
        return JsonLinesSink(spec)
    except OSError as exc:
        raise AppError(f"cannot write {spec}: {exc.strerror}") from None


def _check_compatible(settings: Settings, state: dict[str, Any], decoder_settings: dict) -> None:
    saved = state.get("settings", {})
    for key in ("target", "features", "id_column", "format"):
        if key in saved and saved[key] != decoder_settings[key]:
            raise AppError(
                f"the state in {settings.state_dir} was learned with {key}={saved[key]!r}, "
                f"not {decoder_settings[key]!r}; use --reset to start a new model"
            )
    if settings.model_from_flag and state.get("model_spec") != settings.model:
        raise AppError(
            f"the state in {settings.state_dir} holds a {state.get('model_spec')!r} model, "
            f"not {settings.model!r}; use --reset to start a new model"
        )


def build(settings: Settings, *, stopping: Callable[[], bool] = lambda: False) -> App:
    """Assemble the daemon for ``run``/``replay``; raises ``AppError`` on user mistakes."""
    from streamlearn.checkpoint import CheckpointError, CheckpointStore, StateLocked
    from streamlearn.learner import Learner
    from streamlearn.models.registry import SpecError, build_model
    from streamlearn.service import Daemon, RunOptions

    resources = ExitStack()
    try:
        path = source_path(settings.source)
        if not settings.follow and not path.exists():
            raise AppError(f"no such file: {path}")
        if path.is_dir():
            raise AppError(f"{path} is a directory, not a file")
        fmt = detect_format(path, settings.format)
        header = _read_header(path, settings.follow, stopping) if fmt == "csv" else None
        decoder = build_decoder(settings, fmt, header)
        decoder_settings = {
            "target": settings.target,
            "features": list(decoder.features) if decoder.features is not None else None,
            "id_column": settings.id_column,
            "format": fmt,
            "source": str(path),
        }

        def new_model() -> Any:
            return build_model(settings.model, lr=settings.lr)

        try:
            fresh_model = new_model()  # validates the spec even when a state exists
        except SpecError as exc:
            raise AppUsageError(str(exc)) from None

        store = None
        state = None
        if settings.state_dir is not None:
            try:
                store = CheckpointStore(settings.state_dir)
            except StateLocked as exc:
                raise AppError(str(exc)) from None
            except CheckpointError as exc:
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
                _check_compatible(settings, state, decoder_settings)
                log.info(
                    "resuming %s from generation %d: %d records learned",
                    state.get("model_spec"),
                    loaded.generation,
                    state["learner"].records_learned,
                )
        if state is not None:
            learner = state["learner"]
            spec = state["model_spec"]
        else:
            learner = Learner(fresh_model, rolling_window=settings.rolling_window)
            spec = settings.model
        source = open_source(settings, state["source"] if state is not None else None)
        resources.callback(source.close)
        dead_letters = open_sink(settings.dead_letter)
        resources.callback(dead_letters.close)
        predictions = open_sink(settings.predictions)
        resources.callback(predictions.close)
        options = RunOptions(
            checkpoint_every=settings.checkpoint_every,
            checkpoint_interval=settings.checkpoint_interval,
            batch_size=settings.batch_size,
            rate=settings.rate,
            progress=settings.progress,
        )
        daemon = Daemon(
            source,
            decoder,
            learner,
            model_spec=spec,
            settings=decoder_settings,
            store=store,
            dead_letters=dead_letters,
            predictions=predictions,
            options=options,
            model_factory=new_model if state is None or spec == settings.model else None,
            restored=state,
        )
        return App(daemon, resources)
    except BaseException:
        resources.close()
        raise
