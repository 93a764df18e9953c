"""The compiled keyed kernel alone: ``learn_rows_keyed`` (or with ``--kernel logistic``,
``learn_logistic_keyed``: random classes) over ROWS rows spread at random over KEYS slots, as
the keyed ``sgd`` path calls it (blocks of 8,192 rows, a key's full error
buffer emptied where the kernel stops for it; slot arrays mapped as ``keys.slots`` maps
them, without huge pages), with no parsing, key index or Python around.

Each tree's package (``--trees``: PYTHONPATH entries, each holding a ``streamlearn`` with its
kernels built; ``.`` is the installed one) runs in a process of its own, the trees alternated
round after round: a first pass (every slot's first writes: page faults) and ``--passes``
more over the same slots (the steady state), CPU seconds of each. Printed: per tree the
median and minimum of the first pass and of the steady passes' minimum per round.

Run: python bench/bench_keyed_kernel.py [--rows 1000000] [--keys 100000] [--rounds 5]
     [--trees .,/path/to/other/tree] [--kernel sgd|logistic]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

#: One process's timing, run as ``python -c`` (ROWS, KEYS, PASSES from argv).
CHILD = """
import json, mmap, sys, time
import numpy as np
from streamlearn.fast import _kernels
from streamlearn.fast.keyspec import K_DONE, K_FULL, K_PENDING, K_STRIDE, N_KEY_COUNTERS
from streamlearn.fast.spec import N_STATE

rows, keys, passes = (int(arg) for arg in sys.argv[1:4])
window, points, pending, width, block = 100, 65, 32, 5, 8192
rng = np.random.default_rng(1)
values = rng.normal(size=(rows, width + 1))
status = np.zeros(rows, np.int8)
slots = rng.integers(0, keys, rows).astype(np.int64)
index = np.arange(rows, dtype=np.int64)

def zeros(shape, dtype=np.float64):  # as keys.slots allocates them: mapped, no huge pages
    count = int(np.prod(shape))
    memory = mmap.mmap(-1, count * 8, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(memory, dtype=dtype, count=count).reshape(shape)

arrays = [zeros((keys, width)), zeros((keys, N_STATE)), zeros((keys, N_KEY_COUNTERS), np.int64),
          zeros((keys, window)), zeros((keys, window)), zeros((keys, points, 3)),
          zeros((keys, pending)), zeros((keys, pending), np.int64)]
weights, state, counters, ring_y, ring_yhat, curve, pend_err, pend_idx = arrays
counters[:, K_STRIDE] = 1
yhat, why = np.empty(rows), np.zeros(1, np.int64)

def one_pass():
    started = time.process_time()
    for start in range(0, rows, block):
        end, row = min(rows, start + block), start
        while row < end:
            row = _kernels.learn_rows_keyed(
                values, status, slots, index, row, end, weights, 0.01, 2.0, state, counters,
                ring_y, ring_yhat, curve, pend_err, pend_idx, yhat, why)
            if why[0] == K_FULL:
                counters[slots[row], K_PENDING] = 0
            elif why[0] != K_DONE:
                raise SystemExit(f"the kernel stopped: {why[0]}")
    return time.process_time() - started

print(json.dumps([one_pass() for _ in range(1 + passes)]))
"""

#: The same for ``learn_logistic_keyed``: a slot's arrays as ``classkeyspec`` lays them out.
CHILD_LOGISTIC = """
import json, mmap, sys, time
import numpy as np
from streamlearn.fast import _kernels
from streamlearn.fast.classkeyspec import C_PENDING, N_CLASS_KEY_COUNTERS, N_POINT
from streamlearn.fast.classspec import CURVE_STRIDE, N_LOSS_STATE
from streamlearn.fast.keyspec import K_DONE, K_FULL

rows, keys, passes = (int(arg) for arg in sys.argv[1:4])
window, points, pending, width, block = 100, 65, 32, 5, 8192
rng = np.random.default_rng(1)
values = rng.normal(size=(rows, width + 1))
values[:, width] = rng.random(rows) < 0.5
status = np.zeros(rows, np.int8)
slots = rng.integers(0, keys, rows).astype(np.int64)
index = np.arange(rows, dtype=np.int64)

def zeros(shape, dtype=np.float64):  # as keys.slots allocates them: mapped, no huge pages
    count = int(np.prod(shape))
    memory = mmap.mmap(-1, count * 8, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(memory, dtype=dtype, count=count).reshape(shape)

arrays = [zeros((keys, width + 1)), zeros((keys, N_LOSS_STATE)),
          zeros((keys, N_CLASS_KEY_COUNTERS), np.int64), zeros((keys, 2 * window)),
          zeros((keys, window), np.int8), zeros((keys, window), np.int8), zeros((keys, window)),
          zeros((keys, points, N_POINT)), zeros((keys, pending)), zeros((keys, pending), np.int64)]
weights, state, counters, ring, ring_y, ring_pred, ring_p, curve, pend_err, pend_idx = arrays
counters[:, CURVE_STRIDE] = 1
p, loss, why = np.empty(rows), np.empty(rows), np.zeros(1, np.int64)

def one_pass():
    started = time.process_time()
    for start in range(0, rows, block):
        end, row = min(rows, start + block), start
        while row < end:
            row = _kernels.learn_logistic_keyed(
                values, status, slots, index, row, end, weights, 0.01, state, counters, ring,
                ring_y, ring_pred, ring_p, curve, pend_err, pend_idx, p, loss, why)
            if why[0] == K_FULL:
                counters[slots[row], C_PENDING] = 0
            elif why[0] != K_DONE:
                raise SystemExit(f"the kernel stopped: {why[0]}")
    return time.process_time() - started

print(json.dumps([one_pass() for _ in range(1 + passes)]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--passes", type=int, default=3, help="steady passes after the first")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trees", default=".", help="comma-separated PYTHONPATH entries")
    parser.add_argument("--kernel", choices=["sgd", "logistic"], default="sgd")
    args = parser.parse_args()
    print("python " + " ".join(sys.argv))
    trees = args.trees.split(",")
    times: dict[str, list[list[float]]] = {tree: [] for tree in trees}
    for round_ in range(args.rounds):
        for tree in trees if round_ % 2 == 0 else trees[::-1]:
            env = dict(os.environ)
            if tree != ".":
                env["PYTHONPATH"] = tree
            child = CHILD_LOGISTIC if args.kernel == "logistic" else CHILD
            command = [sys.executable, "-c", child, str(args.rows), str(args.keys)]
            done = subprocess.run(
                [*command, str(args.passes)], env=env, check=True, capture_output=True
            )
            times[tree].append(json.loads(done.stdout))
    print(f"{args.rows:,} rows over {args.keys:,} slots, {args.rounds} rounds, CPU seconds:")
    for tree, runs in times.items():
        first = [run[0] for run in runs]
        steady = [min(run[1:]) for run in runs]
        print(
            f"  {tree}: first pass median {statistics.median(first):.3f} (min {min(first):.3f}); "
            f"steady median {statistics.median(steady):.3f} (min {min(steady):.3f})"
        )


if __name__ == "__main__":
    main()
