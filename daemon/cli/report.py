"""``streamlearn report``: the learning curves of saved runs on one PNG."""

from __future__ import annotations

from pathlib import Path

import click

from streamlearn.cli.inspect import TRUST_HELP
from streamlearn.observe.report import load_curve, plot_curves

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
    help="PNG file to write (its folder is created if needed).",
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
@click.option("--trust", is_flag=True, default=False, help=TRUST_HELP)
def report_command(
    state_dirs: tuple[Path, ...],
    out: Path,
    labels: tuple[str, ...],
    title: str | None,
    trust: bool,
) -> None:
    """Plot the learning curves of the runs in STATE_DIR... on one PNG.

    Each curve is the prequential rolling MAE (the learner's --rolling-window) against records
    learned, as kept in the state's checkpoint; drift detections are dotted vertical lines.
    The states are read without their lock, so this works while a daemon runs.
    """
    if labels and len(labels) != len(state_dirs):
        raise click.UsageError(
            f"give one --label per STATE_DIR ({len(state_dirs)}) or none; got {len(labels)}"
        )
    try:
        runs = [
            load_curve(state_dir, labels[i] if labels else None, trust=trust)
            for i, state_dir in enumerate(state_dirs)
        ]
        path = plot_curves(runs, out, title=title)
    except ValueError as exc:  # ReportError, or a curve with non-finite points
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(str(path))
