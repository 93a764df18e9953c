"""The effect of pseudo-labels, measured: a twin of the student learns only the true labels.

How accurate the accepted pseudo-labels are (the audit) does not say whether they help:
which rows are chosen matters more. So while pseudo-labeling is on, a copy of the student
(the twin) learns the same true labels in the same order and no pseudo-label; both are
scored prequentially on every true label, and their errors compared (``mae_with``,
``mae_without``, ``mae_difference``: negative when pseudo-labels help).

The guard (``--pseudo-guard``) pauses pseudo-labeling when, over the last ``records`` true
labels, the student's MAE is above ``(1 + margin)`` times its twin's: the twin, the better
of the two, becomes the model served and learned, and only true labels are learned. After
``records`` true labels (doubling after each pause that follows a short trial) pseudo-labels
are tried again, on probation: a new twin is copied from the model and the guard judges
again.
"""

from __future__ import annotations

import copy
import logging
import math
from collections import deque
from typing import TYPE_CHECKING, Any

from streamlearn.models.answer import predicted

if TYPE_CHECKING:
    from streamlearn.interfaces import ModelHost, Prediction

log = logging.getLogger(__name__)

__all__ = ["GUARD_STATES", "PseudoEffect"]

#: ``on``: pseudo-labels learned, the twin measured; ``paused``: only true labels learned
#: (the guard found pseudo-labels hurting); ``off``: the student cannot be copied.
GUARD_STATES = ("on", "paused", "off")

#: Pauses after the first: each waits twice as long as the one before, up to this many times.
_MAX_DOUBLINGS = 5
#: Guard events kept for ``inspect``.
_EVENTS_KEPT = 20


class PseudoEffect:
    """The student's twin, the two prequential errors, and the guard that acts on them.

    Parameters
    ----------
    guard
        Pause pseudo-labeling (and serve the twin) when it hurts; False: measure only.
    margin
        Relative margin: the guard acts when the student's MAE over the window is above
        ``(1 + margin)`` times the twin's.
    records
        True labels in the window the guard judges on, which is also the rolling window
        of the reported errors, and the length of the first pause.

    Examples
    --------
    A student that learns a wrong pseudo-label after every true label, and its twin:

    >>> from streamlearn.learner import Learner
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> class Host:  # what it uses of the loop's ModelHost
    ...     learner, telemetry, records_seen = Learner(SGDRegressor(lr=0.1)), None, 0
    >>> student = Host.learner.model
    >>> effect = PseudoEffect(margin=0.05, records=50)
    >>> for i in range(80):
    ...     x, y = {"a": (i % 7) / 7}, 2.0 * ((i % 7) / 7)
    ...     yhat = Host.learner.step(x, y)
    ...     effect.observe(x, y, yhat, Host)
    ...     if effect.state == "on":
    ...         Host.learner.learn_weighted({"a": 1.0}, -5.0, 1.0)  # a harmful pseudo-label
    >>> effect.state, effect.pauses, Host.learner.model is student  # the twin serves now
    ('paused', 1, False)
    >>> s = effect.summary()
    >>> s["mae_with"] > s["mae_without"], s["guard"]["paused_for"]
    (True, 20)
    """

    def __init__(self, *, guard: bool = True, margin: float = 0.05, records: int = 500) -> None:
        self.guard = True
        self.margin = 0.05
        self.records = 500
        self.configure(guard=guard, margin=margin, records=records)
        self.twin: Any = None  # a River regressor or pipeline, like the student
        self.state = "on"
        self.started = False  # the twin was copied from a student once
        self.measured = 0
        self.abs_with = 0.0
        self.abs_without = 0.0
        self.window: deque[tuple[float, float]] = deque()
        self.window_with = 0.0
        self.window_without = 0.0
        self.trial = 0  # true labels compared since pseudo-labels were last (re)started
        self.pause_left = 0
        self.strikes = 0  # pauses in a row, each after a short trial
        self.pauses = 0
        self.resumes = 0
        self.restarts = 0  # the student was replaced from outside: a new twin
        self.events: deque[dict[str, Any]] = deque(maxlen=_EVENTS_KEPT)
        self.late_twin: Prediction | None = (
            None  # the twin's feature-time prediction of a late label
        )
        self.twin_since = 0  # the stream index from which the twin predicted
        self._student: Any = None  # the model the twin was copied from (not pickled)

    def configure(self, *, guard: bool, margin: float, records: int) -> None:
        """Set (or change, on a restored run) the guard's knobs; checks them first."""
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"guard_margin must be 0 or more, got {margin!r}")
        if records < 1:
            raise ValueError(f"guard_records must be at least 1, got {records!r}")
        if records != self.records:
            self._clear_window()
        self.guard = bool(guard)
        self.margin = float(margin)
        self.records = int(records)

    @property
    def measuring(self) -> bool:
        """Whether a twin is being compared with the student (pseudo-labels are learned)."""
        return self.state == "on" and self.twin is not None

    @property
    def paused(self) -> bool:
        """Whether accepted pseudo-labels are not to be learned now."""
        return self.state == "paused"

    # -- hooks, on the loop thread -----------------------------------------------------------

    def begin(self, host: ModelHost) -> None:
        """An unlabeled record came: the first record seen copies the student into the twin."""
        if not self.started and self.state == "on":
            self._student = host.learner.model
            self._start_trial(self._student, host, restart=False)

    def late_label(self, index: int, twin_yhat: Prediction | None) -> None:
        """The next true label is late: its features came at stream ``index``, when the twin
        predicted ``twin_yhat`` (None: it did not). A prediction of an earlier twin is not
        this twin's: the twin then predicts the label when it comes."""
        self.late_twin = twin_yhat if index >= self.twin_since else None

    def twin_prediction(self, x: dict[str, float]) -> Prediction | None:
        """The twin's prediction of an unlabeled record (kept for its late label), if measuring."""
        if not self.measuring:
            return None
        value = self._twin_answer(x)
        return value if value is not None and self._sound(value) else None

    def observe(self, x: dict[str, float], y: float, yhat: Prediction, host: ModelHost) -> None:
        """A true label the student predicted as ``yhat`` (then learned): score both, judge."""
        late_twin, self.late_twin = self.late_twin, None
        model = host.learner.model
        if model is not self._student:
            replaced = self._student is not None
            self._student = model
            if self.state == "on" and (replaced or not self.started):
                # A first twin, or the student was replaced (drift action, divergence
                # restore): the twin starts again as a copy of the student as it is now.
                self._start_trial(model, host, restart=replaced)
                self._score(*self._errors(y, yhat, yhat))  # the twin is the student: yhat too
                return
        if self.state == "paused":
            self.pause_left -= 1
            if self.pause_left <= 0:
                self._resume(model, host)
            return
        if not self.measuring:
            return
        twin_yhat = late_twin if late_twin is not None else self._twin_answer(x)
        if not self._sound(twin_yhat):  # a diverged twin: copy the student again
            self._start_trial(model, host, restart=True)
            return
        if twin_yhat is not None:  # None: a twin that cannot predict yet, not compared
            self._score(*self._errors(y, yhat, twin_yhat))
        self._twin_learn(x, y)
        if self.guard and self._hurting():
            self._pause(host)

    # -- what a task changes: the twin's answer, the errors, the guard's test ---------------

    def _twin_answer(self, x: dict[str, float]) -> Prediction | None:
        """The twin's prediction (None: it cannot predict yet)."""
        return predicted(self.twin.predict_one(x))

    def _sound(self, value: Prediction | None) -> bool:
        """Whether a prediction is not a diverged model's (NaN or infinite)."""
        assert not isinstance(value, tuple)  # a regressor's
        return value is not None and math.isfinite(value)

    def _errors(self, y: float, yhat: Prediction, twin_yhat: Prediction) -> tuple[float, float]:
        """The student's and the twin's errors on the true label ``y``: absolute errors."""
        assert not isinstance(yhat, tuple) and not isinstance(twin_yhat, tuple)
        return abs(y - yhat), abs(y - twin_yhat)

    def _twin_learn(self, x: dict[str, float], y: float) -> None:
        self.twin.learn_one(x, y)

    def _hurting(self) -> bool:
        """Over a full window, the student's MAE above ``(1 + margin)`` times its twin's."""
        return (
            len(self.window) == self.records
            and self.window_with > (1.0 + self.margin) * self.window_without
        )

    # -- scoring -------------------------------------------------------------------------------

    def _score(self, error_with: float, error_without: float) -> None:
        self.measured += 1
        self.trial += 1
        self.abs_with += error_with
        self.abs_without += error_without
        window = self.window
        if len(window) == self.records:
            old_with, old_without = window.popleft()
            self.window_with -= old_with
            self.window_without -= old_without
        window.append((error_with, error_without))
        self.window_with += error_with
        self.window_without += error_without
        if self.trial % self.records == 0:  # re-sum now and then: no drift over months
            self.window_with = math.fsum(e for e, _ in window)
            self.window_without = math.fsum(e for _, e in window)
        if self.trial == 2 * self.records:
            self.strikes = 0  # pseudo-labels held for two windows: a later pause starts short

    def _clear_window(self) -> None:
        self.window = deque()
        self.window_with = self.window_without = 0.0
        self.trial = 0

    # -- the guard's actions ---------------------------------------------------------------------

    def _copy(self, model: Any) -> Any:
        try:
            return copy.deepcopy(model)
        except Exception as exc:  # a model that cannot be copied: measure nothing, say so
            log.warning(
                "pseudo-labels: the model cannot be copied (%s), so their effect is not "
                "measured and the guard is off",
                exc,
            )
            self.state = "off"
            return None

    def _start_trial(self, model: Any, host: ModelHost, *, restart: bool) -> None:
        self.twin = self._copy(model)
        self.twin_since = host.records_seen
        self.started = True
        self.restarts += restart
        self._clear_window()

    def _pause(self, host: ModelHost) -> None:
        twin = self.twin
        mae_with = self.window_with / self.records
        mae_without = self.window_without / self.records
        host.learner.reset_model(twin)  # the better of the two serves and learns on
        self._student = twin
        self.twin = None
        self.state = "paused"
        self.strikes += 1
        self.pauses += 1
        self.pause_left = self.records * 2 ** min(self.strikes - 1, _MAX_DOUBLINGS)
        self._event("pause", mae_with, mae_without)
        self._log_pause(mae_with, mae_without)

    def _log_pause(self, mae_with: float, mae_without: float) -> None:
        log.warning(
            "pseudo-labels hurt: over the last %d true labels the model's MAE was %.6g, %.1f%% "
            "above its twin's %.6g (trained without them); serving the twin and pausing "
            "pseudo-labeling for %d true labels",
            self.records,
            mae_with,
            100.0 * (mae_with / mae_without - 1.0) if mae_without > 0 else math.inf,
            mae_without,
            self.pause_left,
        )

    def _resume(self, model: Any, host: ModelHost) -> None:
        self.state = "on"
        self.resumes += 1
        self._start_trial(model, host, restart=False)
        self._event("resume", None, None)
        log.info(
            "pseudo-labels on probation: learned again, judged over the next %d true labels",
            self.records,
        )

    def _event(self, action: str, mae_with: float | None, mae_without: float | None) -> None:
        self.events.append(
            {
                "action": action,
                "measured": self.measured,
                "window_mae_with": mae_with,
                "window_mae_without": mae_without,
            }
        )

    # -- reporting and state -----------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The ``pseudo_labels.effect`` part of ``inspect --json``.

        The errors are over the true labels compared (``measured``: those that came while
        pseudo-labels were learned, not during a pause), cumulative and over the last
        ``records`` of them; ``mae_difference`` is with minus without (negative: they help).
        """

        def mean(total: float, n: int) -> float | None:
            return total / n if n else None

        def difference(a: float | None, b: float | None) -> float | None:
            return a - b if a is not None and b is not None else None

        n = len(self.window)
        mae_with, mae_without = (
            mean(self.abs_with, self.measured),
            mean(self.abs_without, self.measured),
        )
        rolling_with, rolling_without = mean(self.window_with, n), mean(self.window_without, n)
        return {
            "measured": self.measured,
            "mae_with": mae_with,
            "mae_without": mae_without,
            "mae_difference": difference(mae_with, mae_without),
            "rolling_window": self.records,
            "rolling_mae_with": rolling_with,
            "rolling_mae_without": rolling_without,
            "rolling_mae_difference": difference(rolling_with, rolling_without),
            "guard": {
                "enabled": self.guard,
                "margin": self.margin,
                "records": self.records,
                "state": self.state,
                "paused_for": self.pause_left if self.paused else 0,
                "pauses": self.pauses,
                "resumes": self.resumes,
                "twin_restarts": self.restarts,
                "events": list(self.events),
            },
        }

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_student"] = None  # the restored learner's model is adopted at the next label
        state["window"] = deque(self.window)
        state["events"] = deque(self.events, maxlen=_EVENTS_KEPT)
        return state
