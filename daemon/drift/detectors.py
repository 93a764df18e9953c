"""Drift detectors, and the watch that feeds one signal to one of them in its own unit.

Detectors (``--drift-detector``, default ``adwin`` for every task):

What each is for is measured by ``bench/bench_drift.py`` on a regressor's error and by
``bench/bench_drift_classify.py`` on a classifier's 0/1 error (their tables are in
bench/README.md, "Drift detectors"):

- ``adwin``: ``ADWIN(delta=0.002)``, :class:`streamlearn.drift.adwin.ADWIN`: River's
  ``drift.ADWIN`` to the last bit, compiled (C). The default: its bound uses the observed
  variance, so it suits an unbounded, skewed signal such as an absolute error; it catches
  abrupt and gradual changes alike and stays quiet on a stationary stream, and it is cheap,
  fed an array at a time. It tests every 32 values, so a detection may come up to 32
  records later than a test on every value would.
- ``page-hinkley``: ``PageHinkley(delta=0.1, threshold=50, min_instances=30)`` on the
  unit-free signal (``delta`` = rises below 10 % of the reference error are tolerated).
  Slower than ADWIN on abrupt rises, somewhat quicker on gradual ones, but its
  cumulative sums raise false alarms on a long stationary stream, more with heavy-tailed
  errors: for short runs watched by a person. Its telemetry and event name is
  ``page_hinkley``.
- ``kswin``: ``KSWIN(alpha=1e-5, window_size=100, stat_size=30, seed=0)``: a
  Kolmogorov-Smirnov test per value, about 1 ms a record; at this ``alpha`` it missed most
  changes of the error in the bench (every one of a classifier's).

For a classifier only, River's detectors of a 0/1 stream (``river.drift.binary``), fed the
0/1 error as it is (no reference block: its unit is 1), one-sided (a rise of the error rate):
``ddm`` (``DDM(warm_start=300)``), ``eddm`` (``EDDM(warm_start=300)``), ``hddm-a``
(``HDDMA()``) and ``hddm-w`` (``HDDMW()``); events and telemetry name them ``ddm``, ``eddm``,
``hddm_a``, ``hddm_w``. River's ``warm_start=30`` measures the error rate on too few records:
DDM's minimum rate and EDDM's maximum distance between errors are then set by chance, and
both false-alarmed several times as often (EDDM about 60 times) and missed more changes. On
the bench's streams they are all behind ADWIN, which stays the default for a classifier:
slower (DDM, HDDM_A), noisier (EDDM), or both missing changes a growing tree or a logistic
regression makes (HDDM_W).

The error's warm-up follows the model's learning curve: it lasts ``--drift-warmup`` records,
then as many again while the error still falls (the mean of a round's second half below its
first half's by more than ``FALLING`` times the error's level at the start), up to
``MAX_WARMUP_ROUNDS`` rounds. A model that grows (a Hoeffding tree splits a leaf every few
hundred records) keeps learning well past a fixed warm-up, and its learning curve, bumps
included, is not drift. Only a round whose second half's error is ``WARMUP_RISE`` times its
first half's counts as a change during the warm-up (flagged at the round's end), and the
warm-up goes on after it; for a 0/1 error the rise must also exceed what chance gives with
probability ``WARMUP_DELTA`` (a rare error's rate doubles by chance: 2 errors then 4). A
feature's warm-up is the fixed one.

A signal's unit comes from a reference block: the ``REFERENCE_RECORDS`` values after its
warm-up. The error is divided by its mean over the block (a 0/1 error by at least one
error in the block), a feature is centred and divided by its standard deviation, so the
detectors' thresholds mean the same for errors of 0.001 and of 1000. On the error only a
rise counts: PageHinkley runs with ``mode="up"``; ADWIN and KSWIN (two-sided) count a
detection only when the recent part's mean is above the older part's. Features use the
two-sided test. Figures: ``docs/design.md``.
"""

from __future__ import annotations

import math
from collections import deque
from functools import reduce
from operator import add
from typing import Any

from streamlearn.drift.config import BINARY_DETECTORS, DETECTOR_CHOICES, DriftConfigError

__all__ = [
    "FALLING",
    "MAX_WARMUP_ROUNDS",
    "REFERENCE_RECORDS",
    "WARMUP_RISE",
    "SignalWatch",
    "make_detector",
]

#: Values of a signal that set its unit (mean error; feature mean and deviation).
REFERENCE_RECORDS = 100
#: The error still falls when a warm-up round's second half is below its first half by more
#: than this fraction of the error's level at the start (the first round's first half).
FALLING = 0.05
#: The error's warm-up lasts at most this many rounds of ``--drift-warmup`` records.
MAX_WARMUP_ROUNDS = 20
#: In the warm-up, a round whose second half's mean error is this many times its first
#: half's is a change (a model's own learning curve does not double its error).
WARMUP_RISE = 2.0
#: A 0/1 error's warm-up rise is a change when chance gives it at most this probability
#: (ADWIN's ``delta``).
WARMUP_DELTA = 0.002
#: The smallest unit a signal may get: a perfect model's reference error is 0.
_MIN_SCALE = 1e-12


def _chance_rise(first: int, second: int) -> float:
    """How much the mean of ``second`` values in [0, 1] may exceed the mean of ``first``
    others by chance, with probability at most ``WARMUP_DELTA`` (Hoeffding's bound on a
    difference of two means: ``2 exp(-2 t^2 / (1/first + 1/second))``).

    >>> round(_chance_rise(250, 250), 3)
    0.166
    """
    return math.sqrt((1.0 / first + 1.0 / second) * math.log(2.0 / WARMUP_DELTA) / 2.0)


def make_detector(name: str, *, rising: bool) -> Any:
    """A drift detector by event name, tuned for a unit-free signal (see the module doc).

    ``adwin`` is :class:`streamlearn.drift.adwin.ADWIN` (River's results, compiled); the others
    are River's. ``rising`` asks PageHinkley for its one-sided ``mode="up"``; ADWIN and
    KSWIN are two-sided and are filtered by :class:`SignalWatch` instead.

    >>> make_detector("page_hinkley", rising=True).mode
    'up'
    >>> make_detector("adwin", rising=True)
    ADWIN(delta=0.002, clock=32, max_buckets=5, min_window_length=5, grace_period=10)
    """
    if name == "adwin":
        from streamlearn.drift.adwin import ADWIN

        return ADWIN(delta=0.002)
    # Imported here, when the first detector is built (after warm-up and the reference
    # block): river.drift pulls in scikit-learn, which a replay of a short file should not
    # pay for.
    from river import drift

    if name == "page_hinkley":
        return drift.PageHinkley(
            min_instances=30, delta=0.1, threshold=50.0, mode="up" if rising else "both"
        )
    if name == "kswin":
        return drift.KSWIN(alpha=1e-5, window_size=100, stat_size=30, seed=0)
    # River's binary detectors: they read the 0/1 error as it is (see the module doc).
    if name == "ddm":
        return drift.binary.DDM(warm_start=300)
    if name == "eddm":
        return drift.binary.EDDM(warm_start=300)
    if name == "hddm_a":
        return drift.binary.HDDMA()
    if name == "hddm_w":
        return drift.binary.HDDMW()
    known = ", ".join(DETECTOR_CHOICES.values())
    raise DriftConfigError(f"unknown drift detector {name!r}; known: {known}")


def _ours(detector: Any) -> bool:
    """Whether ``detector`` is our compiled ADWIN (fed arrays; it counts what it was fed)."""
    from streamlearn.drift.adwin import ADWIN

    return isinstance(detector, ADWIN)


class SignalWatch:
    """One signal: warm-up, then a reference block that sets its unit, then a detector.

    ``converge``: the warm-up goes on in rounds of ``warmup`` values while the signal still
    falls (the error's learning curve; see the module doc).
    """

    def __init__(
        self,
        signal: str,
        detector: str,
        *,
        rising: bool,
        centre: bool,
        warmup: int,
        converge: bool = False,
        zero_one: bool = False,
    ):
        self.signal = signal
        self.feature = signal.removeprefix("feature:")
        self.detector_name = detector
        self.rising = rising
        # Errors are divided by their mean (0 stays 0); features are centred and scaled.
        self.centre = centre
        self.converge = converge
        # A classifier's 0/1 error: a warm-up rise must also be more than chance (see
        # ``_end_round``), as a rare error's rate doubles by chance.
        self.zero_one = zero_one
        self.restart(warmup)

    def restart(self, warmup: int) -> None:
        self.warmup_left = warmup
        # Warm-up rounds (``converge``): their length, how many ran, and the sums of the
        # current round's two halves (added value by value, in order, on both paths).
        self.round_length = warmup if self.converge else 0
        self.warmup_rounds = 0
        self._first_half = 0.0
        self._second_half = 0.0
        self._initial_level = 0.0  # the first half's mean in the first round
        self.reference: list[float] = []
        self.offset = 0.0
        self.inv_scale = 1.0
        self.scale: float | None = None
        self.detector: Any = None
        self.ready = False
        # Our ADWIN (``streamlearn.drift.adwin``): fed arrays by ``update_many``, and it
        # keeps the sum and count of what it was fed since its last reset itself.
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
    def binary(self) -> bool:
        """A detector of a 0/1 stream: it reads the values as they are (no reference block)."""
        return self.detector_name in BINARY_DETECTORS

    @property
    def phase(self) -> str:
        if self.ready:
            return "monitoring"
        return "warmup" if self.warmup_left > 0 else "reference"

    def update(self, value: float) -> bool:
        """Feed one value; True when it completes a detection that counts."""
        if not self.ready:
            return self._prime(value)
        value = (value - self.offset) * self.inv_scale
        detector = self.detector
        if self._compiled_adwin:  # it resets itself on the update after a detection
            return bool(detector.update(value)) and (not self.rising or self._rose())
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
            start, hit = self._prime_many(values)
            if hit >= 0:
                return hit
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

    def _prime(self, value: float) -> bool:
        """Warm-up and reference block, one value; True for a rise flagged in the warm-up."""
        if self.warmup_left > 0:
            # ``_warm([value])`` without its lists and slices (each key of a keyed run has
            # its own monitor, in its warm-up for the key's first hundreds of records).
            length = self.round_length
            if length:
                if length - self.warmup_left < length // 2:
                    self._first_half += value
                else:
                    self._second_half += value
            self.warmup_left -= 1
            rose = self.warmup_left == 0 and length > 0 and self._end_round()
            if self.warmup_left == 0 and self.binary:
                self._start_detector()
            return rose
        if self.binary:  # no warm-up at all: the detector starts with this value
            self._start_detector()
            return self.update(value)
        self.reference.append(value)
        if len(self.reference) == REFERENCE_RECORDS:
            self._start_detector()
        return False

    def _prime_many(self, values: Any) -> tuple[int, int]:
        """``_prime`` over the head of an array: how many values it took, and the index of
        one that completed a warm-up round flagged as a rise (it is the last taken), or -1."""
        size = len(values)
        start, hit = self._warm(values)
        if self.binary:
            if self.warmup_left == 0:
                self._start_detector()
            return start, hit
        if hit >= 0:
            return start, hit
        take = min(REFERENCE_RECORDS - len(self.reference), size - start)
        if take > 0:
            self.reference.extend(values[start : start + take].tolist())
            if len(self.reference) == REFERENCE_RECORDS:
                self._start_detector()
        return start + max(take, 0), -1

    def _warm(self, values: Any) -> tuple[int, int]:
        """Feed the head of ``values`` (a list or an array) to the warm-up while it lasts:
        how many it took, and the index of the value that completed a round flagged as a
        rise (the last one taken), or -1."""
        size = len(values)
        at = 0
        while at < size and self.warmup_left > 0:
            take = min(self.warmup_left, size - at)
            if self.round_length:
                chunk = values[at : at + take]
                self._add_to_round(chunk if isinstance(chunk, list) else chunk.tolist())
            self.warmup_left -= take
            at += take
            if self.warmup_left == 0 and self.round_length and self._end_round():
                return at, at - 1
        return at, -1

    def _add_to_round(self, chunk: list[float]) -> None:
        """Add the next values of the round to its halves' sums (one at a time, in order:
        the same bits whether they come one by one or as an array)."""
        length = self.round_length
        done = length - self.warmup_left  # values of this round so far
        split = min(max(length // 2 - done, 0), len(chunk))  # the first half's values
        # Left folds of ``+``: the additions of a loop, in its order, at C speed
        if split:
            self._first_half = reduce(add, chunk[:split], self._first_half)
        if split < len(chunk):
            self._second_half = reduce(add, chunk[split:], self._second_half)

    def _end_round(self) -> bool:
        """A warm-up round is complete: another one while the signal still falls, or after
        it rose by ``WARMUP_RISE`` (then True: that rise is a detection)."""
        length = self.round_length
        half = length // 2
        self.warmup_rounds += 1
        first = self._first_half / half if half else 0.0
        second = self._second_half / (length - half)
        if self.warmup_rounds == 1:
            self._initial_level = first
        rose = half > 0 and second > WARMUP_RISE * first
        if rose and self.zero_one:
            rose = second - first > _chance_rise(half, length - half)
        falling = half > 0 and first - second > FALLING * self._initial_level
        self._first_half = self._second_half = 0.0
        if (rose or falling) and self.warmup_rounds < MAX_WARMUP_ROUNDS:
            self.warmup_left = length
        return rose

    def follow_learning_curve(self, warmup: int) -> None:
        """Warm up in rounds of ``warmup`` from now on (``converge``): for an error watch
        pickled when the warm-up was a fixed one. A watch past it counts it as one round; one
        still in it ends it unjudged (the sums of its halves were not kept)."""
        self.converge = True
        if self.warmup_left == 0 and warmup > 0:
            self.round_length = warmup
            self.warmup_rounds = 1

    def _start_detector(self) -> None:
        """The reference block is complete (a binary detector: the warm-up is over): set the
        unit and build the detector."""
        if self.binary:
            self.scale = self.inv_scale = 1.0
            self.detector = make_detector(self.detector_name, rising=self.rising)
            self.ready = True
            return
        n = len(self.reference)
        mean = math.fsum(self.reference) / n
        if self.centre:
            # Two passes over the block: no cancellation for features far from 0.
            spread = math.sqrt(math.fsum((v - mean) ** 2 for v in self.reference) / n)
            self.offset = mean
        elif self.zero_one:
            # A block without an error cannot tell a rate below one error in it: without
            # this floor a perfect block would make the next error a rise of 10^12.
            spread = max(mean, 1.0 / n)
        else:
            spread = mean
        self.scale = max(spread, _MIN_SCALE)
        self.inv_scale = 1.0 / self.scale
        self.reference = []
        self.detector = make_detector(self.detector_name, rising=self.rising)
        self._compiled_adwin = _ours(self.detector)
        if self.detector_name == "kswin" and self.rising:
            self._recent = deque(maxlen=self.detector.window_size)
        self.ready = True

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"phase": self.phase}
        if self.round_length:
            out["warmup_rounds"] = self.warmup_rounds
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
        # A watch pickled before the warm-up followed the learning curve: a fixed warm-up.
        for name, default in (
            ("converge", False),
            ("zero_one", False),
            ("round_length", 0),
            ("warmup_rounds", 0),
            ("_first_half", 0.0),
            ("_second_half", 0.0),
            ("_initial_level", 0.0),
        ):
            state.setdefault(name, default)
        self.__dict__.update(state)
        self.__dict__.setdefault("_compiled_adwin", False)
        river_adwin = (
            self.detector_name == "adwin" and self.detector is not None and not _ours(self.detector)
        )
        if river_adwin:
            # River's ADWIN, from a checkpoint written before ours: the same detector,
            # converted exactly (River's is kept if its state cannot be read).
            from streamlearn.drift.adwin import ADWIN

            converted = ADWIN.from_river(self.detector, seen=(self._fed_n, self._fed_total))
            if converted is not None:
                self.detector = converted
                self._compiled_adwin = True
