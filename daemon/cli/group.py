"""The ``streamlearn`` click group: logging, lazily loaded commands, and ``--config`` files.

Start-up matters for a tool people run by hand: this module imports only click. Commands
that live in other modules (``produce``, ``broker``, ``pretrain``, ``report``) are imported
only when named, and ``--help`` lists them from static one-line summaries.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from importlib import import_module
from typing import Any

import click

from streamlearn import __version__

#: Commands defined elsewhere: name -> ("module:attribute", one-line help).
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "produce": ("streamlearn.producers.cli:produce", "Replay a CSV/JSON Lines file into Kafka."),
    "broker": ("streamlearn.cli.broker:broker_command", "Start a local Kafka-protocol broker."),
    "pretrain": ("streamlearn.cli.pretrain:pretrain_command", "Train a batch model A."),
    "report": ("streamlearn.cli.report:report_command", "Plot learning curves of runs."),
    "sign": ("streamlearn.cli.sign:sign_command", "Sign a state dir's pre-signing checkpoints."),
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
        if command is None and cmd_name in LAZY_COMMANDS:
            module_name, attribute = LAZY_COMMANDS[cmd_name][0].split(":")
            try:
                loaded = getattr(import_module(module_name), attribute)
            except (ImportError, AttributeError):
                return None
            command = loaded if isinstance(loaded, click.Command) else None
        if command is not None and not any(p.name == "log_level" for p in command.params):
            command.params.append(_log_level_option())
        return command

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


#: The levels ``--log-level`` takes.
LOG_LEVELS = ("debug", "info", "warning", "error")


class _StderrHandler(logging.StreamHandler):
    """Writes each record to ``sys.stderr`` as it is at the time, one line each.

    Whatever replaced stderr since (a progress bar that clears its line first, a test
    runner's capture) gets the line.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass  # always the current sys.stderr


_handler: _StderrHandler | None = None


def configure_logging(level: str) -> None:
    """Log records at ``level`` and above to stderr; called again, only the level changes.

    The group calls it with ``--log-level`` given before the command, the command's own
    ``--log-level`` (after it) again.
    """
    global _handler
    root = logging.getLogger()
    if _handler is None:
        _handler = _StderrHandler()
        root.addHandler(_handler)
    root.setLevel(logging.getLevelNamesMapping()[level.upper()])
    # kafka-python logs every connection attempt; our source logs state changes once.
    kafka_level = logging.CRITICAL if root.level > logging.DEBUG else logging.NOTSET
    logging.getLogger("kafka").setLevel(kafka_level)


def _set_log_level(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        configure_logging(value)


def _log_level_option() -> click.Option:
    """``--log-level`` after the command name (``streamlearn run X --log-level debug``)."""
    return click.Option(
        ["--log-level"],
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        default=None,
        expose_value=False,
        is_eager=True,
        callback=_set_log_level,
        help="How much to log on stderr (default info; may also come before the command, "
        "or from STREAMLEARN_LOG_LEVEL).",
    )


def load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The ``--config`` callback: the TOML file's settings become the command's defaults.

    Loaded into click's ``default_map``, they lose to ``STREAMLEARN_*`` variables and
    flags, which click resolves first. Keys are the options' names
    (:mod:`streamlearn.cli.config_file`); a key that sets nothing is an error (a typo
    would otherwise be ignored), except a top-level key of another command that reads
    the file.
    """
    if value is None:
        return None
    from streamlearn.cli.config_file import config_defaults
    from streamlearn.config import ConfigError

    group = ctx.parent.command if ctx.parent is not None else None
    siblings = [
        command
        for command in (group.commands.values() if isinstance(group, click.Group) else ())
        if command is not ctx.command and any(p.name == "config" for p in command.params)
    ]
    try:
        defaults = config_defaults(value, ctx.command, siblings)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    params = {p.name: p for p in ctx.command.params}
    for name, setting in defaults.items():
        problem = _type_problem(params[name], setting)
        if problem is not None:
            key = next((o.lstrip("-") for o in params[name].opts if o.startswith("--")), name)
            raise click.BadParameter(
                f"config file {value}: {key} must be {problem}, got {setting!r}",
                ctx=ctx,
                param=param,
            )
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def _type_problem(param: click.Parameter, value: Any) -> str | None:
    """What a config file's ``value`` must be for ``param``, when it is not that; else None.

    TOML values have types, and click would convert a wrong one silently or fail later:
    ``int(1.5)`` and ``int(True)`` are both 1, a path of ``5`` is a ``TypeError``.

    >>> _type_problem(click.Option(["--every"], type=click.IntRange(min=1)), 1.5)
    'an integer'
    >>> _type_problem(click.Option(["--reset"], is_flag=True), True) is None
    True
    """
    kind = param.type
    fits: Callable[[Any], bool]
    if isinstance(kind, click.types.BoolParamType):  # flags, --x/--no-x
        what, fits = "true or false", lambda v: isinstance(v, bool)
    elif isinstance(kind, click.types.IntParamType):
        what, fits = "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)
    elif isinstance(kind, click.types.FloatParamType):
        what, fits = "a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)
    else:
        what, fits = "a string", lambda v: isinstance(v, str)
    if param.multiple:
        if isinstance(value, list) and all(fits(item) for item in value):
            return None
        return f"a list of {what.removeprefix('a ').removeprefix('an ')}s"
    return None if fits(value) else what


@click.group(
    cls=LazyGroup,
    # Help as wide as the terminal up to 100 columns: the options' text stays readable.
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="streamlearn")
@click.option(
    "--log-level",
    default="info",
    envvar="STREAMLEARN_LOG_LEVEL",
    show_default=True,
    show_envvar=True,
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help="How much to log on stderr (may also come after the command).",
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
    configure_logging(log_level)
