"""The drift monitor: watches the prequential error (and chosen features) and acts on drift.

The loop calls :meth:`DriftMonitor.observe` once per labeled record, after the model learned
it, with the prediction made before learning; the compiled fast path hands it whole blocks
of errors instead (:meth:`DriftMonitor.observe_errors`). Each watched signal feeds a
detector (:mod:`streamlearn.drift.detectors`); on a detection the monitor logs it, counts
it, records it in the state (``drift_events``) and takes the ``--on-drift`` action.

Why a falling error is not drift: a cold model's error falls fast while it learns; a
two-sided detector would call that a change and, with ``--on-drift reset``, throw the
model away again and again. So the error signal is not watched while the model learns: for
``--drift-warmup`` records (default 500) at start-up and again after every reset, rollback
or swap, and for as many more as long as the error still falls (up to 20 rounds; a growing
model such as a Hoeffding tree learns in steps, and its bumps are not drift; see
:mod:`streamlearn.drift.detectors`); its unit is then set by a reference block; and only a
rise of the error counts. The input features are warmed up at start-up only, for the fixed
``--drift-warmup`` (their distribution does not depend on the model).

Actions (``--on-drift``, default ``alert``):

- ``alert``: log and count; the model is untouched.
- ``reset``: a fresh model from ``host.model_factory()`` (a clone of the current model's
  constructor when there is none) learns from the next record on.
- ``rollback``: back to the warm-start model, ``host.warm_model_factory()``. Without a warm
  start this falls back to ``alert`` with a warning (at the first record and at each
  detection) rather than refusing to start: ``build_monitor`` cannot see whether the daemon
  has a warm start, and a resumed state may be run again without ``--warm-start``.
- ``background``: a challenger (:mod:`streamlearn.drift.challenger`) learns the records
  after the detection and replaces the model once it is better (``swap``), or is dropped
  (``discard``).

Every action is counted (``Telemetry.drift_action``) and logged. After an acted-on
detection, further detections within ``--drift-cooldown`` stream records (default 1000) are
recorded with the action ``suppressed``, and so are detections while a challenger trains:
one change is acted on once. The last ``MAX_EVENTS`` detections are kept in the state, with
a total count; the monitor (detectors, challenger and all) is pickled into the checkpoint,
so a restart continues its statistics where they were.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from streamlearn.drift.challenger import Challenger
from streamlearn.drift.config import ACTIONS, BINARY_DETECTORS, DETECTOR_NAMES, DriftConfig
from streamlearn.drift.detectors import SignalWatch
from streamlearn.drift.scoring import ClassScoring, Prediction, RegressionScoring, Scoring

if TYPE_CHECKING:
    import numpy as np

    from streamlearn.classify.space import ClassSpace
    from streamlearn.interfaces import DriftLabels, ModelHost

__all__ = ["MAX_EVENTS", "MAX_SWAPS", "DriftMonitor"]

log = logging.getLogger(__name__)

#: Detections kept in the state (the total is counted apart).
MAX_EVENTS = 1000
#: Swaps kept in the summary.
MAX_SWAPS = 100
#: Actions after which the watched model is another one.
_MODEL_CHANGED = ("reset", "rollback")


class DriftMonitor:
    """Watches the prequential error (and chosen features) and acts on drift.

    Plugs into ``Daemon(..., monitor=...)``: the loop calls :meth:`observe` for every
    labeled record it learned, and ``inspect`` merges :meth:`summary` into its JSON.
    Picklable: it is stored in the checkpoint under ``extensions["drift"]``.

    Parameters
    ----------
    config
        Detector, watched features, warm-up, action, swap window and cooldown.
    classes
        A classifier's class space (the learner's): the error is then the 0/1 error of the
        class probabilities (``scoring.class_error``) and a challenger is scored the same
        way. None (a regressor): the absolute error.

    Examples
    --------
    A linear target whose weights change at row 1500; the default ADWIN flags it soon after:

    >>> import numpy as np
    >>> from streamlearn.learner import Learner
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> from streamlearn.loop.daemon import Daemon
    >>> from streamlearn.testing import ListSource
    >>> from streamlearn.json_decoder import JsonDecoder
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

    def __init__(
        self, config: DriftConfig | None = None, *, classes: ClassSpace | None = None
    ) -> None:
        self.config = config or DriftConfig()
        #: The error of a prediction, and a challenger's (the task's; see ``scoring``).
        self.scoring: Scoring = RegressionScoring() if classes is None else ClassScoring(classes)
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.events_total = 0
        self.suppressed = 0
        self.detections: dict[str, int] = {signal: 0 for signal in self.config.signals}
        self.actions: dict[str, int] = {action: 0 for action in ACTIONS}
        self.swaps: deque[dict[str, Any]] = deque(maxlen=MAX_SWAPS)
        self.records_observed = 0
        self.cooldown_until = -1
        self.last_action_record = -1
        self.challenger: Challenger | None = None
        self._checked_host = False
        self._missing_warned: set[str] = set()
        config = self.config
        self.error_watch = SignalWatch(
            "error",
            config.detector_name,
            rising=True,
            centre=False,
            warmup=config.warmup,
            converge=True,
            zero_one=self.scoring.classification,
        )
        self.feature_watches = tuple(
            SignalWatch(
                signal, config.detector_name, rising=False, centre=True, warmup=config.warmup
            )
            for signal in config.signals[1:]
        )

    # -- the hooks the loop calls -------------------------------------------------

    @property
    def errors_only(self) -> bool:
        """True when only the error stream is watched (no features, no challenger training):
        then ``observe_errors`` may replace per-record ``observe`` calls."""
        return not self.feature_watches and self.challenger is None

    @property
    def may_change_model(self) -> bool:
        """False when a detection can do no more than alert: the watched model stays."""
        return self.config.on_drift != "alert" or self.challenger is not None

    @property
    def classification(self) -> bool:
        """Whether it watches a classifier (the 0/1 error)."""
        return self.scoring.classification

    def observe(
        self, index: int, x: Mapping[str, float], y: float, yhat: Prediction, host: ModelHost
    ) -> None:
        """One labeled record, after the model learned it (``yhat`` was predicted before:
        a regressor's value, or a classifier's class probabilities by code with ``y`` the
        class code).

        ``index`` is the record's 0-based position in the stream; it is what
        ``drift_events`` report.
        """
        self.records_observed += 1
        if not self._checked_host:
            self._check_host(host)
        error = self.scoring.error(y, yhat)
        if self.challenger is not None and self._challenge(index, x, y, error, host):
            pass  # swapped: this record's error belongs to the replaced model, not to the new one
        elif self.error_watch.update(error):
            self._detected(index, self.error_watch, host)
        for watch in self.feature_watches:
            value = x.get(watch.feature)
            if value is None:
                self._warn_missing(watch)
            elif watch.update(value):
                self._detected(index, watch, host)

    def observe_errors(
        self,
        indices: Sequence[int] | np.ndarray,
        errors: Sequence[float] | np.ndarray,
        host: ModelHost | None,
    ) -> int:
        """Many learned records at once, when ``errors_only``; returns how many were seen.

        ``indices`` and ``errors`` (the task's: absolute or 0/1) are lists or numpy arrays
        of the same length. Same results
        as ``observe`` record by record, without building feature dicts; with the default
        ADWIN the errors go to the compiled detector a whole array at a time. It stops right
        after a detection that changed the model or started a challenger: the caller
        re-learns the records after that one with the new model and goes on record by record.
        ``host`` may be None while the monitor can only alert.

        >>> monitor = DriftMonitor(DriftConfig(warmup=0))
        >>> monitor.observe_errors(range(500), [0.1] * 500, host=None)
        500
        >>> monitor.records_observed, monitor.events_total
        (500, 0)
        """
        import numpy as np

        if not self._checked_host and host is not None:
            self._check_host(host)
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
            self.records_observed += seen
            action = self._detected(int(indices[seen - 1]), watch, host)
            if self.challenger is not None or action in _MODEL_CHANGED:
                return seen
            self.records_observed -= seen
        self.records_observed += size
        return size

    def _check_host(self, host: ModelHost) -> None:
        self._checked_host = True
        if self.config.on_drift == "rollback" and host.warm_model_factory is None:
            log.warning(
                "--on-drift rollback: there is no warm-start model (--warm-start) to roll back "
                "to; drift will only be alerted"
            )

    def _warn_missing(self, watch: SignalWatch) -> None:
        if watch.signal not in self._missing_warned:
            self._missing_warned.add(watch.signal)
            log.warning(
                "drift feature %r is missing from a record; such records are skipped for it",
                watch.feature,
            )

    # -- detections and actions ---------------------------------------------------

    def _detected(self, index: int, watch: SignalWatch, host: ModelHost | None) -> str:
        """Count and record a detection, act on it; the action taken."""
        self.events_total += 1
        self.detections[watch.signal] = self.detections.get(watch.signal, 0) + 1
        telemetry = host.telemetry if host is not None else None
        if telemetry is not None:
            telemetry.drift(watch.detector_name, watch.signal)
        action = self._act(index, watch, host)
        self.events.append(
            {
                "record": index,
                "detector": watch.detector_name,
                "signal": watch.signal,
                "action": action,
            }
        )
        return action

    def _act(self, index: int, watch: SignalWatch, host: ModelHost | None) -> str:
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
        if action in ("reset", "background") and host is None:
            raise TypeError(f"--on-drift {action} changes the model: the monitor needs its host")
        if action == "reset":
            assert host is not None
            host.learner.reset_model(self._fresh_model(host))
            self._restart_error_watch()
            done = "reset the model to a fresh one"
        elif action == "rollback":
            factory = host.warm_model_factory if host is not None else None
            if host is None or factory is None:
                action = "alert"
                done = "no warm-start model to roll back to: alert only"
            else:
                host.learner.reset_model(factory())
                self._restart_error_watch()
                done = "rolled back to the warm-start model"
        elif action == "background":
            assert host is not None
            self.challenger = Challenger(self._fresh_model(host), self.config.swap_window, index)
            done = "training a challenger from the next record on"
        else:
            done = "alert only"
        log.warning(
            "drift at record %d: %s flagged %s; %s", index, watch.detector_name, rising, done
        )
        self._count_action(action, host)
        return action

    def _count_action(self, action: str, host: ModelHost | None) -> None:
        self.actions[action] = self.actions.get(action, 0) + 1
        telemetry = host.telemetry if host is not None else None
        if telemetry is not None:
            telemetry.drift_action(action)

    def _fresh_model(self, host: ModelHost) -> Any:
        factory = host.model_factory
        if factory is not None:
            return factory()
        # No factory (a resumed state whose spec differs from the flags): an unfitted
        # model with the same constructor arguments is the closest thing to fresh.
        log.info("no model factory: the fresh model is a clone of the current model's spec")
        return host.learner.model.clone()

    def _restart_error_watch(self) -> None:
        """A new model: its learning curve is not drift, so warm up and re-measure the unit."""
        self.error_watch.restart(self.config.warmup)

    def _challenge(
        self, index: int, x: Mapping[str, float], y: float, error: float, host: ModelHost
    ) -> bool:
        """Test-then-train the challenger on this record; True when it was swapped in."""
        challenger = self.challenger
        assert challenger is not None
        mine = self.scoring.challenger_error(challenger.model, x, y)
        if mine is None:  # a classifier that cannot predict yet: learned unscored
            return False
        if not math.isfinite(mine):
            log.warning("drift challenger diverged at record %d; dropped", index)
            self.challenger = None
            self._count_action("discard", host)
            return False
        challenger.push(mine, error)
        verdict = challenger.verdict()
        if verdict is None:
            return False
        mine, theirs = challenger.window_maes()
        self.challenger = None
        if verdict == "discard":
            log.warning(
                "drift challenger dropped at record %d: not better after %d records "
                "(MAE %.6g against the model's %.6g)",
                index,
                challenger.scored,
                mine,
                theirs,
            )
            self._count_action("discard", host)
            return False
        host.learner.reset_model(challenger.model)
        self._restart_error_watch()
        window = challenger.window
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
        self._count_action("swap", host)
        return True

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

    def telemetry_labels(self) -> DriftLabels:
        """Keyword arguments for ``Telemetry`` that export each drift series at 0 from the start
        (a classifier's monitor adds the binary detectors)."""
        detectors = (*DETECTOR_NAMES, *BINARY_DETECTORS) if self.classification else DETECTOR_NAMES
        return {
            "drift_detectors": detectors,
            "drift_signals": self.config.signals,
            "drift_actions": ACTIONS,
        }

    def resume_with(
        self, config: DriftConfig, *, classes: ClassSpace | None = None
    ) -> DriftMonitor:
        """This (restored) monitor under ``config``: itself when unchanged, else a new one.

        ``classes``: the restored learner's class space (a classifier), which the monitor
        scores a challenger with from now on. A changed config (or task) restarts every
        detector (with warm-up) and keeps the history: events, totals, counts and swaps.
        """
        if config == self.config and self.classification == (classes is not None):
            if classes is not None:
                self.scoring = ClassScoring(classes)
            return self
        log.info("drift options changed since the checkpoint (%s -> %s)", self.config, config)
        fresh = DriftMonitor(config, classes=classes)
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
        state.pop("_checked_daemon", None)  # its name in monitors pickled by earlier versions
        state.setdefault("scoring", RegressionScoring())  # pickled before classifiers
        self.__dict__.update(state)
        if not self.error_watch.converge:  # pickled when the error's warm-up was a fixed one
            self.error_watch.follow_learning_curve(self.config.warmup)
        self._checked_host = False  # warn again in the new process if rollback cannot work
