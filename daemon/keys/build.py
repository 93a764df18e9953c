"""Wiring a keyed run (``--key-by``) from ``Settings``: its checks, its store and its tally.

``app.build`` calls :func:`check_keyed` before anything is opened and :func:`open_keyed`
where a run of one model builds its learner. Each key's learner is the ``--model`` spec
made fresh, or a copy of the warm start's B (model A, the frozen baseline, and the class
space are shared by every key, pickled by reference).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamlearn.config import AppError, AppUsageError, Settings
from streamlearn.curve import Curve

from .codec import KEY_CURVE_POINTS, LearnerCodec, describe_regression
from .fields import MESSAGE_KEY
from .run import KeyedRun, KeyLearner
from .store import KeyedModels, clear_directory
from .tally import ClassTally, RegressionTally, Tally
from .units import KeyClassifier, KeyRegressor

if TYPE_CHECKING:
    from river import base

    from streamlearn.app import Warm
    from streamlearn.classify.space import ClassSpace
    from streamlearn.interfaces import Monitor
    from streamlearn.state import CheckpointStore

__all__ = [
    "KeyLearners",
    "check_keyed",
    "describe_class",
    "keyed_learners",
    "open_keyed",
    "open_keyed_run",
]

log = logging.getLogger(__name__)


def check_keyed(settings: Settings) -> None:
    """The keyed options make sense together (else an ``AppUsageError`` naming the option)."""
    if settings.key_by is None:
        for option, given in (
            ("default-key", settings.default_key is not None),
            ("key-fallback", settings.key_fallback != "none"),
        ):
            if given:
                raise AppUsageError(f"--{option} goes with --key-by", option=option)
        return
    by = settings.key_by
    if by == MESSAGE_KEY and not settings.is_kafka:
        raise AppUsageError("--key-by :key takes the Kafka message key: the source is a file")
    if by in (settings.target, settings.id_column):
        raise AppUsageError(f"--key-by {by}: the key cannot be the target or the id column")
    if settings.features is not None and by in settings.features:
        raise AppUsageError(f"--key-by {by}: the key is never a feature (drop it from --features)")
    if settings.key_fallback == "warm" and settings.warm_start is None:
        raise AppUsageError("--key-fallback warm predicts with model A: give --warm-start")
    if settings.no_learn:
        raise AppUsageError(
            "--no-learn with --key-by is not supported yet (one model per key)", option="no-learn"
        )
    if settings.pseudo.pseudo_label and settings.pseudo.deterministic is False:
        raise AppUsageError(
            "--threaded with --key-by: each key's pseudo-labels are decided on the loop "
            "(--deterministic); a side thread per key would not be bounded",
            option="threaded",
        )


def describe_class(learner: Any) -> tuple[int, float]:
    """Records learned and rolling accuracy of a ``ClassLearner`` (NaN before its first score).

    >>> from streamlearn.classify.learner import ClassLearner
    >>> from streamlearn.classify.space import ClassSpace
    >>> from streamlearn.models.logistic import LogisticRegression
    >>> learner = ClassLearner(LogisticRegression(), ClassSpace(binary=True))
    >>> describe_class(learner)
    (0, nan)
    """
    window = learner.window
    score = window.right / window.len if window.len else math.nan
    return int(learner.records_learned), score


@dataclass
class KeyLearners:
    """How the learners of a keyed run are made, and what they share."""

    #: The learner of a new key (fresh, or a copy of the warm start's B).
    new_learner: Callable[[], KeyLearner]
    #: A classifier's class space, every key's (None: a regressor).
    classes: ClassSpace | None = None
    #: Objects every key's learner holds, pickled by reference (model A, its frozen copy).
    shared: dict[str, object] = field(default_factory=dict)
    #: Model A as a learner that only predicts (``--key-fallback warm``).
    warm: KeyLearner | None = None
    #: B rebuilt from A (a key's drift action ``rollback``); None without a warm start.
    warm_models: Callable[[], Any] | None = None


def _drift_monitors(settings: Settings, classes: ClassSpace | None) -> Callable[[], Monitor | None]:
    """Makes each key's drift monitor (``--drift-*``); the options are checked here, once."""
    from streamlearn.drift.build import build_monitor
    from streamlearn.drift.monitor import DriftMonitor

    try:
        first = build_monitor(settings.drift, classes=classes)
    except ValueError as exc:  # DriftConfigError: its message names the option
        raise AppUsageError(str(exc)) from None
    if first is None:  # --drift-detector none
        return lambda: None
    config = first.config  # (checked once: a key's monitor is made in a third of the time)
    return lambda: DriftMonitor(config, classes=classes)


def keyed_learners(
    settings: Settings,
    warm: Warm | None,
    fresh_model: base.Estimator,
    task: str,
    restored: object = None,
) -> KeyLearners:
    """The learners of a keyed run's keys: ``--model`` made fresh for each, or B copied
    from the warm start (A as its baseline), a classifier's with the run's class space
    (``restored``: the tally of the state resumed, whose space the keys' codes are)."""
    from streamlearn.classify.learner import ClassLearner
    from streamlearn.learner import Learner
    from streamlearn.models.champion import GuardOptions

    window = settings.rolling_window
    guard = GuardOptions(settings.baseline_margin, settings.on_worse_than_baseline)
    model = fresh_models(settings, warm)
    baseline: object = warm.baseline if warm is not None else None
    if isinstance(restored, RegressionTally | ClassTally):
        baseline = restored.keyed.shared.get("baseline", baseline)  # the keys' states name it
    shared: dict[str, object] = {"baseline": baseline} if baseline is not None else {}
    if task != "classification":

        def regressor() -> KeyLearner:
            if baseline is None:
                return KeyRegressor(model(), rolling_window=window)
            return KeyRegressor(model(), rolling_window=window, baseline=baseline, guard=guard)

        fallback = Learner(baseline, rolling_window=window) if baseline is not None else None
        rebuild = warm.rebuild if warm is not None else None
        return KeyLearners(regressor, None, shared, fallback, rebuild)
    from streamlearn.classify.build import class_space_for

    if isinstance(restored, ClassTally):
        space = class_space_for(settings, fresh_model, restored.classes)
    elif warm is not None and warm.classes is not None:
        space = warm.classes
    else:
        space = class_space_for(settings, fresh_model)

    def classifier() -> KeyLearner:
        if baseline is None:
            return KeyClassifier(model(), space, rolling_window=window)
        return KeyClassifier(model(), space, rolling_window=window, baseline=baseline, guard=guard)

    warm_fallback = ClassLearner(baseline, space, rolling_window=window) if baseline else None
    rebuild = warm.rebuild if warm is not None else None
    return KeyLearners(classifier, space, shared, warm_fallback, rebuild)


def fresh_models(settings: Settings, warm: Warm | None) -> Callable[[], base.Estimator]:
    """Each key's model: the warm start's B (rebuilt from A, loaded once), else ``--model``."""
    if warm is not None:
        return warm.rebuild
    import pickle

    from streamlearn.models.registry import build_model

    from .pickling import dumps

    # The spec is parsed and checked once: a fresh model is a copy of the one built (the
    # spec's checks cost 100-200 us a model, a million keys' worth of minutes), pickled so
    # that its objects come back as fast as constructed ones (``keys.pickling``).
    model = build_model(settings.model, lr=settings.lr)
    _planned(model)
    blob = dumps(model)
    return lambda: pickle.loads(blob)


def _planned(model: object) -> None:
    """Let a River pipeline plan its steps before it is copied: it does so at its first use
    (``inspect.signature`` of each step's methods, ~150 us), and a copy keeps the plan, of
    its own steps (one pickle keeps the references within it). The same plan either way."""
    from river import compose

    if isinstance(model, compose.Pipeline):
        model._build_plan()  # River's own since 0.26, the floor pyproject.toml sets


def open_keyed_run(
    settings: Settings,
    state: Mapping[str, Any] | None,
    store: CheckpointStore | None,
    warm: Warm | None,
    fresh_model: base.Estimator,
    task: str,
    resources: ExitStack,
) -> KeyedRun | None:
    """A keyed run's store and tally (``--key-by``), else None; each key's learner is made
    as a run of one model makes its learner (from ``--model``, or warm-started)."""
    if settings.key_by is None:
        return None
    restored = state["learner"] if state is not None else None
    learners = keyed_learners(settings, warm, fresh_model, task, restored)
    return open_keyed(settings, state, store, learners, resources)


def open_keyed(
    settings: Settings,
    state: Mapping[str, Any] | None,
    store: CheckpointStore | None,
    learners: KeyLearners,
    resources: ExitStack,
) -> KeyedRun:
    """The keyed store (resumed from ``state``'s manifest), the tally and the fallback."""
    classes = learners.classes
    new_learner = learners.new_learner
    tally = _tally(settings, state, classes)
    shared = dict(learners.shared)
    if classes is not None:
        shared["classes"] = classes
    tally.keyed.shared = {**tally.keyed.shared, **learners.shared}
    monitor = _drift_monitors(settings, classes)

    def fresh() -> KeyLearner:
        learner = new_learner()
        learner.curve = Curve(max_points=KEY_CURVE_POINTS)  # a key's state stays small
        if isinstance(learner, KeyClassifier):  # its log-loss curve: at the same points
            learner.loss_curve = Curve(max_points=KEY_CURVE_POINTS)
        if tally.feature_names is not None:  # features not fixed: what /predict may pass
            learner.track_features()
        if isinstance(learner, KeyRegressor | KeyClassifier):
            learner.drift = monitor()  # each key's own
        return learner

    codec: LearnerCodec[KeyLearner] = LearnerCodec(
        fresh,
        shared=shared,
        describe=describe_class if classes is not None else describe_regression,
        score_name="accuracy" if classes is not None else "mae",
    )
    manifest = state.get("keys") if state is not None else None
    if store is None:
        models: KeyedModels[KeyLearner] = KeyedModels(codec, max_live=settings.max_live_keys)
    else:
        directory = store.directory / "keys"
        if manifest is None:  # no checkpoint names a segment there: a killed run's, or --reset
            clear_directory(directory)
        models = KeyedModels(
            codec,
            directory=directory,
            key=store.signing_key,
            manifest=manifest,
            max_live=settings.max_live_keys,
            keep=store.keep,
        )
    resources.callback(models.close)
    if settings.key_fallback == "global" and tally.keyed.fallback is None:
        tally.keyed.fallback = new_learner()
    log.info(
        "one model per key (--key-by %s): %d keys held, at most %d in memory",
        settings.key_by,
        len(models),
        models.max_live,
    )
    return KeyedRun(
        models,
        tally,
        fallback=settings.key_fallback,
        warm=learners.warm,
        pending_bound=settings.pseudo.max_pending_labels,
        model_factory=fresh_models(settings, None),
        warm_model_factory=learners.warm_models,
    )


def _tally(
    settings: Settings, state: Mapping[str, Any] | None, classes: ClassSpace | None
) -> Tally:
    if state is None:
        if classes is not None:
            return ClassTally(classes, rolling_window=settings.rolling_window)
        return RegressionTally(rolling_window=settings.rolling_window)
    tally = state["learner"]
    if not isinstance(tally, RegressionTally | ClassTally):
        raise AppError(
            f"the state in {settings.state_dir} holds one model, not one per key; "
            "use --reset to start a keyed run"
        )
    return tally
