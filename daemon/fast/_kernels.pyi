"""Types of the C extension ``streamlearn.fast._kernels`` (daemon/fast/_kernels.c)."""

from typing import Any

LABELED: int
UNLABELED: int
DOUBT: int
REJECTED: int
NOTHING: int
N_STATE: int
N_COUNTERS: int
HEADER: int
MAX_ROWS: int
INTERCEPT: int
ABS_SUM: int
STOPPED: int
SEEN_TOTAL: int
DIVERGED: float

def parse_lines(data: Any, n_fields: int, values: Any, status: Any, starts: Any, /) -> int: ...
def learn_rows(
    values: Any,
    status: Any,
    start: int,
    stop: int,
    weights: Any,
    lr: float,
    two: float,
    state: Any,
    counters: Any,
    ring_y: Any,
    ring_yhat: Any,
    yhat_out: Any,
    curve_out: Any,
    /,
) -> int: ...
def feed_values(buf: Any, values: Any, start: int, stop: int, /) -> int: ...
