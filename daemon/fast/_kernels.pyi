"""Types of the C extension ``streamlearn.fast._kernels`` (daemon/fast/_kernels.c).

The functions take any buffer of the right item type and shape (checked at the call);
these are the arrays the daemon passes. Their specification: ``streamlearn.fast.spec``.
"""

import numpy as np
from numpy.typing import NDArray

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

def parse_lines(
    data: bytes,
    n_fields: int,
    values: NDArray[np.float64],
    status: NDArray[np.int8],
    starts: NDArray[np.int64],
    /,
) -> int: ...
def learn_rows(
    values: NDArray[np.float64],
    status: NDArray[np.int8],
    start: int,
    stop: int,
    weights: NDArray[np.float64],
    lr: float,
    two: float,
    state: NDArray[np.float64],
    counters: NDArray[np.int64],
    ring_y: NDArray[np.float64],
    ring_yhat: NDArray[np.float64],
    yhat_out: NDArray[np.float64],
    curve_out: NDArray[np.float64],
    /,
) -> int: ...
def feed_values(
    buf: NDArray[np.float64], values: NDArray[np.float64], start: int, stop: int, /
) -> int: ...
