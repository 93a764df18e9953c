"""``streamlearn report``: the learning curves of saved runs on one PNG, SVG or PDF."""

from __future__ import annotations

from pathlib import Path

import click

from streamlearn.cli.inspect import TRUST_HELP
from streamlearn.observe.report import load_curves, plot_curves

__all__ = ["report_command"]


@click.command("report")
@click.argument(
    "state_dirs",
    metavar="STATE_DIR...",
    nargs=-1,
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--out",
    default="curves.png",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="STREAMLEARN_REPORT_OUT",
    help="File to write: .png, .svg or .pdf (its folder is created if needed).",
)
# No envvar for --label: one value per state dir does not fit in one environment variable.
@click.option(
    "--label",
    "labels",
    multiple=True,
    help="Legend entry of each STATE_DIR, in order; give one per STATE_DIR or none "
    "(default: the directory name and the model spec).",
)
@click.option(
    "--title",
    default=None,
    envvar="STREAMLEARN_REPORT_TITLE",
    help="Plot title (default: says the rolling window).",
)
@click.option(
    "--log-y",
    is_flag=True,
    default=False,
    envvar="STREAMLEARN_REPORT_LOG_Y",
    help="Logarithmic error axes (MAE, log loss): the first records' spike no longer "
    "flattens the rest.",
)
@click.option(
    "--skip",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    envvar="STREAMLEARN_REPORT_SKIP",
    help="Leave out the first N records learned (the warm-up's spike).",
)
@click.option(
    "--dpi",
    default=100,
    show_default=True,
    type=click.IntRange(min=10, max=1200),
    envvar="STREAMLEARN_REPORT_DPI",
    help="Dots per inch of a PNG (the plot is 9 x 4.5 inches).",
)
@click.option("--trust", is_flag=True, default=False, help=TRUST_HELP)
def report_command(
    state_dirs: tuple[Path, ...],
    out: Path,
    labels: tuple[str, ...],
    title: str | None,
    log_y: bool,
    skip: int,
    dpi: int,
    trust: bool,
) -> None:
    """Plot the learning curves of the runs in STATE_DIR... on one PNG, SVG or PDF.

    Each curve is the prequential rolling MAE of a regressor, or the rolling accuracy and log
    loss (cross-entropy, multiclass) of a classifier, on two plots (the learner's
    --rolling-window), against records learned, as kept in the state's checkpoint, one legend
    entry per run. Drift detections are vertical lines in the run's colour ending in a marker
    for what was done (a key names them); a warm start's frozen model A is a horizontal line
    at its MAE (accuracy, log loss). The states are read without their lock, so this works
    while a daemon runs.
    """
    if labels and len(labels) != len(state_dirs):
        raise click.UsageError(
            f"give one --label per STATE_DIR ({len(state_dirs)}) or none; got {len(labels)}"
        )
    try:
        runs = [
            run
            for i, state_dir in enumerate(state_dirs)
            for run in load_curves(state_dir, labels[i] if labels else None, trust=trust)
        ]
        path = plot_curves(runs, out, title=title, log_y=log_y, skip=skip, dpi=dpi)
    except ValueError as exc:  # ReportError, or a curve with non-finite points
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(str(path))
