"""What the drift options ask for: the raw ``DriftSettings`` and the checked ``DriftConfig``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "ACTIONS",
    "BINARY_DETECTORS",
    "CLASSIFICATION_DETECTOR",
    "DEFAULT_COOLDOWN",
    "DEFAULT_DETECTOR",
    "DEFAULT_SWAP_WINDOW",
    "DEFAULT_WARMUP",
    "DETECTOR_CHOICES",
    "DETECTOR_NAMES",
    "ON_DRIFT",
    "SWAP_PATIENCE",
    "DriftConfig",
    "DriftConfigError",
    "DriftSettings",
    "any_task_choices",
    "check_count",
    "parse_features",
]

#: ``--drift-detector`` choice -> the name in events and telemetry labels.
DETECTOR_CHOICES: dict[str, str] = {
    "adwin": "adwin",
    "page-hinkley": "page_hinkley",
    "kswin": "kswin",
    "ddm": "ddm",
    "eddm": "eddm",
    "hddm-a": "hddm_a",
    "hddm-w": "hddm_w",
}
#: The detectors of a 0/1 stream (River's ``drift.binary``): a classifier's error only.
BINARY_DETECTORS: tuple[str, ...] = ("ddm", "eddm", "hddm_a", "hddm_w")
#: The names of the detectors any task may use, as they appear in ``drift_events`` and
#: ``streamlearn_drift_detections_total`` (a classifier's monitor adds ``BINARY_DETECTORS``).
DETECTOR_NAMES: tuple[str, ...] = tuple(
    name for name in DETECTOR_CHOICES.values() if name not in BINARY_DETECTORS
)
#: What ``--on-drift`` may ask for.
ON_DRIFT: tuple[str, ...] = ("alert", "reset", "rollback", "background")
#: Every action label counted by ``Telemetry.drift_action`` (``swap``/``discard`` end a challenger).
ACTIONS: tuple[str, ...] = (*ON_DRIFT, "swap", "discard")

#: The default detector of a regressor's error (bench/README.md, "Drift detectors").
DEFAULT_DETECTOR = "adwin"
#: The default detector of a classifier's 0/1 error, measured by
#: ``bench/bench_drift_classify.py`` against the binary detectors and Page-Hinkley on SEA and
#: Agrawal with a concept switch: ADWIN missed the fewest switches with the fewest false
#: alarms, and its delays were among the shortest. The same as ``DEFAULT_DETECTOR``, so the
#: one ``--drift-detector`` default serves both tasks.
CLASSIFICATION_DETECTOR = DEFAULT_DETECTOR
DEFAULT_WARMUP = 500
DEFAULT_SWAP_WINDOW = 300
DEFAULT_COOLDOWN = 1000
#: A challenger that has not won after this many swap windows is dropped.
SWAP_PATIENCE = 10


def any_task_choices() -> list[str]:
    """The ``--drift-detector`` choices a regressor may use too (not ``BINARY_DETECTORS``).

    >>> any_task_choices()
    ['adwin', 'page-hinkley', 'kswin']
    """
    return [choice for choice, name in DETECTOR_CHOICES.items() if name not in BINARY_DETECTORS]


class DriftConfigError(ValueError):
    """Drift options that cannot work together; the message says what to write instead."""


def parse_features(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Feature names from ``--drift-features`` (``"a,b"`` or a list); empty for none.

    >>> parse_features(" temp, hum ")
    ('temp', 'hum')
    >>> try:
    ...     parse_features("a,,a")
    ... except ValueError as exc:
    ...     print(exc)
    --drift-features names 'a' twice; give each feature once, e.g. 'a,b'
    """
    if value is None:
        return ()
    parts = value.split(",") if isinstance(value, str) else list(value)
    names = [str(part).strip() for part in parts]
    names = [name for name in names if name]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DriftConfigError(
                f"--drift-features names {name!r} twice; give each feature once, e.g. 'a,b'"
            )
        seen.add(name)
    return tuple(names)


def check_count(value: Any, option: str, minimum: int) -> int:
    """``value`` as a whole number of records, at least ``minimum``; ``option`` names it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise DriftConfigError(f"{option} must be a whole number of records, got {value!r}")
    if value < minimum:
        raise DriftConfigError(f"{option} must be at least {minimum} records, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class DriftSettings:
    """The drift options as given, before they are checked together (``DriftConfig.from_settings``).

    The fields are named as the options' parameters (``--drift-warmup`` is ``drift_warmup``).
    """

    #: ``adwin``, ``page-hinkley``, ``kswin``, a classifier's ``ddm``, ``eddm``, ``hddm-a``,
    #: ``hddm-w``, or ``none`` (no monitor).
    drift_detector: str = DEFAULT_DETECTOR
    #: Input features watched besides the error (``"a,b"`` or names).
    drift_features: str | tuple[str, ...] = ()
    #: Records ignored at start-up and after each model change.
    drift_warmup: int = DEFAULT_WARMUP
    #: ``alert``, ``reset``, ``rollback`` or ``background``.
    on_drift: str = "alert"
    #: Records over which a challenger's MAE is compared with the model's.
    drift_swap_window: int = DEFAULT_SWAP_WINDOW
    #: Stream records after an acted-on detection in which others are not acted on.
    drift_cooldown: int = DEFAULT_COOLDOWN

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> DriftSettings:
        """The settings among a command's parameters; other keys, and None values, are left."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in params.items() if k in names and v is not None})


@dataclass(frozen=True)
class DriftConfig:
    """What to watch, with which detector, and what to do on a detection.

    Parameters
    ----------
    detector
        ``adwin``, ``page-hinkley`` (or ``page_hinkley``), ``kswin``, or one of a
        classifier's binary detectors, ``ddm``, ``eddm``, ``hddm-a``, ``hddm-w``.
    features
        Input features watched besides the error (two-sided test).
    warmup
        Records ignored at start-up and after each model change (error signal).
    on_drift
        ``alert``, ``reset``, ``rollback`` or ``background``.
    swap_window
        Records over which a challenger's mean error (a classifier's error rate) is
        compared with the model's.
    cooldown
        Stream records after an acted-on detection during which detections are not acted on.

    Examples
    --------
    >>> DriftConfig(detector="page-hinkley", features=("a",)).detector_name
    'page_hinkley'
    >>> try:
    ...     DriftConfig(on_drift="retrain")
    ... except ValueError as exc:
    ...     print(exc)
    --on-drift must be one of alert, reset, rollback, background; got 'retrain'
    """

    detector: str = DEFAULT_DETECTOR
    features: tuple[str, ...] = ()
    warmup: int = DEFAULT_WARMUP
    on_drift: str = "alert"
    swap_window: int = DEFAULT_SWAP_WINDOW
    cooldown: int = DEFAULT_COOLDOWN
    detector_name: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        detector = str(self.detector).strip().lower().replace("_", "-")
        if detector not in DETECTOR_CHOICES:
            raise DriftConfigError(
                f"--drift-detector must be one of {', '.join(DETECTOR_CHOICES)} or none; "
                f"got {self.detector!r}"
            )
        if self.on_drift not in ON_DRIFT:
            raise DriftConfigError(
                f"--on-drift must be one of {', '.join(ON_DRIFT)}; got {self.on_drift!r}"
            )
        object.__setattr__(self, "detector", detector)
        object.__setattr__(self, "detector_name", DETECTOR_CHOICES[detector])
        object.__setattr__(self, "features", parse_features(self.features))
        if self.features and self.detector_name in BINARY_DETECTORS:
            raise DriftConfigError(
                f"--drift-features with --drift-detector {detector}: a binary detector reads "
                f"only 0/1 values; watch features with {' or '.join(any_task_choices())}"
            )
        object.__setattr__(self, "warmup", check_count(self.warmup, "--drift-warmup", 0))
        object.__setattr__(
            self, "swap_window", check_count(self.swap_window, "--drift-swap-window", 10)
        )
        object.__setattr__(self, "cooldown", check_count(self.cooldown, "--drift-cooldown", 0))

    @property
    def signals(self) -> tuple[str, ...]:
        """The watched signals: ``error`` and ``feature:<name>`` for each feature."""
        return ("error", *(f"feature:{name}" for name in self.features))

    @classmethod
    def from_settings(cls, settings: DriftSettings) -> DriftConfig | None:
        """The config ``settings`` ask for; None for ``--drift-detector none``.

        >>> DriftConfig.from_settings(DriftSettings(drift_detector="none")) is None
        True
        >>> try:
        ...     DriftConfig.from_settings(DriftSettings(drift_detector="none", on_drift="reset"))
        ... except ValueError as exc:
        ...     print(exc)
        --on-drift reset needs a drift detector; drop it or choose --drift-detector (adwin,
        page-hinkley, kswin, ddm, eddm, hddm-a, hddm-w)
        """
        detector = str(settings.drift_detector)
        features = parse_features(settings.drift_features)
        on_drift = settings.on_drift or "alert"
        if detector.strip().lower() == "none":
            if on_drift != "alert" or features:
                asked = f"--on-drift {on_drift}" if on_drift != "alert" else "--drift-features"
                raise DriftConfigError(
                    f"{asked} needs a drift detector; drop it or choose --drift-detector "
                    f"({', '.join(DETECTOR_CHOICES)})"
                )
            return None
        return cls(
            detector=detector,
            features=features,
            warmup=settings.drift_warmup,
            on_drift=str(on_drift),
            swap_window=settings.drift_swap_window,
            cooldown=settings.drift_cooldown,
        )
