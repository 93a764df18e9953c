"""The baseline guard of a warm start: serve the frozen model A while the learning B is worse.

Beside B, the learner keeps A as it was (the baseline) and scores both on every labeled
record. The guard compares their absolute errors over the same records and decides which
of them serves the predictions that leave the daemon (``/predict``, the predictions of
unlabeled records): A serves first; B takes over once it has been scored on
``MIN_EVIDENCE`` records (or the whole rolling window, if shorter) and its MAE over them is
below A's; A serves again as soon as B's MAE over the window is worse than A's by more than
``margin`` (relative: ``B > (1 + margin) A``), or the served predictions' own rolling MAE is
worse than A's by more than half the margin (so that the records served after that
decision, until B's window shows it, keep the served MAE within the margin). So a B that a
too large learning rate ruins is never served for long, and one that learns the new task
better than A serves as soon as that shows.

``on_worse`` (``--on-worse-than-baseline``) says what else happens when B is worse by the
margin: ``serve-baseline`` (the default: B keeps learning and may take over again later),
``reset`` (once B has been worse over a whole window since its start, it restarts from its
warm start, a copy of B kept for it, and has to prove itself again) or ``alert`` (B keeps
serving; the guard logs when it turns worse).
"""

from __future__ import annotations

import copy
import logging
import math
from array import array
from collections import deque
from dataclasses import dataclass
from typing import Any

from streamlearn import metrics
from streamlearn.metrics import Metric, rolling_scores

__all__ = [
    "DEFAULT_MARGIN",
    "MIN_EVIDENCE",
    "ON_WORSE",
    "BaselineGuard",
    "GuardOptions",
    "guard_for",
]

log = logging.getLogger(__name__)

#: What ``--on-worse-than-baseline`` may ask for.
ON_WORSE: tuple[str, ...] = ("serve-baseline", "reset", "alert")
#: B is worse than A when its MAE over the window exceeds A's by more than this fraction.
DEFAULT_MARGIN = 0.05
#: Records B must be scored on (since its start or reset) before it may serve, unless the
#: rolling window is shorter: a hundred absolute errors tell a mean apart to about 10 %.
MIN_EVIDENCE = 100
#: Switches and resets kept for ``inspect``.
MAX_EVENTS = 100


@dataclass(frozen=True)
class GuardOptions:
    """How the guard judges B against A.

    >>> GuardOptions(margin=0.1, on_worse="reset").on_worse
    'reset'
    >>> try:
    ...     GuardOptions(margin=-1.0)
    ... except ValueError as exc:
    ...     print(exc)
    the baseline margin must be a finite fraction >= 0 (0.05 = 5 % worse), got -1.0
    """

    margin: float = DEFAULT_MARGIN
    on_worse: str = "serve-baseline"

    def __post_init__(self) -> None:
        if not (isinstance(self.margin, int | float) and math.isfinite(self.margin)):
            raise ValueError(self._margin_message())
        if self.margin < 0:
            raise ValueError(self._margin_message())
        if self.on_worse not in ON_WORSE:
            raise ValueError(
                f"--on-worse-than-baseline must be one of {', '.join(ON_WORSE)}; "
                f"got {self.on_worse!r}"
            )

    def _margin_message(self) -> str:
        return (
            "the baseline margin must be a finite fraction >= 0 (0.05 = 5 % worse), "
            f"got {self.margin!r}"
        )


def _zeros(size: int) -> array[float]:
    return array("d", bytes(8 * size))


class BaselineGuard:
    """Scores B and A on the same records and says which one serves (see the module doc).

    Parameters
    ----------
    window
        Records over which B, A and the served predictions are compared (the learner's
        rolling window).
    options
        The margin and what to do when B is worse.
    start
        B as it was warm-started, kept (a copy) for ``reset``; unused otherwise.

    Examples
    --------
    A B that is off by 0.5 where A is off by 1 takes over once it has been scored on
    ``MIN_EVIDENCE`` records; when it gets off by 3, A serves again at once:

    >>> guard = BaselineGuard(window=200)
    >>> for _ in range(99):
    ...     _ = guard.score(0.0, 0.5, 1.0)
    >>> guard.serving
    'baseline'
    >>> guard.score(0.0, 0.5, 1.0)   # True would ask for a reset (on_worse="reset" only)
    False
    >>> guard.serving
    'model'
    >>> _ = guard.score(0.0, 3.0, 1.0)
    >>> guard.serving
    'model'
    >>> _ = guard.score(0.0, 3.0, 1.0)   # the served MAE is now over 1.025 times A's
    >>> guard.serving, guard.switches
    ('baseline', 2)
    >>> summary = guard.summary()
    >>> round(summary["served_metrics"]["mae"], 4), summary["baseline_rolling_metrics"]["mae"]
    (1.0392, 1.0)
    """

    def __init__(self, window: int, options: GuardOptions | None = None, start: Any = None):
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self.options = options or GuardOptions()
        self.start = copy.deepcopy(start) if self.options.on_worse == "reset" else None
        #: ``"baseline"`` (A serves) or ``"model"`` (B serves).
        self.serving = "model" if self.options.on_worse == "alert" else "baseline"
        self._warned_worse = False
        self.switches = 0
        self.resets = 0
        #: Records scored since B started (or was last reset): its evidence.
        self.model_records = 0
        self.scored = 0
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.served_metrics: dict[str, Metric] = metrics.new_metrics()
        # Rings of the last ``window`` records, slot for slot: the target and the
        # predictions of B, of A and of the one served.
        self._y = _zeros(window)
        self._model = _zeros(window)
        self._base = _zeros(window)
        self._served = _zeros(window)
        self._next = 0
        self._len = 0
        # Running sums of |y - yhat| over the rings, and of B's and A's errors since B's
        # start (B's evidence while its start is less than a window ago).
        self._sum_model = self._sum_base = self._sum_served = 0.0
        self._since_model = self._since_base = 0.0

    @property
    def serving_baseline(self) -> bool:
        """True while A's predictions are the ones served."""
        return self.serving == "baseline"

    def served(self, model_yhat: float, base_yhat: float) -> float:
        """The prediction served, of B's and A's for the same record."""
        return base_yhat if self.serving == "baseline" else model_yhat

    def score(self, y: float, model_yhat: float, base_yhat: float) -> bool:
        """One labeled record scored by B and A (both predicted before learning it).

        Scores the prediction that was served, then decides who serves the next record.
        Returns True when B is to restart from its warm start (``on_worse="reset"``): the
        caller swaps the model for :meth:`restart_model`.
        """
        served = self.served(model_yhat, base_yhat)
        for metric in self.served_metrics.values():
            metric.update(y, served)
        self._push(y, model_yhat, base_yhat, served)
        return self._decide()

    def _push(self, y: float, model_yhat: float, base_yhat: float, served: float) -> None:
        slot = self._next
        if self._len == self.window:
            old_y = self._y[slot]
            self._sum_model -= abs(old_y - self._model[slot])
            self._sum_base -= abs(old_y - self._base[slot])
            self._sum_served -= abs(old_y - self._served[slot])
        else:
            self._len += 1
        self._y[slot], self._model[slot], self._base[slot] = y, model_yhat, base_yhat
        self._served[slot] = served
        model_error, base_error = abs(y - model_yhat), abs(y - base_yhat)
        self._sum_model += model_error
        self._sum_base += base_error
        self._sum_served += abs(y - served)
        self._since_model += model_error
        self._since_base += base_error
        self._next = 0 if slot + 1 == self.window else slot + 1
        self.scored += 1
        self.model_records += 1
        if self.scored % self.window == 0:
            self._resum()  # add-then-subtract sums drift over months: sum afresh now and then

    def _resum(self) -> None:
        n = self._len
        ys = self._y[:n]
        self._sum_model = math.fsum(abs(y - p) for y, p in zip(ys, self._model[:n], strict=True))
        self._sum_base = math.fsum(abs(y - p) for y, p in zip(ys, self._base[:n], strict=True))
        self._sum_served = math.fsum(abs(y - p) for y, p in zip(ys, self._served[:n], strict=True))

    def window_maes(self) -> tuple[float, float]:
        """B's and A's MAE over the records both were scored on since B's start, up to
        a window: the comparison the guard decides on."""
        n = min(self.model_records, self.window)
        if n == 0:
            return math.nan, math.nan
        if self.model_records < self.window:
            return self._since_model / n, self._since_base / n
        return self._sum_model / n, self._sum_base / n

    def _decide(self) -> bool:
        model_mae, base_mae = self.window_maes()
        limit = 1.0 + self.options.margin
        worse = model_mae > limit * base_mae
        # The served predictions must not fall behind A either (a B that was better on the
        # records A served would otherwise excuse a worse B on the ones it serves); half the
        # margin leaves room for the records served before B's own window shows it.
        served_worse = self._sum_served > (1.0 + 0.5 * self.options.margin) * self._sum_base
        evidence = self.model_records >= min(MIN_EVIDENCE, self.window)
        on_worse = self.options.on_worse
        if on_worse == "alert":
            if worse and evidence and not self._warned_worse:
                self._warned_worse = True
                log.warning(
                    "the online model's MAE %.6g is worse than the warm-start model's %.6g "
                    "by more than %g (--on-worse-than-baseline alert: it keeps serving)",
                    model_mae,
                    base_mae,
                    self.options.margin,
                )
            elif not worse:
                self._warned_worse = False
            return False
        if self.serving == "model" and (worse or served_worse):
            self._switch("baseline", model_mae, base_mae)
        elif self.serving == "baseline" and evidence and model_mae < base_mae and not served_worse:
            self._switch("model", model_mae, base_mae)
        full = self.model_records >= self.window  # B had a whole window to learn the task
        return on_worse == "reset" and worse and full and self.start is not None

    def _switch(self, to: str, model_mae: float, base_mae: float) -> None:
        self.serving = to
        self.switches += 1
        self.events.append(
            {
                "record": self.scored,
                "serving": to,
                "model_mae": model_mae,
                "baseline_mae": base_mae,
            }
        )
        who = "the online model B" if to == "model" else "the warm-start model A"
        log.warning(
            "serving %s from record %d: MAE over the last %d records %.6g (B) against %.6g (A)",
            who,
            self.scored,
            min(self.model_records, self.window),
            model_mae,
            base_mae,
        )

    def restart_model(self) -> Any:
        """A fresh copy of B's warm start (``reset``); B's evidence starts again."""
        assert self.start is not None
        model_mae, base_mae = self.window_maes()
        self.resets += 1
        self.events.append(
            {"record": self.scored, "reset": True, "model_mae": model_mae, "baseline_mae": base_mae}
        )
        log.warning(
            "restarting the online model from its warm start at record %d: MAE %.6g against "
            "the warm-start model's %.6g (--on-worse-than-baseline reset)",
            self.scored,
            model_mae,
            base_mae,
        )
        self.model_records = 0
        self._since_model = self._since_base = 0.0
        if self.serving == "model":
            self._switch("baseline", model_mae, base_mae)
        return copy.deepcopy(self.start)

    def rolling(self) -> tuple[dict[str, float | None], dict[str, float | None]]:
        """Rolling metrics of the served predictions and of A, over the same window."""
        n = self._len
        if n < self.window:
            ys, served, base = self._y[:n], self._served[:n], self._base[:n]
        else:  # oldest first (the metrics do not depend on the order, but R2's rounding does)
            split = self._next
            ys = self._y[split:] + self._y[:split]
            served = self._served[split:] + self._served[:split]
            base = self._base[split:] + self._base[:split]
        return rolling_scores(ys, served), rolling_scores(ys, base)

    def summary(self) -> dict[str, Any]:
        """``served_metrics``, ``serving`` and ``baseline_guard`` for ``inspect --json``."""
        updated = self.scored > 0
        served = {
            name: (value if updated and math.isfinite(value := float(m.get())) else None)
            for name, m in self.served_metrics.items()
        }
        served_rolling, base_rolling = self.rolling()
        model_mae, base_mae = self.window_maes()
        return {
            "serving": self.serving,
            "served_metrics": served,
            "served_rolling_metrics": served_rolling,
            "baseline_rolling_metrics": base_rolling,
            "baseline_guard": {
                "on_worse_than_baseline": self.options.on_worse,
                "margin": self.options.margin,
                "records_compared": self.scored,
                "model_records": self.model_records,
                "model_window_mae": model_mae if math.isfinite(model_mae) else None,
                "baseline_window_mae": base_mae if math.isfinite(base_mae) else None,
                "switches": self.switches,
                "resets": self.resets,
                "events": [dict(event) for event in self.events],
            },
        }

    def configure(self, options: GuardOptions) -> None:
        """Take new options (a resumed run's flags); the windows and counts carry on."""
        if options.on_worse == "reset" and self.start is None:
            log.warning(
                "--on-worse-than-baseline reset on a resumed state that kept no warm start "
                "of B: B is not restarted, only A serves while B is worse"
            )
        self.options = options


def guard_for(
    baseline: Any, window: int, options: GuardOptions | None, start: Any
) -> BaselineGuard | None:
    """The guard of a learner that scores a frozen ``baseline`` beside ``start``; None without one.

    >>> guard_for(None, 100, None, start=None) is None
    True
    >>> guard_for(object(), 100, None, start=None).window
    100
    """
    return None if baseline is None else BaselineGuard(window, options, start=start)
