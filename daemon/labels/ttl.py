"""How long features wait for their late label: a time-to-live in seconds or in records."""

from __future__ import annotations

import decimal
import math
import re
from dataclasses import dataclass

__all__ = ["DEFAULT_TTL", "LabelTtl"]

#: The TTL of the join when ``--pseudo-label`` turns it on without ``--label-ttl``.
DEFAULT_TTL = "100000r"

_TTL = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdr])\s*$", re.IGNORECASE)
_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True, slots=True)
class LabelTtl:
    """How long features wait for a label: ``amount`` seconds (``unit="s"``) or records (``"r"``).

    Records count every stream record between the features and the label (a
    reproducible replay uses records); seconds are wall-clock time, which keeps
    counting across a restart.

    Examples
    --------
    >>> LabelTtl.parse("5000r"), LabelTtl.parse("10m")
    (LabelTtl(amount=5000.0, unit='r'), LabelTtl(amount=600.0, unit='s'))
    >>> str(LabelTtl.parse("1.5h")), str(LabelTtl.parse("2000000r")), str(LabelTtl.parse("0.5s"))
    ('5400s', '2000000r', '0.5s')
    >>> try:
    ...     LabelTtl.parse("600")
    ... except ValueError as exc:
    ...     print(exc)
    label TTL '600' needs a unit: seconds (600s, 10m, 2h, 1d) or records (5000r)
    """

    amount: float
    unit: str

    def __post_init__(self) -> None:
        if self.unit not in ("s", "r"):
            raise ValueError(f"label TTL unit must be 's' or 'r', got {self.unit!r}")
        if not (math.isfinite(self.amount) and self.amount > 0):
            raise ValueError(f"label TTL must be positive, got {self.amount!r}")

    @classmethod
    def parse(cls, text: str | LabelTtl) -> LabelTtl:
        """Read ``600s``, ``10m``, ``2h``, ``1d`` (wall-clock) or ``5000r`` (records)."""
        if isinstance(text, LabelTtl):
            return text
        match = _TTL.match(str(text))
        if match is None:
            raise ValueError(
                f"label TTL {text!r} needs a unit: seconds (600s, 10m, 2h, 1d) or records (5000r)"
            )
        amount, unit = float(match.group(1)), match.group(2).lower()
        if unit == "r":
            return cls(amount, "r")
        return cls(amount * _SECONDS[unit], "s")

    def expired(self, index: int, time: float, now_index: int, now: float) -> bool:
        """Whether features that came at (``index``, ``time``) are too old now."""
        if self.unit == "r":
            return now_index - index > self.amount
        return now - time > self.amount

    def __str__(self) -> str:
        # Exact and never in exponent form ("1e+06r" would not parse back).
        return f"{decimal.Decimal(repr(self.amount)).normalize():f}{self.unit}"
