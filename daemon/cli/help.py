"""How ``--help`` lays out a command with many options: titled sections people can scan.

A :class:`SectionedCommand` lists its options under titles (Input, Model, Kafka...) in the
order given, each option with its environment variable, and numbers as ``INTEGER`` or
``FLOAT`` (their bounds are in the ``[...]`` after the help). The sections are worked out
only when help is asked for: starting a command costs nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

__all__ = ["Section", "SectionedCommand", "option_names"]

#: A decorator adding options to a command (a table applied, or ``pseudo_options``).
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
#: A help section: its title, and its options as a decorator or by parameter name.
Section = tuple[str, Decorator | tuple[str, ...]]
#: click's widest option column (``HelpFormatter.write_dl``'s ``col_max``).
_COLUMN = 30


def option_names(options: Decorator) -> list[str]:
    """The parameter names of the options ``options`` adds, in the order it adds them.

    >>> option_names(click.option("--state-dir"))
    ['state_dir']
    """

    def probe(**params: Any) -> None: ...

    return [param.name for param in click.command()(options(probe)).params if param.name]


class SectionedCommand(click.Command):
    """A command whose ``--help`` lists its options in ``sections``, in order.

    An option in no section (``--help``) is listed last, under "Other options"; one in
    two sections only in the first.

    >>> from click.testing import CliRunner
    >>> @click.command(cls=SectionedCommand,
    ...                sections=[("Model", ("model",)), ("Input", click.option("--target"))])
    ... @click.option("--target", envvar="APP_TARGET", help="Target column.")
    ... @click.option("--model", default="sgd", show_default=True, help="Model spec.")
    ... def demo(target, model): ...
    >>> print(CliRunner().invoke(demo, ["--help"]).output)
    Usage: demo [OPTIONS]
    <BLANKLINE>
    Model:
      --model TEXT   Model spec.  [default: sgd]
    <BLANKLINE>
    Input:
      --target TEXT  Target column.  [env var: APP_TARGET]
    <BLANKLINE>
    Other options:
      -h, --help     Show this message and exit.
    <BLANKLINE>
    """

    def __init__(self, *args: Any, sections: Sequence[Section] = (), **kwargs: Any) -> None:
        kwargs.setdefault("context_settings", {"help_option_names": ["-h", "--help"]})
        super().__init__(*args, **kwargs)
        self.sections = tuple(sections)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        records: dict[str, tuple[str, str]] = {}
        for param in self.get_params(ctx):
            if not isinstance(param, click.Option) or param.name is None:
                continue  # arguments are in the usage line and the command's text
            record = _help_record(param, ctx)
            if record is not None:
                records[param.name] = record
        # One column for the option names of every section, so the help text lines up.
        width = min(max((len(term) for term, _ in records.values()), default=0), _COLUMN)
        records = {name: (term.ljust(width), text) for name, (term, text) in records.items()}
        shown: set[str] = set()
        for title, members in self.sections:
            names = members if isinstance(members, tuple) else option_names(members)
            rows = [records[name] for name in names if name in records and name not in shown]
            shown.update(names)
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows, col_max=_COLUMN)
        rest = [record for name, record in records.items() if name not in shown]
        if rest:
            with formatter.section("Other options"):
                formatter.write_dl(rest, col_max=_COLUMN)


def _help_record(param: click.Option, ctx: click.Context) -> tuple[str, str] | None:
    """An option's help line, with its environment variable and a plain number metavar."""
    show_envvar, metavar = param.show_envvar, param.metavar
    param.show_envvar = bool(param.envvar)
    if metavar is None and isinstance(param.type, click.IntRange):
        param.metavar = "INTEGER"
    elif metavar is None and isinstance(param.type, click.FloatRange):
        param.metavar = "FLOAT"
    try:
        return param.get_help_record(ctx)
    finally:
        param.show_envvar, param.metavar = show_envvar, metavar
