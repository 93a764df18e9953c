"""Prequential learning curves as a PNG, SVG or PDF: rolling MAE (a regressor's), or accuracy
and log loss (a classifier's), against records learned.

The curves are ``streamlearn.observe.curves``' (``Run``, ``CurveRun``; re-exported here), one
plot per metric, stacked (a regressor's report has one): one line and one legend entry per run,
in the run's colour on every plot; its drift detections are vertical lines in its colour, with
a marker at the top saying what the monitor did (a key beside the legend names the markers);
runs marked at the same record interleave their dashes and stack their markers, so each stays
visible. A warm start's frozen model A is a horizontal line at its MAE (accuracy, log loss). The
first records' spike can be cut off (``skip``) or the error axes made logarithmic (``log_y``;
never accuracy's). matplotlib is
imported only when a plot is drawn, and through its Agg canvas directly, so that no GUI
backend or global pyplot state is involved.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

# The curves' names, re-exported: callers plot and load curves through this one module.
from streamlearn.observe.curves import CurveRun as CurveRun
from streamlearn.observe.curves import DriftSummary as DriftSummary
from streamlearn.observe.curves import ReportError as ReportError
from streamlearn.observe.curves import Run as Run
from streamlearn.observe.curves import curve_from_state as curve_from_state
from streamlearn.observe.curves import curves_from_state as curves_from_state
from streamlearn.observe.curves import load_curve as load_curve
from streamlearn.observe.curves import load_curves as load_curves
from streamlearn.observe.curves import rolling_mae as rolling_mae

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import ColorType

__all__ = ["BASELINE_GID", "DRIFT_GID", "FORMATS", "KEY_GID", "draw_curves", "plot_curves"]

#: The ``gid`` of every drift line a plot draws, so that callers (and tests) can find them.
DRIFT_GID = "drift"
#: The ``gid`` of the key of the drift markers (a second legend).
KEY_GID = "drift-key"
#: The ``gid`` of a warm start's frozen baseline line.
BASELINE_GID = "baseline"
#: What ``plot_curves`` writes, by the suffix of its file.
FORMATS = ("png", "svg", "pdf")
#: The marker of each drift action (``streamlearn.drift.config.ACTIONS``, and a detection the
#: monitor did not act on); others get ``"o"``.
ACTION_MARKERS = {
    "alert": "o",
    "reset": "v",
    "rollback": "<",
    "background": "^",
    "swap": "s",
    "discard": "x",
    "suppressed": "+",  # detected in a cooldown or beside another action: not acted on
}
#: How each metric a curve measures is named on its plot.
METRIC_NAMES = {"mae": "MAE", "accuracy": "accuracy", "log_loss": "log loss",
                "cross_entropy": "cross-entropy"}  # fmt: skip
#: What the matplotlib extra is called, for the message when it is missing.
PLOT_EXTRA = "pip install 'streamlearn[plot]'"


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


def _drift(run: Run | CurveRun) -> list[tuple[float, str]]:
    """Where drift was detected (records learned) and what was done there."""
    if isinstance(run, CurveRun):
        at = [float(x) for x in run.drift_at]
    else:
        at = [float(index) + 1.0 for index in run.drift_at]
    actions = list(run.drift_actions) or ["alert"] * len(at)
    if len(actions) != len(at):
        raise ValueError(f"run {run.label!r} needs one drift action per drift event, or none")
    return list(zip(at, actions, strict=True))


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportError(f"plotting needs matplotlib: {PLOT_EXTRA}") from None


def draw_curves(
    runs: Sequence[Run | CurveRun],
    window: int = 100,
    title: str | None = None,
    *,
    log_y: bool = False,
    skip: int = 0,
) -> Figure:
    """Draw each run's rolling metric against records learned on one matplotlib Figure: one
    plot per metric (``CurveRun.metric``; a ``Run``'s is MAE), stacked in the runs' order.

    Each run gets one line and one legend entry, in its label's colour on every plot; its
    drift detections are vertical lines in that colour (``gid`` ``"drift"``), each ending at
    the top in a marker for its action (``ACTION_MARKERS``, named in a key beside the legend);
    a warm start's baseline is a horizontal line (``gid`` ``"baseline"``). ``window`` is the
    rolling window of the ``Run``s (a ``CurveRun`` brings its own points). ``skip``: leave out
    the first records learned (the warm-up's spike); ``log_y``: logarithmic error axes (MAE,
    log loss). See ``plot_curves`` to save the figure.

    Examples
    --------
    >>> figure = draw_curves(
    ...     [CurveRun("warm", [1, 2, 3], [0.5, 0.4, 0.3], drift_at=[2], drift_actions=["reset"],
    ...               baseline_mae=0.45), Run("cold", [2.0] * 5)],
    ...     window=2,
    ... )
    >>> axes = figure.axes[0]
    >>> [text.get_text() for text in axes.get_legend().get_texts()]
    ['warm', 'cold']
    >>> [(line.get_gid(), line.get_marker()) for line in axes.lines if line.get_gid()]
    [('drift', 'v'), ('baseline', 'None')]
    >>> figure = draw_curves([CurveRun("clicks", [1, 2], [0.5, 0.8], metric="accuracy"),
    ...                       CurveRun("clicks", [1, 2], [0.7, 0.4], metric="log_loss")])
    >>> [axes.get_ylabel() for axes in figure.axes]
    ['rolling accuracy', 'rolling log loss']
    """
    if not runs:
        raise ValueError("give at least one run to plot")
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    if skip < 0:
        raise ValueError(f"skip must be 0 or more, got {skip}")
    curves = [_cut(run, *_points(run, window), skip) for run in runs]
    _require_matplotlib()
    from matplotlib import rcParams
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    windows = {run.window if isinstance(run, CurveRun) else window for run in runs}
    shown = windows.pop() if len(windows) == 1 and None not in windows else None
    metrics = list(dict.fromkeys(_metric(run) for run in runs))
    figure = Figure(figsize=(9, 4.5 if len(metrics) == 1 else 3.5 * len(metrics)), dpi=100)
    FigureCanvasAgg(figure)
    cycle = rcParams["axes.prop_cycle"].by_key()["color"]
    labels = list(dict.fromkeys(run.label for run in runs))
    colors = [cycle[labels.index(run.label) % len(cycle)] for run in runs]
    for row, metric in enumerate(metrics):
        axes = figure.add_subplot(len(metrics), 1, row + 1)
        chosen = [i for i, run in enumerate(runs) if _metric(run) == metric]
        _draw_metric(
            axes,
            [(runs[i], curves[i], colors[i]) for i in chosen],
            name_windows=shown is None,
            skip=skip,
        )
        _label_axes(
            axes,
            metric,
            shown,
            _title(metrics, shown, title) if row == 0 else None,
            log_y=log_y and metric != "accuracy",
            skip=skip,
            last=row == len(metrics) - 1,
        )
    figure.tight_layout()
    return figure


def _metric(run: Run | CurveRun) -> str:
    return run.metric if isinstance(run, CurveRun) else "mae"


def _title(metrics: list[str], shown: int | None, title: str | None) -> str:
    """The figure's title: ``title``, else the metrics and the rolling window."""
    if title:
        return title
    names = " and ".join(METRIC_NAMES.get(m, m) for m in metrics)
    if shown is None:
        return f"Prequential {names} (rolling window per run)"
    return f"Prequential {names} (rolling window of {shown} records)"


def _draw_metric(
    axes: Axes,
    drawn: list[tuple[Run | CurveRun, tuple[npt.NDArray[Any], npt.NDArray[Any]], str]],
    *,
    name_windows: bool,
    skip: int,
) -> None:
    """One plot of ``(run, (x, y), colour)``: each run's line, drift marks and baseline, the
    legend and the marks' key."""
    runs = [run for run, _, _ in drawn]
    marked = [i for i, run in enumerate(runs) if any(at > skip for at, _ in _drift(run))]
    handles = []
    for i, (run, (x, y), color) in enumerate(drawn):
        label = run.label
        if name_windows and isinstance(run, CurveRun) and run.window is not None:
            label = f"{label} [window {run.window}]"
        (line,) = axes.plot(x, y, label=label, linewidth=1.4, color=color)
        handles.append(line)
        if i in marked:
            _mark_drift(axes, run, color, marked.index(i), len(marked), skip)
        if isinstance(run, CurveRun) and run.baseline_mae is not None:
            _baseline(axes, run.baseline_mae, color, METRIC_NAMES.get(run.metric, run.metric))
    actions = sorted({a for i in marked for at, a in _drift(runs[i]) if at > skip})
    if actions:
        _action_key(axes, actions)
    # Both keys right of the plot, where no curve or marker runs under them.
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _label_axes(
    axes: Axes,
    metric: str,
    shown: int | None,
    title: str | None,
    *,
    log_y: bool,
    skip: int,
    last: bool,
) -> None:
    """Axis labels (the x axis's on the ``last`` plot only), the title if given, grid, scale."""
    name = METRIC_NAMES.get(metric, metric)
    if last:
        axes.set_xlabel(
            "records learned" if skip == 0 else f"records learned (after the first {skip})"
        )
    axes.set_ylabel(f"rolling {name}" if shown is None else f"{name} over the last {shown} records")
    if title is not None:
        axes.set_title(title)
    if log_y:
        axes.set_yscale("log", nonpositive="mask")
    elif metric == "accuracy":
        axes.set_ylim(0, 1.02)
    else:
        axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)


def _cut(
    run: Run | CurveRun, x: npt.NDArray[Any], y: npt.NDArray[Any], skip: int
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """The points after the first ``skip`` records learned."""
    if skip == 0:
        return x, y
    kept = x > skip
    if not kept.any():
        raise ValueError(f"run {run.label!r} has no point after the first {skip} records")
    return x[kept], y[kept]


def _mark_drift(
    axes: Axes, run: Run | CurveRun, color: ColorType, k: int, n: int, skip: int
) -> None:
    """The drift lines of the ``k``-th of ``n`` marked runs, each ending in its action's marker.

    The lines' dashes leave gaps for the other runs' (offset by ``k``), and each run's lines
    end (in their marker) one step lower than the run before, so runs marked at the same
    record all show.
    """
    dash = 2.0
    style = (k * 2 * dash, (dash, dash * (2 * n - 1)))
    for at, action in _drift(run):
        if at <= skip:
            continue
        axes.axvline(
            at,
            ymax=0.97 - 0.05 * k,
            color=color,
            linestyle=style,
            linewidth=1.2,
            marker=ACTION_MARKERS.get(action, "o"),
            markevery=[1],  # the top end only
            markersize=7,
            markerfacecolor="white" if action == "alert" else color,
            clip_on=False,
            gid=DRIFT_GID,
        )


def _baseline(axes: Axes, value: float, color: ColorType, name: str = "MAE") -> None:
    """A warm start's frozen model A: a horizontal line at its ``name`` (MAE, accuracy ...),
    named on the line."""
    from matplotlib.transforms import blended_transform_factory

    axes.axhline(value, color=color, linestyle="-.", linewidth=1.0, alpha=0.8, gid=BASELINE_GID)
    axes.text(
        0.99,
        value,
        f"A (frozen): {name} {value:.4g}",
        color=color,
        fontsize=8,
        ha="right",
        va="bottom",
        transform=blended_transform_factory(axes.transAxes, axes.transData),
    )


def _action_key(axes: Axes, actions: list[str]) -> None:
    """A small key of the drift markers present (in grey: the colours are the runs'), beside
    the legend (``gid`` ``"drift-key"``)."""
    from matplotlib.legend import Legend
    from matplotlib.lines import Line2D

    handles = [
        Line2D(
            [],
            [],
            marker=ACTION_MARKERS.get(action, "o"),
            color="0.35",
            markerfacecolor="white" if action == "alert" else "0.35",
            linestyle="none",
            label=action,
        )
        for action in actions
    ]
    key = Legend(
        axes,
        handles,
        actions,
        title="drift",
        loc="lower left",
        bbox_to_anchor=(1.01, 0.0),
        borderaxespad=0,
        fontsize=8,
        title_fontsize=8,
    )
    key.set_gid(KEY_GID)
    axes.add_artist(key)


def plot_curves(
    runs: Sequence[Run | CurveRun],
    out_path: str | os.PathLike[str],
    window: int = 100,
    title: str | None = None,
    *,
    log_y: bool = False,
    skip: int = 0,
    dpi: int = 100,
) -> Path:
    """Draw the rolling MAE of each run on one plot (``draw_curves``) and save it.

    Parameters
    ----------
    runs
        The runs to compare (``Run``: per-record errors; ``CurveRun``: precomputed points, e.g.
        from ``curve_from_state``).
    out_path
        The file to write, a PNG, SVG or PDF by its suffix (its folder is created if needed).
    window
        Number of records each point of a ``Run`` averages.
    title
        Plot title (default: ``"Prequential MAE (rolling window of N records)"``).
    log_y, skip
        A logarithmic error axis; leave out the first ``skip`` records learned.
    dpi
        Dots per inch of a PNG (the figure is 9 x 4.5 inches).

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
    >>> plot_curves([Run("cold", [1.0] * 9)], folder / "c.svg").read_bytes().find(b"<svg") >= 0
    True
    """
    out = Path(out_path)
    kind = out.suffix.lower().lstrip(".")
    if kind not in FORMATS:
        raise ReportError(f"{out}: write a .png, .svg or .pdf file (the suffix says which)")
    if dpi < 10:
        raise ValueError(f"dpi must be at least 10, got {dpi}")
    figure = draw_curves(runs, window, title, log_y=log_y, skip=skip)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format=kind, dpi=dpi)
    return out
