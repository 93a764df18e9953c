"""Settings: one frozen object, from a TOML file < ``STREAMLEARN_*`` environment < flags.

click resolves the precedence itself: a flag beats its ``envvar``, which beats
the ``default_map`` that ``--config`` loads from TOML (``streamlearn.cli.config_file``).
This module holds the result, and declares the errors of building a daemon from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from streamlearn.drift.config import DriftSettings
from streamlearn.labels.settings import PseudoSettings


class ConfigError(ValueError):
    """The config file cannot be used; the message says why."""


class AppError(Exception):
    """A problem the user can fix (bad path, locked state, mismatched file): exit code 1.

    Raised while the daemon is built from ``Settings``; the CLI prints the message on
    one line.
    """


class AppUsageError(AppError):
    """A mistake in how the command was called (a bad model spec): exit code 2.

    ``option`` names the option to change (without its dashes) when one option is at fault.
    """

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class Settings:
    """Everything ``run`` and ``replay`` need, resolved from file, environment and flags."""

    source: str
    follow: bool
    target: str = "y"
    features: tuple[str, ...] | None = None
    id_column: str | None = None
    format: str = "auto"
    model: str = "sgd"
    model_from_flag: bool = False
    #: ``--task``: regression or classification; None: the model's.
    task: str | None = None
    #: A classifier's positive class, fixed classes and bound (``classify.space.ClassSpace``).
    positive_class: str | None = None
    classes: tuple[str, ...] | None = None
    max_classes: int = 100
    lr: float = 0.01
    #: Whether ``lr`` was given (flag, variable or file): a warm start then uses it as is.
    lr_from_flag: bool = False
    state_dir: Path | None = None
    reset: bool = False
    dead_letter: str | None = None
    predictions: str | None = None
    predictions_all: bool = False
    no_learn: bool = False
    checkpoint_every: int = 100_000
    checkpoint_interval: float = 5.0
    rolling_window: int = 1000
    max_line_bytes: int = 1 << 20
    rotate_wait: float = 5.0
    #: Distinct feature names a JSON stream may bring (``streamlearn.records.FeatureNames``).
    max_features: int = 10_000
    #: A CSV header row of other features: ``stop``, or ``dead-letter`` its rows.
    on_schema_change: str = "stop"
    batch_size: int = 1000
    rate: float = 0.0
    progress: bool = False
    #: Seconds between heartbeat lines in the log (0: none).
    log_every: float = 60.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    strict_features: bool = False
    http_learn: bool = False
    http_download: bool = False
    divergence_factor: float = 100.0
    warm_start: str | None = None
    #: Model A (and a ``warm:FILE`` teacher) may be a pickle (``--trust-pickle``).
    trust_pickle: bool = False
    transfer_mode: str = "finetune"
    trainable_layers: int = 1
    feature_map: str | None = None
    #: Model A's class labels -> the stream's (``--class-map 0=no,1=yes``).
    class_map: str | None = None
    on_worse_than_baseline: str = "serve-baseline"
    baseline_margin: float = 0.05
    bootstrap_servers: str | None = None
    topic: str | None = None
    group_id: str | None = None
    #: One of several instances of a single model, elected through the group (``run --standby``).
    standby: bool = False
    kafka_options: tuple[str, ...] = ()
    kafka_config: str | None = None
    start_from: str = "earliest"
    partition: int | None = None
    count: int | None = None
    on_data_loss: str = "fail"
    kafka_client: str = "kafka-python"
    #: One model per key (``streamlearn.cli.key_options``): the key's field, else None.
    key_by: str | None = None
    default_key: str | None = None
    max_live_keys: int = 10_000
    key_fallback: str = "none"
    metrics_top_keys: int = 10
    pseudo: PseudoSettings = field(default_factory=PseudoSettings)
    drift: DriftSettings = field(default_factory=DriftSettings)

    @property
    def is_kafka(self) -> bool:
        """True when the source is a Kafka topic: a ``kafka://`` URL (the flags only refine it)."""
        return self.source.startswith("kafka://")

    @classmethod
    def from_params(cls, params: Mapping[str, Any], **overrides: Any) -> Settings:
        """Build from click's parameter dict (other keys are left).

        The pseudo-label and join options become ``pseudo`` (``PseudoSettings``), the drift
        options ``drift`` (``DriftSettings``).
        """
        names = {f.name for f in fields(cls)}
        own = ("pseudo", "drift")  # built here, not taken from params
        known = {k: v for k, v in {**params, **overrides}.items() if k in names and k not in own}
        features = known.get("features")
        if isinstance(features, str):
            known["features"] = tuple(f.strip() for f in features.split(",") if f.strip()) or None
        classes = known.get("classes")
        if isinstance(classes, str):
            known["classes"] = tuple(c.strip() for c in classes.split(",") if c.strip()) or None
        if known.get("state_dir") is not None:
            known["state_dir"] = Path(known["state_dir"])
        return cls(
            **known,
            pseudo=PseudoSettings.from_params(params),
            drift=DriftSettings.from_params(params),
        )


def require_kafka_sinks(settings: Settings, why: str) -> None:
    """``--dead-letter`` and ``--predictions`` as ``kafka://`` topics (any case), or a usage
    error: ``why`` says why a file will not do (formatted with ``option`` and ``path``)."""
    for option, path in (
        ("dead-letter", settings.dead_letter),
        ("predictions", settings.predictions),
    ):
        if path is not None and not path.lower().startswith("kafka://"):
            raise AppUsageError(why.format(option=option, path=path), option=option)
