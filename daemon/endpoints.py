"""The daemon's two ends, opened from ``Settings``: where records come from and where they go.

The source and the decoder of its records (a CSV file's header is read here), and the
sinks of rejected records and predictions. A user mistake becomes an ``AppError`` (or
``AppUsageError``) whose message says what to do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamlearn.config import AppError, AppUsageError, Settings
from streamlearn.sources.base import Source, SourceError

if TYPE_CHECKING:
    from streamlearn.json_decoder import JsonDecoder
    from streamlearn.keys.fields import KeyField
    from streamlearn.records import CsvDecoder
    from streamlearn.sinks.jsonlines import Sink
    from streamlearn.sources.kafka_base import KafkaSourceBase
    from streamlearn.sources.kafka_config import KafkaSettings

log = logging.getLogger(__name__)

#: Records behind the log end per (topic, partition), read at scrape time.
LagReader = Callable[[], dict[tuple[str, int], int]]


class StoppedWaiting(Exception):
    """A stop signal came while the input (a followed file, its header) was waited for.

    Not an error: the command says so and exits 0.
    """


def check_not_a_kafka_typo(spec: str, option: str | None = None) -> None:
    """A ``kafka:`` spec without its two slashes is a usage error, not a file to wait for.

    >>> check_not_a_kafka_typo("kafka://broker:9092/events")
    >>> check_not_a_kafka_typo("kafka:/broker/events")
    Traceback (most recent call last):
    ...
    streamlearn.config.AppUsageError: 'kafka:/broker/events' is not a Kafka URL: write kafka://...
    """
    if spec.lower().startswith("kafka:") and not spec.lower().startswith("kafka://"):
        raise AppUsageError(
            f"{spec!r} is not a Kafka URL: write kafka://HOST:PORT/TOPIC (two slashes), "
            f"or file:{spec} for a file of that name",
            option=option,
        )


# -- where records come from and how they are read ------------------------------------------


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
            head = handle.read(64).removeprefix(b"\xef\xbb\xbf").lstrip()  # a UTF-8 BOM
    except OSError:
        return "csv"
    return "jsonl" if head.startswith(b"{") else "csv"


def source_path(source: str) -> Path:
    """The file a SOURCE argument names (``file:PATH`` or a plain path)."""
    return Path(source[5:] if source.startswith("file:") else source)


@dataclass
class Input:
    """How the records of a source are read: the decoder, its format and the source's name.

    ``format`` and ``where`` are kept in the state, so that a restart with another
    format or another topic is refused rather than learned.
    """

    decoder: CsvDecoder | JsonDecoder
    format: str
    where: str

    @property
    def features(self) -> list[str] | None:
        """The feature names, when fixed by the options or a CSV header."""
        return list(self.decoder.features) if self.decoder.features is not None else None

    def run_settings(self, settings: Settings, model_spec: str) -> dict[str, Any]:
        """The settings a state is learned with (checked against them on a restart)."""
        keyed = {"key_by": settings.key_by} if settings.key_by is not None else {}
        return {
            "target": settings.target,
            "features": self.features,
            "id_column": settings.id_column,
            "format": self.format,
            "source": self.where,
            "model_spec": model_spec,
            "lr": settings.lr,
            **keyed,
        }


def open_input(
    settings: Settings, kafka: KafkaSettings | None, stopping: Callable[[], bool]
) -> Input:
    """The decoder of the source's records; a CSV file's header is read (waited for) here.

    A ``kafka:`` typo in the source or a sink is refused first, before any waiting.
    """
    for spec, option in (
        (settings.dead_letter, "dead-letter"),
        (settings.predictions, "predictions"),
    ):
        if spec is not None:
            check_not_a_kafka_typo(spec, option)
    if kafka is not None:
        return _kafka_input(settings, kafka)
    check_not_a_kafka_typo(settings.source)
    path = source_path(settings.source)
    if not settings.follow and not path.exists():
        raise AppError(f"no such file: {path}")
    if path.is_dir():
        raise AppError(f"{path} is a directory, not a file")
    fmt = detect_format(path, settings.format)
    if fmt != "csv":
        return Input(build_decoder(settings, fmt, None), fmt, str(path))
    header = _read_header(path, settings.follow, stopping)
    try:
        return Input(build_decoder(settings, fmt, header), fmt, str(path))
    except AppError:
        columns = _saved_columns(settings)
        if columns is None:
            raise
    # Copy-truncated since the checkpoint: the file starts with a row, not its header.
    log.info("%s starts without its header; the checkpoint's columns are in force", path)
    return Input(build_decoder(settings, fmt, ",".join(columns).encode()), fmt, str(path))


def _saved_columns(settings: Settings) -> list[str] | None:
    """The CSV columns in force at the position of the state to resume (None: no such state).

    What a restart decodes with: the rows after the position need no header at the file's
    start, and a followed file copy-truncated since the checkpoint has none.
    """
    from streamlearn.state import CheckpointError, CheckpointStore

    if settings.state_dir is None or settings.reset:
        return None
    try:
        store = CheckpointStore(settings.state_dir, lock=False)
        try:
            loaded = store.load(start=True)
        finally:
            store.close()
    except (CheckpointError, OSError):
        return None  # opening the state for the run says what is wrong with it
    schema = loaded.state.get("schema") if loaded is not None else None
    return list(schema["columns"]) if isinstance(schema, Mapping) else None


def _kafka_input(settings: Settings, kafka: KafkaSettings) -> Input:
    from streamlearn.json_decoder import JsonDecoder

    where = f"kafka:{kafka.topic}"
    if settings.format != "csv":
        decoder = JsonDecoder(
            target=settings.target,
            features=settings.features,
            id_field=settings.id_column,
            skip_blank=False,  # an empty message is a record that went wrong
            max_features=settings.max_features,
            keys=key_field(settings),
        )
        return Input(decoder, "json", where)
    # One CSV row per message, no header: the features, then the target. That is the
    # layout the compiled fast path learns a fetch at a time.
    if not settings.features or settings.id_column is not None:
        raise AppUsageError(
            "CSV values from Kafka need --features (the columns are the features, "
            "then the target) and no --id-column"
        )
    columns = [*settings.features, settings.target]
    return Input(build_decoder(settings, "csv", ",".join(columns).encode()), "csv", where)


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
            raise StoppedWaiting(f"stopped while waiting for {path} and its header line")
        if not logged:
            log.info("waiting for %s and its header line", path)
            logged = True
        time.sleep(0.1)


def build_decoder(settings: Settings, fmt: str, header: bytes | None) -> CsvDecoder | JsonDecoder:
    """The decoder of ``fmt`` records; a CSV one needs the ``header`` line."""
    from streamlearn.csv_schema import parse_csv_header
    from streamlearn.json_decoder import JsonDecoder
    from streamlearn.records import CsvDecoder

    if fmt == "jsonl":
        return JsonDecoder(
            target=settings.target,
            features=settings.features,
            id_field=settings.id_column,
            max_features=settings.max_features,
            keys=key_field(settings),
        )
    assert header is not None
    try:
        columns = parse_csv_header(header)
        return CsvDecoder(
            columns,
            target=settings.target,
            features=settings.features,
            id_column=settings.id_column,
            on_schema_change=settings.on_schema_change,
            keys=key_field(settings),
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise AppError(str(exc)) from None


def key_field(settings: Settings) -> KeyField | None:
    """Where a record's key is (``--key-by``), None in a run of one model."""
    if settings.key_by is None:
        return None
    from streamlearn.keys.fields import KeyField

    try:
        return KeyField(settings.key_by, settings.default_key)
    except ValueError as exc:
        raise AppUsageError(str(exc), option="default-key") from None


# -- the source and the sinks ----------------------------------------------------------------


def kafka_settings(settings: Settings) -> KafkaSettings:
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
            until_end=not settings.follow,  # replay: a backfill to the end seen at start
            partition=settings.partition,
            count=settings.count,
        )
    except (ValueError, OSError) as exc:
        raise AppUsageError(str(exc)) from None


def open_source(
    settings: Settings, resume: Mapping[str, Any] | None, kafka: KafkaSettings | None = None
) -> tuple[Source, LagReader | None]:
    """The file or Kafka source, resumed after ``resume`` (a checkpointed position).

    With it, how to read the source's lag per (topic, partition): only Kafka has one.
    """
    if kafka is not None:
        source = open_kafka_source(settings, resume, kafka)
        topic = kafka.topic

        def lag() -> dict[tuple[str, int], int]:
            return {(topic, partition): n for partition, n in source.lag().items()}

        return source, lag
    from streamlearn.sources.file import FileSource

    for given, option in ((settings.partition, "partition"), (settings.count, "count")):
        if given is not None:
            raise AppUsageError(f"--{option} reads Kafka topics, not files", option=option)
    try:
        file_source = FileSource(
            source_path(settings.source),
            follow=settings.follow,
            resume=resume,
            max_line_bytes=settings.max_line_bytes,
            rotate_wait=settings.rotate_wait,
        )
    except SourceError as exc:  # PositionMismatch included: says to use --reset
        raise AppError(str(exc)) from None
    return file_source, None


def open_kafka_source(
    settings: Settings, resume: Mapping[str, Any] | None, kafka: KafkaSettings
) -> KafkaSourceBase[Any]:
    """The Kafka source of the ``--kafka-client`` library, resumed after ``resume``."""
    try:
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
    except SourceError as exc:  # PositionMismatch included: says to use --reset
        raise AppError(str(exc)) from None


def open_sink(spec: str | None, kafka: KafkaSettings | None = None) -> Sink:
    """The sink a ``--dead-letter``/``--predictions`` value names (nothing, a file, a topic)."""
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
