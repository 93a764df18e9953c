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

import heapq
import itertools
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from streamlearn.producers.rows import (
    Line,
    ProduceError,
    RowRules,
    SkippedRow,
    count_rows,
    parse_cell,
    parse_timestamp,
    read_rows,
    rows_to_send,
)
from streamlearn.producers.topics import connect, create_topics

if TYPE_CHECKING:
    from kafka import KafkaProducer

    from streamlearn.observe.progress import ProgressBar

__all__ = [
    "ProduceError",
    "ProduceResult",
    "SkippedRow",
    "parse_cell",
    "parse_timestamp",
    "produce",
    "read_rows",
]

#: How many skipped rows a result names (its count covers them all).
REASONS_KEPT = 5


@dataclass(frozen=True, slots=True)
class ProduceResult:
    """What a replay sent. ``sent`` counts rows (features-only when labels are delayed);
    ``skipped`` the rows that could not be sent, the first of them named in ``skipped_reasons``."""

    sent: int
    labels_sent: int
    topic: str
    labels_topic: str | None
    seconds: float
    interrupted: bool = False
    created_topics: tuple[str, ...] = ()
    skipped: int = 0
    skipped_reasons: tuple[str, ...] = ()


class _Progress:
    """produce's progress bar on a terminal (``streamlearn.observe.progress``): rows sent of
    the file's, their rate now, the time left."""

    @classmethod
    def on_terminal(cls, path: Path, rules: RowRules) -> _Progress | None:
        """A bar on stderr when it is a terminal (the rows counted first), else None."""
        if not sys.stderr.isatty():
            return None
        from streamlearn.observe.progress import ProgressBar

        return cls(ProgressBar(count_rows(path, rules), noun="rows"))

    def __init__(self, bar: ProgressBar) -> None:
        self.bar = bar

    def update(self, sent: int) -> None:
        self.bar.show(sent, sent)

    def done(self, sent: int) -> None:
        self.bar.close(sent, sent)


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


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
    strict: bool = False,
    text_columns: Sequence[str] = (),
) -> ProduceResult:
    """Send every row of ``path`` to ``topic`` as a JSON object; return the counts.

    Parameters
    ----------
    rate
        Rows per second; 0 sends as fast as Kafka takes them.
    speed, time_column
        Replay ``speed`` times faster than the gaps between the timestamps in ``time_column``
        (numeric seconds or ISO 8601); rows whose time goes backwards are sent at once.
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
    strict
        Rows that cannot be sent (a wrong cell count, not a JSON object, no time or id where one
        is needed) are skipped, counted and the first few named in the result; with ``strict``
        the first of them raises before anything is sent.
    text_columns
        CSV columns sent as JSON text as written, not as numbers (labels such as ``03``).

    Raises ``ValueError`` for contradictory arguments (before sending anything), and
    :class:`ProduceError` for an unreadable file, a bad row under ``strict``, or Kafka's refusal.
    """
    file_path, servers = _file_and_servers(path, bootstrap_servers)
    pacing = _Pacing(rate, speed, time_column, label_delay, label_delay_records)
    pacing.check(labels_topic=labels_topic, partitions=partitions)
    rules = replace(pacing.row_rules(id_column), text_columns=tuple(text_columns))
    if strict:
        _check_every_row(file_path, rules)
    created = create_topics(servers, [topic, labels_topic or topic], partitions, client_config)
    replay = _Replay(
        producer=connect(servers, client_config),
        topic=topic,
        labels_topic=labels_topic or topic,
        target=target,
        id_field=id_column or "id",
        id_column=id_column,
        key_column=key_column,
        delayed_labels=pacing.delayed_labels,
        progress=_Progress.on_terminal(file_path, rules) if progress else None,
    )
    seconds, interrupted = _send_all(replay, rows_to_send(file_path, rules), pacing, strict)
    return replay.result(seconds, interrupted, tuple(created))


def _file_and_servers(
    path: str | os.PathLike[str], bootstrap_servers: str | list[str]
) -> tuple[Path, list[str]]:
    """The file to send (``ValueError`` if it is none) and the servers, parsed."""
    from streamlearn.sources.kafka_config import parse_servers

    file_path = Path(path)
    if not file_path.is_file():
        raise ValueError(f"{file_path} is not a file")
    return file_path, parse_servers(bootstrap_servers)


@dataclass(frozen=True, slots=True)
class _Pacing:
    """When rows and their late labels go: a rate or a speed along a time column, a label delay."""

    rate: float
    speed: float | None
    time_column: str | None
    label_delay: float | None
    label_delay_records: int | None

    @property
    def delayed_labels(self) -> bool:
        return self.label_delay is not None or self.label_delay_records is not None

    def row_rules(self, id_column: str | None) -> RowRules:
        """What each row needs: a time when paced along a column, an id for late labels."""
        return RowRules(
            time_column=self.time_column if self.speed is not None else None,
            id_column=id_column if self.delayed_labels else None,
        )

    def check(self, *, labels_topic: str | None, partitions: int | None) -> None:
        """Raise ``ValueError`` for settings that contradict each other or make no sense."""
        if labels_topic is not None and not self.delayed_labels:
            raise ValueError("--labels-topic needs --label-delay or --label-delay-records")
        if partitions is not None and partitions < 1:
            raise ValueError(f"the partition count must be 1 or more, got {partitions}")
        if self.rate < 0:
            raise ValueError(
                f"the rate must be 0 (as fast as possible) or positive, got {self.rate}"
            )
        if self.speed is not None:
            if not self.speed > 0:
                raise ValueError(f"the speed must be positive, got {self.speed}")
            if self.time_column is None:
                raise ValueError("--speed needs --time-column (the column holding each row's time)")
            if self.rate:
                raise ValueError("give either --rate or --speed, not both")
        delay, records = self.label_delay, self.label_delay_records
        if delay is not None and records is not None:
            raise ValueError(
                "give either --label-delay (seconds) or --label-delay-records, not both"
            )
        if delay is not None and not delay >= 0:
            raise ValueError(f"the label delay must be 0 or more seconds, got {delay}")
        if records is not None and records < 1:
            raise ValueError(f"the label delay in records must be 1 or more, got {records}")


def _check_every_row(path: Path, rules: RowRules) -> None:
    """Raise :class:`ProduceError` at the file's first row that cannot be sent."""
    for line in rows_to_send(path, rules):
        if isinstance(line, SkippedRow):
            raise ProduceError(f"{line}; nothing was sent (--strict stops at the first bad row)")


def _send_all(
    replay: _Replay, lines: Iterator[Line], pacing: _Pacing, strict: bool
) -> tuple[float, bool]:
    """Send the rows, flush and close the producer; the seconds it took, and whether Ctrl-C
    interrupted it."""
    started = time.monotonic()
    interrupted = False
    try:
        replay.run(lines, pacing, strict=strict)
    except KeyboardInterrupt:
        interrupted = True  # what was sent so far still gets flushed and counted
    finally:
        try:
            replay.producer.flush(timeout=60)
        finally:
            replay.producer.close(timeout=10)
    if replay.failures:
        raise ProduceError(
            f"{replay.failures} record(s) were not delivered to Kafka: {replay.last_failure}"
        )
    if replay.progress is not None:
        replay.progress.done(replay.sent)
    return time.monotonic() - started, interrupted


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
        self.skipped = 0
        self.skipped_reasons: list[str] = []
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

    def run(self, lines: Iterator[Line], pacing: _Pacing, *, strict: bool = False) -> None:
        start = time.monotonic()
        first_time: float | None = None
        # Seconds mode: (due, sequence, label, key) in a heap; records mode: a FIFO of
        # (release after row index, label, key).
        timed: list[tuple[float, int, dict[str, Any], bytes | None]] = []
        counted: deque[tuple[int, dict[str, Any], bytes | None]] = deque()
        sequence = itertools.count()
        speed, time_column = pacing.speed, pacing.time_column
        time_scale = 1 / speed if speed else 1.0

        for line in lines:
            if isinstance(line, SkippedRow):
                if strict:
                    raise ProduceError(f"{line}; {self.sent} records were sent before it")
                self._skip(line)
                continue
            row = line[1]
            index = self.sent
            due: float | None = None
            if pacing.rate:
                due = start + index / pacing.rate
            elif speed is not None and time_column is not None:
                moment = parse_timestamp(row[time_column])  # RowRules checked it
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
                if pacing.label_delay is not None:
                    label_due = time.monotonic() + pacing.label_delay * time_scale
                    heapq.heappush(timed, (label_due, next(sequence), label, key))
                elif pacing.label_delay_records is not None:
                    counted.append((index + pacing.label_delay_records, label, key))
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

    def result(self, seconds: float, interrupted: bool, created: tuple[str, ...]) -> ProduceResult:
        return ProduceResult(
            sent=self.sent,
            labels_sent=self.labels_sent,
            topic=self.topic,
            labels_topic=self.labels_topic if self.delayed_labels else None,
            seconds=seconds,
            interrupted=interrupted,
            created_topics=created,
            skipped=self.skipped,
            skipped_reasons=tuple(self.skipped_reasons),
        )

    def _skip(self, line: SkippedRow) -> None:
        self.skipped += 1
        if len(self.skipped_reasons) < REASONS_KEPT:
            self.skipped_reasons.append(str(line))

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
        # With an id column, RowRules made sure every row sent has an id there.
        record_id = row[self.id_column] if self.id_column is not None else row.get("id", index)
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
