"""``build_monitor``: the drift monitor that ``DriftSettings`` ask for, new or restored."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from streamlearn.drift.config import (
    BINARY_DETECTORS,
    DriftConfig,
    DriftConfigError,
    DriftSettings,
    any_task_choices,
)
from streamlearn.drift.monitor import DriftMonitor

if TYPE_CHECKING:
    from streamlearn.classify.space import ClassSpace

__all__ = ["build_monitor"]

log = logging.getLogger(__name__)


def build_monitor(
    settings: DriftSettings,
    *,
    restored: DriftMonitor | Mapping[str, Any] | None = None,
    known_features: Iterable[str] | None = None,
    classes: ClassSpace | None = None,
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
    classes
        A classifier's class space (the learner's, restored or new): the monitor watches
        the 0/1 error and may use the binary detectors. None: a regressor.

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

    The binary detectors read a classifier's 0/1 error:

    >>> try:
    ...     build_monitor(DriftSettings(drift_detector="ddm"))
    ... except ValueError as exc:
    ...     print(exc)
    --drift-detector ddm reads a 0/1 error (1 = the predicted class was wrong), so it needs a
    classifier; a regressor's absolute error takes adwin or page-hinkley or kswin
    >>> from streamlearn.classify.space import ClassSpace
    >>> build_monitor(DriftSettings(drift_detector="ddm"), classes=ClassSpace(binary=True)).config
    DriftConfig(detector='ddm', features=(), warmup=500, on_drift='alert', swap_window=300,
    cooldown=1000)
    """
    config = DriftConfig.from_settings(settings)
    if isinstance(restored, Mapping):
        restored = restored.get("extensions", {}).get("drift")
    if config is None:
        if restored is not None:
            log.info("--drift-detector none: drift detection is off from here on")
        return None
    if classes is None and config.detector_name in BINARY_DETECTORS:
        raise DriftConfigError(
            f"--drift-detector {config.detector} reads a 0/1 error (1 = the predicted class was "
            f"wrong), so it needs a classifier; a regressor's absolute error takes "
            f"{' or '.join(any_task_choices())}"
        )
    if known_features is not None:
        known = list(known_features)
        unknown = [name for name in config.features if name not in known]
        if unknown:
            raise DriftConfigError(
                f"--drift-features names {', '.join(unknown)}, not in the stream's features "
                f"({', '.join(known)})"
            )
    if isinstance(restored, DriftMonitor):
        return restored.resume_with(config, classes=classes)
    return DriftMonitor(config, classes=classes)
