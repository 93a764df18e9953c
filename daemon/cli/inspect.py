"""``inspect``: what the model in a state dir has learned, as text or as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click


def format_metric(value: float | None) -> str:
    """A metric for people: six significant digits, ``n/a`` before it means anything.

    >>> format_metric(0.123456789), format_metric(None)
    ('0.123457', 'n/a')
    """
    return "n/a" if value is None else f"{value:.6g}"


def describe(summary: Mapping[str, Any], generation: int) -> str:
    """The readable ``inspect`` output of a state summary (``inspect --json``'s object).

    >>> print(describe({"model": "sgd", "records_seen": 3, "records_learned": 2,
    ...     "records_rejected": 1, "records_unlabeled": 0, "position": {"offset": 9},
    ...     "metrics": {"mae": 0.5, "rmse": 0.5, "r2": None},
    ...     "weights": {"b": 2.0, "a": 1.0}, "intercept": 0.25}, generation=4))
    model            sgd
    generation       4
    records seen     3
    records learned  2
    records rejected 1
    unlabeled        0
    MAE / RMSE / R2  0.5 / 0.5 / n/a
    position         {"offset": 9}
    weights          a=1, b=2
    intercept        0.25
    """
    metrics = summary["metrics"]
    lines = [
        f"model            {summary['model']}",
        f"generation       {generation}",
        f"records seen     {summary['records_seen']}",
        f"records learned  {summary['records_learned']}",
        f"records rejected {summary['records_rejected']}",
        f"unlabeled        {summary['records_unlabeled']}",
        f"MAE / RMSE / R2  {format_metric(metrics['mae'])} / {format_metric(metrics['rmse'])} / "
        f"{format_metric(metrics['r2'])}",
        f"position         {json.dumps(summary['position'])}",
    ]
    if "weights" in summary:
        weights = ", ".join(f"{k}={v:.6g}" for k, v in sorted(summary["weights"].items()))
        lines.append(f"weights          {weights}")
        lines.append(f"intercept        {summary['intercept']:.6g}")
    return "\n".join(lines)


#: ``--trust`` of the commands that read a state dir without running on it.
TRUST_HELP = (
    "Read a state dir that another user owns. Loading a checkpoint runs code that "
    "whoever can write the dir's key chooses: trust that user first."
)


@click.command()
@click.argument("state_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, default=False, help="Print JSON.")
@click.option("--trust", is_flag=True, default=False, help=TRUST_HELP)
def inspect(state_dir: str, as_json: bool, trust: bool) -> None:
    """Show what the model in STATE_DIR has learned (works while a daemon runs)."""
    from streamlearn.loop import inspect_state
    from streamlearn.state import CheckpointError, CheckpointStore

    try:
        store = CheckpointStore(state_dir, lock=False, trust=trust)
        loaded = store.load()
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from None
    if loaded is None:
        raise click.ClickException(f"no checkpoint in {state_dir} yet")
    summary = inspect_state(loaded.state, loaded.generation)
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
    else:
        click.echo(describe(summary, loaded.generation))
