"""``inspect``: what the model in a state dir has learned, as text or as JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click


def format_metric(value: float | None) -> str:
    """A metric for people: six significant digits, ``n/a`` before it means anything.

    >>> format_metric(0.123456789), format_metric(None)
    ('0.123457', 'n/a')
    """
    return "n/a" if value is None else f"{value:.6g}"


#: Width of the names column of ``describe``.
_NAME = 17


def describe(summary: Mapping[str, Any], generation: int, now: float | None = None) -> str:
    """The readable ``inspect`` output of a state summary (``inspect --json``'s object).

    ``now`` (Unix seconds, default the clock) dates the checkpoint's age.

    >>> print(describe({"model": "sgd", "records_seen": 3, "records_learned": 2,
    ...     "records_rejected": 1, "records_unlabeled": 0,
    ...     "rejected_by_reason": {"bad_number": 1},
    ...     "position": {"kind": "kafka", "topic": "ev", "next_offsets": {"0": 2, "1": 1}},
    ...     "settings": {"target": "y", "features": ["a", "b"]},
    ...     "metrics": {"mae": 0.5, "rmse": 0.5, "r2": None}, "rolling_window": 1000,
    ...     "rolling_metrics": {"mae": 0.25, "rmse": 0.3, "r2": None},
    ...     "checkpoint": {"created": 1714564800.0},
    ...     "weights": {"b": 2.0, "a": 1.0}, "intercept": 0.25}, generation=4,
    ...     now=1714564800.0 + 190))
    model            sgd
    target           y, features a, b
    position         ev: p0=2 p1=1
    records seen     3
    records learned  2
    records rejected 1 (bad_number 1)
    unlabeled        0
                     MAE          RMSE         R2
      cumulative     0.5          0.5          n/a
      rolling 1000   0.25         0.3          n/a
    checkpoint       generation 4, 2024-05-01 12:00:00 UTC (3 min ago)
    weights          a=1, b=2
    intercept        0.25
    """
    from streamlearn.observe.status import describe_position  # not at --help time

    lines = [
        _line("model", summary["model"]),
        _line("target", _target(summary.get("settings") or {})),
        _line("position", describe_position(summary.get("position"))),
        _line("records seen", summary["records_seen"]),
    ]
    if "records_scored" in summary:  # a --no-learn run's summary
        lines.append(_line("records scored", summary["records_scored"]))
    lines.append(_line("records learned", summary["records_learned"]))
    lines.append(_line("records rejected", _rejected(summary)))
    lines.append(_line("unlabeled", summary["records_unlabeled"]))
    lines += _metrics_table(summary)
    lines += _parts(summary)
    checkpoint = summary.get("checkpoint") or {}
    created = checkpoint.get("created")
    if created is not None:
        age = _age((time.time() if now is None else now) - created)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(created))
        lines.append(_line("checkpoint", f"generation {generation}, {stamp} ({age} ago)"))
    else:
        lines.append(_line("checkpoint", f"generation {generation}"))
    if "epoch" in summary:
        holder = summary.get("epoch_holder")
        held = f", raised by {holder['instance']}" if holder else ""
        lines.append(_line("epoch", f"{summary['epoch']} (takeovers of a --standby group{held})"))
    if "weights" in summary:
        weights = ", ".join(f"{k}={v:.6g}" for k, v in sorted(summary["weights"].items()))
        lines.append(_line("weights", weights))
        if "intercept" in summary:
            lines.append(_line("intercept", f"{summary['intercept']:.6g}"))
    return "\n".join(lines)


def _line(name: str, value: object) -> str:
    return f"{name:<{_NAME}}{value}"


def _target(settings: Mapping[str, Any]) -> str:
    features = settings.get("features")
    named = ", ".join(features) if features else "all other columns or keys"
    return f"{settings.get('target', 'y')}, features {named}"


def _rejected(summary: Mapping[str, Any]) -> str:
    reasons = summary.get("rejected_by_reason") or {}
    if not reasons:
        return str(summary["records_rejected"])
    top = sorted(reasons.items(), key=lambda item: -item[1])[:3]
    more = ", ..." if len(reasons) > 3 else ""
    listed = ", ".join(f"{reason} {count}" for reason, count in top)
    return f"{summary['records_rejected']} ({listed}{more})"


def _metrics_table(summary: Mapping[str, Any]) -> list[str]:
    """Cumulative and rolling metrics side by side, and the frozen baseline's (warm start)."""
    if summary.get("task") == "classification":
        return _class_table(summary)
    rows = [
        ("cumulative", summary["metrics"]),
        (f"rolling {summary.get('rolling_window', '')}".rstrip(), summary.get("rolling_metrics")),
        ("baseline A", summary.get("baseline_metrics")),
        ("baseline A, roll.", summary.get("baseline_rolling_metrics")),
        ("served", summary.get("served_metrics")),
    ]
    table = [f"{'':<{_NAME}}{'MAE':<13}{'RMSE':<13}R2"]
    for name, metrics in rows:
        if metrics:
            values = [format_metric(metrics.get(key)) for key in ("mae", "rmse", "r2")]
            table.append(f"  {name:<{_NAME - 2}}{values[0]:<13}{values[1]:<13}{values[2]}")
    return table


def _class_table(summary: Mapping[str, Any]) -> list[str]:
    """A classifier's metrics (cumulative, rolling, baseline A) and its confusion matrix.

    >>> for line in _class_table({"classes": ["no", "yes"], "rolling_window": 100,
    ...     "metrics": {"accuracy": 0.75, "log_loss": 0.5, "f1": 0.8, "roc_auc": 0.9,
    ...                 "confusion": {"no": {"no": 1}, "yes": {"no": 1, "yes": 2}}}}):
    ...     print(line)
    classes          no, yes
                     accuracy     log loss     F1           ROC AUC
      cumulative     0.75         0.5          0.8          0.9
    confusion        rows: true class, columns: predicted no, yes
      no             1            0
      yes            1            2
    """
    metrics = summary["metrics"]
    binary = "log_loss" in metrics
    keys = (
        ("accuracy", "log_loss", "f1", "roc_auc")
        if binary
        else ("accuracy", "cross_entropy", "macro_f1")
    )
    heads = (
        ("accuracy", "log loss", "F1", "ROC AUC")
        if binary
        else ("accuracy", "cross-entr.", "macro F1")
    )
    classes = list(summary.get("classes") or [])
    table = [_line("classes", ", ".join(classes))]
    table.append(f"{'':<{_NAME}}" + "".join(f"{head:<13}" for head in heads).rstrip())
    rows = [
        ("cumulative", metrics),
        (f"rolling {summary.get('rolling_window', '')}".rstrip(), summary.get("rolling_metrics")),
        ("baseline A", summary.get("baseline_metrics")),
    ]
    for name, values in rows:
        if values:
            cells = [format_metric(values.get(key)) for key in keys]
            table.append(f"  {name:<{_NAME - 2}}" + "".join(f"{c:<13}" for c in cells).rstrip())
    confusion = metrics.get("confusion") or {}
    if confusion and len(classes) <= 10:  # a larger matrix is for inspect --json
        header = f"rows: true class, columns: predicted {', '.join(classes)}"
        table.append(_line("confusion", header))
        for true in classes:
            counts = [str(confusion.get(true, {}).get(pred, 0)) for pred in classes]
            table.append(
                f"  {true[:14]:<{_NAME - 2}}" + "".join(f"{c:<13}" for c in counts).rstrip()
            )
    return table


def _parts(summary: Mapping[str, Any]) -> list[str]:
    """What the optional parts say: the baseline guard, drift, pseudo-labels, the join, a tree."""
    lines = []
    guard = summary.get("baseline_guard")
    if guard is not None:
        serving = "A (the baseline)" if summary.get("serving") == "baseline" else "B (online)"
        lines.append(
            _line(
                "serving", f"{serving}; {guard['switches']} switch(es), {guard['resets']} reset(s)"
            )
        )
    drift = summary.get("drift")
    if drift is not None:
        text = f"{drift['events_total']} event(s), on drift {drift['on_drift']}"
        events = summary.get("drift_events") or []
        if events:
            last = events[-1]
            text += (
                f"; last at record {last['record']}: {last['detector']} on {last['signal']}, "
                f"{last['action']}"
            )
        lines.append(_line("drift", text))
    lines += _said(summary, "pseudo_labels", "pseudo-labels", _PSEUDO_TEXT)
    lines += _said(summary, "pending_labels", "pending labels", _PENDING_TEXT)
    if summary.get("keyed"):  # one model per key
        held, live = summary.get("keys_total", 0), summary.get("keys_live", 0)
        lines.append(_line("keys", f"{held} held, {live} in memory then (inspect --keys, --key K)"))
    lines += _said(summary, "tree", "tree", _TREE_TEXT)
    return lines


#: The one-line texts of optional parts, filled from the part's fields.
_PSEUDO_TEXT = (
    "{teacher}: offered {offered}, accepted {accepted}, rejected {rejected}, queued {queued}"
)
_PENDING_TEXT = "{pending} waiting, {joined} joined, {expired} expired (ttl {ttl})"
_TREE_TEXT = "{trees} tree(s), {nodes} nodes, {leaves} leaves, height {height}"


def _said(summary: Mapping[str, Any], key: str, name: str, text: str) -> list[str]:
    """The line ``name: text`` filled from ``summary[key]``; none when the part is absent."""
    part = summary.get(key)
    return [] if part is None else [_line(name, text.format_map(part))]


def _age(seconds: float) -> str:
    """A duration for people.

    >>> _age(42), _age(190), _age(7300), _age(200000)
    ('42 s', '3 min', '2.0 h', '2.3 days')
    """
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


#: How ``inspect --keys`` may sort (``streamlearn.keys.run.SORTS``).
SORTS = ("score", "records", "key")
KEYS_HELP = (
    "A keyed run: every key with its records learned and rolling MAE (or accuracy), "
    "worst first (--sort, --top)."
)
TOP_HELP = "With --keys: the N first only (worst first by default)."
SORT_HELP = "With --keys: the order, score (worst first), records (most first) or key."

#: ``--trust`` of the commands that read a state dir without running on it.
TRUST_HELP = (
    "Read a state dir that another user owns. Loading a checkpoint runs code that "
    "whoever can write the dir's key chooses: trust that user first."
)


@click.command()
@click.argument("state_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, default=False, help="Print JSON.")
@click.option("--trust", is_flag=True, default=False, help=TRUST_HELP)
@click.option("--key", default=None, metavar="KEY", help="A keyed run: that key's model.")
@click.option("--keys", "list_keys", is_flag=True, default=False, help=KEYS_HELP)
@click.option(
    "--sort", default="score", show_default=True, type=click.Choice(SORTS), help=SORT_HELP
)
@click.option("--top", default=None, type=click.IntRange(min=1), metavar="N", help=TOP_HELP)
def inspect(
    state_dir: str,
    as_json: bool,
    trust: bool,
    key: str | None,
    list_keys: bool,
    sort: str,
    top: int | None,
) -> None:
    """Show what the model in STATE_DIR has learned (works while a daemon runs)."""
    from streamlearn.loop import inspect_state
    from streamlearn.scaleout.inspect import is_shared_store
    from streamlearn.state import CheckpointError, CheckpointStore
    from streamlearn.state.epoch import EPOCH_NAME, read_epoch, read_holder

    if is_shared_store(state_dir):
        from streamlearn.cli.inspect_keys import show_shared

        show_shared(state_dir, key, trust, as_json, (sort, top) if list_keys else None)
        return
    try:
        store = CheckpointStore(state_dir, lock=False, trust=trust)
        loaded = store.load()
        # A --standby group's dir counts its takeovers; a lone daemon's has no epoch file.
        shared = (Path(state_dir) / EPOCH_NAME).exists()
        epoch = read_epoch(Path(state_dir)) if shared else None
        holder = read_holder(Path(state_dir)) if shared else None
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from None
    if loaded is None:
        raise click.ClickException(f"no checkpoint in {state_dir} yet")
    if key is not None or list_keys:
        from streamlearn.cli.inspect_keys import show_keys

        show_keys(store, loaded.state, key, (sort, top), as_json)
        return
    summary = inspect_state(loaded.state, loaded.generation)
    if epoch is not None:
        summary["epoch"] = epoch
        summary["epoch_holder"] = holder  # None: no record of who raised it
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
    else:
        click.echo(describe(summary, loaded.generation))
