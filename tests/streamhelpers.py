"""Shared test helpers: data makers, the numpy oracle of the seed's update, CLI runners."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
STREAMLEARN = [sys.executable, "-m", "streamlearn.cli"]


def make_regression(n: int, d: int = 3, seed: int = 0, noise: float = 0.1):
    """A linear target with noise: X (n, d), y (n,), true weights."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    y = X @ w + 1.5 + rng.normal(scale=noise, size=n)
    return X, y, w


def write_csv(
    path: Path,
    X: np.ndarray,
    y: np.ndarray | None,
    names: list[str] | None = None,
    unlabeled: set[int] = frozenset(),
) -> list[str]:  # type: ignore[assignment]
    """Write X (and y) as a CSV with header x0..x{d-1},y; rows in ``unlabeled`` get an empty y."""
    names = names or [f"x{j}" for j in range(X.shape[1])]
    with open(path, "w") as handle:
        handle.write(",".join([*names, "y"]) + "\n")
        for i in range(X.shape[0]):
            target = "" if (y is None or i in unlabeled) else repr(float(y[i]))
            handle.write(",".join(repr(float(v)) for v in X[i]) + "," + target + "\n")
    return names


def sgd_oracle(X: np.ndarray, y: np.ndarray, lr: float, labeled: np.ndarray | None = None):
    """The seed's update as a plain numpy loop: the oracle for the sgd model."""
    theta = np.zeros(X.shape[1])
    theta0 = 0.0
    predictions = []
    for i in range(X.shape[0]):
        if labeled is not None and not labeled[i]:
            continue
        yhat = float(X[i] @ theta + theta0)
        predictions.append(yhat)
        error = yhat - y[i]
        theta = theta - lr * error * X[i]
        theta0 = theta0 - lr * error
    return theta, theta0, np.array(predictions)


def cli(
    *args: str,
    check: bool = True,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """Run ``streamlearn ARGS`` in a subprocess (real process: signals, exit codes, stderr)."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        [*STREAMLEARN, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        **kwargs,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"streamlearn {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
        )
    return result


def inspect_json(state_dir: Path) -> dict[str, Any]:
    return json.loads(cli("inspect", str(state_dir), "--json").stdout)


def run_until_seen(app: Any, seen: int, timeout: float = 60.0) -> dict[str, Any]:
    """Run a built app's daemon until it has seen ``seen`` records (or ``timeout`` s), then
    stop it and close the app; returns the run's summary (a Kafka source never ends)."""
    import threading
    import time

    daemon = app.daemon

    def stop_when_done() -> None:
        deadline = time.monotonic() + timeout
        while daemon.counters.records_seen < seen and time.monotonic() < deadline:
            time.sleep(0.01)
        daemon.stop()

    stopper = threading.Thread(target=stop_when_done, daemon=True)
    stopper.start()
    try:
        summary: dict[str, Any] = daemon.run()
    finally:
        app.close()
    stopper.join()
    return summary


def read_jsonl(*paths: Path) -> list[list[dict[str, Any]]]:
    """Each JSON Lines file's records."""
    return [[json.loads(line) for line in path.read_text().splitlines()] for path in paths]
