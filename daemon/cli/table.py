"""A table of click options applied as one decorator: how every option group is declared."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "Command",
    "OptionDecorator",
    "apply",
    "choice",
    "flag",
    "option",
    "param_name",
    "path",
    "settings_option",
]

#: A click command's callback (its parameters are the options, hence ``...``).
Command = Callable[..., Any]
#: What ``click.option`` returns: adds one option to a command.
OptionDecorator = Callable[[Command], Command]


def apply(options: Iterable[OptionDecorator]) -> OptionDecorator:
    """One decorator adding ``options`` in order (the first is listed first in ``--help``).

    >>> import click
    >>> @click.command()
    ... @apply((click.option("--a"), click.option("--b")))
    ... def demo(a, b): ...
    >>> [param.name for param in demo.params]
    ['a', 'b']
    """
    ordered = list(options)

    def decorate(func: Command) -> Command:
        for option in reversed(ordered):
            func = option(func)
        return func

    return decorate


def param_name(decls: Sequence[str]) -> str:
    """Where an option's value lands in a command's params: its first long flag's name.

    >>> param_name(("-G", "--group-id")), param_name(("--a-b/--no-a-b",))
    ('group_id', 'a_b')
    """
    first = next(decl for decl in decls if decl.startswith("--"))
    return first.split("/")[0][2:].replace("-", "_")


def option(
    *decls: str, help: str, show_default: bool = True, scope: str = "", **attrs: Any
) -> OptionDecorator:
    """``click.option`` with its variable, ``STREAMLEARN_``, ``scope`` and the first flag's name.

    Its default is shown in ``--help`` unless ``show_default=False``.

    >>> @click.command()
    ... @option("--drift-warmup/--no-drift-warmup", default=True, help="Warm up.")
    ... def demo(drift_warmup): ...
    >>> demo.params[0].envvar, demo.params[0].show_default
    ('STREAMLEARN_DRIFT_WARMUP', True)
    """
    return click.option(
        *decls,
        envvar=f"STREAMLEARN_{scope}{param_name(decls).upper()}",
        help=help,
        show_default=show_default,
        **attrs,
    )


def flag(name: str, *, help: str, scope: str = "") -> OptionDecorator:
    """An on/off :func:`option`, off unless given."""
    return option(name, is_flag=True, default=False, help=help, scope=scope)


def choice(
    *decls: str, among: Sequence[str], help: str, case_sensitive: bool = True, **attrs: Any
) -> OptionDecorator:
    """An :func:`option` taking one of ``among``: by default the first."""
    attrs.setdefault("default", among[0])
    kind = click.Choice(among, case_sensitive=case_sensitive)
    return option(*decls, type=kind, help=help, **attrs)


def settings_option(defaults: DataclassInstance) -> Callable[..., OptionDecorator]:
    """:func:`option` with, as its default, the field of ``defaults`` its value lands in.

    The settings dataclass (e.g. ``PseudoSettings()``) stays the one place its defaults are
    written.
    """
    values = dataclasses.asdict(defaults)

    def make(*decls: str, help: str, **attrs: Any) -> OptionDecorator:
        return option(*decls, default=values[param_name(decls)], help=help, **attrs)

    return make


#: What a path option's metavar says it names, and the type that checks it: a FILE (not a
#: directory), a DIR (not a file) or either (PATH).
_PATHS = {
    "FILE": click.Path(dir_okay=False),
    "DIR": click.Path(file_okay=False),
    "PATH": click.Path(),
}


def path(*decls: str, metavar: str, help: str, **attrs: Any) -> OptionDecorator:
    """An :func:`option` naming a path, None unless given; ``metavar`` says of what kind."""
    return option(*decls, default=None, type=_PATHS[metavar], metavar=metavar, help=help, **attrs)
