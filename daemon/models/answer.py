"""A model's answer as a float: River's None ("no prediction yet") reads as NaN.

River lets a regressor answer None before it can predict (``AMFRegressor`` before its first
record). Every caller already treats NaN as "no usable prediction" (not scored, not learned
as a label), so None joins it there instead of crashing ``float()``.

>>> predicted(None), predicted(2)
(nan, 2.0)
"""

from __future__ import annotations

import math


def predicted(value: float | None) -> float:
    """``value`` as a float, NaN for None."""
    return math.nan if value is None else float(value)
