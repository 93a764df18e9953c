"""A table of click options applied as one decorator: how every option group is declared."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Command", "OptionDecorator", "apply"]

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
