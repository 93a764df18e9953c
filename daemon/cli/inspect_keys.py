"""``inspect --key K`` and ``inspect --keys``: the models of a keyed run, one or all."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import click

from streamlearn.state import CheckpointError, CheckpointStore

__all__ = ["show_keys", "show_shared"]


def show_keys(
    store: CheckpointStore,
    state: Mapping[str, Any],
    key: str | None,
    order: tuple[str, int | None],
    as_json: bool,
) -> None:
    """Print one key's object (``key``) or the list of keys (sorted by ``order``: the sort and
    how many at most); a state of one model, or a key it does not hold, is a one-line error."""
    from streamlearn.keys.run import key_object, key_rows, read_keys, sorted_rows

    if store.key is None:
        raise click.ClickException(f"no state key in {store.directory}: cannot read its keys")
    try:
        models = read_keys(store.directory, store.key, state)
    except (ValueError, CheckpointError) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        if key is not None:
            learner = models.peek(key)
            if learner is None:
                raise click.ClickException(f"no key {key!r} in {store.directory}")
            obj = key_object(key, learner)
            click.echo(json.dumps(obj, indent=2, sort_keys=True) if as_json else _one(obj))
            return
        score = models.codec.score_name
        rows = sorted_rows(key_rows(models.entries(), score), score, *order)
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        models.close()
    _print_rows(rows, score, as_json)


def _print_rows(rows: list[dict[str, Any]], score: str, as_json: bool) -> None:
    """``inspect --keys``' rows, as JSON or a table."""
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'key':<32}{'records':>10}  {score}")
    for row in rows:
        value = row[score]
        shown = "n/a" if value is None or math.isnan(value) else f"{value:.6g}"
        click.echo(f"{row['key'][:31]:<32}{row['records_learned']:>10}  {shown}")


def show_shared(
    state_dir: str,
    key: str | None,
    trust: bool,
    as_json: bool,
    order: tuple[str, int | None] | None = None,
) -> None:
    """``inspect`` of a scaled-out run's shared store: its partitions, the key ``key``, or
    with ``order`` (``--keys``) every partition's keys together."""
    from pathlib import Path

    from streamlearn.keys.run import key_rows, read_keys, sorted_rows
    from streamlearn.scaleout.inspect import (
        describe_shared,
        find_key,
        partition_states,
        shared_summary,
    )

    try:
        if order is not None:
            rows: list[dict[str, Any]] = []
            score = "mae"
            for item in partition_states(Path(state_dir), trust):
                store, state = item["store"], item["state"]
                if state is None or store.key is None:
                    continue
                models = read_keys(item["directory"], store.key, state)
                try:
                    score = models.codec.score_name
                    rows += key_rows(models.entries(), score)
                finally:
                    models.close()
            _print_rows(sorted_rows(rows, score, *order), score, as_json)
            return
        if key is None:
            summary = shared_summary(Path(state_dir), trust)
            click.echo(json.dumps(summary, indent=2) if as_json else describe_shared(summary))
            return
        found = find_key(Path(state_dir), key, trust)
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from None
    if found is None:
        raise click.ClickException(f"no key {key!r} in any partition of {state_dir}")
    show_keys(found[0], found[1], key, ("key", None), as_json)


def _one(obj: Mapping[str, Any]) -> str:
    """One key's object for people: records, metrics, weights."""
    lines = [f"key              {obj['key']}", f"records learned  {obj['records_learned']}"]
    for name in ("metrics", "rolling_metrics"):
        values = obj.get(name) or {}
        shown = ", ".join(f"{k}={v:.6g}" for k, v in values.items() if isinstance(v, float | int))
        lines.append(f"{name.replace('_', ' '):<17}{shown or 'n/a'}")
    if "weights" in obj:
        weights = ", ".join(f"{k}={v:.6g}" for k, v in sorted(obj["weights"].items()))
        lines.append(f"weights          {weights}")
    if "intercept" in obj:
        lines.append(f"intercept        {obj['intercept']:.6g}")
    return "\n".join(lines)
