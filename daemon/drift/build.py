"""``build_monitor``: the drift monitor that ``DriftSettings`` ask for, new or restored."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from streamlearn.drift.config import DriftConfig, DriftConfigError, DriftSettings
from streamlearn.drift.monitor import DriftMonitor

__all__ = ["build_monitor"]

log = logging.getLogger(__name__)


def build_monitor(
    settings: DriftSettings,
    *,
    restored: DriftMonitor | Mapping[str, Any] | None = None,
    known_features: Iterable[str] | None = None,
) -> DriftMonitor | None:
    """The drift monitor ``settings`` ask for (None for ``--drift-detector none``).

    Parameters
    ----------
    settings
        The drift options (``Settings.drift``); the defaults are the ``adwin`` detector
        and ``alert``.
    restored
        The monitor found in the checkpoint (``state["extensions"]["drift"]``) or the whole
        state; it continues (same options) or hands its history to a new one.
    known_features
        The stream's feature names, when known: ``--drift-features`` must be among them.

    Raises
    ------
    DriftConfigError
        A ``ValueError`` whose message says which option to change.

    Examples
    --------
    >>> settings = DriftSettings(drift_detector="page-hinkley", drift_features="a,b")
    >>> monitor = build_monitor(settings)
    >>> monitor.config.detector_name, monitor.config.signals
    ('page_hinkley', ('error', 'feature:a', 'feature:b'))
    >>> build_monitor(DriftSettings(drift_detector="none")) is None
    True
    >>> try:
    ...     build_monitor(DriftSettings(drift_features="temp"), known_features=["a", "b"])
    ... except ValueError as exc:
    ...     print(exc)
    --drift-features names temp, not in the stream's features (a, b)
    """
    config = DriftConfig.from_settings(settings)
    if isinstance(restored, Mapping):
        restored = restored.get("extensions", {}).get("drift")
    if config is None:
        if restored is not None:
            log.info("--drift-detector none: drift detection is off from here on")
        return None
    if known_features is not None:
        known = list(known_features)
        unknown = [name for name in config.features if name not in known]
        if unknown:
            raise DriftConfigError(
                f"--drift-features names {', '.join(unknown)}, not in the stream's features "
                f"({', '.join(known)})"
            )
    if isinstance(restored, DriftMonitor):
        return restored.resume_with(config)
    return DriftMonitor(config)
