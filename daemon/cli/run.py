"""``run`` and ``replay``: resolve the settings, build the daemon, run it, print the outcome.

The daemon's modules are imported when a command runs, not when ``--help`` is asked for.
User mistakes found while building become click errors: a usage error (exit 2) for
how the command was called, a one-line error (exit 1) for a file, a state or a broker.
"""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from streamlearn.cli.combinations import check_combinations
from streamlearn.cli.help import SectionedCommand
from streamlearn.cli.inspect import format_metric
from streamlearn.cli.options import (
    REPLAY,
    REPLAY_SECTIONS,
    RUN_SECTIONS,
    apply,
    stream_options,
)

if TYPE_CHECKING:
    from streamlearn.app import App
    from streamlearn.config import AppUsageError, Settings

log = logging.getLogger(__name__)


@click.command(cls=SectionedCommand, sections=RUN_SECTIONS)
@click.argument("source")
@stream_options
def run(source: str, **params: Any) -> None:
    """Follow SOURCE and learn until SIGTERM/SIGINT (then checkpoint and exit 0).

    SOURCE is a file path or file:PATH, followed like tail -F (new lines are
    learned as they are written; rotation and truncation are survived), or
    kafka://HOST:PORT[,HOST:PORT]/TOPIC[?group=G] (all partitions, resumed from
    the checkpoint's offsets: every record is learned exactly once).
    """
    run_app({"source": source, **params}, follow=True)


@click.command(cls=SectionedCommand, sections=REPLAY_SECTIONS)
@click.argument("file", type=click.Path(dir_okay=False))
@stream_options
@apply(REPLAY)
def replay(file: str, inspect_json: bool, **params: Any) -> None:
    """Replay FILE as a stream to its end, checkpoint, and exit 0.

    What a data scientist runs to see how an online model would have done:
    each labeled row is predicted, scored, then learned, in file order.
    FILE may be kafka://HOST:PORT/TOPIC: a backfill that reads each partition
    to the log end it finds at start (like kcat -e); what comes later waits
    for the next replay or run on the same --state-dir.
    """
    run_app({"source": file, **params}, follow=False, inspect_json=inspect_json)


def run_app(params: Mapping[str, Any], *, follow: bool, inspect_json: bool = False) -> None:
    """Build the daemon the command's ``params`` describe, run it, and print its summary."""
    settings = _settings(params, follow=follow)
    if settings.standby:
        _run_standby(settings)
        return
    _scale_out(settings)
    with _signals_noted_while_starting() as early:
        app = _build(settings, stopping=lambda: bool(early))
    summary = _run(app, early)
    if inspect_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
    else:
        metrics = summary["metrics"]
        scored = summary.get("records_scored")  # --no-learn
        done = (
            f"learned {summary['records_learned']} records"
            if scored is None
            else f"scored {scored} records without learning"
        )
        click.echo(
            f"{done} "
            f"(seen {summary['records_seen']}, rejected {summary['records_rejected']}); "
            f"{_scores(metrics)}",
            err=True,
        )


def _scale_out(settings: Settings) -> None:
    """A keyed run in a Kafka group runs as a member of the group, until stopped."""
    from streamlearn.config import AppError, AppUsageError

    if settings.key_by is None or not settings.is_kafka:
        return
    from streamlearn.scaleout.member import member_kafka, run_member

    try:
        kafka = member_kafka(settings)
    except AppUsageError as exc:
        raise _usage_error(exc) from None
    except AppError as exc:
        raise click.ClickException(str(exc)) from None
    if kafka is not None:
        raise SystemExit(run_member(settings, kafka))


def _scores(metrics: Mapping[str, Any]) -> str:
    """The final line's metrics: a regressor's MAE, RMSE, R2; a classifier's accuracy, loss.

    >>> _scores({"accuracy": 0.75, "log_loss": 0.5, "f1": 0.5, "roc_auc": None})
    'accuracy 0.75, log loss 0.5'
    >>> _scores({"accuracy": 0.5, "cross_entropy": 1.25, "macro_f1": 0.5})
    'accuracy 0.5, cross-entropy 1.25'
    """
    if "accuracy" in metrics:
        # A binary model's loss is River's LogLoss; a multiclass one's its CrossEntropy.
        name, key = (
            ("log loss", "log_loss")
            if "log_loss" in metrics
            else ("cross-entropy", "cross_entropy")
        )
        loss = format_metric(metrics.get(key))
        return f"accuracy {format_metric(metrics['accuracy'])}, {name} {loss}"
    return (
        f"MAE {format_metric(metrics['mae'])}, RMSE {format_metric(metrics['rmse'])}, "
        f"R2 {format_metric(metrics['r2'])}"
    )


def _settings(params: Mapping[str, Any], *, follow: bool) -> Settings:
    """Typed settings from the command's parameters; notes whether ``--model``, ``--lr`` and
    ``--teacher`` were given."""
    from streamlearn.config import Settings

    context = click.get_current_context()
    check_combinations(context, params)

    def given(name: str) -> bool:
        return context.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)

    return Settings.from_params(
        {
            **params,
            **_teacher(params, given),
            "model_from_flag": given("model"),
            "lr_from_flag": given("lr"),
            "teacher_from_flag": given("teacher"),
        },
        follow=follow,
    )


def _teacher(params: Mapping[str, Any], given: Callable[[str], bool]) -> dict[str, str]:
    """The pseudo-label teacher of a warm start: model A (``warm:A``) unless one was given.

    The default committee is made of copies of ``--model``, which a warm start replaces by
    B; asked for by name with a warm start, it is refused with what to write instead.
    """
    warm = params.get("warm_start")
    if warm is None or not params.get("pseudo_label"):
        return {}
    if not given("teacher"):
        return {"teacher": f"warm:{warm}"}
    if str(params.get("teacher", "")).strip() == "committee":
        raise click.BadParameter(
            "the committee is made of copies of --model, which --warm-start replaces: "
            "write warm:PATH (model A, the default with --warm-start) or committee:SPEC",
            param_hint="'--teacher'",
        )
    return {}


@contextmanager
def _signals_noted_while_starting() -> Iterator[list[int]]:
    """Note SIGTERM/SIGINT while the daemon starts (imports, state, broker).

    The daemon stops as soon as it exists when one was noted; a second one kills at
    once, as it does once the daemon runs.
    """
    early: list[int] = []

    def starting(signum: int, frame: FrameType | None) -> None:
        early.append(signum)
        signal.signal(signum, signal.SIG_DFL)

    for stopping in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stopping, starting)
    yield early


def _build(settings: Settings, stopping: Callable[[], bool]) -> App:
    """The assembled daemon; a user mistake becomes a click error.

    ``stopping`` says a stop signal came: waiting for the input ends (exit 0).
    """
    from streamlearn.app import AppError, AppUsageError, build
    from streamlearn.endpoints import StoppedWaiting

    try:
        return build(settings, stopping=stopping)
    except StoppedWaiting as exc:
        log.info("%s", exc)
        raise SystemExit(0) from None
    except AppUsageError as exc:
        raise _usage_error(exc) from None
    except AppError as exc:
        raise click.ClickException(str(exc)) from None


def _run_standby(settings: Settings) -> None:
    """``--standby``: one instance of a group until SIGTERM/SIGINT (``streamlearn.standby``)."""
    from streamlearn.app import AppError
    from streamlearn.config import AppUsageError
    from streamlearn.sources.base import SourceError
    from streamlearn.standby.runner import check_standby, run_group
    from streamlearn.state import CheckpointError

    try:
        check_standby(settings)
        summary = run_group(settings)
    except AppUsageError as exc:
        raise _usage_error(exc) from None
    except (AppError, CheckpointError, SourceError) as exc:
        raise click.ClickException(str(exc)) from None
    if summary is None:
        click.echo("stopped as a standby (this instance did not learn)", err=True)
    else:
        click.echo(
            f"learned {summary['records_learned']} records as the active instance "
            f"(seen {summary['records_seen']}, rejected {summary['records_rejected']}); "
            f"{_scores(summary['metrics'])}",
            err=True,
        )


def _usage_error(exc: AppUsageError) -> click.UsageError:
    """A usage error (exit 2, one line), naming its option when one is at fault."""
    if exc.option is not None:
        return click.BadParameter(str(exc), param_hint=f"'--{exc.option}'")
    return click.UsageError(str(exc))


def _run(app: App, early: list[int]) -> dict[str, Any]:
    """Run the daemon to its end and release its resources; returns its summary."""
    from streamlearn.config import AppUsageError
    from streamlearn.sources.base import SourceError
    from streamlearn.state import CheckpointError

    try:
        daemon = app.daemon
        daemon.install_signal_handlers()
        for received in early:
            log.info("received %s while starting: stopping", signal.Signals(received).name)
            daemon.stop()
            signal.signal(received, signal.SIG_DFL)
        return daemon.run()
    except (CheckpointError, SourceError) as exc:
        # The final checkpoint could not be written, or the source cannot go on
        # (data loss, refused credentials): say so on one line, exit 1.
        raise click.ClickException(str(exc)) from None
    except AppUsageError as exc:
        # Found in the records themselves (a binary target's labels need --positive-class).
        raise _usage_error(exc) from None
    finally:
        app.close()
