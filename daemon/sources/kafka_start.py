"""Where a Kafka source starts reading (``choose_starts``): the checkpoint, else ``--from``.

And what happens when a position lies below the log start (retention deleted records that
were never learned): a :class:`SourceError`, or with ``--on-data-loss reset`` an event to
record (``data_loss_event``).

``--from`` has kcat's habits: ``earliest``, ``latest``, an offset (the same in every
partition; negative counts back from the log end, like ``kcat -o -N``) or an ISO 8601 time
(the first record stamped at or after it, from the broker's offsets-for-times look-up).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from streamlearn.sources.base import PositionMismatch, SourceError

if TYPE_CHECKING:
    from streamlearn.sources.kafka_config import KafkaSettings
    from streamlearn.sources.kafka_watcher import Observation

__all__ = ["StartAt", "checkpointed_offsets", "choose_starts", "data_loss_event"]

StartKind = Literal["earliest", "latest", "offset", "time"]


@dataclass(frozen=True, slots=True)
class StartAt:
    """A parsed ``--from``: its kind and, for an offset or a time, its number.

    ``value`` is the offset (negative: that many records before the log end) or the time in
    milliseconds since the epoch. A time without a UTC offset is taken as UTC.

    Examples
    --------
    >>> StartAt.parse("latest")
    StartAt(kind='latest', value=0)
    >>> StartAt.parse("1200"), StartAt.parse("-50")
    (StartAt(kind='offset', value=1200), StartAt(kind='offset', value=-50))
    >>> StartAt.parse("2024-05-01T12:00:00Z").value
    1714564800000
    >>> StartAt.parse("2024-05-01T14:00:00+02:00") == StartAt.parse("2024-05-01T12:00")
    True
    >>> StartAt.parse("yesterday")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --from must be earliest, latest, an offset or an ISO time ..., got 'yesterday'
    """

    kind: StartKind
    value: int = 0

    @classmethod
    def parse(cls, text: str) -> StartAt:
        word = text.strip()
        if word in ("earliest", "latest"):
            return cls(word)  # type: ignore[arg-type]  # one of the two literals
        try:
            return cls("offset", int(word))
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(word)
        except ValueError:
            raise ValueError(
                "--from must be earliest, latest, an offset or an ISO time such as "
                f"2024-05-01T12:00:00Z, got {text!r}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return cls("time", round(moment.timestamp() * 1000))

    def offset_in(self, log_start: int, log_end: int, at_time: int | None = None) -> int:
        """The start offset in a partition whose log spans ``[log_start, log_end)``.

        ``at_time`` is the broker's answer for a time (None or negative: no record that
        late, so the log end). Always within the log: an offset beyond it is brought back.
        (tansu reports the start of its last batch + 1 as the log end: near the end of a
        tansu log, the start may be up to a batch early, as ``latest`` is.)

        >>> StartAt.parse("-50").offset_in(0, 30), StartAt.parse("-5").offset_in(0, 30)
        (0, 25)
        >>> StartAt.parse("900").offset_in(100, 200), StartAt("time", 1).offset_in(0, 30, -1)
        (200, 30)
        """
        if self.kind == "earliest":
            offset = log_start
        elif self.kind == "latest":
            offset = log_end
        elif self.kind == "offset":
            offset = self.value if self.value >= 0 else log_end + self.value
        else:
            offset = log_end if at_time is None or at_time < 0 else at_time
        return min(max(offset, log_start), log_end)

    def __str__(self) -> str:
        """As ``--from`` takes it: ``str(StartAt.parse(text))`` parses to the same value.

        >>> str(StartAt.parse("2024-05-01T14:00:00+02:00")), str(StartAt.parse("-5"))
        ('2024-05-01T12:00:00Z', '-5')
        """
        if self.kind == "offset":
            return str(self.value)
        if self.kind == "time":
            moment = datetime.fromtimestamp(self.value / 1000, tz=UTC)
            return (
                moment.isoformat(timespec="milliseconds").replace(".000", "").replace("+00:00", "Z")
            )
        return self.kind


def checkpointed_offsets(resume: Mapping[str, Any] | None, kind: str, topic: str) -> dict[int, int]:
    """The next offset per partition of a checkpointed Kafka position (``{}``: none).

    A position of another kind of source or of another topic is a :class:`PositionMismatch`;
    a malformed one a :class:`SourceError`.

    >>> position = {"kind": "kafka", "topic": "t", "next_offsets": {"0": 7}}
    >>> checkpointed_offsets(position, "kafka", "t")
    {0: 7}
    """
    if not resume:
        return {}
    found = resume.get("kind", kind)
    if found != kind:
        raise PositionMismatch(
            f"the checkpoint holds a {found!r} position, but the source is Kafka topic "
            f"{topic!r}; use the state directory of that run or a fresh one"
        )
    taken_from = resume.get("topic")
    if taken_from != topic:
        raise PositionMismatch(
            f"the checkpoint was taken reading Kafka topic {taken_from!r}, not {topic!r}; "
            "use the state directory of that run or a fresh one"
        )
    raw_offsets = resume.get("next_offsets", {})
    if not isinstance(raw_offsets, Mapping):
        raise SourceError(f"bad Kafka position in the checkpoint: {resume!r}")
    offsets: dict[int, int] = {}
    for key, value in raw_offsets.items():
        try:
            partition, offset = int(key), int(value)
        except (TypeError, ValueError):
            raise SourceError(f"bad Kafka position in the checkpoint: {key!r}: {value!r}") from None
        if partition < 0 or offset < 0 or isinstance(value, bool):
            raise SourceError(f"bad Kafka position in the checkpoint: {key!r}: {value!r}")
        offsets[partition] = offset
    return offsets


def choose_starts(
    partitions: Iterable[int],
    resume: Mapping[int, int],
    observation: Observation,
    start: StartAt | None,
) -> dict[int, tuple[int, str]]:
    """Where each of ``partitions`` starts, and why, in partition order.

    The checkpoint's offset (``resume``), else the group's committed one, else ``start``
    (``--from``; None where it does not apply), else the log start. A start below the log
    start is left for ``data_loss_event`` to judge.

    >>> from streamlearn.sources.kafka_watcher import Observation
    >>> seen = Observation(0.0, True, frozenset({0, 1, 2}), log_start={0: 0, 1: 0, 2: 5},
    ...                    log_end={0: 9, 1: 9, 2: 9}, committed={1: 4})
    >>> choose_starts({0, 1, 2}, {0: 7}, seen, StartAt.parse("latest"))
    {0: (7, 'checkpoint'), 1: (4, 'group commit'), 2: (9, 'latest')}
    >>> choose_starts({2}, {}, seen, None)
    {2: (5, 'earliest')}
    """
    starts: dict[int, tuple[int, str]] = {}
    for p in sorted(partitions):
        if p in resume:
            starts[p] = (resume[p], "checkpoint")
        elif p in observation.committed:
            starts[p] = (observation.committed[p], "group commit")
        elif start is not None:
            log_start, log_end = observation.log_start[p], observation.log_end[p]
            offset = start.offset_in(log_start, log_end, observation.at_time.get(p))
            starts[p] = (offset, "latest" if start.kind == "latest" else f"--from {start}")
        else:
            starts[p] = (observation.log_start[p], "earliest")
    return starts


def data_loss_event(
    settings: KafkaSettings, partition: int, offset: int, log_start: int, origin: str
) -> dict[str, Any]:
    """A position (from ``origin``) below the log start: what to record, or a SourceError.

    Unless ``settings.on_data_loss`` is ``reset``, the loss is refused loudly; with it, the
    source goes on from ``log_start`` and keeps the returned event in its state.
    """
    lost = log_start - offset
    if settings.on_data_loss != "reset":
        raise SourceError(
            f"Kafka topic {settings.topic!r} partition {partition}: the {origin} resumes at "
            f"offset {offset}, but the log now starts at {log_start}; {lost} record(s) were "
            "deleted (retention) before they were learned. Refusing to skip them silently. To "
            f"go on from offset {log_start} and record the loss in the state, restart with "
            "--on-data-loss reset."
        )
    return {
        "topic": settings.topic,
        "partition": partition,
        "checkpoint_offset": offset,
        "log_start_offset": log_start,
        "records_lost": lost,
        "position_from": origin,
        "detected_at": time.time(),
    }
