"""What the daemon says in its log unasked: a start banner, a heartbeat, rejected records.

The banner names the source, the model, the state dir, whether the run is fresh or resumed
(and from where), and the features. The heartbeat, every ``--log-every`` seconds, gives the
records a second, the rolling error and, for Kafka, the lag. Rejected records are summed up
at most once every 10 seconds with their top reasons, so that an input the daemon rejects
entirely is never silent and never floods the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from streamlearn.config import Settings
    from streamlearn.loop import Daemon
    from streamlearn.state import CheckpointStore

__all__ = ["Counts", "Logbook", "describe_position", "open_logbook", "start_banner"]

log = logging.getLogger("streamlearn")

#: Seconds between two lines about rejected records, at most.
REJECTIONS_EVERY = 10.0
#: Reasons named in a rejection line; the others are counted together.
TOP_REASONS = 3


class Counts(Protocol):
    """The loop's counters the logbook reads (``streamlearn.loop.host.Counters``)."""

    @property
    def records_seen(self) -> int: ...

    @property
    def records_rejected(self) -> int: ...

    @property
    def rejected_by_reason(self) -> Mapping[str, int]: ...


class Logbook:
    """The heartbeat and the rejected-records lines; the loop calls :meth:`tick` after each
    batch (and while idle), which costs a clock reading when nothing is due.

    ``error`` reads the rolling MAE (``error_name``; a classifier's: its error rate), ``lag``
    the Kafka lag per (topic, partition).

    Examples
    --------
    >>> from types import SimpleNamespace as Counted
    >>> now = [0.0]
    >>> book = Logbook(60.0, error=lambda: 0.25, clock=lambda: now[0])
    >>> now[0] = 12.0
    >>> book.rejections_line(Counted(records_seen=2000, records_rejected=2000,
    ...     rejected_by_reason={"non_numeric": 1990, "bad_shape": 10}))
    'rejected 2,000 of 2,000 records in the last 12 s: non_numeric 1,990, bad_shape 10'
    >>> now[0] = 60.0
    >>> book.heartbeat_line(Counted(records_seen=14_000, records_rejected=2000,
    ...     rejected_by_reason={}))
    '14,000 records in the last 60 s (233/s), 14,000 in all; rolling MAE 0.25'
    >>> Logbook(60.0, error=lambda: 0.125, error_name="error rate", clock=lambda: 0.0
    ...         ).heartbeat_line(Counted(records_seen=0, records_rejected=0, rejected_by_reason={}))
    'idle: no records in the last 0.0 s, 0 in all; rolling error rate 0.125'
    """

    def __init__(
        self,
        every: float,
        *,
        error: Callable[[], float | None],
        error_name: str = "MAE",
        lag: Callable[[], Mapping[tuple[str, int], int]] | None = None,
        start: Counts | None = None,
        rejections_every: float = REJECTIONS_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every = every
        self.error = error
        self.error_name = error_name
        self.lag = lag
        self.rejections_every = rejections_every
        self.clock = clock
        now = clock()
        seen = start.records_seen if start is not None else 0
        rejected = start.records_rejected if start is not None else 0
        reasons = dict(start.rejected_by_reason) if start is not None else {}
        # (when, records seen) at the last heartbeat; (when, seen, rejected, by reason) at
        # the last rejections line: the counts of a resumed run start from the checkpoint's.
        self._beat: tuple[float, int] = (now, seen)
        self._told: tuple[float, int, int, dict[str, int]] = (now, seen, rejected, reasons)

    def tick(self, counts: Counts) -> None:
        """Log what is due: a heartbeat, a line about the records rejected lately."""
        now = self.clock()
        if now - self._told[0] >= self.rejections_every:
            self._tell_rejections(counts, now)
        if self.every > 0 and now - self._beat[0] >= self.every:
            log.info("%s", self.heartbeat_line(counts, now))
            self._beat = (now, counts.records_seen)

    def close(self, counts: Counts) -> None:
        """At the end of the run: the records rejected since the last line."""
        self._tell_rejections(counts, self.clock())

    def _tell_rejections(self, counts: Counts, now: float) -> None:
        if counts.records_rejected > self._told[2]:
            log.warning("%s", self.rejections_line(counts, now))
        self._told = (now, counts.records_seen, counts.records_rejected,
                      dict(counts.rejected_by_reason))  # fmt: skip

    def rejections_line(self, counts: Counts, now: float | None = None) -> str:
        """``rejected R of N records in the last S s: reason n, ...`` since the last line."""
        now = self.clock() if now is None else now
        since, seen, rejected, reasons = self._told
        new = {
            reason: count - reasons.get(reason, 0)
            for reason, count in counts.rejected_by_reason.items()
            if count > reasons.get(reason, 0)
        }
        ranked = sorted(new.items(), key=lambda item: (-item[1], item[0]))
        named = ", ".join(f"{reason} {count:,}" for reason, count in ranked[:TOP_REASONS])
        rest = sum(count for _, count in ranked[TOP_REASONS:])
        if rest:
            named += f", {len(ranked) - TOP_REASONS} other reasons {rest:,}"
        return (
            f"rejected {counts.records_rejected - rejected:,} of "
            f"{counts.records_seen - seen:,} records in the last {_seconds(now - since)}: "
            f"{named}"
        )

    def heartbeat_line(self, counts: Counts, now: float | None = None) -> str:
        """Records and their rate since the last heartbeat, the rolling error, the lag."""
        now = self.clock() if now is None else now
        since, seen = self._beat
        records = counts.records_seen - seen
        elapsed = max(now - since, 1e-9)
        if records:
            text = (
                f"{records:,} records in the last {_seconds(elapsed)} ({records / elapsed:,.0f}/s)"
            )
        else:
            text = f"idle: no records in the last {_seconds(elapsed)}"
        text += f", {counts.records_seen:,} in all"
        error = self.error()
        if error is not None:
            text += f"; rolling {self.error_name} {error:.4g}"
        if self.lag is not None:
            lags = self.lag()
            if lags:
                parts = " ".join(f"p{p}={n:,}" for (_, p), n in sorted(lags.items()))
                text += f"; Kafka lag {sum(lags.values()):,} ({parts})"
        return text


def _seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def describe_position(position: Mapping[str, Any] | None) -> str:
    """A source position in words.

    >>> describe_position({"kind": "file", "offset": 75414})
    'byte 75,414'
    >>> describe_position({"kind": "kafka", "next_offsets": {"0": 519, "1": 500}})
    'offsets p0=519 p1=500'
    """
    if not position:
        return "the start"
    if isinstance(position.get("offset"), int):
        return f"byte {position['offset']:,}"
    offsets = position.get("next_offsets")
    if isinstance(offsets, Mapping) and offsets:
        return "offsets " + " ".join(f"p{p}={o:,}" for p, o in offsets.items())
    return "its saved position"


def start_banner(
    *,
    follow: bool,
    source: str,
    model: str,
    state_dir: Path | None,
    resumed: tuple[int, int, str] | None,
    features: Sequence[str] | None,
) -> str:
    """The line a run starts with. ``resumed``: (generation, records learned, position).

    >>> start_banner(follow=False, source="file:data.csv", model="sgd", state_dir=None,
    ...              resumed=None, features=["a", "b"])
    'replay file:data.csv: model sgd, fresh, no state dir; features a, b'
    >>> print(start_banner(follow=True, source="file:data.csv", model="sgd",
    ...       state_dir=Path("s"), resumed=(4, 2000, "byte 75,414"), features=None))
    run file:data.csv: model sgd, resumed from generation 4 in s (2,000 records learned, at byte
    75,414); features from the records
    """
    command = "run" if follow else "replay"
    if resumed is not None:
        generation, learned, where = resumed
        state = (
            f"resumed from generation {generation} in {state_dir} "
            f"({learned:,} records learned, at {where})"
        )
    elif state_dir is not None:
        state = f"fresh, state dir {state_dir}"
    else:
        state = "fresh, no state dir"
    named = ", ".join(features) if features is not None else "from the records"
    return f"{command} {source}: model {model}, {state}; features {named}"


def open_logbook(
    settings: Settings,
    daemon: Daemon,
    state: Mapping[str, Any] | None,
    store: CheckpointStore | None,
    lag: Callable[[], Mapping[tuple[str, int], int]] | None,
) -> Logbook:
    """Log the start banner (and the warning of a ``run`` without ``--state-dir``), and the
    logbook of the run."""
    resumed = None
    if state is not None:
        learned = daemon.learner.records_learned
        generation = store.generation if store is not None else 0
        resumed = (generation, learned, describe_position(state.get("source")))
    features = daemon.decoder.features
    log.info(
        "%s",
        start_banner(
            follow=settings.follow,
            source=daemon.source.describe(),
            model=daemon.model_spec,
            state_dir=settings.state_dir,
            resumed=resumed,
            features=list(features) if features is not None else None,
        ),
    )
    if settings.follow and settings.state_dir is None:
        log.warning(
            "no --state-dir: the model and its position live in memory only, and nothing "
            "survives a restart; give --state-dir DIR to keep them"
        )

    def error() -> float | None:
        with daemon.lock:
            return daemon.learner.rolling_mae()

    # A classifier's rolling_mae is its 0/1 error rate (as the progress bar names it).
    name = "error rate" if daemon.learner.task == "classification" else "MAE"
    return Logbook(settings.log_every, error=error, error_name=name, lag=lag, start=daemon.counters)
