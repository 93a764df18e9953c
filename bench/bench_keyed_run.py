"""A keyed run end to end (``streamlearn replay --key-by``) beside one model and beside River.

Side by side on the same rows, in one run: one ``sgd`` on the compiled block path and on the
record path; ``--key-by`` with every key live, and with ten times more keys than
``--max-live-keys`` (every record loads one learner and spills another); and a River spec
per key against a plain River loop keeping a dict of models (one MAE each) on rows parsed
beforehand. Wall times of whole ``replay`` processes (the start-up, printed apart, is taken
out of the rates).

Run: python bench/bench_keyed_run.py [--rows 100000] [--keys 1000] [--many 20000]
     [--river-rows 50000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

FEATURES = ("a", "b", "c", "d", "e")
SPEC = "StandardScaler | LinearRegression"


def write(path: Path, rows: int, keys: int | None, seed: int = 1, classes: bool = False) -> None:
    """``rows`` CSV rows of 5 features (and a ``store`` key of ``keys`` when given);
    ``classes``: the target a class, 1 or 0 (its sign), for ``logistic``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, len(FEATURES)))
    y = X @ rng.normal(size=len(FEATURES)) + 0.1 * rng.normal(size=rows)
    if classes:
        y = (y > 0).astype(np.float64)
    which = rng.integers(keys, size=rows) if keys else None
    with open(path, "w") as handle:
        head = ["store", *FEATURES, "y"] if keys else [*FEATURES, "y"]
        handle.write(",".join(head) + "\n")
        for i in range(rows):
            cells = [f"{v:.6f}" for v in X[i]] + [f"{y[i]:.0f}" if classes else f"{y[i]:.6f}"]
            if which is not None:
                cells.insert(0, f"s{which[i]}")
            handle.write(",".join(cells) + "\n")


def replay(path: Path, *args: str, env: dict[str, str] | None = None) -> float:
    """Seconds of ``streamlearn replay PATH ARGS``."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "streamlearn.cli", "replay", str(path), "--no-progress", *args],
        check=True,
        capture_output=True,
        env={**os.environ, **(env or {})},
    )
    return time.perf_counter() - started


def river_dict_loop(path: Path, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds of a River loop with a dict of ``SPEC`` models per key (rows parsed first),
    by ``clock`` (``time.process_time``: its CPU seconds)."""
    from river import linear_model, metrics, preprocessing

    rows = []
    with open(path) as handle:
        next(handle)
        for line in handle:
            cells = line.rstrip("\n").split(",")
            x = {name: float(v) for name, v in zip(FEATURES, cells[1:-1], strict=True)}
            rows.append((cells[0], x, float(cells[-1])))
    models: dict[str, object] = {}
    maes: dict[str, metrics.MAE] = {}
    started = clock()
    for key, x, y in rows:
        model = models.get(key)
        if model is None:
            model = models[key] = preprocessing.StandardScaler() | linear_model.LinearRegression()
            maes[key] = metrics.MAE()
        maes[key].update(y, model.predict_one(x))  # type: ignore[attr-defined]
        model.learn_one(x, y)  # type: ignore[attr-defined]
    return clock() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--many", type=int, default=20_000, help="keys, 10x --max-live-keys")
    parser.add_argument("--river-rows", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plain, keyed, many = folder / "plain.csv", folder / "keyed.csv", folder / "many.csv"
        write(plain, args.rows, None)
        write(keyed, args.rows, args.keys)
        write(many, args.rows, args.many)
        empty = folder / "empty.csv"
        write(empty, 0, None)
        start_up = replay(empty)
        print(f"start-up of a replay (empty file): {start_up:.2f} s; rows {args.rows:,}")
        runs = [
            ("one sgd, block path", plain, (), None),
            ("one sgd, record path", plain, (), {"STREAMLEARN_FASTPATH": "0"}),
            (f"--key-by, {args.keys:,} keys, all live", keyed, ("--key-by", "store"), None),
            (
                f"--key-by, {args.many:,} keys, --max-live-keys {args.many // 10:,}",
                many,
                ("--key-by", "store", "--max-live-keys", str(args.many // 10)),
                None,
            ),
        ]
        for name, path, extra, env in runs:
            seconds = replay(path, "--rolling-window", "100", *extra, env=env)
            rate = args.rows / max(seconds - start_up, 1e-9)
            print(f"{name:<48} {seconds:7.2f} s  {rate:>10,.0f} rec/s")
        river = folder / "river.csv"
        write(river, args.river_rows, args.keys)
        loop = river_dict_loop(river)
        seconds = replay(river, "--key-by", "store", "--model", SPEC)
        print(
            f"{SPEC} per key, {args.river_rows:,} rows, {args.keys:,} keys: River dict loop "
            f"{loop:.2f} s; streamlearn --key-by {seconds - start_up:.2f} s (start-up out): "
            f"{loop / max(seconds - start_up, 1e-9):.2f}x"
        )


if __name__ == "__main__":
    main()
