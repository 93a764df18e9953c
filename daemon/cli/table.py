"""A table of click options applied as one decorator: how every option group is declared."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import click

__all__ = ["Command", "OptionDecorator", "apply", "flag", "option"]

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


def option(*decls: str, help: str, show_default: bool = True, **attrs: Any) -> OptionDecorator:
    """``click.option`` with its variable, ``STREAMLEARN_`` and the first flag's name.

    Its default is shown in ``--help`` unless ``show_default=False``.

    >>> @click.command()
    ... @option("--drift-warmup/--no-drift-warmup", default=True, help="Warm up.")
    ... def demo(drift_warmup): ...
    >>> demo.params[0].envvar, demo.params[0].show_default
    ('STREAMLEARN_DRIFT_WARMUP', True)
    """
    name = decls[0].split("/")[0].lstrip("-").replace("-", "_").upper()
    return click.option(
        *decls, envvar=f"STREAMLEARN_{name}", help=help, show_default=show_default, **attrs
    )


def flag(name: str, *, help: str) -> OptionDecorator:
    """An on/off :func:`option`, off unless given."""
    return option(name, is_flag=True, default=False, help=help)
