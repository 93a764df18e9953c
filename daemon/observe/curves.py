"""Learning curves to plot: from per-record errors, or from the curve a checkpoint keeps.

A curve comes either from plain arrays (``Run``: a label, its absolute errors in stream order, and
where drift was detected) or from a saved state (``CurveRun``, built by ``curve_from_state`` from
the bounded curve the learner keeps in every checkpoint, with the drift monitor's events and a
warm start's frozen baseline), so a plot can come from a replay, a benchmark, a test, or a daemon
that is still running. A regressor's curve is its rolling MAE; a classifier keeps two, its
rolling accuracy and its rolling log loss (or cross-entropy): ``curves_from_state`` gives each
(``CurveRun.metric`` says which). ``streamlearn.observe.report`` draws them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "CurveRun",
    "DriftSummary",
    "ReportError",
    "Run",
    "curve_from_state",
    "curves_from_state",
    "load_curve",
    "load_curves",
    "rolling_mae",
]


class ReportError(ValueError):
    """A state cannot be plotted (nothing learned yet, no curve, matplotlib missing)."""


@dataclass(frozen=True)
class Run:
    """One learning curve to draw, from the absolute error of every record.

    Attributes
    ----------
    label
        The legend entry, e.g. ``"finetune"`` or ``"cold"``.
    abs_errors
        ``|y - yhat|`` of each labelled record, in stream order (prediction made before learning).
        The error at index ``i`` is drawn at ``i + 1`` records learned.
    drift_at
        Record indices (0-based, into ``abs_errors``) where drift was detected; drawn at
        ``index + 1`` records learned, like the error they belong to.
    drift_actions
        What the monitor did at each of ``drift_at`` (``alert``, ``reset``...); empty when
        not known.
    """

    label: str
    abs_errors: Sequence[float] | npt.NDArray[np.float64]
    drift_at: Sequence[int] = ()
    drift_actions: Sequence[str] = ()


@dataclass(frozen=True)
class CurveRun:
    """One learning curve to draw, already reduced to points (as a checkpoint keeps it).

    Attributes
    ----------
    label
        The legend entry.
    records
        The x of each point: records learned so far, increasing.
    rolling_mae
        The rolling value of ``metric`` at each point (the mean of the last ``window``
        records'): a regressor's MAE, or a classifier's accuracy or log loss.
    drift_at
        Where drift was detected, in records learned (the same axis as ``records``).
    window
        Number of records each point averages (``None`` when unknown).
    drift_actions
        What the monitor did at each of ``drift_at``; empty when not known.
    baseline_mae
        A warm start's frozen model A: its ``metric`` over every record scored (None: no
        baseline).
    metric
        What the curve measures: ``"mae"``, ``"accuracy"``, ``"log_loss"`` or
        ``"cross_entropy"`` (``inspect --json``'s names).
    """

    label: str
    records: Sequence[int] | npt.NDArray[np.int64]
    rolling_mae: Sequence[float] | npt.NDArray[np.float64]
    drift_at: Sequence[float] = ()
    window: int | None = None
    drift_actions: Sequence[str] = ()
    baseline_mae: float | None = None
    metric: str = "mae"


def rolling_mae(
    abs_errors: Sequence[float] | npt.NDArray[np.float64], window: int
) -> npt.NDArray[np.float64]:
    """Trailing mean of the last ``window`` errors at each index (fewer at the start).

    Examples
    --------
    >>> rolling_mae([1.0, 3.0, 5.0, 7.0], window=2).tolist()
    [1.0, 2.0, 4.0, 6.0]
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    errors = np.asarray(abs_errors, dtype=np.float64)
    if errors.ndim != 1:
        raise ValueError("abs_errors must be one value per record")
    n = errors.size
    if n == 0:
        return np.zeros(0)
    # One running sum over the whole stream would subtract a huge early error from a huge total,
    # and cancellation would leave the later windows near 0. Instead, cut the stream into blocks
    # of ``window``: each window is a suffix of one block plus a prefix of the next, so every sum
    # adds only the errors inside its own window, still in O(n).
    blocks = np.concatenate((errors, np.zeros(-n % window))).reshape(-1, window)
    prefix = np.cumsum(blocks, axis=1).ravel()
    suffix = np.cumsum(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    ends = np.arange(n)
    starts = ends - window + 1
    sums = prefix[:n].copy()
    full = starts > 0  # windows that start after the first record
    starts = starts[full]
    sums[full] = suffix[starts] + np.where(starts % window != 0, prefix[ends[full]], 0.0)
    return sums / np.minimum(ends + 1, window)


def curve_from_state(state: Mapping[str, Any], label: str | None = None) -> CurveRun:
    """The learning curve kept in a daemon's state (a loaded checkpoint's ``.state``).

    The x axis is records learned, the learner's own count. A drift monitor (the ``"drift"``
    extension, if any) reports each event's ``record`` as a 0-based index into the stream, which
    also counts records that were rejected or unlabelled; an event is placed at its
    ``records_learned`` when the monitor stores one, else at ``record + 1`` scaled by
    records learned / records seen, which is exact when every record seen was learned.

    Parameters
    ----------
    state
        A state dict with ``model_spec``, ``learner`` and, optionally, ``counters`` and
        ``extensions``.
    label
        The legend entry (default: the model spec).

    A classifier's state gives its accuracy curve (``curves_from_state``: its loss curve too).

    Raises
    ------
    ReportError
        The state holds no learner, no curve, or no point yet.

    Examples
    --------
    >>> from streamlearn.learner import Learner
    >>> from streamlearn.models.sgd import SGDRegressor
    >>> learner = Learner(SGDRegressor(lr=0.1), rolling_window=2)
    >>> for y in (1.0, 1.0, 1.0):
    ...     _ = learner.step({"x": 1.0}, y)
    >>> run = curve_from_state({"model_spec": "sgd", "learner": learner})
    >>> run.label, run.records.tolist(), run.window
    ('sgd', [1, 2, 3], 2)
    >>> np.round(run.rolling_mae, 3).tolist()
    [1.0, 0.9, 0.72]
    """
    return curves_from_state(state, label)[0]


def curves_from_state(state: Mapping[str, Any], label: str | None = None) -> list[CurveRun]:
    """The learning curves kept in a daemon's state: a regressor's MAE, or a classifier's
    accuracy and log loss (cross-entropy for a multiclass one), with the same drift marks.

    >>> from streamlearn.classify.learner import ClassLearner
    >>> from streamlearn.classify.space import ClassSpace
    >>> from streamlearn.models.logistic import LogisticRegression
    >>> space = ClassSpace(binary=True)
    >>> learner = ClassLearner(LogisticRegression(lr=0.5), space, rolling_window=2)
    >>> for y in ("yes", "yes", "no"):
    ...     _ = learner.step({"x": 1.0}, space.encode(y))
    >>> accuracy, loss = curves_from_state({"model_spec": "logistic", "learner": learner})
    >>> accuracy.metric, accuracy.records.tolist(), accuracy.rolling_mae.tolist()
    ('accuracy', [1, 2, 3], [0.0, 0.5, 0.5])
    >>> loss.metric, np.round(loss.rolling_mae, 4).tolist()  # ln 2, then the last two's mean
    ('log_loss', [0.6931, 0.5836, 0.8497])
    """
    from streamlearn.classify.learner import ClassLearner
    from streamlearn.curve import Curve
    from streamlearn.learner import Learner

    learner = state.get("learner")
    curves: list[tuple[str, Curve]]
    if isinstance(learner, ClassLearner):
        loss = "log_loss" if learner.classes.binary else "cross_entropy"
        curves = [("accuracy", learner.curve), (loss, learner.loss_curve)]
    elif isinstance(learner, Learner):
        curves = [("mae", learner.curve)]
    else:
        raise ReportError("the state holds no learning curve (written by an older streamlearn?)")
    if not len(learner.curve):
        raise ReportError("the model has learned no records yet: there is no curve to plot")
    learned = learner.records_learned
    seen = int(state.get("counters", {}).get("records_seen", learned))
    placed = [(_learned_at(event, learned, seen), event) for event in _drift_events(state)]
    events = [(at, str(event.get("action", "alert"))) for at, event in placed if at is not None]
    baseline = learner.baseline_summary()
    runs = []
    for metric, curve in curves:
        points = curve.points
        if not points:  # a loss curve kept since a restart only: nothing to draw yet
            continue
        value = baseline.get(metric) if baseline is not None else None
        runs.append(
            CurveRun(
                label=label if label is not None else str(state.get("model_spec", "model")),
                records=np.array([p[0] for p in points], dtype=np.int64),
                rolling_mae=np.array([p[1] for p in points], dtype=np.float64),
                drift_at=[at for at, _ in events],
                window=learner.rolling_window,
                drift_actions=[action for _, action in events],
                baseline_mae=float(value) if isinstance(value, int | float) else None,
                metric=metric,
            )
        )
    return runs


@runtime_checkable
class DriftSummary(Protocol):
    """What the report reads of a drift monitor kept in a checkpoint: its ``summary()``.

    A checkpoint is data from another process (maybe another version), so its ``"drift"``
    extension is checked against this before use; a run without a monitor has none.
    """

    def summary(self) -> Mapping[str, Any]:
        """A JSON-safe summary whose ``drift_events`` list the detections."""
        ...


def _drift_events(state: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The drift monitor's events, or ``[]`` when the run had no monitor."""
    monitor = state.get("extensions", {}).get("drift")
    if not isinstance(monitor, DriftSummary):
        return []
    events = monitor.summary().get("drift_events", [])
    return [event for event in events if isinstance(event, Mapping)]


def _learned_at(event: Mapping[str, Any], learned: int, seen: int) -> float | None:
    """Records learned when a drift event fired (see ``curve_from_state``)."""
    if isinstance(event.get("records_learned"), int | float):
        return float(event["records_learned"])
    record = event.get("record")
    if not isinstance(record, int | float):
        return None
    scale = learned / seen if seen > 0 else 1.0
    return (float(record) + 1.0) * min(scale, 1.0)


# -- a saved state -------------------------------------------------------------------------


def load_curve(
    state_dir: str | os.PathLike[str], label: str | None = None, *, trust: bool = False
) -> CurveRun:
    """The (first) learning curve of the newest checkpoint in ``state_dir`` (``load_curves``)."""
    return load_curves(state_dir, label, trust=trust)[0]


def load_curves(
    state_dir: str | os.PathLike[str], label: str | None = None, *, trust: bool = False
) -> list[CurveRun]:
    """The learning curves of the newest checkpoint in ``state_dir``: a regressor's MAE, a
    classifier's accuracy and log loss.

    The state is read without its lock, so a daemon may be running on it. The default label is
    the directory's name and the model spec, e.g. ``"state: sgd"``. ``trust``: read a state
    dir another user owns (``report --trust``).

    Raises
    ------
    ReportError
        No such directory, no checkpoint in it yet, an unreadable checkpoint, or no curve.
    """
    from streamlearn.state import CheckpointError, CheckpointStore

    state_dir = Path(state_dir)
    try:
        loaded = CheckpointStore(state_dir, lock=False, trust=trust).load()
    except CheckpointError as exc:
        raise ReportError(str(exc)) from None
    except OSError as exc:
        raise ReportError(f"cannot read {state_dir}: {exc.strerror or exc}") from None
    if loaded is None:
        raise ReportError(f"no checkpoint in {state_dir} yet")
    state = loaded.state
    if label is None:
        label = f"{state_dir.resolve().name}: {state.get('model_spec')}"
    try:
        return curves_from_state(state, label)
    except ReportError as exc:
        raise ReportError(f"{state_dir}: {exc}") from None
