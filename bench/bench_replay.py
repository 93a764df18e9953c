"""Replay throughput: `streamlearn replay` with sgd next to the loop a River user would write.

Both are timed as whole processes on the full CSV and on a header-only CSV; the
steady-state rate is rows / (full - header-only), so start-up cost is reported
apart. Run: python bench/bench_replay.py [--rows 200000] [--features 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RIVER_LOOP = """
import sys
from river import linear_model, metrics, stream
model = linear_model.LinearRegression()
metric = metrics.MAE()
for x, y in stream.iter_csv(sys.argv[1], target="y", converters={{**{{f"x{{j}}": float for j in range({d})}}, "y": float}}):
    metric.update(y, model.predict_one(x))
    model.learn_one(x, y)
"""


def make_csv(path: Path, rows: int, features: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features))
    y = X @ rng.normal(size=features) + 0.1 * rng.normal(size=rows)
    header = ",".join([*(f"x{j}" for j in range(features)), "y"])
    data = np.column_stack([X, y])
    np.savetxt(path, data, delimiter=",", header=header, comments="", fmt="%.6f")


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def best_of(cmd: list[str], repeat: int) -> float:
    return min(timed(cmd) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    full, empty = tmp / "full.csv", tmp / "header.csv"
    make_csv(full, args.rows, args.features)
    empty.write_text(full.open().readline())
    python = sys.executable
    contenders = {
        "streamlearn replay (sgd)": [
            python,
            "-m",
            "streamlearn.cli",
            "--log-level",
            "warning",
            "replay",
            "{file}",
            "--state-dir",
            str(tmp / "state"),
            "--reset",
        ],
        "River loop (iter_csv + LinearRegression)": [
            python,
            "-c",
            RIVER_LOOP.format(d=args.features),
            "{file}",
        ],
    }
    rows = []
    for name, template in contenders.items():

        def command(path: Path, template: list[str] = template) -> list[str]:
            return [part.replace("{file}", str(path)) for part in template]

        start_up = best_of(command(empty), args.repeat)
        total = best_of(command(full), args.repeat)
        rows.append((name, start_up, total, args.rows / max(total - start_up, 1e-9)))
    print(f"# {' '.join(sys.argv)}")
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, "
        f"python {platform.python_version()}, {time.strftime('%Y-%m-%d')}, "
        f"{args.rows} rows x {args.features} features, best of {args.repeat}"
    )
    print(f"{'contender':45} {'start-up s':>10} {'total s':>9} {'rows/s':>12}")
    for name, start_up, total, rate in rows:
        print(f"{name:45} {start_up:10.2f} {total:9.2f} {rate:12,.0f}")
    print(f"ratio streamlearn / River loop: {rows[0][3] / rows[1][3]:.2f}x")


if __name__ == "__main__":
    main()
