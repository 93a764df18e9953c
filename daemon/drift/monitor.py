"""Drift detection on the prequential error (and chosen input features), and what to do about it.

The daemon calls :meth:`DriftMonitor.observe` once per labeled record, after the model
learned it, with the prediction made before learning; the compiled fast path hands it
whole blocks of errors instead (:meth:`DriftMonitor.observe_errors`). The monitor feeds a
drift detector (ADWIN, ours in :mod:`streamlearn.drift.adwin` with River's results; River's
PageHinkley or KSWIN) and, on a detection, logs it, counts it, records it in the state
(``drift_events``) and takes the ``--on-drift`` action.

Why a falling error is not drift
--------------------------------
A cold model's error falls fast while it learns; a two-sided detector would call that a
change and, with ``--on-drift reset``, throw the model away again and again. Three guards:

1. **Warm-up.** The error signal is ignored for ``--drift-warmup`` records (default 500)
   at start-up and again after every reset, rollback or swap: a fresh model's learning
   curve is not drift. The input features are warmed up at start-up only (their
   distribution does not depend on the model).
2. **A unit from a reference block.** The next ``REFERENCE_RECORDS`` (100) values of each
   signal set its unit: the error is divided by its mean over the block, a feature is
   centred and divided by its standard deviation. The detectors' thresholds then mean
   the same for errors of 0.001 and of 1000. Detection starts after the block.
3. **A one-sided test on the error.** Only a RISE of the error counts: PageHinkley runs
   with ``mode="up"``; ADWIN (two-sided by construction) and KSWIN count a detection
   only when the recent window's mean is above the older part's. Features use the
   two-sided test: a shift either way is a change of the input distribution.

Detectors (``--drift-detector``, default ``adwin``)
---------------------------------------------------
- ``adwin``: ``ADWIN(delta=0.002)``, :class:`streamlearn.drift.adwin.ADWIN`: River's
  ``drift.ADWIN`` to the last bit, compiled (C). The default: its bound uses the
  observed variance, so it suits an unbounded, skewed signal such as an absolute error
  (no false alarm on 5 x 20,000 stable records with Gaussian, Laplace noise; a few with
  Student-t(3)), and it is cheap (0.1-0.15 us a value on an array, see below). It tests
  every 32 values, so a detection may come up to 32 records later than a test on every
  value would.
- ``page-hinkley``: ``PageHinkley(delta=0.1, threshold=50, min_instances=30)`` on the
  unit-free signal (``delta`` = rises below 10 % of the reference error are tolerated).
  Faster on abrupt rises, but its cumulative sums make heavy-tailed errors raise false
  alarms. Its telemetry and event name is ``page_hinkley``.
- ``kswin``: ``KSWIN(alpha=1e-5, window_size=100, stat_size=30, seed=0)``: a
  Kolmogorov-Smirnov test per value (no false alarm on 2 x 10,000 stable records), about
  1 ms a record: only for slow streams.
- ``none``: no monitor at all.

Actions (``--on-drift``, default ``alert``)
-------------------------------------------
- ``alert``: log and count; the model is untouched.
- ``reset``: a fresh model from ``daemon.model_factory()`` (a clone of the current
  model's constructor when there is none) learns from the next record on.
- ``rollback``: back to the warm-start model, ``daemon.warm_model_factory()``. Without a
  warm start this falls back to ``alert`` with a warning (at the first record and at each
  detection) rather than refusing to start: ``build_monitor`` cannot see whether the daemon
  has a warm start, and a resumed state may be run again without ``--warm-start``.
- ``background``: a challenger, a fresh model, learns the records after the detection,
  each scored before it learns it (prequentially, like the model). Once it has scored
  ``--drift-swap-window`` records, it replaces the model as soon as its MAE over the last
  window is below the model's on the same records (``swap``); after
  ``SWAP_PATIENCE`` windows without winning it is dropped (``discard``).

Every action is counted (``Telemetry.drift_action``) and logged. After an acted-on
detection, further detections within ``--drift-cooldown`` stream records (default 1000) are
recorded with the action ``suppressed``, and so are detections while a challenger trains:
one change is acted on once. The last ``MAX_EVENTS`` detections are kept in the state, with
a total count; the monitor (detectors, challenger and all) is pickled into the checkpoint,
so a restart continues its statistics where they were.

Cost (``bench/bench_drift.py``): with the default detector, ``observe_errors`` takes
about 0.1-0.25 us a record (the compiled ADWIN fed a block at a time; River's ADWIN, one
Python call a record, made it 2-2.3 us), and ``observe`` about 2.5-3 us (the Python
around the detector; ADWIN's own share is 0.5-0.8 us, as with River's). ADWIN's compiled
loop loads with the package's C extension in about a millisecond; PageHinkley and KSWIN
still import ``river.drift``, which imports scikit-learn (about 1 s), when their first
detector is built.

Checkpoints written before ``streamlearn.drift.adwin`` hold River's ADWIN: a restored monitor
converts it to ours, state and all (or keeps River's if its state cannot be read), and
goes on with the same detections.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import click

__all__ = [
    "ACTIONS",
    "DETECTOR_CHOICES",
    "DETECTOR_NAMES",
    "ON_DRIFT",
    "DriftConfig",
    "DriftConfigError",
    "DriftMonitor",
    "build_monitor",
    "drift_options",
    "make_detector",
    "parse_features",
]

log = logging.getLogger(__name__)

#: ``--drift-detector`` choice -> the name in events and telemetry labels.
DETECTOR_CHOICES: dict[str, str] = {
    "adwin": "adwin",
    "page-hinkley": "page_hinkley",
    "kswin": "kswin",
}
#: Detector names as they appear in ``drift_events`` and ``streamlearn_drift_detections_total``.
DETECTOR_NAMES: tuple[str, ...] = tuple(DETECTOR_CHOICES.values())
#: What ``--on-drift`` may ask for.
ON_DRIFT: tuple[str, ...] = ("alert", "reset", "rollback", "background")
#: Every action label counted by ``Telemetry.drift_action`` (``swap``/``discard`` end a challenger).
ACTIONS: tuple[str, ...] = (*ON_DRIFT, "swap", "discard")

DEFAULT_DETECTOR = "adwin"
DEFAULT_WARMUP = 500
DEFAULT_SWAP_WINDOW = 300
DEFAULT_COOLDOWN = 1000
#: Values of a signal that set its unit (mean error; feature mean and deviation).
REFERENCE_RECORDS = 100
#: A challenger that has not won after this many swap windows is dropped.
SWAP_PATIENCE = 10
#: Detections kept in the state (the total is counted apart).
MAX_EVENTS = 1000
#: Swaps kept in the summary.
MAX_SWAPS = 100
#: The smallest unit a signal may get: a perfect model's reference error is 0.
_MIN_SCALE = 1e-12


class DriftConfigError(ValueError):
    """Drift options that cannot work together; the message says what to write instead."""


def parse_features(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Feature names from ``--drift-features`` (``"a,b"`` or a list); empty for none.

    >>> parse_features(" temp, hum ")
    ('temp', 'hum')
    >>> try:
    ...     parse_features("a,,a")
    ... except ValueError as exc:
    ...     print(exc)
    --drift-features names 'a' twice; give each feature once, e.g. 'a,b'
    """
    if value is None:
        return ()
    parts = value.split(",") if isinstance(value, str) else list(value)
    names = [str(part).strip() for part in parts]
    names = [name for name in names if name]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DriftConfigError(
                f"--drift-features names {name!r} twice; give each feature once, e.g. 'a,b'"
            )
        seen.add(name)
    return tuple(names)


def _check_count(value: Any, option: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise DriftConfigError(f"{option} must be a whole number of records, got {value!r}")
    if value < minimum:
        raise DriftConfigError(f"{option} must be at least {minimum} records, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class DriftConfig:
    """What to watch, with which detector, and what to do on a detection.

    Parameters
    ----------
    detector
        ``adwin``, ``page-hinkley`` (or ``page_hinkley``) or ``kswin``.
    features
        Input features watched besides the error (two-sided test).
    warmup
        Records ignored at start-up and after each model change (error signal).
    on_drift
        ``alert``, ``reset``, ``rollback`` or ``background``.
    swap_window
        Records over which a challenger's MAE is compared with the model's.
    cooldown
        Stream records after an acted-on detection during which detections are not acted on.

    Examples
    --------
    >>> DriftConfig(detector="page-hinkley", features=("a",)).detector_name
    'page_hinkley'
    >>> try:
    ...     DriftConfig(on_drift="retrain")
    ... except ValueError as exc:
    ...     print(exc)
    --on-drift must be one of alert, reset, rollback, background; got 'retrain'
    """

    detector: str = DEFAULT_DETECTOR
    features: tuple[str, ...] = ()
    warmup: int = DEFAULT_WARMUP
    on_drift: str = "alert"
    swap_window: int = DEFAULT_SWAP_WINDOW
    cooldown: int = DEFAULT_COOLDOWN
    detector_name: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        detector = str(self.detector).strip().lower().replace("_", "-")
        if detector not in DETECTOR_CHOICES:
            raise DriftConfigError(
                f"--drift-detector must be one of {', '.join(DETECTOR_CHOICES)} or none; "
                f"got {self.detector!r}"
            )
        if self.on_drift not in ON_DRIFT:
            raise DriftConfigError(
                f"--on-drift must be one of {', '.join(ON_DRIFT)}; got {self.on_drift!r}"
            )
        object.__setattr__(self, "detector", detector)
        object.__setattr__(self, "detector_name", DETECTOR_CHOICES[detector])
        object.__setattr__(self, "features", parse_features(self.features))
        object.__setattr__(self, "warmup", _check_count(self.warmup, "--drift-warmup", 0))
        object.__setattr__(
            self, "swap_window", _check_count(self.swap_window, "--drift-swap-window", 10)
        )
        object.__setattr__(self, "cooldown", _check_count(self.cooldown, "--drift-cooldown", 0))

    @property
    def signals(self) -> tuple[str, ...]:
        """The watched signals: ``error`` and ``feature:<name>`` for each feature."""
        return ("error", *(f"feature:{name}" for name in self.features))

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> DriftConfig | None:
        """The config the ``drift_options`` params ask for; None for ``--drift-detector none``."""
        detector = extra.get("drift_detector")
        detector = DEFAULT_DETECTOR if detector is None else str(detector)
        features = parse_features(extra.get("drift_features"))
        on_drift = extra.get("on_drift") or "alert"
        if detector.strip().lower() == "none":
            if on_drift != "alert" or features:
                asked = f"--on-drift {on_drift}" if on_drift != "alert" else "--drift-features"
                raise DriftConfigError(
                    f"{asked} needs a drift detector; drop it or choose --drift-detector "
                    f"({', '.join(DETECTOR_CHOICES)})"
                )
            return None

        def count(key: str, default: int) -> Any:
            value = extra.get(key)
            return default if value is None else value

        return cls(
            detector=detector,
            features=features,
            warmup=count("drift_warmup", DEFAULT_WARMUP),
            on_drift=str(on_drift),
            swap_window=count("drift_swap_window", DEFAULT_SWAP_WINDOW),
            cooldown=count("drift_cooldown", DEFAULT_COOLDOWN),
        )


def make_detector(name: str, *, rising: bool) -> Any:
    """A drift detector by event name, tuned for a unit-free signal (see the module doc).

    ``adwin`` is :class:`streamlearn.drift.adwin.ADWIN` (River's results, compiled); the others
    are River's. ``rising`` asks PageHinkley for its one-sided ``mode="up"``; ADWIN and
    KSWIN are two-sided and are filtered by :class:`DriftMonitor` instead.

    >>> make_detector("page_hinkley", rising=True).mode
    'up'
    >>> make_detector("adwin", rising=True)
    ADWIN(delta=0.002, clock=32, max_buckets=5, min_window_length=5, grace_period=10)
    """
    if name == "adwin":
        from streamlearn.drift.adwin import ADWIN

        return ADWIN(delta=0.002)
    # Imported here, when the first detector is built (after warm-up and the reference
    # block): river.drift pulls in scikit-learn (about 1 s), which neither ``--help`` (the
    # CLI imports this module for its options) nor a replay of a short file should pay.
    from river import drift

    if name == "page_hinkley":
        return drift.PageHinkley(
            min_instances=30, delta=0.1, threshold=50.0, mode="up" if rising else "both"
        )
    if name == "kswin":
        return drift.KSWIN(alpha=1e-5, window_size=100, stat_size=30, seed=0)
    raise DriftConfigError(f"unknown drift detector {name!r}; known: {', '.join(DETECTOR_NAMES)}")


def _is_river_adwin(detector: Any) -> bool:
    cls = type(detector)
    return cls.__name__ == "ADWIN" and cls.__module__.startswith("river.")


class _Watch:
    """One signal: warm-up, then a reference block that sets its unit, then a detector."""

    def __init__(self, signal: str, detector: str, *, rising: bool, centre: bool, warmup: int):
        self.signal = signal
        self.feature = signal.removeprefix("feature:")
        self.detector_name = detector
        self.rising = rising
        # Errors are divided by their mean (0 stays 0); features are centred and scaled.
        self.centre = centre
        self.restart(warmup)

    def restart(self, warmup: int) -> None:
        self.warmup_left = warmup
        self.reference: list[float] = []
        self.offset = 0.0
        self.inv_scale = 1.0
        self.scale: float | None = None
        self.detector: Any = None
        self.ready = False
        # Our ADWIN (``streamlearn.drift.adwin``): fed arrays by ``update_many``, and it keeps the
        # sum and count of what it was fed since its last reset itself.
        self._compiled_adwin = False
        # River's ADWIN (restored from an old checkpoint it could not be converted from):
        # the sum and count of what it was fed since its last reset, to tell a rise from a
        # fall at a detection (ADWIN keeps only the recent part then).
        self._fed_total = 0.0
        self._fed_n = 0
        self._flagged = False  # the last update flagged a change (so River resets on this one)
        # KSWIN: the values its window holds, to compare the recent part with the rest.
        self._recent: deque[float] | None = None

    @property
    def phase(self) -> str:
        if self.ready:
            return "monitoring"
        return "warmup" if self.warmup_left > 0 else "reference"

    def update(self, value: float) -> bool:
        """Feed one value; True when it completes a detection that counts."""
        if not self.ready:
            self._prime(value)
            return False
        value = (value - self.offset) * self.inv_scale
        detector = self.detector
        if self._compiled_adwin:  # it resets itself on the update after a detection
            return detector.update(value) and (not self.rising or self._rose())
        if self._flagged:  # River resets a detector on the update after a detection
            self._flagged = False
            self._fed_total = 0.0
            self._fed_n = 0
            if self._recent is not None:
                self._recent.clear()
        self._fed_total += value
        self._fed_n += 1
        if self._recent is not None:
            self._recent.append(value)
        detector.update(value)
        if not detector.drift_detected:
            return False
        self._flagged = True
        return not self.rising or self._rose()

    def update_many(self, values: Any) -> int:
        """Feed a float64 array in order; the index of the first value that completes a
        detection that counts (the values after it are not fed), or -1.

        The same results as ``update`` value by value; with our ADWIN the monitoring
        phase runs compiled, a whole array per call.
        """
        import numpy as np

        size = len(values)
        start = 0
        if not self.ready:
            start = self._prime_many(values)
            if not self.ready:
                return -1
        if not self._compiled_adwin:
            update = self.update
            for index, value in enumerate(values[start:].tolist(), start):
                if update(value):
                    return index
            return -1
        # The scaling of ``update``, element by element: the same rounding.
        scaled = (np.asarray(values[start:], dtype=np.float64) - self.offset) * self.inv_scale
        update_many = self.detector.update_many
        done = 0
        while done < size - start:
            hit = update_many(scaled[done:])
            if hit < 0:
                return -1
            done += hit + 1
            if not self.rising or self._rose():
                return start + done - 1
        return -1

    def _rose(self) -> bool:
        """Whether the detection is a rise of the signal's mean (the recent part is higher)."""
        detector = self.detector
        if self.detector_name == "adwin":
            if self._compiled_adwin:
                fed_n, fed_total = detector.seen, detector.seen_total
            else:
                fed_n, fed_total = self._fed_n, self._fed_total
            older_n = fed_n - detector.width
            if older_n <= 0:
                return True
            older = (fed_total - detector.total) / older_n
            return bool(detector.estimation > older)
        if self._recent is not None:
            values = list(self._recent)
            stat_size = detector.stat_size
            recent, older = values[-stat_size:], values[:-stat_size]
            return not older or sum(recent) / len(recent) > sum(older) / len(older)
        return True  # PageHinkley in mode "up" is one-sided already

    def _prime(self, value: float) -> None:
        if self.warmup_left > 0:
            self.warmup_left -= 1
            return
        self.reference.append(value)
        if len(self.reference) == REFERENCE_RECORDS:
            self._start_detector()

    def _prime_many(self, values: Any) -> int:
        """``_prime`` over the head of an array; how many values it took."""
        size = len(values)
        start = min(self.warmup_left, size)
        self.warmup_left -= start
        take = min(REFERENCE_RECORDS - len(self.reference), size - start)
        if take > 0:
            self.reference.extend(values[start : start + take].tolist())
            if len(self.reference) == REFERENCE_RECORDS:
                self._start_detector()
        return start + max(take, 0)

    def _start_detector(self) -> None:
        """The reference block is complete: set the unit and build the detector."""
        n = len(self.reference)
        mean = math.fsum(self.reference) / n
        if self.centre:
            # Two passes over the block: no cancellation for features far from 0.
            spread = math.sqrt(math.fsum((v - mean) ** 2 for v in self.reference) / n)
            self.offset = mean
        else:
            spread = mean
        self.scale = max(spread, _MIN_SCALE)
        self.inv_scale = 1.0 / self.scale
        self.reference = []
        self.detector = make_detector(self.detector_name, rising=self.rising)
        self._compiled_adwin = callable(getattr(self.detector, "update_many", None))
        if self.detector_name == "kswin" and self.rising:
            self._recent = deque(maxlen=self.detector.window_size)
        self.ready = True

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"phase": self.phase}
        if self.phase == "warmup":
            out["warmup_left"] = self.warmup_left
        elif self.phase == "reference":
            out["reference_left"] = REFERENCE_RECORDS - len(self.reference)
        else:
            out["scale"] = self.scale
            if self.centre:
                out["offset"] = self.offset
        return out

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_compiled_adwin", False)
        if _is_river_adwin(self.detector):
            # A checkpoint from before our ADWIN: the same detector, converted exactly
            # (River's is kept if its state cannot be read).
            from streamlearn.drift.adwin import ADWIN

            converted = ADWIN.from_river(self.detector, seen=(self._fed_n, self._fed_total))
            if converted is not None:
                self.detector = converted
                self._compiled_adwin = True


class _Challenger:
    """A fresh model learning beside the current one, both scored on the same records."""

    def __init__(self, model: Any, window: int, started: int) -> None:
        self.model = model
        self.started = started
        self.scored = 0
        self.mine: deque[float] = deque(maxlen=window)
        self.theirs: deque[float] = deque(maxlen=window)
        self.sum_mine = 0.0
        self.sum_theirs = 0.0

    def push(self, mine: float, theirs: float) -> None:
        if len(self.mine) == self.mine.maxlen:
            self.sum_mine -= self.mine[0]
            self.sum_theirs -= self.theirs[0]
        self.mine.append(mine)
        self.theirs.append(theirs)
        self.sum_mine += mine
        self.sum_theirs += theirs
        self.scored += 1

    def window_maes(self) -> tuple[float, float]:
        """Exact MAEs over the window (the running sums only decide when to look)."""
        n = len(self.mine)
        return math.fsum(self.mine) / n, math.fsum(self.theirs) / n


class DriftMonitor:
    """Watches the prequential error (and chosen features) and acts on drift.

    Plugs into ``Daemon(..., monitor=...)``: the loop calls :meth:`observe` for every
    labeled record it learned, and ``inspect`` merges :meth:`summary` into its JSON.
    Picklable: it is stored in the checkpoint under ``extensions["drift"]``.

    Parameters
    ----------
    config
        Detector, watched features, warm-up, action, swap window and cooldown.

    Examples
    --------
    A linear target whose weights change at row 1500; the default ADWIN flags it soon after:

    >>> import numpy as np
    >>> from streamlearn.learner import Learner
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> from streamlearn.loop.daemon import Daemon
    >>> from streamlearn.testing import ListSource
    >>> from streamlearn.records import JsonDecoder
    >>> rng = np.random.default_rng(1)
    >>> X = rng.normal(size=(3000, 2))
    >>> y = np.where(np.arange(3000) < 1500, X @ [1.0, 2.0], X @ [-2.0, 1.0]) + 0.1
    >>> rows = [f'{{"x": {{"a": {a}, "b": {b}}}, "y": {t}}}'.encode() for (a, b), t in zip(X, y)]
    >>> monitor = DriftMonitor(DriftConfig(on_drift="reset"))
    >>> daemon = Daemon(ListSource(rows), JsonDecoder(), Learner(SGDRegressor()),
    ...                 model_spec="sgd", model_factory=SGDRegressor, monitor=monitor)
    >>> summary = daemon.run()
    >>> [(e["detector"], e["signal"], e["action"]) for e in summary["drift_events"]]
    [('adwin', 'error', 'reset')]
    >>> 1500 <= summary["drift_events"][0]["record"] < 1600
    True
    >>> summary["drift"]["actions"]["reset"], summary["drift"]["state"]["signals"]["error"]["phase"]
    (1, 'monitoring')
    """

    format = 1

    def __init__(self, config: DriftConfig | None = None) -> None:
        self.config = config or DriftConfig()
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.events_total = 0
        self.suppressed = 0
        self.detections: dict[str, int] = {signal: 0 for signal in self.config.signals}
        self.actions: dict[str, int] = {action: 0 for action in ACTIONS}
        self.swaps: deque[dict[str, Any]] = deque(maxlen=MAX_SWAPS)
        self.records_observed = 0
        self.cooldown_until = -1
        self.last_action_record = -1
        self.challenger: _Challenger | None = None
        self._checked_daemon = False
        self._missing_warned: set[str] = set()
        self._build_watches()

    def _build_watches(self) -> None:
        config = self.config
        self.error_watch = _Watch(
            "error", config.detector_name, rising=True, centre=False, warmup=config.warmup
        )
        self.feature_watches = tuple(
            _Watch(signal, config.detector_name, rising=False, centre=True, warmup=config.warmup)
            for signal in config.signals[1:]
        )

    # -- the per-record hook ------------------------------------------------------

    def observe(
        self, index: int, x: Mapping[str, float], y: float, yhat: float, daemon: Any
    ) -> None:
        """One labeled record, after the model learned it (``yhat`` was predicted before).

        ``index`` is the record's 0-based position in the stream; it is what
        ``drift_events`` report.
        """
        self.records_observed += 1
        if not self._checked_daemon:
            self._check_daemon(daemon)
        error = abs(y - yhat)
        if self.challenger is not None and self._challenge(index, x, y, error, daemon):
            pass  # swapped: this record's error belongs to the replaced model, not to the new one
        elif self.error_watch.update(error):
            self._detected(index, self.error_watch, daemon)
        for watch in self.feature_watches:
            value = x.get(watch.feature)
            if value is None:
                self._warn_missing(watch)
            elif watch.update(value):
                self._detected(index, watch, daemon)

    @property
    def errors_only(self) -> bool:
        """True when only the error stream is watched (no features, no challenger training):
        then ``observe_errors`` may replace per-record ``observe`` calls."""
        return not self.feature_watches and self.challenger is None

    def observe_errors(self, indices: Sequence[int], errors: Sequence[float], daemon: Any) -> int:
        """Many learned records at once, when ``errors_only``; returns how many were seen.

        ``indices`` and ``errors`` are lists or numpy arrays of the same length. Same results
        as ``observe`` record by record, without building feature dicts; with the default
        ADWIN the errors go to the compiled detector a whole array at a time. It stops right
        after a detection that changed the model or started a challenger: the caller
        re-learns the records after that one with the new model and goes on record by record.

        >>> monitor = DriftMonitor(DriftConfig(warmup=0))
        >>> monitor.observe_errors(range(500), [0.1] * 500, daemon=None)
        500
        >>> monitor.records_observed, monitor.events_total
        (500, 0)
        """
        import numpy as np

        if not self._checked_daemon and daemon is not None:
            self._check_daemon(daemon)
        values = np.asarray(errors, dtype=np.float64)
        size = len(values)
        if len(indices) != size:
            raise ValueError(f"{len(indices)} indices for {size} errors")
        watch = self.error_watch
        seen = 0
        while seen < size:
            hit = watch.update_many(values[seen:])
            if hit < 0:
                break
            seen += hit + 1
            learner = getattr(daemon, "learner", None)
            model = getattr(learner, "model", None)
            self.records_observed += seen
            self._detected(int(indices[seen - 1]), watch, daemon)
            if self.challenger is not None or getattr(learner, "model", None) is not model:
                return seen
            self.records_observed -= seen
        self.records_observed += size
        return size

    def _check_daemon(self, daemon: Any) -> None:
        self._checked_daemon = True
        if (
            self.config.on_drift == "rollback"
            and getattr(daemon, "warm_model_factory", None) is None
        ):
            log.warning(
                "--on-drift rollback: there is no warm-start model (--warm-start) to roll back "
                "to; drift will only be alerted"
            )

    def _warn_missing(self, watch: _Watch) -> None:
        if watch.signal not in self._missing_warned:
            self._missing_warned.add(watch.signal)
            log.warning(
                "drift feature %r is missing from a record; such records are skipped for it",
                watch.feature,
            )

    # -- detections and actions ---------------------------------------------------

    def _detected(self, index: int, watch: _Watch, daemon: Any) -> None:
        self.events_total += 1
        self.detections[watch.signal] = self.detections.get(watch.signal, 0) + 1
        telemetry = getattr(daemon, "telemetry", None)
        if telemetry is not None:
            telemetry.drift(watch.detector_name, watch.signal)
        action = self._act(index, watch, daemon)
        self.events.append(
            {
                "record": index,
                "detector": watch.detector_name,
                "signal": watch.signal,
                "action": action,
            }
        )

    def _act(self, index: int, watch: _Watch, daemon: Any) -> str:
        rising = "a rise of the error" if watch.signal == "error" else f"a shift of {watch.signal}"
        # One change, one action: another signal flagging the same record, a detection in
        # the cooldown, or one while a challenger trains is recorded but not acted on.
        if (
            self.challenger is not None
            or index < self.cooldown_until
            or index == self.last_action_record
        ):
            self.suppressed += 1
            if self.challenger is not None:
                why = f"a challenger has trained since record {self.challenger.started}"
            elif index == self.last_action_record:
                why = "this record was acted on already"
            else:
                why = f"cooldown until record {self.cooldown_until}"
            log.warning(
                "drift at record %d: %s flagged %s; not acted on (%s)",
                index,
                watch.detector_name,
                rising,
                why,
            )
            return "suppressed"
        self.cooldown_until = index + self.config.cooldown
        self.last_action_record = index
        action = self.config.on_drift
        if action == "reset":
            daemon.learner.reset_model(self._fresh_model(daemon))
            self._restart_error_watch()
            done = "reset the model to a fresh one"
        elif action == "rollback":
            factory = getattr(daemon, "warm_model_factory", None)
            if factory is None:
                action = "alert"
                done = "no warm-start model to roll back to: alert only"
            else:
                daemon.learner.reset_model(factory())
                self._restart_error_watch()
                done = "rolled back to the warm-start model"
        elif action == "background":
            self.challenger = _Challenger(self._fresh_model(daemon), self.config.swap_window, index)
            done = "training a challenger from the next record on"
        else:
            done = "alert only"
        log.warning(
            "drift at record %d: %s flagged %s; %s", index, watch.detector_name, rising, done
        )
        self._count_action(action, daemon)
        return action

    def _count_action(self, action: str, daemon: Any) -> None:
        self.actions[action] = self.actions.get(action, 0) + 1
        telemetry = getattr(daemon, "telemetry", None)
        if telemetry is not None:
            telemetry.drift_action(action)

    def _fresh_model(self, daemon: Any) -> Any:
        factory: Callable[[], Any] | None = getattr(daemon, "model_factory", None)
        if factory is not None:
            return factory()
        # No factory (a resumed state whose spec differs from the flags): an unfitted
        # model with the same constructor arguments is the closest thing to fresh.
        log.info("no model factory: the fresh model is a clone of the current model's spec")
        return daemon.learner.model.clone()

    def _restart_error_watch(self) -> None:
        """A new model: its learning curve is not drift, so warm up and re-measure the unit."""
        self.error_watch.restart(self.config.warmup)

    def _challenge(
        self, index: int, x: Mapping[str, float], y: float, error: float, daemon: Any
    ) -> bool:
        """Test-then-train the challenger on this record; True when it was swapped in."""
        challenger = self.challenger
        assert challenger is not None
        model = challenger.model
        fused = getattr(model, "predict_learn_one", None)
        guess = float(fused(x, y) if fused is not None else model.predict_one(x))
        if not math.isfinite(guess):
            log.warning("drift challenger diverged at record %d; dropped", index)
            self.challenger = None
            self._count_action("discard", daemon)
            return False
        if fused is None:
            model.learn_one(x, y)
        challenger.push(abs(y - guess), error)
        window = self.config.swap_window
        if challenger.scored < window:
            return False
        if challenger.sum_mine < challenger.sum_theirs:
            mine, theirs = challenger.window_maes()
            if mine < theirs:
                daemon.learner.reset_model(model)
                self.challenger = None
                self._restart_error_watch()
                self.swaps.append(
                    {
                        "record": index,
                        "started": challenger.started,
                        "window": window,
                        "challenger_mae": mine,
                        "model_mae": theirs,
                    }
                )
                log.warning(
                    "drift challenger swapped in at record %d (trained since record %d): "
                    "MAE %.6g against the model's %.6g over the last %d records",
                    index,
                    challenger.started,
                    mine,
                    theirs,
                    window,
                )
                self._count_action("swap", daemon)
                return True
        if challenger.scored >= window * SWAP_PATIENCE:
            mine, theirs = challenger.window_maes()
            log.warning(
                "drift challenger dropped at record %d: not better after %d records "
                "(MAE %.6g against the model's %.6g)",
                index,
                challenger.scored,
                mine,
                theirs,
            )
            self.challenger = None
            self._count_action("discard", daemon)
        return False

    # -- state --------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """``drift_events`` and ``drift`` for the ``inspect --json`` object (JSON-safe)."""
        config = self.config
        challenger: dict[str, Any] | None = None
        if self.challenger is not None:
            c = self.challenger
            challenger = {"started": c.started, "records": c.scored}
            if c.mine:
                challenger["challenger_mae"], challenger["model_mae"] = c.window_maes()
        signals = {
            watch.signal: watch.state() for watch in (self.error_watch, *self.feature_watches)
        }
        return {
            "drift_events": [dict(event) for event in self.events],
            "drift": {
                "detector": config.detector_name,
                "signals": list(config.signals),
                "on_drift": config.on_drift,
                "warmup": config.warmup,
                "cooldown": config.cooldown,
                "swap_window": config.swap_window,
                "events_total": self.events_total,
                "events_kept": len(self.events),
                "suppressed": self.suppressed,
                "detections": dict(self.detections),
                "actions": dict(self.actions),
                "swaps": [dict(swap) for swap in self.swaps],
                "state": {
                    "records_observed": self.records_observed,
                    "cooldown_until": self.cooldown_until if self.cooldown_until >= 0 else None,
                    "signals": signals,
                    "challenger": challenger,
                },
            },
        }

    def telemetry_labels(self) -> dict[str, tuple[str, ...]]:
        """Keyword arguments for ``Telemetry`` that export each drift series at 0 from the start."""
        return {
            "drift_detectors": DETECTOR_NAMES,
            "drift_signals": self.config.signals,
            "drift_actions": ACTIONS,
        }

    def resume_with(self, config: DriftConfig) -> DriftMonitor:
        """This (restored) monitor under ``config``: itself when unchanged, else a new one.

        A changed config restarts every detector (with warm-up) and keeps the history:
        events, totals, counts and swaps.
        """
        if config == self.config:
            return self
        log.info("drift options changed since the checkpoint (%s -> %s)", self.config, config)
        fresh = DriftMonitor(config)
        fresh.events.extend(self.events)
        fresh.events_total = self.events_total
        fresh.suppressed = self.suppressed
        for signal, count in self.detections.items():
            fresh.detections[signal] = fresh.detections.get(signal, 0) + count
        for action, count in self.actions.items():
            fresh.actions[action] = fresh.actions.get(action, 0) + count
        fresh.swaps.extend(self.swaps)
        fresh.records_observed = self.records_observed
        return fresh

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._checked_daemon = False  # warn again in the new process if rollback cannot work


def build_monitor(
    extra: Mapping[str, Any],
    *,
    restored: Any = None,
    known_features: Iterable[str] | None = None,
) -> DriftMonitor | None:
    """The drift monitor ``drift_options`` ask for (None for ``--drift-detector none``).

    Parameters
    ----------
    extra
        The command's params (``Settings.extra``): ``drift_detector``, ``drift_features``,
        ``drift_warmup``, ``on_drift``, ``drift_swap_window``, ``drift_cooldown``. Missing
        keys take the defaults (the ``adwin`` detector, ``alert``).
    restored
        The monitor found in the checkpoint (``state["extensions"]["drift"]``) or the whole
        state; it continues (same options) or hands its history to a new one.
    known_features
        The stream's feature names, when known: ``--drift-features`` must be among them.

    Raises
    ------
    DriftConfigError
        A ``ValueError`` whose message says which option to change.

    Examples
    --------
    >>> monitor = build_monitor({"drift_detector": "page-hinkley", "drift_features": "a,b"})
    >>> monitor.config.detector_name, monitor.config.signals
    ('page_hinkley', ('error', 'feature:a', 'feature:b'))
    >>> build_monitor({"drift_detector": "none"}) is None
    True
    >>> try:
    ...     build_monitor({"drift_features": "temp"}, known_features=["a", "b"])
    ... except ValueError as exc:
    ...     print(exc)
    --drift-features names temp, not in the stream's features (a, b)
    """
    config = DriftConfig.from_extra(extra)
    if isinstance(restored, Mapping):
        restored = restored.get("extensions", {}).get("drift")
    if config is None:
        if restored is not None:
            log.info("--drift-detector none: drift detection is off from here on")
        return None
    if known_features is not None:
        known = list(known_features)
        unknown = [name for name in config.features if name not in known]
        if unknown:
            raise DriftConfigError(
                f"--drift-features names {', '.join(unknown)}, not in the stream's features "
                f"({', '.join(known)})"
            )
    if restored is not None and callable(getattr(restored, "resume_with", None)):
        monitor: DriftMonitor = restored.resume_with(config)
        return monitor
    return DriftMonitor(config)


# -- command line ---------------------------------------------------------------------


def _click_check(
    check: Callable[[Any], Any],
) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None

    return callback


def drift_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The drift options of ``run`` and ``replay`` (each with a ``STREAMLEARN_*`` variable).

    Their values arrive in the command's params (``Settings.extra``), ready for
    :func:`build_monitor`.

    Examples
    --------
    >>> from click.testing import CliRunner
    >>> @click.command()
    ... @drift_options
    ... def demo(**params):
    ...     click.echo(build_monitor(params).config)
    >>> print(CliRunner().invoke(demo, ["--on-drift", "reset", "--drift-features", "a"]).output)
    DriftConfig(detector='adwin', features=('a',), warmup=500, on_drift='reset', swap_window=300,
    cooldown=1000)
    >>> result = CliRunner().invoke(demo, ["--drift-swap-window", "3"])
    >>> result.exit_code
    2
    >>> print(result.output.splitlines()[-1])
    Error: Invalid value for '--drift-swap-window': --drift-swap-window must be at least 10 records,
    got 3
    """
    options = [
        click.option(
            "--drift-detector",
            default=DEFAULT_DETECTOR,
            show_default=True,
            type=click.Choice([*DETECTOR_CHOICES, "none"], case_sensitive=False),
            envvar="STREAMLEARN_DRIFT_DETECTOR",
            help="Drift detector on the prequential absolute error (one-sided: only a rise "
            "counts). adwin suits an unbounded error; page-hinkley reacts faster but "
            "false-alarms on heavy-tailed errors; kswin costs about 1 ms a record.",
        ),
        click.option(
            "--drift-features",
            default=None,
            envvar="STREAMLEARN_DRIFT_FEATURES",
            callback=_click_check(parse_features),
            help="Comma-separated input features also watched for drift (a shift either way).",
        ),
        click.option(
            "--drift-warmup",
            default=DEFAULT_WARMUP,
            show_default=True,
            type=int,
            envvar="STREAMLEARN_DRIFT_WARMUP",
            callback=_click_check(lambda v: _check_count(v, "--drift-warmup", 0)),
            help="Records not watched at start-up and after each reset/rollback/swap, while "
            "a fresh model's error falls (then 100 more set the detector's unit).",
        ),
        click.option(
            "--on-drift",
            default="alert",
            show_default=True,
            type=click.Choice(ON_DRIFT),
            envvar="STREAMLEARN_ON_DRIFT",
            help="On a detection: alert (log and count), reset (a fresh model), rollback (the "
            "--warm-start model; alert without one), background (train a challenger and swap "
            "it in when its recent error is lower).",
        ),
        click.option(
            "--drift-swap-window",
            default=DEFAULT_SWAP_WINDOW,
            show_default=True,
            type=int,
            envvar="STREAMLEARN_DRIFT_SWAP_WINDOW",
            callback=_click_check(lambda v: _check_count(v, "--drift-swap-window", 10)),
            help="background: records over which the challenger's MAE must beat the model's "
            f"(dropped after {SWAP_PATIENCE} windows without winning).",
        ),
        click.option(
            "--drift-cooldown",
            default=DEFAULT_COOLDOWN,
            show_default=True,
            type=int,
            envvar="STREAMLEARN_DRIFT_COOLDOWN",
            callback=_click_check(lambda v: _check_count(v, "--drift-cooldown", 0)),
            help="Records after an acted-on detection in which further detections are only "
            "recorded, so one change is acted on once.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func
