"""Prequential learning curves as a PNG: rolling mean absolute error against records learned.

A curve comes either from plain arrays (``Run``: a label, its absolute errors in stream order, and
where drift was detected) or from a saved state (``CurveRun``, built by ``curve_from_state`` from
the bounded curve the learner keeps in every checkpoint), so a plot can come from a replay, a
benchmark, a test, or a daemon that is still running: ``streamlearn report STATE_DIR...``.
matplotlib is imported only when a plot is drawn, and through its Agg canvas directly, so that no
GUI backend or global pyplot state is involved.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DRIFT_GID",
    "CurveRun",
    "DriftSummary",
    "ReportError",
    "Run",
    "curve_from_state",
    "draw_curves",
    "load_curve",
    "plot_curves",
    "rolling_mae",
]

#: The ``gid`` of every drift marker a plot draws, so that callers (and tests) can find them.
DRIFT_GID = "drift"


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
    """

    label: str
    abs_errors: Sequence[float] | npt.NDArray[np.float64]
    drift_at: Sequence[int] = ()


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
        The rolling MAE at each point (the mean of the last ``window`` errors).
    drift_at
        Where drift was detected, in records learned (the same axis as ``records``).
    window
        Number of records each point averages (``None`` when unknown).
    """

    label: str
    records: Sequence[int] | npt.NDArray[np.int64]
    rolling_mae: Sequence[float] | npt.NDArray[np.float64]
    drift_at: Sequence[float] = ()
    window: int | None = None


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
    from streamlearn.learner import Learner

    learner = state.get("learner")
    if not isinstance(learner, Learner):
        raise ReportError("the state holds no learning curve (written by an older streamlearn?)")
    points = list(learner.curve.points)
    if not points:
        raise ReportError("the model has learned no records yet: there is no curve to plot")
    records = np.array([p[0] for p in points], dtype=np.int64)
    rolling = np.array([p[1] for p in points], dtype=np.float64)
    learned = learner.records_learned
    seen = int(state.get("counters", {}).get("records_seen", learned))
    drift_at = [_learned_at(event, learned, seen) for event in _drift_events(state)]
    return CurveRun(
        label=label if label is not None else str(state.get("model_spec", "model")),
        records=records,
        rolling_mae=rolling,
        drift_at=[x for x in drift_at if x is not None],
        window=learner.rolling_window,
    )


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


def _points(run: Run | CurveRun, window: int) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """``(records learned, rolling MAE)`` of a run, checked."""
    if isinstance(run, CurveRun):
        x = np.asarray(run.records, dtype=np.float64)
        y = np.asarray(run.rolling_mae, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape:
            raise ValueError(f"run {run.label!r} needs one rolling MAE per point")
        if x.size == 0:
            raise ValueError(f"run {run.label!r} has no points to plot")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError(f"run {run.label!r} has NaN or infinite points")
        return x, y
    errors = np.asarray(run.abs_errors, dtype=np.float64)
    if errors.size == 0:
        raise ValueError(f"run {run.label!r} has no errors to plot")
    if not np.isfinite(errors).all():
        raise ValueError(f"run {run.label!r} has NaN or infinite errors")
    return np.arange(1, errors.size + 1), rolling_mae(errors, window)


def _drift_x(run: Run | CurveRun) -> list[float]:
    if isinstance(run, CurveRun):
        return [float(x) for x in run.drift_at]
    return [float(index) + 1.0 for index in run.drift_at]


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportError("plotting needs matplotlib: pip install matplotlib") from None


def draw_curves(
    runs: Sequence[Run | CurveRun], window: int = 100, title: str | None = None
) -> Figure:
    """Draw the rolling MAE of each run against records learned on one matplotlib Figure.

    Each run gets its own line and legend entry; its drift detections are dotted vertical lines
    in the run's colour, each with ``gid`` ``"drift"``. ``window`` is the rolling window of the
    ``Run``s (a ``CurveRun`` brings its own points). See ``plot_curves`` to save a PNG.

    Examples
    --------
    >>> figure = draw_curves(
    ...     [CurveRun("warm", [1, 2, 3], [0.5, 0.4, 0.3], drift_at=[2]), Run("cold", [2.0] * 5)],
    ...     window=2,
    ... )
    >>> axes = figure.axes[0]
    >>> [line.get_label() for line in axes.lines if line.get_gid() != "drift"]
    ['warm', 'cold']
    >>> sum(line.get_gid() == "drift" for line in axes.lines)
    1
    """
    if not runs:
        raise ValueError("give at least one run to plot")
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    curves = [_points(run, window) for run in runs]
    _require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    windows = {run.window if isinstance(run, CurveRun) else window for run in runs}
    same_window = len(windows) == 1 and None not in windows
    figure = Figure(figsize=(9, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for run, (x, y) in zip(runs, curves, strict=True):
        label = run.label
        if not same_window and isinstance(run, CurveRun) and run.window is not None:
            label = f"{label} [window {run.window}]"
        (line,) = axes.plot(x, y, label=label, linewidth=1.4)
        for i, at in enumerate(_drift_x(run)):
            axes.axvline(
                at,
                color=line.get_color(),
                linestyle=":",
                linewidth=1.0,
                label=f"{run.label}: drift" if i == 0 else None,
                gid=DRIFT_GID,
            )
    shown = windows.pop() if same_window else None
    axes.set_xlabel("records learned")
    axes.set_ylabel("rolling MAE" if shown is None else f"MAE over the last {shown} records")
    default_title = (
        "Prequential MAE (rolling window per run)"
        if shown is None
        else f"Prequential MAE (rolling window of {shown} records)"
    )
    axes.set_title(title or default_title)
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return figure


def plot_curves(
    runs: Sequence[Run | CurveRun],
    out_path: str | os.PathLike[str],
    window: int = 100,
    title: str | None = None,
) -> Path:
    """Draw the rolling MAE of each run on one plot and save it as a PNG.

    Parameters
    ----------
    runs
        The runs to compare (``Run``: per-record errors; ``CurveRun``: precomputed points, e.g.
        from ``curve_from_state``); each gets its own line and legend entry, and its drift
        detections are drawn as dotted vertical lines in the run's colour.
    out_path
        The PNG file to write (its folder is created if needed).
    window
        Number of records each point of a ``Run`` averages.
    title
        Plot title (default: ``"Prequential MAE (rolling window of N records)"``).

    Returns
    -------
    Path
        ``out_path``.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> path = plot_curves(
    ...     [Run("cold", [2.0] * 50 + [1.0] * 50), Run("warm", [0.5] * 100, drift_at=[60])],
    ...     folder / "curves.png", window=10,
    ... )
    >>> path.read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    figure = draw_curves(runs, window, title)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png")
    return out


# -- a saved state -------------------------------------------------------------------------


def load_curve(
    state_dir: str | os.PathLike[str], label: str | None = None, *, trust: bool = False
) -> CurveRun:
    """The learning curve of the newest checkpoint in ``state_dir``.

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
        return curve_from_state(state, label)
    except ReportError as exc:
        raise ReportError(f"{state_dir}: {exc}") from None
