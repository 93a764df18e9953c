"""Flags that mean nothing with the others given: usage errors, not silently ignored.

A flag counts as given when it is on the command line, or when the environment or the
config file sets it to something other than its default: a deployment's environment file
that states the defaults (``STREAMLEARN_FROM=earliest``) trips nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
from click.core import ParameterSource

__all__ = ["check_combinations", "given"]

#: Options that only a Kafka source reads.
KAFKA_ONLY = (
    "bootstrap_servers",
    "topic",
    "group_id",
    "kafka_options",
    "kafka_config",
    "start_from",
    "kafka_client",
    "on_data_loss",
)

#: Options that only a warm start (``--warm-start``) reads.
WARM_START_ONLY = ("transfer_mode", "feature_map", "class_map")


def _param(ctx: click.Context, name: str) -> click.Parameter | None:
    return next((p for p in ctx.command.params if p.name == name), None)


def given(ctx: click.Context, name: str) -> bool:
    """Whether the option ``name`` was given: on the command line, or elsewhere (the
    environment, the config file) with a value that is not its default."""
    source = ctx.get_parameter_source(name)
    if source is None or source is ParameterSource.DEFAULT:
        return False
    if source is ParameterSource.COMMANDLINE:
        return True
    param = _param(ctx, name)
    if param is None:
        return False
    default = param.default
    if default is not None and not callable(default):
        default = param.type_cast_value(ctx, default)
    return bool(ctx.params.get(name) != default)


def _flag(ctx: click.Context, name: str) -> str:
    """How ``--help`` writes the option: ``-G/--group-id``, ``--from``."""
    param = _param(ctx, name)
    return "/".join(param.opts) if param is not None else f"--{name.replace('_', '-')}"


def check_combinations(ctx: click.Context, params: Mapping[str, Any]) -> None:
    """Refuse a given flag that the other options make meaningless (``click.UsageError``).

    ``params`` are the command's values, its ``source`` included.
    """
    problems: list[str] = []
    if given(ctx, "reset") and params.get("reset") and params.get("state_dir") is None:
        problems.append("--reset needs --state-dir: without one there is no state to reset")
    for name in WARM_START_ONLY:
        if given(ctx, name) and params.get("warm_start") is None:
            problems.append(f"{_flag(ctx, name)} needs --warm-start: it says how model A is used")
    if given(ctx, "teacher") and not params.get("pseudo_label"):
        problems.append("--teacher needs --pseudo-label: the teacher pseudo-labels records")
    if not str(params.get("source", "")).startswith("kafka://"):
        for name in KAFKA_ONLY:
            if given(ctx, name):
                problems.append(
                    f"{_flag(ctx, name)} reads a Kafka topic, and the source is a file; "
                    "write the source as kafka://HOST:PORT/TOPIC"
                )
    target, id_column = params.get("target"), params.get("id_column")
    if id_column is not None and target == id_column:
        problems.append(f"--target and --id-column name the same column {id_column!r}")
    features = params.get("features")
    names = [name.strip() for name in features.split(",")] if isinstance(features, str) else []
    if id_column is not None and id_column in names:
        problems.append(
            f"--features names the id column {id_column!r} (--id-column): an id is not a feature"
        )
    if problems:
        raise click.UsageError("; ".join(problems), ctx=ctx)
