"""Replay a CSV or JSON Lines file into Kafka as JSON records: paced, time-warped, with late labels.

Each row becomes one flat JSON object (CSV numbers as numbers, empty cells left out); a row with a
feature named ``x`` goes in the envelope ``{"x": {features}, "<target>": y}``, which no reader can
take for anything else. Pacing is
either ``rate`` records per second or ``speed`` times real time along a timestamp column. With a
label delay, a labeled row is sent in two parts: first its features with an ``id`` and without the
target, then ``{"id": ..., "<target>": ...}`` after a delay in seconds or in records, which is how
labels arrive in many real systems (a fraud verdict, a delivery time).
"""

from __future__ import annotations

import csv
import heapq
import itertools
import math
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from kafka import KafkaProducer

__all__ = ["ProduceError", "ProduceResult", "parse_cell", "parse_timestamp", "produce", "read_rows"]

_INT_RE = re.compile(r"^[+-]?\d+$")
_JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
_CSV_SUFFIXES = (".csv", ".tsv")


class ProduceError(RuntimeError):
    """The replay could not go on: unreadable file content, or Kafka refused the records."""


@dataclass(frozen=True, slots=True)
class ProduceResult:
    """What a replay sent. ``sent`` counts rows (features-only when labels are delayed)."""

    sent: int
    labels_sent: int
    topic: str
    labels_topic: str | None
    seconds: float
    interrupted: bool = False
    created_topics: tuple[str, ...] = ()


def parse_cell(text: str) -> int | float | str | None:
    """A CSV cell as JSON wants it: numbers as numbers, empty as None, the rest as text.

    Non-finite numbers (``nan``, ``inf``) stay text: JSON has no way to write them.

    >>> [parse_cell(cell) for cell in ["42", "-3.5", "1e3", "", "  ", "abc", "nan", "007"]]
    [42, -3.5, 1000.0, None, None, 'abc', 'nan', 7]
    """
    stripped = text.strip()
    if not stripped:
        return None
    if _INT_RE.match(stripped):
        return int(stripped)
    try:
        number = float(stripped)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def parse_timestamp(value: Any) -> float:
    """Seconds since the epoch from numeric seconds or an ISO 8601 string (naive means UTC).

    >>> parse_timestamp(12.5), parse_timestamp("1700000000")
    (12.5, 1700000000.0)
    >>> parse_timestamp("2024-01-01T00:00:10Z") - parse_timestamp("2024-01-01T00:00:00")
    10.0
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a timestamp")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(
                    f"{value!r} is neither numeric seconds nor an ISO 8601 time"
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = moment.timestamp()
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite timestamp")
    return seconds


def _is_json_lines(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in _JSON_SUFFIXES:
        return True
    if suffix in _CSV_SUFFIXES:
        return False
    with open(path, "rb") as file:  # no telling suffix: a JSON Lines file starts with "{"
        for line in file:
            if line.strip():
                return line.lstrip().startswith(b"{")
    return False


def read_rows(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The file's rows as flat dicts: CSV (with a header) or JSON Lines, told by suffix or content.

    CSV cells go through :func:`parse_cell` and empty cells are left out; JSON objects come as
    they are. Raises :class:`ProduceError` naming the line for content that is not a row.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "rows.csv"
    >>> _ = path.write_text("a,b,y\\n1,,2.5\\n3,x,\\n")
    >>> list(read_rows(path))
    [{'a': 1, 'y': 2.5}, {'a': 3, 'b': 'x'}]
    """
    file_path = Path(path)
    if _is_json_lines(file_path):
        yield from _read_json_lines(file_path)
    else:
        yield from _read_csv(file_path)


def _read_json_lines(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ProduceError(f"{path}:{line_number}: not valid JSON ({exc})") from None
            if not isinstance(row, dict):
                raise ProduceError(f"{path}:{line_number}: expected a JSON object per line")
            yield row


def _read_csv(path: Path) -> Iterator[dict[str, Any]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return
        header = [name.strip() for name in header]
        if len(set(header)) != len(header) or "" in header:
            raise ProduceError(f"{path}: the CSV header has empty or repeated column names")
        for row_number, cells in enumerate(reader, start=2):
            if not cells:
                continue
            if len(cells) != len(header):
                raise ProduceError(
                    f"{path}:{row_number}: {len(cells)} cells, but the header has {len(header)}"
                )
            row = {}
            for name, cell in zip(header, cells, strict=True):
                value = parse_cell(cell)
                if value is not None:
                    row[name] = value
            yield row


def _count_rows(path: Path) -> int:
    return sum(1 for _ in read_rows(path))


class _Progress:
    """A one-line progress display on stderr, redrawn at most ten times a second."""

    def __init__(self, total: int | None, stream: IO[str]) -> None:
        self.total = total
        self.stream = stream
        self.started = time.monotonic()
        self._drawn_at = 0.0

    def update(self, sent: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn_at < 0.1:
            return
        self._drawn_at = now
        rate = sent / max(now - self.started, 1e-9)
        of_total = f"/{self.total:,}" if self.total is not None else ""
        self.stream.write(f"\r  {sent:,}{of_total} rows sent ({rate:,.0f}/s)   ")
        self.stream.flush()

    def done(self, sent: int) -> None:
        self.update(sent, force=True)
        self.stream.write("\n")
        self.stream.flush()


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def ensure_topics(
    bootstrap_servers: list[str],
    topics: list[str],
    partitions: int,
    client_config: Mapping[str, Any],
) -> list[str]:
    """Create the topics that do not exist yet with ``partitions`` partitions; return those created.

    Existing topics are left alone, whatever their partition count.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from streamlearn.sources.kafka_config import client_kwargs

    admin = KafkaAdminClient(
        **client_kwargs(client_config, "admin"), bootstrap_servers=bootstrap_servers
    )
    try:
        existing = set(admin.list_topics())
        missing = [topic for topic in dict.fromkeys(topics) if topic not in existing]
        created = []
        for topic in missing:
            try:
                # Replication factor 1 works on any cluster; production topics are better made
                # by whoever runs the cluster, with its own replication policy.
                admin.create_topics([NewTopic(topic, partitions, 1)])
                created.append(topic)
            except TopicAlreadyExistsError:
                pass  # someone else was quicker: fine
        return created
    finally:
        admin.close()


def produce(
    path: str | os.PathLike[str],
    bootstrap_servers: str | list[str],
    topic: str,
    *,
    rate: float = 0,
    speed: float | None = None,
    time_column: str | None = None,
    key_column: str | None = None,
    partitions: int | None = None,
    label_delay: float | None = None,
    label_delay_records: int | None = None,
    labels_topic: str | None = None,
    id_column: str | None = None,
    target: str = "y",
    progress: bool = False,
    client_config: Mapping[str, Any] | None = None,
) -> ProduceResult:
    """Send every row of ``path`` to ``topic`` as a JSON object; return the counts.

    Parameters
    ----------
    rate
        Rows per second; 0 sends as fast as Kafka takes them.
    speed, time_column
        Replay ``speed`` times faster than the gaps between the rows' timestamps in
        ``time_column`` (numeric seconds or ISO 8601). Rows whose time goes backwards are sent
        at once.
    key_column
        Column whose value (as text) becomes the message key.
    partitions
        Create ``topic`` (and ``labels_topic``) with this many partitions when missing.
    label_delay, label_delay_records
        Delay each row's label by this many seconds (of stream time: divided by ``speed``) or
        by this many rows. The features go first, without ``target`` and with an id; the label
        ``{id_field: id, target: y}`` follows. Rows without a target have no label to send.
        Without a key column, the id is the message key, so features and label land in the same
        partition and keep their order (Kafka orders only within a partition).
    labels_topic
        Send the labels there instead of to ``topic``.
    id_column
        Where the id comes from; its name is also the id field of the label. Default: the
        row's ``id`` value, or its 0-based row number when it has none.
    progress
        Draw a progress line on stderr, if stderr is a terminal.
    client_config
        kafka-python settings (security, tuning), as from ``kafka_config.load_client_config``.

    Raises ``ValueError`` for contradictory arguments (before sending anything) and
    :class:`ProduceError` for bad file content or when Kafka does not take the records.
    """
    from streamlearn.sources.kafka_config import client_kwargs, parse_servers

    file_path = Path(path)
    if not file_path.is_file():
        raise ValueError(f"{file_path} is not a file")
    servers = parse_servers(bootstrap_servers)
    if rate < 0:
        raise ValueError(f"the rate must be 0 (as fast as possible) or positive, got {rate}")
    if speed is not None:
        if not speed > 0:
            raise ValueError(f"the speed must be positive, got {speed}")
        if time_column is None:
            raise ValueError("--speed needs --time-column (the column holding each row's time)")
        if rate:
            raise ValueError("give either --rate or --speed, not both")
    if label_delay is not None and label_delay_records is not None:
        raise ValueError("give either --label-delay (seconds) or --label-delay-records, not both")
    if label_delay is not None and not label_delay >= 0:
        raise ValueError(f"the label delay must be 0 or more seconds, got {label_delay}")
    if label_delay_records is not None and label_delay_records < 1:
        raise ValueError(f"the label delay in records must be 1 or more, got {label_delay_records}")
    delayed_labels = label_delay is not None or label_delay_records is not None
    if labels_topic is not None and not delayed_labels:
        raise ValueError("--labels-topic needs --label-delay or --label-delay-records")
    if partitions is not None and partitions < 1:
        raise ValueError(f"the partition count must be 1 or more, got {partitions}")
    config = dict(client_config or {})
    config.pop("bootstrap_servers", None)
    config.pop("group_id", None)

    created: list[str] = []
    if partitions is not None:
        try:
            created = ensure_topics(servers, [topic, labels_topic or topic], partitions, config)
        except Exception as exc:
            raise ProduceError(
                f"cannot create topic {topic!r}: {type(exc).__name__}: {exc}"
            ) from exc

    total = None
    show_progress = progress and sys.stderr.isatty()
    if show_progress:
        total = _count_rows(file_path)

    from kafka import KafkaProducer

    try:
        producer: KafkaProducer = KafkaProducer(
            **{
                "linger_ms": 10,
                "batch_size": 256 * 1024,
                "bootstrap_timeout_ms": 10_000,
                **client_kwargs(config, "producer"),
                "bootstrap_servers": servers,
            }
        )
    except Exception as exc:
        raise ProduceError(
            f"cannot connect to Kafka at {','.join(servers)}: {type(exc).__name__}: {exc}"
        ) from exc

    replay = _Replay(
        producer=producer,
        topic=topic,
        labels_topic=labels_topic or topic,
        target=target,
        id_field=id_column or "id",
        id_column=id_column,
        key_column=key_column,
        delayed_labels=delayed_labels,
        progress=_Progress(total, sys.stderr) if show_progress else None,
    )
    interrupted = False
    started = time.monotonic()
    try:
        replay.run(
            read_rows(file_path),
            rate=rate,
            speed=speed,
            time_column=time_column,
            label_delay=label_delay,
            label_delay_records=label_delay_records,
        )
    except KeyboardInterrupt:
        interrupted = True  # what was sent so far still gets flushed and counted
    finally:
        try:
            producer.flush(timeout=60)
        finally:
            producer.close(timeout=10)
    if replay.failures:
        raise ProduceError(
            f"{replay.failures} record(s) were not delivered to Kafka: {replay.last_failure}"
        )
    if replay.progress is not None:
        replay.progress.done(replay.sent)
    return ProduceResult(
        sent=replay.sent,
        labels_sent=replay.labels_sent,
        topic=topic,
        labels_topic=(labels_topic or topic) if delayed_labels else None,
        seconds=time.monotonic() - started,
        interrupted=interrupted,
        created_topics=tuple(created),
    )


class _Replay:
    """The sending loop of :func:`produce`, with its counters."""

    def __init__(
        self,
        *,
        producer: KafkaProducer,
        topic: str,
        labels_topic: str,
        target: str,
        id_field: str,
        id_column: str | None,
        key_column: str | None,
        delayed_labels: bool,
        progress: _Progress | None,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.labels_topic = labels_topic
        self.target = target
        self.id_field = id_field
        self.id_column = id_column
        self.key_column = key_column
        self.delayed_labels = delayed_labels
        self.progress = progress
        self.sent = 0
        self.labels_sent = 0
        self.failures = 0
        self.last_failure: BaseException | None = None
        self._lock = threading.Lock()

    def _on_failure(self, exc: BaseException) -> None:  # on the producer's I/O thread
        with self._lock:
            self.failures += 1
            self.last_failure = exc

    def _send(self, topic: str, value: dict[str, Any], key: bytes | None) -> None:
        try:
            future = self.producer.send(topic, value=orjson.dumps(value), key=key)
        except Exception as exc:
            raise ProduceError(f"Kafka did not take a record: {type(exc).__name__}: {exc}") from exc
        future.add_errback(self._on_failure)

    def run(
        self,
        rows: Iterator[dict[str, Any]],
        *,
        rate: float,
        speed: float | None,
        time_column: str | None,
        label_delay: float | None,
        label_delay_records: int | None,
    ) -> None:
        start = time.monotonic()
        first_time: float | None = None
        # Seconds mode: (due, sequence, label, key) in a heap; records mode: a FIFO of
        # (release after row index, label, key).
        timed: list[tuple[float, int, dict[str, Any], bytes | None]] = []
        counted: deque[tuple[int, dict[str, Any], bytes | None]] = deque()
        sequence = itertools.count()
        time_scale = 1 / speed if speed else 1.0

        for index, row in enumerate(rows):
            due: float | None = None
            if rate:
                due = start + index / rate
            elif speed is not None and time_column is not None:
                if time_column not in row:
                    raise ProduceError(
                        f"row {index + 1} has no value in time column {time_column!r}"
                    )
                try:
                    moment = parse_timestamp(row[time_column])
                except ValueError as exc:
                    raise ProduceError(f"row {index + 1}, column {time_column!r}: {exc}") from None
                if first_time is None:
                    first_time = moment
                due = start + (moment - first_time) / speed
            # Labels that fall due before this row go first, each at its own time.
            self._release_timed(timed, until=due if due is not None else time.monotonic())
            if due is not None:
                _sleep_until(due)

            features, label, key = self._split(row, index)
            self._send(self.topic, features, key)
            self.sent += 1
            if label is not None:
                if label_delay is not None:
                    label_due = time.monotonic() + label_delay * time_scale
                    heapq.heappush(timed, (label_due, next(sequence), label, key))
                elif label_delay_records is not None:
                    counted.append((index + label_delay_records, label, key))
            while counted and counted[0][0] <= index:
                _, label_value, label_key = counted.popleft()
                self._send_label(label_value, label_key)
            if self.progress is not None:
                self.progress.update(self.sent)

        # The file is done: the remaining labels still keep their delay.
        while counted:
            _, label_value, label_key = counted.popleft()
            self._send_label(label_value, label_key)
        self._release_timed(timed, until=math.inf)

    def _release_timed(
        self, timed: list[tuple[float, int, dict[str, Any], bytes | None]], until: float
    ) -> None:
        while timed and timed[0][0] <= until:
            label_due, _, label, key = heapq.heappop(timed)
            _sleep_until(label_due)
            self._send_label(label, key)

    def _send_label(self, label: dict[str, Any], key: bytes | None) -> None:
        self._send(self.labels_topic, label, key)
        self.labels_sent += 1

    def _split(
        self, row: dict[str, Any], index: int
    ) -> tuple[dict[str, Any], dict[str, Any] | None, bytes | None]:
        """The message to send now, the label to send later (or None), and the message key."""
        key_value = row.get(self.key_column) if self.key_column is not None else None
        if not self.delayed_labels:
            return _envelope(row, self.target, self.id_field), None, _key_bytes(key_value)
        if self.id_column is not None:
            if row.get(self.id_column) is None:
                raise ProduceError(f"row {index + 1} has no value in id column {self.id_column!r}")
            record_id = row[self.id_column]
        else:
            record_id = row.get("id", index)
        features = {name: value for name, value in row.items() if name != self.target}
        features[self.id_field] = record_id
        y = row.get(self.target)
        label = None if y is None or y == "" else {self.id_field: record_id, self.target: y}
        if key_value is None:
            key_value = record_id  # same key, same partition: the label cannot overtake
        return _envelope(features, self.target, self.id_field), label, _key_bytes(key_value)


def _envelope(row: dict[str, Any], target: str, id_field: str) -> dict[str, Any]:
    """``row`` as sent: flat, or ``{"x": {features}, ...}`` when a feature is named ``x``.

    A flat ``{"x": 1.5, "y": 2}`` reads as the envelope to a reader that takes ``x`` for it; the
    envelope says the same to every reader. Rows that are already envelopes go as they are.

    >>> _envelope({"x": 1.5, "id": 3, "y": 2}, "y", "id")
    {'x': {'x': 1.5}, 'y': 2, 'id': 3}
    >>> _envelope({"a": 1, "y": 2}, "y", "id")
    {'a': 1, 'y': 2}
    """
    if "x" not in row or target == "x" or isinstance(row["x"], dict):
        return row
    outside = {name: row[name] for name in (target, id_field) if name in row}
    return {"x": {name: value for name, value in row.items() if name not in outside}, **outside}


def _key_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).encode("utf-8")
