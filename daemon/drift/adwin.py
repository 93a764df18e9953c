"""ADWIN drift detection, compiled: River's ``drift.ADWIN`` results without its per-value calls.

:class:`ADWIN` takes River's parameters and gives River's results: the same detections
at the same values, and ``width``, ``total``, ``variance``, ``estimation`` and
``n_detections`` equal to the last bit after every update (the tests compare them on
random streams). It is an exponential histogram (Bifet and Gavalda's ADWIN2): row ``i``
of the bucket list holds up to ``max_buckets`` summaries of ``2**i`` values each; every
``clock`` values each cut of the window into an older and a newer part is tested, and
while one cut shows different means the oldest bucket is dropped. River's version fixes
the order of every floating-point operation; this one keeps that order, so the rounding
is the same too.

Why our own: River's detector takes one Python call per record, and importing it
imports scikit-learn (docs/design.md). Here the whole state is one float64 buffer and
the update loop is one function, ``feed_values`` (its Python specification is in
``streamlearn.fast.spec``, run as its C rendering in ``streamlearn.fast._kernels``);
:meth:`ADWIN.update_many` runs it over a whole array and stops right after the first
detection, so the caller can act there. Without the extension, or with
``STREAMLEARN_FASTPATH=0``, the Python function runs (on a list: same results, slower).

The buffer is a numpy array; a detector pickles the rows in use only. River's detectors
found in old checkpoints convert exactly (:meth:`ADWIN.from_river`). Two settings River
accepts are refused: ``max_buckets=1`` (River's detector panics once a deletion meets an
emptied row) and ``delta`` outside (0, 1).
"""

from __future__ import annotations

import functools
import logging
import os
import struct
from collections.abc import Callable, MutableSequence, Sequence
from typing import Any, Generic, TypeVar, overload

import numpy as np
from numpy.typing import NDArray

from streamlearn.fast.spec import (
    CLOCK,
    DELTA,
    DETECTED,
    DETECTIONS,
    GRACE,
    HEADER,
    MAX_BUCKETS,
    MAX_ROWS,
    MIN_LENGTH,
    ROWS,
    SEEN,
    SEEN_TOTAL,
    TICK,
    TOTAL,
    VARIANCE,
    WIDTH,
    feed_values,
)

__all__ = ["ADWIN", "feed_values"]

Number = TypeVar("Number", int, float)

log = logging.getLogger(__name__)

#: The state buffer: a float64 array for the compiled kernel, a list for the Python one.
Buffer = MutableSequence[float] | NDArray[np.float64]
#: ``feed_values`` compiled or as Python (the values are an array, or a list for Python).
Kernel = Callable[[Buffer, Sequence[float] | NDArray[np.float64], int, int], int]


@functools.cache
def compiled_kernel() -> Kernel | None:
    """:func:`feed_values` compiled (``streamlearn.fast._kernels``), or None if not built."""
    try:
        from streamlearn.fast import _kernels
    except ImportError:
        log.info("the compiled kernels are missing: ADWIN runs as Python (same results, slower)")
        return None
    kernel: Kernel = _kernels.feed_values
    return kernel


def _want_compiled(compiled: bool | None) -> bool:
    if compiled is None:
        compiled = os.environ.get("STREAMLEARN_FASTPATH", "1") != "0"
    return bool(compiled) and compiled_kernel() is not None


class _Figure(Generic[Number]):
    """A read-only figure of the window: one slot of the state buffer, as ``kind``."""

    def __init__(self, slot: int, kind: Callable[[Any], Number], doc: str) -> None:
        self.slot = slot
        self.kind: Callable[[Any], Number] = kind
        self.__doc__ = doc

    @overload
    def __get__(self, adwin: None, owner: type[ADWIN]) -> _Figure[Number]: ...
    @overload
    def __get__(self, adwin: ADWIN, owner: type[ADWIN]) -> Number: ...
    def __get__(self, adwin: ADWIN | None, owner: type[ADWIN]) -> Number | _Figure[Number]:
        if adwin is None:
            return self
        return self.kind(adwin._current()[self.slot])

    def __set__(self, adwin: ADWIN, value: object) -> None:
        raise AttributeError("the window's figures are read-only")


class ADWIN:
    """ADaptive WINdowing drift detector with River's parameters and results, compiled.

    Parameters
    ----------
    delta
        Significance value, in (0, 1).
    clock
        Cuts are tested every ``clock`` values.
    max_buckets
        Buckets of each size kept before the two oldest are merged (at least 2).
    min_window_length
        The smallest sub-window a cut may leave on either side.
    grace_period
        No test while the window holds this many values or fewer.
    compiled
        Run the compiled loop (None: when it is built and ``STREAMLEARN_FASTPATH`` is not
        ``0``); False runs the same loop as Python. Results are the same.

    Examples
    --------
    Two regimes; the change is flagged soon after it (as River's ``ADWIN`` flags it):

    >>> import random
    >>> rng = random.Random(12345)
    >>> stream = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
    >>> adwin = ADWIN()
    >>> [i for i, x in enumerate(stream) if adwin.update(x)]
    [1023]

    ``update_many`` feeds an array and stops right after a detection:

    >>> import numpy as np
    >>> adwin = ADWIN()
    >>> values = np.array(stream, dtype=float)
    >>> adwin.update_many(values)
    1023
    >>> adwin.drift_detected, adwin.width < 1024, adwin.n_detections
    (True, True, 1)
    >>> adwin.update_many(values[1024:])
    -1
    >>> adwin.n_detections, adwin.width, round(adwin.estimation, 3)
    (0, 976.0, 5.467)
    """

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
        *,
        compiled: bool | None = None,
    ) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be between 0 and 1 (exclusive), got {delta!r}")
        # max_buckets=1 empties rows of the bucket list, and River's ADWIN then panics on a
        # deletion from an empty row: refused here rather than imitated.
        for name, value, minimum in (
            ("clock", clock, 1),
            ("max_buckets", max_buckets, 2),
            ("min_window_length", min_window_length, 0),
        ):
            if int(value) != value or value < minimum:
                raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
        if int(grace_period) != grace_period:
            raise ValueError(f"grace_period must be a whole number, got {grace_period!r}")
        self.delta = float(delta)
        self.clock = int(clock)
        self.max_buckets = int(max_buckets)
        self.min_window_length = int(min_window_length)
        self.grace_period = int(grace_period)
        self._attach(compiled)
        buf = np.zeros(HEADER + MAX_ROWS * self._stride)
        buf[[DELTA, CLOCK, MAX_BUCKETS, MIN_LENGTH, GRACE]] = (
            self.delta,
            self.clock,
            self.max_buckets,
            self.min_window_length,
            self.grace_period,
        )
        buf[ROWS] = 1.0
        self._buf: Buffer = buf if self.compiled else buf.tolist()
        self._schedule()

    def _attach(self, compiled: bool | None) -> None:
        """Choose the kernel (compiled or Python) and the scratch it needs."""
        self.compiled = _want_compiled(compiled)
        self._stride = 2 * (self.max_buckets + 1) + 1
        if self.compiled:
            kernel = compiled_kernel()
            assert kernel is not None
            self._kernel: Kernel = kernel
        else:
            self._kernel = feed_values
        self._pending: list[float] = []  # values fed by update() that wait for a tested one
        self._countdown = 1  # how many may wait: the last of them is tested

    # -- feeding -----------------------------------------------------------------

    def update(self, x: float) -> bool:
        """Feed one value; returns ``drift_detected`` (River's ``update`` returns None).

        After a detection, the next update starts a fresh window (as River does).
        """
        # Cuts are tested on every `clock`-th value only: the values between wait in a
        # list and go to the kernel together with the next tested one (one call a clock).
        pending = self._pending
        pending.append(x)
        if len(pending) < self._countdown:
            return False
        return self._flush() >= 0

    def update_many(self, values: Sequence[float] | np.ndarray) -> int:
        """Feed values in order; the index of the first that completes a detection, or -1.

        It stops right after that value: the rest is not fed, so the caller can act on
        the detection and call again with ``values[index + 1:]``. The same results as
        ``update`` value by value.
        """
        array = np.ascontiguousarray(values, dtype=np.float64)
        if array.ndim != 1:
            raise ValueError(f"update_many takes a 1-d array of values, got shape {array.shape}")
        if self._pending:
            self._flush()  # values waiting from update() come first; none of them detects
        feed = array if self.compiled else array.tolist()
        return self._hit(self._kernel(self._buf, feed, 0, len(array)))

    def _flush(self) -> int:
        """Feed the waiting values; the index of a detection among them, or -1."""
        values = np.array(self._pending, dtype=np.float64)
        self._pending = []
        feed = values if self.compiled else values.tolist()
        return self._hit(self._kernel(self._buf, feed, 0, len(values)))

    def _hit(self, result: int) -> int:
        """The detection index from the kernel's result; notes when the next test comes."""
        if result >= 0:
            self._countdown = self.clock  # the next value starts a fresh window
            return int(result)
        self._countdown = -int(result)
        return -1

    def _schedule(self) -> None:
        """Count the values until the next tested one, from the state alone."""
        nothing: list[float] | NDArray[np.float64] = np.empty(0) if self.compiled else []
        self._hit(self._kernel(self._buf, nothing, 0, 0))

    def _current(self) -> Buffer:
        """The state buffer with every value fed so far."""
        if self._pending:
            self._flush()
        return self._buf

    # -- what River's ADWIN exposes ------------------------------------------------

    @property
    def drift_detected(self) -> bool:
        """Whether the last value fed completed a detection."""
        # A waiting value is never a detection (it was not a tested one).
        return not self._pending and bool(self._buf[DETECTED] != 0.0)

    width = _Figure(WIDTH, float, "Values in the window (a float, as River's).")
    total = _Figure(TOTAL, float, "The sum of the values in the window.")
    variance = _Figure(
        VARIANCE,
        float,
        "The window's sum of squared deviations from its mean (River's ``variance``).",
    )

    @property
    def estimation(self) -> float:
        """The window's mean (0 for an empty window)."""
        width = self.width
        return 0.0 if width == 0 else self.total / width

    n_detections = _Figure(
        DETECTIONS,
        int,
        "Detections since the detector last started anew (River's: 1 right after one, then 0).",
    )
    seen = _Figure(
        SEEN,
        int,
        "Values fed since the detector last started anew (the window keeps the recent ones).",
    )
    seen_total = _Figure(
        SEEN_TOTAL,
        float,
        "Their sum, added in order: with ``total`` it gives the mean of the dropped part.",
    )

    def __repr__(self) -> str:
        return (
            f"ADWIN(delta={self.delta}, clock={self.clock}, max_buckets={self.max_buckets}, "
            f"min_window_length={self.min_window_length}, grace_period={self.grace_period})"
        )

    # -- pickling and conversion ---------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        buf = self._current()
        used = HEADER + int(buf[ROWS]) * self._stride
        return {
            "delta": self.delta,
            "clock": self.clock,
            "max_buckets": self.max_buckets,
            "min_window_length": self.min_window_length,
            "grace_period": self.grace_period,
            "buf": np.array(buf[:used], dtype=np.float64),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in ("delta", "clock", "max_buckets", "min_window_length", "grace_period"):
            setattr(self, name, state[name])
        self._attach(None)  # the mode this process runs in, not the one that pickled it
        used = np.asarray(state["buf"], dtype=np.float64)
        buf = np.zeros(HEADER + MAX_ROWS * self._stride)
        buf[: len(used)] = used
        self._buf = buf if self.compiled else buf.tolist()
        self._schedule()

    @classmethod
    def from_river(
        cls,
        detector: Any,
        *,
        seen: tuple[int, float] = (0, 0.0),
        compiled: bool | None = None,
    ) -> ADWIN | None:
        """The same detector as River's ``drift.ADWIN`` ``detector``, mid-stream (None: unreadable).

        Reads the state River pickles (its Rust struct, serialized field by field) and
        checks it against what River reports; a River whose layout differs gives None.
        River does not count what it was fed: ``seen`` gives ``(seen, seen_total)``.
        """
        try:
            adwin = cls(
                delta=detector.delta,
                clock=detector.clock,
                max_buckets=detector.max_buckets,
                min_window_length=detector.min_window_length,
                grace_period=detector.grace_period,
                compiled=compiled,
            )
            fields = _read_river_state(detector._helper.__getstate__(), adwin.max_buckets)
            buf = np.array(adwin._buf, dtype=np.float64)
            buf[[TOTAL, VARIANCE, WIDTH, TICK, DETECTIONS]] = fields["scalars"]
            buf[ROWS] = len(fields["rows"])
            for row, entries in enumerate(fields["rows"]):
                base = HEADER + row * adwin._stride
                cap = adwin.max_buckets + 1
                buf[base] = len(entries)
                for k, (row_total, row_variance) in enumerate(entries):
                    buf[base + 1 + k] = row_total
                    buf[base + 1 + cap + k] = row_variance
            buf[DETECTED] = 1.0 if detector.drift_detected else 0.0
            buf[SEEN], buf[SEEN_TOTAL] = seen
            adwin._buf = buf if adwin.compiled else buf.tolist()
            adwin._schedule()
        except Exception as exc:  # any surprise in a foreign format: keep River's detector
            log.info("cannot read River's ADWIN state (%s): keeping River's detector", exc)
            return None
        same = (
            adwin.width == detector.width
            and adwin.total == detector.total
            and adwin.variance == detector.variance
            and adwin.n_detections == detector.n_detections
            and adwin.width == sum((1 << r) * len(e) for r, e in enumerate(fields["rows"]))
        )
        if not same:
            log.info("River's ADWIN state reads differently than it reports: keeping River's")
            return None
        return adwin


def _read_river_state(data: bytes, max_buckets: int) -> dict[str, Any]:
    """River 0.26's ``AdaptiveWindowing`` state: fixed-width little-endian fields in order.

    delta f64, clock i32, max_buckets u64, min_window_length f64, grace_period f64;
    total, variance, width, total_width f64; n_buckets, max_n_buckets, tick,
    n_detections i32; then the bucket list: a u64 length and, per row, max_size u64,
    count u64, and the totals and variances (each a u64 length and f64 values).
    """
    pos = 0

    def take(fmt: str) -> Any:
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    _delta, _clock, stored_buckets, _min_length, _grace = take("diQdd")
    if stored_buckets != max_buckets:
        raise ValueError(f"max_buckets {stored_buckets} in the state, {max_buckets} in the object")
    total, variance, width, _total_width = take("dddd")
    _n_buckets, _max_n_buckets, tick, detections = take("iiii")
    (n_rows,) = take("Q")
    if not 1 <= n_rows <= MAX_ROWS:
        raise ValueError(f"{n_rows} rows")
    rows: list[list[tuple[float, float]]] = []
    for _ in range(n_rows):
        _size, count = take("QQ")
        (n_totals,) = take("Q")
        totals = take(f"{n_totals}d")
        (n_variances,) = take("Q")
        variances = take(f"{n_variances}d")
        if not count <= max_buckets + 1 == n_totals == n_variances:
            raise ValueError(f"a row of {count} buckets in {n_totals} slots")
        rows.append(list(zip(totals[:count], variances[:count], strict=True)))
    return {"scalars": (total, variance, width, float(tick), float(detections)), "rows": rows}
