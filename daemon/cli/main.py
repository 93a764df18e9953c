"""The ``streamlearn`` command line.

Start-up matters for a tool people run by hand: this module imports only click.
Each command imports what it needs when it runs, and commands that live in
other modules (``produce``, ``broker``, ``pretrain``, ``report``) are loaded only
when named. User mistakes are ``click`` exceptions with one line that says what
to do; a traceback means a bug.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable
from importlib import import_module
from typing import Any

import click

from streamlearn import __version__

#: Commands defined elsewhere: name -> ("module:attribute", one-line help).
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "produce": ("streamlearn.producers.cli:produce", "Replay a CSV/JSON Lines file into Kafka."),
    "broker": ("streamlearn.broker:broker_command", "Start a local Kafka-protocol broker."),
    "pretrain": ("streamlearn.models.pretrain:pretrain_command", "Train a batch model A."),
    "report": ("streamlearn.observe.report:report_command", "Plot learning curves of runs."),
}


class LazyGroup(click.Group):
    """A group whose external commands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self._available()])

    def _available(self) -> list[str]:
        from importlib.util import find_spec

        names = []
        for name, (target, _) in LAZY_COMMANDS.items():
            module = target.split(":")[0]
            try:
                if find_spec(module) is not None:
                    names.append(name)
            except ModuleNotFoundError:
                continue
        return names

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in LAZY_COMMANDS:
            return command
        module_name, attribute = LAZY_COMMANDS[cmd_name][0].split(":")
        try:
            loaded = getattr(import_module(module_name), attribute)
        except (ImportError, AttributeError):
            return None
        return loaded if isinstance(loaded, click.Command) else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing help must not import every command module: use the static lines.
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_COMMANDS:
                rows.append((name, LAZY_COMMANDS[name][1]))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(limit=60)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # kafka-python logs every connection attempt; our source logs state changes once.
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("kafka").setLevel(logging.CRITICAL)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="streamlearn")
@click.option(
    "--log-level",
    default="info",
    envvar="STREAMLEARN_LOG_LEVEL",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="How much to log on stderr.",
)
def main(log_level: str) -> None:
    """streamlearn learns River regressors from a stream, test-then-train.

    Records (x, y) come from a file (replayed, or followed like tail -F) or from
    Kafka. Each labeled record is predicted, scored, then learned; the model
    and the stream position are checkpointed together, so a restart continues
    exactly where the last checkpoint left off.

    \b
    Try:  streamlearn replay examples/stream.csv --inspect-json
          streamlearn run data.csv --state-dir state/   (follows the file)
          streamlearn inspect state/
    """
    _configure_logging(log_level)


# -- shared options ---------------------------------------------------------------------


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    from streamlearn.config import ConfigError, load_toml

    assert ctx.command.name is not None
    known = [p.name for p in ctx.command.params if p.name and p.name != "config"]
    try:
        ctx.default_map = {**(ctx.default_map or {}), **load_toml(value, ctx.command.name, known)}
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return value


def _options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``run`` and ``replay`` (each has a STREAMLEARN_* variable)."""
    options = [
        click.option(
            "--config",
            type=click.Path(dir_okay=False),
            is_eager=True,
            expose_value=False,
            callback=_load_config,
            envvar="STREAMLEARN_CONFIG",
            help="TOML file of settings (keys are option names; [run]/[replay] tables "
            "override top-level keys). Flags and STREAMLEARN_* variables win over it.",
        ),
        click.option(
            "--target",
            default="y",
            show_default=True,
            envvar="STREAMLEARN_TARGET",
            help="Target column (CSV) or key (JSON). Empty/missing = unlabeled.",
        ),
        click.option(
            "--features",
            default=None,
            envvar="STREAMLEARN_FEATURES",
            help="Comma-separated feature columns. Default: all but target and id.",
        ),
        click.option(
            "--id-column",
            default=None,
            envvar="STREAMLEARN_ID_COLUMN",
            help="Column (CSV) or key (JSON, default 'id') holding the record id.",
        ),
        click.option(
            "--format",
            "format",
            default="auto",
            show_default=True,
            envvar="STREAMLEARN_FORMAT",
            type=click.Choice(["auto", "csv", "jsonl"]),
            help="Record format; auto goes by extension, then by the first byte. Kafka "
            "values are JSON unless --format csv (with --features: features, then target).",
        ),
        click.option(
            "--model",
            default="sgd",
            show_default=True,
            envvar="STREAMLEARN_MODEL",
            help="Model spec: 'sgd' (the exact textbook update) or River classes, "
            "e.g. 'StandardScaler | LinearRegression(l2=0.1)', "
            "'ARFRegressor(seed=1)'. Keyword arguments must be literals.",
        ),
        click.option(
            "--lr",
            default=0.01,
            show_default=True,
            type=click.FloatRange(min=0, min_open=True),
            envvar="STREAMLEARN_LR",
            help="Learning rate alpha of sgd (and mlp) unless the spec sets lr.",
        ),
        click.option(
            "--state-dir",
            type=click.Path(file_okay=False),
            default=None,
            envvar="STREAMLEARN_STATE_DIR",
            help="Directory for checkpoints (model + position). Locked while running; "
            "a run with an existing state continues after its position.",
        ),
        click.option(
            "--reset",
            is_flag=True,
            default=False,
            envvar="STREAMLEARN_RESET",
            help="Discard the state in --state-dir and start a new model (from the start of "
            "the source). --dead-letter and --predictions files are appended to, not emptied.",
        ),
        click.option(
            "--dead-letter",
            default=None,
            envvar="STREAMLEARN_DEAD_LETTER",
            help="JSON Lines file (or kafka:// topic) for rejected records, with reasons.",
        ),
        click.option(
            "--predictions",
            default=None,
            envvar="STREAMLEARN_PREDICTIONS",
            help="JSON Lines file (or kafka:// topic) for predictions of unlabeled records.",
        ),
        click.option(
            "--checkpoint-every",
            default=100_000,
            show_default=True,
            type=click.IntRange(min=1),
            envvar="STREAMLEARN_CHECKPOINT_EVERY",
            help="Checkpoint after this many records (a crash re-learns at most these).",
        ),
        click.option(
            "--checkpoint-interval",
            default=5.0,
            show_default=True,
            type=click.FloatRange(min=0, min_open=True),
            envvar="STREAMLEARN_CHECKPOINT_INTERVAL",
            help="...and at least this often, in seconds, while records arrive.",
        ),
        click.option(
            "--rolling-window",
            default=1000,
            show_default=True,
            type=click.IntRange(min=1),
            envvar="STREAMLEARN_ROLLING_WINDOW",
            help="Records in the rolling prequential metrics.",
        ),
        click.option(
            "--max-line-bytes",
            default=1 << 20,
            show_default=True,
            type=click.IntRange(min=16),
            envvar="STREAMLEARN_MAX_LINE_BYTES",
            help="Longer lines are rejected to the dead letters.",
        ),
        click.option(
            "--metrics-port",
            default=None,
            type=click.IntRange(min=0, max=65535),
            envvar="STREAMLEARN_METRICS_PORT",
            help="Serve /metrics, /healthz, /readyz, POST /predict and GET /model on "
            "this port (0 = any free port; off when not given). Default for "
            "deployments: 9108.",
        ),
        click.option(
            "--metrics-host",
            default="127.0.0.1",
            show_default=True,
            envvar="STREAMLEARN_METRICS_HOST",
            help="Address the HTTP face binds to (0.0.0.0 to expose it).",
        ),
        click.option(
            "--divergence-factor",
            default=100.0,
            show_default=True,
            type=click.FloatRange(min=0),
            envvar="STREAMLEARN_DIVERGENCE_FACTOR",
            help="Restore the last checkpoint when a batch's error exceeds this many "
            "times the rolling MAE before that batch (0 = off). NaN/inf predictions always "
            "restore.",
        ),
        # Transfer learning: start B from a batch model A.
        click.option(
            "--warm-start",
            default=None,
            type=click.Path(exists=False),
            envvar="STREAMLEARN_WARM_START",
            help="Batch model A to start from: scikit-learn (joblib/pickle), a River "
            "pickle, a streamlearn state dir, or a Keras .keras file.",
        ),
        click.option(
            "--transfer-mode",
            default="finetune",
            show_default=True,
            type=click.Choice(["extract", "finetune", "partial"]),
            envvar="STREAMLEARN_TRANSFER_MODE",
            help="extract: A minus its output layer is a frozen feature extractor; "
            "finetune: retrain all of A's weights; partial: retrain the last "
            "--trainable-layers layers.",
        ),
        click.option(
            "--trainable-layers",
            default=1,
            show_default=True,
            type=click.IntRange(min=1),
            envvar="STREAMLEARN_TRAINABLE_LAYERS",
            help="Layers retrained in partial mode, counted from the output.",
        ),
        click.option(
            "--feature-map",
            default=None,
            envvar="STREAMLEARN_FEATURE_MAP",
            help="Stream feature -> A's feature, e.g. 'temp=x,hum=x2', when names differ.",
        ),
        # Kafka (SOURCE kafka://HOST:PORT/TOPIC?group=G, or these flags).
        click.option(
            "-b",
            "--bootstrap-servers",
            default=None,
            envvar="STREAMLEARN_BOOTSTRAP_SERVERS",
            help="Kafka brokers HOST:PORT[,HOST:PORT] (overrides the kafka:// URL's).",
        ),
        click.option(
            "-t",
            "--topic",
            default=None,
            envvar="STREAMLEARN_TOPIC",
            help="Kafka topic (overrides the kafka:// URL's).",
        ),
        click.option(
            "-G",
            "--group-id",
            default=None,
            envvar="STREAMLEARN_GROUP_ID",
            help="Consumer group: offsets are committed there after each durable "
            "checkpoint (for lag monitoring); the checkpoint stays the truth.",
        ),
        click.option(
            "-X",
            "kafka_options",
            multiple=True,
            metavar="KEY=VALUE",
            help="A Kafka client setting (repeatable), e.g. -X fetch.max.bytes=52428800.",
        ),
        click.option(
            "--kafka-config",
            default=None,
            type=click.Path(dir_okay=False),
            envvar="STREAMLEARN_KAFKA_CONFIG",
            help="A .properties file of Kafka client settings (security goes here or "
            "in STREAMLEARN_KAFKA_* variables, never only on the command line).",
        ),
        click.option(
            "--from",
            "start_from",
            default="earliest",
            show_default=True,
            type=click.Choice(["earliest", "latest"]),
            envvar="STREAMLEARN_FROM",
            help="Where to start partitions that neither the checkpoint nor the group knows.",
        ),
        click.option(
            "--kafka-client",
            default="kafka-python",
            show_default=True,
            type=click.Choice(["kafka-python", "confluent"]),
            envvar="STREAMLEARN_KAFKA_CLIENT",
            help="Kafka client library. confluent (librdkafka; pip install "
            "'streamlearn[confluent]') consumes about 4x faster, with the same semantics "
            "and the same checkpoint format.",
        ),
        click.option(
            "--on-data-loss",
            default="fail",
            show_default=True,
            type=click.Choice(["fail", "reset"]),
            envvar="STREAMLEARN_ON_DATA_LOSS",
            help="A checkpointed offset below the log start (retention deleted "
            "data): fail loudly, or reset to the log start and record the loss.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    # Option groups of the optional parts; these modules import only click at load time.
    from streamlearn.drift.monitor import drift_options
    from streamlearn.labels.pseudo import pseudo_options

    return pseudo_options(drift_options(func))


def _run_app(params: dict[str, Any], *, follow: bool, inspect_json: bool = False) -> None:
    from streamlearn.app import AppError, AppUsageError, build
    from streamlearn.config import Settings

    ctx = click.get_current_context()
    source = ctx.get_parameter_source("model")
    params["model_from_flag"] = source not in (None, click.core.ParameterSource.DEFAULT)
    settings = Settings.from_params(params, follow=follow)
    # A SIGTERM while the daemon starts (imports, state, broker) must still stop it
    # cleanly: noted here, it stops the loop as soon as there is one.
    early: list[int] = []

    def starting(signum: int, frame: Any) -> None:
        early.append(signum)
        signal.signal(signum, signal.SIG_DFL)  # a second one kills, as once running

    for stopping in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stopping, starting)
    try:
        app = build(settings)
    except AppUsageError as exc:
        raise click.UsageError(str(exc)) from None
    except AppError as exc:
        raise click.ClickException(str(exc)) from None
    from streamlearn.sources.base import SourceError
    from streamlearn.state.checkpoint import CheckpointError

    try:
        daemon = app.daemon
        daemon.install_signal_handlers()
        for received in early:
            logging.getLogger(__name__).info(
                "received %s while starting: stopping", signal.Signals(received).name
            )
            daemon.stop()
            signal.signal(received, signal.SIG_DFL)
        summary = daemon.run()
    except (CheckpointError, SourceError) as exc:
        # The final checkpoint could not be written, or the source cannot go on
        # (data loss, refused credentials): say so on one line, exit 1.
        raise click.ClickException(str(exc)) from None
    finally:
        app.close()
    if inspect_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
    else:
        metrics = summary["metrics"]
        click.echo(
            f"learned {summary['records_learned']} records "
            f"(seen {summary['records_seen']}, rejected {summary['records_rejected']}); "
            f"MAE {_fmt(metrics['mae'])}, RMSE {_fmt(metrics['rmse'])}, R2 {_fmt(metrics['r2'])}",
            err=True,
        )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"


@main.command()
@click.argument("source")
@_options
def run(source: str, **params: Any) -> None:
    """Follow SOURCE and learn until SIGTERM/SIGINT (then checkpoint and exit 0).

    SOURCE is a file path or file:PATH, followed like tail -F (new lines are
    learned as they are written; rotation and truncation are survived), or
    kafka://HOST:PORT[,HOST:PORT]/TOPIC[?group=G] (all partitions, resumed from
    the checkpoint's offsets: every record is learned exactly once).
    """
    _run_app({"source": source, **params}, follow=True)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@_options
@click.option(
    "--rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    envvar="STREAMLEARN_RATE",
    help="Records per second; 0 = as fast as possible.",
)
@click.option(
    "--inspect-json",
    is_flag=True,
    default=False,
    help="Print the final state as JSON (the 'inspect --json' object) on stdout.",
)
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Progress line on stderr (shown only when stderr is a terminal).",
)
def replay(file: str, inspect_json: bool, **params: Any) -> None:
    """Replay FILE as a stream to its end, checkpoint, and exit 0.

    What a data scientist runs to see how an online model would have done:
    each labeled row is predicted, scored, then learned, in file order.
    """
    _run_app({"source": file, **params}, follow=False, inspect_json=inspect_json)


@main.command()
@click.argument("state_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, default=False, help="Print JSON.")
def inspect(state_dir: str, as_json: bool) -> None:
    """Show what the model in STATE_DIR has learned (works while a daemon runs)."""
    from streamlearn.loop.daemon import inspect_state
    from streamlearn.state.checkpoint import CheckpointError, CheckpointStore

    try:
        store = CheckpointStore(state_dir, lock=False)
        loaded = store.load()
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from None
    if loaded is None:
        raise click.ClickException(f"no checkpoint in {state_dir} yet")
    summary = inspect_state(loaded.state, loaded.generation)
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    metrics = summary["metrics"]
    lines = [
        f"model            {summary['model']}",
        f"generation       {loaded.generation}",
        f"records seen     {summary['records_seen']}",
        f"records learned  {summary['records_learned']}",
        f"records rejected {summary['records_rejected']}",
        f"unlabeled        {summary['records_unlabeled']}",
        f"MAE / RMSE / R2  {_fmt(metrics['mae'])} / {_fmt(metrics['rmse'])} / "
        f"{_fmt(metrics['r2'])}",
        f"position         {json.dumps(summary['position'])}",
    ]
    if "weights" in summary:
        weights = ", ".join(f"{k}={v:.6g}" for k, v in sorted(summary["weights"].items()))
        lines.append(f"weights          {weights}")
        lines.append(f"intercept        {summary['intercept']:.6g}")
    click.echo("\n".join(lines))


if __name__ == "__main__":  # pragma: no cover
    main()
