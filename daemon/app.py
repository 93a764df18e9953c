"""Wiring: turn resolved ``Settings`` into a ready ``Daemon`` (source, decoder, model, state).

:func:`build` runs one named step per part: how records are read, the model (and warm
start), the checkpoint store, the source and sinks, the daemon, its telemetry and HTTP
face. Every user mistake found here becomes an ``AppError`` with a message that says
what to do; the CLI prints it on one line and exits non-zero. Opening the source,
its decoder and the sinks is :mod:`streamlearn.endpoints`'s part; the telemetry and HTTP
face are :mod:`streamlearn.observe.face`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamlearn.config import AppError, AppUsageError, Settings
from streamlearn.endpoints import Input, kafka_settings, open_input, open_sink, open_source
from streamlearn.observe.logbook import open_logbook
from streamlearn.preflight import check_environment, check_join, check_model_size

if TYPE_CHECKING:
    from river import base

    from streamlearn.classify.learner import ClassLearner
    from streamlearn.classify.space import ClassSpace
    from streamlearn.drift.monitor import DriftMonitor
    from streamlearn.endpoints import LagReader
    from streamlearn.labels.join import LabelJoin
    from streamlearn.labels.pseudo import PseudoLabeler
    from streamlearn.learner import Learner
    from streamlearn.loop import Daemon, RunOptions
    from streamlearn.sources.base import Source
    from streamlearn.state import CheckpointStore

__all__ = ["App", "AppError", "AppUsageError", "build"]

log = logging.getLogger(__name__)


@dataclass
class App:
    """A daemon and the resources to release after it ran."""

    daemon: Daemon
    resources: ExitStack

    def close(self) -> None:
        self.resources.close()


def build(settings: Settings, *, stopping: Callable[[], bool] = lambda: False) -> App:
    """Assemble the daemon for ``run``/``replay``; raises ``AppError`` on user mistakes.

    ``stopping`` is asked while a followed file and its header do not exist yet: True
    gives up waiting.
    """
    from streamlearn.keys.build import check_keyed, open_keyed_run
    from streamlearn.keys.pseudo import keyed_pseudo
    from streamlearn.loop import Daemon

    resources = ExitStack()
    try:
        check_environment()
        check_keyed(settings)
        if settings.no_learn:
            _check_no_learn(settings)
        kafka = kafka_settings(settings) if settings.is_kafka else None
        reading = open_input(settings, kafka, stopping)
        check_join(settings, reading.format)
        fresh_model = _checked_model(settings, reading.features)
        warm = warm_start(settings, reading.features)
        task = _task(settings, warm.model if warm is not None else fresh_model)
        run_settings = reading.run_settings(
            settings, warm.spec if warm is not None else settings.model
        )
        store, state = open_state(settings, run_settings, resources)
        keyed = open_keyed_run(settings, state, store, warm, fresh_model, task, resources)
        learner = keyed.tally if keyed else _learner(settings, state, warm, fresh_model, task)
        _read_labels(reading, learner, task)
        if reading.features is None:
            learner.track_features()  # what POST /predict may pass to the model
        spec = state["model_spec"] if state is not None else run_settings["model_spec"]
        model_factory = _model_factory(settings, warm)
        divergence_factor = settings.divergence_factor if keyed is None else 0.0  # per key
        if settings.no_learn:  # scored, never learned, no checkpoint: the state stays as it is
            if settings.state_dir is not None and state is None:
                raise AppError(f"--no-learn: no checkpoint in {settings.state_dir} to score")
            store, state, learner = None, None, _evaluator(learner)
            evaluated = learner.model
            model_factory, divergence_factor = (lambda: evaluated), 0.0  # bad scores are news
        source, lag = open_source(settings, state["source"] if state is not None else None, kafka)
        resources.callback(source.close)
        dead_letters = open_sink(settings.dead_letter, kafka)
        resources.callback(dead_letters.close)
        predictions = open_sink(settings.predictions, kafka)
        resources.callback(predictions.close)
        extensions = state.get("extensions", {}) if state is not None else {}
        student = keyed.models.codec.fresh("") if keyed is not None else learner  # a key's
        pseudo, join = _pseudo_parts(settings, spec, extensions, student)
        pseudo = keyed_pseudo(keyed, pseudo, join)  # a keyed run: each key's own copy
        monitor = None if keyed else _drift_monitor(settings, extensions, reading.features, learner)
        daemon = Daemon(
            source,
            reading.decoder,
            learner,
            model_spec=spec,
            settings=run_settings,
            store=store,
            dead_letters=dead_letters,
            predictions=predictions,
            options=_run_options(settings),
            model_factory=model_factory,
            restored=state,
            pseudo=pseudo,
            join=join,
            monitor=monitor,
            warm_model_factory=warm.rebuild if warm is not None else None,
            divergence_factor=divergence_factor,
            keyed=keyed,
        )
        daemon.router.predictions_all = settings.predictions_all
        if pseudo is not None:
            resources.callback(pseudo.close)
        _face(settings, daemon, source, lag, resources)
        daemon.logbook = open_logbook(settings, daemon, state, store, lag)  # logs the banner
        return App(daemon, resources)
    except BaseException:
        resources.close()
        raise


def _face(
    settings: Settings, daemon: Daemon, source: Source, lag: LagReader | None, resources: ExitStack
) -> None:
    """Telemetry and the HTTP face (``--metrics-port``), a keyed run's bounded key series too."""
    if settings.metrics_port is None:
        return
    from streamlearn.observe.face import make_telemetry, serve_http

    daemon.telemetry = telemetry = make_telemetry(daemon, source, lag)
    if daemon.keyed is not None:
        from streamlearn.observe.keys import KeyTelemetry

        keys = daemon.keyed.models
        keys.events = KeyTelemetry(
            telemetry.registry,
            metric=daemon.keyed.score_name,
            top_keys=settings.metrics_top_keys,
            held=keys,
        )
    serve_http(settings, daemon, telemetry, resources)


# -- the model ------------------------------------------------------------------------------


def _checked_model(settings: Settings, features: list[str] | None) -> base.Estimator:
    """A fresh model of the ``--model`` spec: a bad spec, or one too large for the records'
    features (at most ``--max-features``), fails before the state is opened."""
    from streamlearn.models.registry import SpecError, build_model

    try:
        model: base.Estimator = build_model(settings.model, lr=settings.lr)
    except SpecError as exc:
        raise AppUsageError(str(exc)) from None
    check_model_size(settings, features)
    return model


def _task(settings: Settings, model: base.Estimator) -> str:
    """The run's task, decided once: ``--task``, else the model's (a usage error when the
    flags ask a regressor to classify)."""
    from streamlearn.classify.build import decide_task

    return decide_task(settings, model)


def _read_labels(reading: Input, learner: object, task: str) -> None:
    """A classifier's decoder reads the target as labels, into the learner's class space
    (on a resume the restored one: the codes its model learned)."""
    if task != "classification":
        return
    from streamlearn.classify.learner import ClassLearner

    assert isinstance(learner, ClassLearner), "a classifier's learner is a ClassLearner"
    reading.decoder.classes = learner.classes


@dataclass
class Warm:
    """A warm start: model B, the frozen A as baseline, and how to rebuild B (rollback)."""

    model: base.Estimator
    baseline: base.Estimator
    rebuild: Callable[[], base.Estimator]
    spec: str
    #: A classifier's class space: model A's classes as the stream's labels (None: a regressor).
    classes: ClassSpace | None = None


def warm_start(settings: Settings, stream_features: list[str] | None) -> Warm | None:
    """Build B from A (``--warm-start``); feature or class mismatches fail before any record."""
    if settings.warm_start is None:
        return None
    from streamlearn.models.transfer import (
        TransferError,
        frozen_baseline,
        load_batch_model,
        parse_feature_map,
    )
    from streamlearn.models.transfer import (
        warm_start as start_from,
    )

    name = Path(settings.warm_start).name
    spec = f"warm-start({settings.transfer_mode}, {name})"
    try:
        a = load_batch_model(settings.warm_start, trust_pickle=settings.trust_pickle)
        feature_map = parse_feature_map(settings.feature_map) if settings.feature_map else None
        classify = a.is_classifier or settings.task == "classification" or settings.class_map
        if classify and settings.task != "regression":
            from streamlearn.classify.warm import warm_classifier_for

            b = warm_classifier_for(a, settings, feature_map, stream_features)
            return Warm(b.model, b.baseline, b.rebuild, spec, b.classes)
        linear = "river" if settings.model.startswith("LinearRegression") else "sgd"

        def rebuild() -> base.Regressor:
            return start_from(
                a,
                settings.transfer_mode,
                settings.trainable_layers,
                feature_map,
                stream_features,
                lr=settings.lr if settings.lr_from_flag else None,  # None: suited to A
                linear_model=linear,
            )

        model = rebuild()
        baseline = frozen_baseline(a, feature_map, stream_features)
    except (TransferError, OSError) as exc:
        raise AppUsageError(str(exc)) from None
    return Warm(model, baseline, rebuild, spec)


def _check_no_learn(settings: Settings) -> None:
    """``--no-learn`` with an option that would change the state or learn: a usage error."""
    from streamlearn.evaluator import NO_LEARN_CONFLICTS

    given = {"reset": settings.reset, "pseudo-label": settings.pseudo.pseudo_label}
    for option, why in NO_LEARN_CONFLICTS.items():
        if given[option]:
            raise AppUsageError(why, option=option)


def _evaluator(learner: Learner | ClassLearner) -> Learner:
    """``--no-learn``: the learner's model (and baseline) scored afresh, never learned."""
    from streamlearn.evaluator import Evaluator
    from streamlearn.learner import Learner

    assert isinstance(learner, Learner)  # a classifier's --no-learn is refused before

    log.info("--no-learn: the model is scored, never learned; no checkpoint is written")
    return Evaluator.of(learner)


def _cold_copy(model: base.Estimator) -> base.Estimator:
    """A fresh model of B's shape, from random or zero weights (the ``reset`` drift action)."""
    params = model._get_params()
    if "initial_coefs" in params:
        return model.clone({"initial_coefs": None, "initial_intercepts": None})
    if "initial_weights" in params:
        return model.clone({"initial_weights": None, "initial_intercept": 0.0})
    return model.clone()


def _model_factory(settings: Settings, warm: Warm | None) -> Callable[[], base.Estimator]:
    """Fresh models of the run's kind: B's shape from scratch, or the ``--model`` spec."""
    from streamlearn.models.registry import build_model

    if warm is not None:
        warm_model = warm.model
        return lambda: _cold_copy(warm_model)
    return lambda: build_model(settings.model, lr=settings.lr)


# -- the state ------------------------------------------------------------------------------


def open_state(
    settings: Settings, run_settings: Mapping[str, Any], resources: ExitStack
) -> tuple[CheckpointStore | None, dict[str, Any] | None]:
    """The locked checkpoint store of ``--state-dir`` and the state it holds (after ``--reset``).

    A state learned with other settings is refused here, with the option that differs.
    """
    from streamlearn.state import CheckpointError, CheckpointStore, StateLocked

    if settings.state_dir is None:
        return None, None
    try:
        # --no-learn only reads the state (as inspect does); --standby shares it with its group.
        store = CheckpointStore(
            settings.state_dir, lock=not settings.no_learn, shared=settings.standby
        )
    except (StateLocked, CheckpointError) as exc:
        raise AppError(str(exc)) from None
    except OSError as exc:  # a read-only or unreachable directory: its lock cannot be taken
        raise AppError(f"cannot use state dir {settings.state_dir}: {exc.strerror}") from None
    resources.callback(store.close)
    try:
        if settings.standby:  # elected by the group: fence the earlier owner, then load
            store.take_over()
        if settings.reset:
            store.clear()
        loaded = store.load(start=True)  # a run killed before its first checkpoint: its start
    except CheckpointError as exc:
        raise AppError(str(exc)) from None
    except OSError as exc:
        raise AppError(f"cannot use state dir {settings.state_dir}: {exc.strerror}") from None
    if loaded is None:
        return store, None
    state = loaded.state
    _check_compatible(settings, state, run_settings)
    log.info(
        "resuming %s from generation %d: %d records learned",
        state.get("model_spec"),
        loaded.generation,
        state["learner"].records_learned,
    )
    return store, state


def _check_compatible(
    settings: Settings, state: Mapping[str, Any], run_settings: Mapping[str, Any]
) -> None:
    saved = state.get("settings", {})
    for key in ("target", "features", "id_column", "format", "source", "key_by"):
        if key == "source" and not settings.is_kafka:
            continue  # a file's identity is checked by the file source itself
        if key == "features" and settings.features is None and state.get("schema"):
            continue  # the state's CSV schema is in force at its position, not this header
        if key in saved and saved[key] != run_settings.get(key):
            raise AppError(
                f"the state in {settings.state_dir} was learned with {key}={saved[key]!r}, "
                f"not {run_settings.get(key)!r}; use --reset to start a new model"
            )
    if settings.model_from_flag and state.get("model_spec") != run_settings["model_spec"]:
        raise AppError(
            f"the state in {settings.state_dir} holds a {state.get('model_spec')!r} model, "
            f"not {run_settings['model_spec']!r}; use --reset to start a new model"
        )


def _learner(
    settings: Settings,
    state: Mapping[str, Any] | None,
    warm: Warm | None,
    fresh_model: base.Estimator,
    task: str = "regression",
) -> Learner | ClassLearner:
    """The restored learner, else one of the warm-started B (with A as baseline), else fresh."""
    from streamlearn.learner import Learner
    from streamlearn.models.champion import BaselineGuard, GuardOptions

    restored_task = state["learner"].task if state is not None else task
    if restored_task != task:
        raise AppError(
            f"the state in {settings.state_dir} holds a model of the {restored_task} task, "
            f"not {task}; use --reset to start a new model"
        )
    if task == "classification":
        return _class_learner(settings, state, warm, fresh_model)
    guard = GuardOptions(settings.baseline_margin, settings.on_worse_than_baseline)
    if state is not None:
        restored: Learner = state["learner"]
        if restored.baseline is not None and restored.guard is None:  # an older checkpoint
            restored.guard = BaselineGuard(restored.rolling_window, guard)
        elif restored.guard is not None:
            restored.guard.configure(guard)
        return restored
    if warm is not None:
        return Learner(
            warm.model,
            rolling_window=settings.rolling_window,
            baseline=warm.baseline,
            guard=guard,
        )
    return Learner(fresh_model, rolling_window=settings.rolling_window)


def _class_learner(
    settings: Settings,
    state: Mapping[str, Any] | None,
    warm: Warm | None,
    fresh_model: base.Estimator,
) -> ClassLearner:
    """A classifier's learner: restored (with its class space), else of the warm-started B
    (A as its baseline, compared on accuracy), else fresh; its class space from the flags."""
    from streamlearn.classify.build import class_space_for
    from streamlearn.classify.learner import ClassLearner
    from streamlearn.models.champion import GuardOptions

    if settings.no_learn:
        raise AppUsageError("--no-learn scores regressors only; a classifier is not supported")
    guard = GuardOptions(settings.baseline_margin, settings.on_worse_than_baseline)
    if state is not None:
        restored: ClassLearner = state["learner"]
        class_space_for(settings, restored.model, restored.classes)  # flags checked, bound taken
        if restored.guard is not None:
            restored.guard.configure(guard)
        return restored
    model = warm.model if warm is not None else fresh_model
    space = warm.classes if warm is not None else None  # model A's classes, matched
    space = space if space is not None else class_space_for(settings, model)
    if warm is not None:
        return ClassLearner(
            model,
            space,
            rolling_window=settings.rolling_window,
            baseline=warm.baseline,
            guard=guard,
        )
    return ClassLearner(model, space, rolling_window=settings.rolling_window)


# -- the daemon, its telemetry and HTTP face -----------------------------------------------


def _run_options(settings: Settings) -> RunOptions:
    """The loop's pacing and checkpoint schedule."""
    from streamlearn.loop import RunOptions

    return RunOptions(
        checkpoint_every=settings.checkpoint_every,
        checkpoint_interval=settings.checkpoint_interval,
        batch_size=settings.batch_size,
        rate=settings.rate,
        progress=settings.progress,
    )


def _pseudo_parts(
    settings: Settings, spec: str, extensions: dict[str, Any], learner: Learner | ClassLearner
) -> tuple[PseudoLabeler | None, LabelJoin | None]:
    """The pseudo-label side loop and the delayed-label join, when asked for (the learner's
    model: the student, whose way of taking a pseudo-label's weight is logged; a
    classifier's: its class space too)."""
    from streamlearn.classify.learner import ClassLearner
    from streamlearn.labels.build import build_pseudo
    from streamlearn.labels.settings import PseudoSettingsError

    restored: dict[str, Any] = {k: extensions[k] for k in ("pseudo", "join") if k in extensions}
    try:
        return build_pseudo(
            settings.pseudo,
            model_spec=spec,
            lr=settings.lr,
            lr_from_flag=settings.lr_from_flag,  # else model A as teacher: the rate suited to A
            restored=restored,
            follow=settings.follow,
            model=learner.model,
            classes=learner.classes if isinstance(learner, ClassLearner) else None,
        )
    except PseudoSettingsError as exc:  # the field is named as its option
        raise AppUsageError(str(exc), option=exc.field.replace("_", "-")) from None
    except ValueError as exc:
        raise AppUsageError(str(exc)) from None


def _drift_monitor(
    settings: Settings,
    extensions: dict[str, Any],
    stream_features: list[str] | None,
    learner: Learner | ClassLearner,
) -> DriftMonitor | None:
    """The drift monitor (ADWIN on the prequential error, alerting, unless told otherwise; a
    classifier's watches its 0/1 error, scored with the learner's class space)."""
    from streamlearn.classify.learner import ClassLearner
    from streamlearn.drift.build import build_monitor

    try:
        return build_monitor(
            settings.drift,
            restored=extensions.get("drift"),
            known_features=stream_features,
            classes=learner.classes if isinstance(learner, ClassLearner) else None,
        )
    except ValueError as exc:  # DriftConfigError: its message names the option
        raise AppUsageError(str(exc)) from None
