"""Checks of the settings before anything is opened or built: against each other, against
the environment, and a model's size against the records' features.

Each failing check is an ``AppUsageError`` that says what to change (exit 2): a wrong
setting is refused at start rather than found by a traceback once the daemon runs.
"""

from __future__ import annotations

from streamlearn.config import AppUsageError, Settings

__all__ = ["check_environment", "check_join", "check_model_size"]


def check_environment() -> None:
    """Settings the daemon reads from the environment deep inside (the checkpoint fork mode)."""
    from streamlearn.state import fork_mode

    try:
        fork_mode()
    except ValueError as exc:
        raise AppUsageError(str(exc)) from None


def check_join(settings: Settings, fmt: str) -> None:
    """``--label-ttl`` joins late labels by id: a CSV needs its id column named (a JSON
    record's id is its ``id`` key unless told)."""
    if settings.pseudo.label_ttl is not None and fmt == "csv" and settings.id_column is None:
        raise AppUsageError(
            "joining late labels needs the column of their ids: name it with --id-column",
            option="label-ttl",
        )


def check_model_size(settings: Settings, features: list[str] | None) -> None:
    """The ``--model`` spec within its budget for the records' features: those named (a CSV
    header, ``--features``), else as many as ``--max-features`` lets a record bring."""
    from streamlearn.models.registry import SpecError, check_size

    if features is not None and len(features) > settings.max_features:
        named = "--features" if settings.features is not None else "the CSV header"
        raise AppUsageError(
            f"{named} names {len(features):,} features, more than --max-features "
            f"{settings.max_features:,}",
            option="max-features",
        )
    try:
        check_size(
            settings.model,
            len(features) if features else settings.max_features,
            len(settings.classes) if settings.classes else settings.max_classes,
        )
    except SpecError as exc:
        if features:
            raise AppUsageError(str(exc)) from None
        raise AppUsageError(
            f"{exc} (records may bring up to --max-features names: name them with "
            "--features, or lower --max-features)"
        ) from None
