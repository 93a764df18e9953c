"""Option value types that refuse what click's own would let through: NaN, infinity, a
rate too small to wait for, an empty address.

click's ``FloatRange`` compares the value with its bounds, and NaN compares false with
everything: ``--divergence-factor nan`` would pass. These types say what is wrong in one line
(a usage error, exit 2) instead of failing later with a traceback.
"""

from __future__ import annotations

import math
from typing import Any

import click

__all__ = ["FRACTION", "HELD_COUNT", "Address", "Finite", "Rate"]

#: A number of records or names held in memory: at least one, at most a million.
HELD_COUNT = click.IntRange(min=1, max=1_000_000)
#: A share of something, more than none: ``(0, 1]``.
FRACTION = click.FloatRange(0, 1, min_open=True)


class Finite(click.FloatRange):
    """A ``FloatRange`` of finite numbers only.

    >>> Finite(min=0).convert("2.5", None, None)
    2.5
    >>> Finite(min=0).convert("nan", None, None)
    Traceback (most recent call last):
    click.exceptions.BadParameter: 'nan' is not a finite number.
    """

    name = "float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FloatRange.convert(self, value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class Rate(Finite):
    """Records per second: 0 (as fast as possible) or from ``slowest`` up to ``fastest``.

    A rate of 1e-300 would wait longer than a clock can count.

    >>> Rate().convert("0", None, None), Rate().convert("500", None, None)
    (0.0, 500.0)
    >>> Rate().convert("1e-300", None, None)
    Traceback (most recent call last):
    click.exceptions.BadParameter: a rate is 0 (as fast as possible) or at least 0.001 records
    per second, not 1e-300.
    """

    def __init__(self, slowest: float = 0.001, fastest: float = 1e9) -> None:
        super().__init__(min=0, max=fastest)
        self.slowest = slowest

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        rate = super().convert(value, param, ctx)
        if 0 < rate < self.slowest:
            self.fail(
                f"a rate is 0 (as fast as possible) or at least {self.slowest} records per "
                f"second, not {value}.",
                param,
                ctx,
            )
        return rate


class Address(click.ParamType):
    """A host name or IP address to bind to: never empty (an empty host binds every address).

    >>> Address().convert(" 127.0.0.1 ", None, None)
    '127.0.0.1'
    >>> Address().convert("", None, None)
    Traceback (most recent call last):
    click.exceptions.BadParameter: an empty address would listen on every address; write
    127.0.0.1 (this machine) or 0.0.0.0 (every address) explicitly.
    """

    name = "address"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            self.fail(f"{value!r} is not a host name or address.", param, ctx)
        host = value.strip()
        if not host:
            self.fail(
                "an empty address would listen on every address; write 127.0.0.1 (this "
                "machine) or 0.0.0.0 (every address) explicitly.",
                param,
                ctx,
            )
        return host
