"""The keyed run end to end (issue 14): ``streamlearn replay --key-by`` learns one model per
key, each equal to a run of its own on that key's rows in the same order: sgd's weights to a
numpy loop, a River spec's metrics to ``progressive_val_score``, a classifier's too; the same
bits whatever ``--max-live-keys``; every key equal to one pass after SIGKILLs."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from river import evaluate, metrics

from streamhelpers import cli, kill_at_random_moments, sgd_oracle
from streamlearn.keys.run import read_keys
from streamlearn.models.registry import build_model
from streamlearn.state import CheckpointStore

KEYS = 50
FEATURES = ("x0", "x1", "x2")


def keyed_rows(count: int, seed: int = 3) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``count`` rows of ``KEYS`` keys interleaved at random, each key with its own weights."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(KEYS, len(FEATURES)))
    intercepts = rng.normal(size=KEYS)
    keys = rng.integers(KEYS, size=count)
    X = rng.normal(size=(count, len(FEATURES)))
    y = np.einsum("ij,ij->i", X, weights[keys]) + intercepts[keys] + 0.1 * rng.normal(size=count)
    return [f"store-{k}" for k in keys], X, y


def write_keyed(path: Path, keys: list[str], X: np.ndarray, y: np.ndarray | list[str]) -> None:
    with open(path, "w") as handle:
        handle.write(",".join(["store", *FEATURES, "y"]) + "\n")
        for key, row, target in zip(keys, X, y, strict=True):
            cells = [key, *(repr(float(v)) for v in row)]
            handle.write(
                ",".join([*cells, str(target) if isinstance(target, str) else repr(float(target))])
                + "\n"
            )


def keyed_csv(
    tmp_path: Path, count: int, seed: int = 3
) -> tuple[list[str], np.ndarray, np.ndarray, Path]:
    """``keyed_rows(count, seed)`` written to ``tmp_path / "keyed.csv"``: keys, X, y, the file."""
    keys, X, y = keyed_rows(count, seed)
    path = tmp_path / "keyed.csv"
    write_keyed(path, keys, X, y)
    return keys, X, y, path


def key_stream(
    X: np.ndarray, y: Sequence[Any], rows: np.ndarray
) -> list[tuple[dict[str, float], Any]]:
    """The rows ``rows`` as River's (x, y) pairs, in order (``y``: each row's target as given)."""
    return [({f: float(X[i, j]) for j, f in enumerate(FEATURES)}, y[i]) for i in rows]


@contextlib.contextmanager
def held_keys(state: Path) -> Iterator[Any]:
    """The keys of a keyed state dir's newest checkpoint, read back from the state store
    (without its lock), closed after."""
    store = CheckpointStore(state, lock=False)
    try:
        loaded = store.load()
        assert loaded is not None and store.key is not None
        models = read_keys(store.directory, store.key, loaded.state)
        try:
            yield models
        finally:
            models.close()
    finally:
        store.close()


def learners(state: Path) -> dict[str, Any]:
    """Every key's learner in a keyed state dir, read back from the state store."""
    with held_keys(state) as models:
        return {key: models.peek(key) for key, _, _ in list(models.entries())}


def replay(path: Path, state: Path, *extra: str) -> dict[str, Any]:
    result = cli(
        "replay", str(path), "--key-by", "store", "--state-dir", str(state), "--inspect-json",
        "--rolling-window", "50", *extra,
    )  # fmt: skip
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def by_key(keys: list[str]) -> dict[str, np.ndarray]:
    out: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        out.setdefault(key, []).append(i)
    return {key: np.array(rows) for key, rows in out.items()}


def replayed_spec(
    tmp_path: Path, spec: str, count: int, seed: int, *extra: str
) -> Iterator[tuple[str, list[tuple[dict[str, float], Any]], Any]]:
    """Replay ``keyed_csv(tmp_path, count, seed)`` with ``--model spec`` and ``extra``; then
    each key, its rows as River's stream, and the learner the run kept for it."""
    keys, X, y, path = keyed_csv(tmp_path, count, seed)
    replay(path, tmp_path / "state", "--model", spec, *extra)
    got = learners(tmp_path / "state")
    for key, rows in by_key(keys).items():
        yield key, key_stream(X, y.tolist(), rows), got[key]


@pytest.mark.slow
def test_sgd_per_key_equals_numpy_loops_and_spilling_changes_no_bit(tmp_path: Path) -> None:
    keys, X, y, path = keyed_csv(tmp_path, 2500)
    summary = replay(path, tmp_path / "all", "--model", "sgd", "--lr", "0.05")
    assert summary["keys_total"] == KEYS
    assert summary["records_learned"] == len(keys)
    assert "x" not in summary["settings"]["features"] and summary["settings"]["key_by"] == "store"
    spilled = replay(path, tmp_path / "five", "--model", "sgd", "--lr", "0.05",
                     "--max-live-keys", "5")  # fmt: skip
    assert spilled["keys_live"] == 5 and spilled["key_spills"] > 1000
    unbounded, bounded = learners(tmp_path / "all"), learners(tmp_path / "five")
    assert sorted(unbounded) == sorted(bounded) == sorted(set(keys))
    for key, rows in by_key(keys).items():
        theta, theta0, predictions = sgd_oracle(X[rows], y[rows], lr=0.05)
        learner = unbounded[key]
        weights = learner.model.weights
        np.testing.assert_allclose([weights[f] for f in FEATURES], theta, rtol=0, atol=1e-12)
        assert abs(learner.model.intercept - theta0) <= 1e-12
        assert learner.records_learned == len(rows)
        mae = float(np.mean(np.abs(predictions - y[rows])))
        assert abs(learner.summary()["mae"] - mae) <= 1e-9
        other = bounded[key]  # spilled and read back: the very same bits
        assert other.model.weights == weights and other.model.intercept == learner.model.intercept
        assert other.summary() == learner.summary()
        assert other.rolling_summary() == learner.rolling_summary()
    # the whole stream's metrics: every key's predictions, in stream order
    whole = np.zeros(len(keys))
    for rows in by_key(keys).values():
        whole[rows] = sgd_oracle(X[rows], y[rows], lr=0.05)[2]
    assert abs(summary["metrics"]["mae"] - float(np.mean(np.abs(whole - y)))) <= 1e-9


@pytest.mark.slow
def test_river_spec_per_key_equals_progressive_val_score(tmp_path: Path) -> None:
    spec = "StandardScaler | LinearRegression"
    for key, stream, learner in replayed_spec(tmp_path, spec, 1200, 5, "--max-live-keys", "7"):
        mae, rmse = metrics.MAE(), metrics.RMSE()
        evaluate.progressive_val_score(stream, build_model(spec, lr=0.01), mae + rmse)
        summary = learner.summary()
        assert abs(summary["mae"] - mae.get()) <= 1e-9, key
        assert abs(summary["rmse"] - rmse.get()) <= 1e-9, key
        assert learner.records_learned == len(stream)


def test_logistic_per_key_equals_progressive_val_score(tmp_path: Path) -> None:
    keys, X, y = keyed_rows(1500, seed=9)
    labels = ["1" if value > 0 else "0" for value in y]
    path = tmp_path / "keyed.csv"
    write_keyed(path, keys, X, labels)
    summary = replay(path, tmp_path / "state", "--model", "logistic", "--lr", "0.1",
                     "--max-live-keys", "9")  # fmt: skip
    assert summary["task"] == "classification" and summary["keys_total"] == KEYS
    got = learners(tmp_path / "state")
    for key, rows in by_key(keys).items():
        stream = key_stream(X, [label == "1" for label in labels], rows)
        model = build_model("logistic", lr=0.1)
        accuracy, loss = metrics.Accuracy(), metrics.LogLoss()
        evaluate.progressive_val_score(stream, model, accuracy + loss)
        learner = got[key]
        assert learner.summary()["accuracy"] == pytest.approx(accuracy.get(), abs=1e-12), key
        assert abs(learner.summary()["log_loss"] - loss.get()) <= 1e-9, key
        assert learner.model.weights == pytest.approx(model.weights, abs=1e-12)
        assert learner.records_learned == len(rows)


@pytest.mark.slow
def test_sigkill_soak_every_key_equals_one_pass(tmp_path: Path) -> None:
    keys, X, y = keyed_rows(6000, seed=13)
    unlabeled = set(range(5, 6000, 17))
    path = tmp_path / "keyed.csv"
    with open(path, "w") as handle:
        handle.write(",".join(["store", *FEATURES, "y"]) + "\n")
        for i, key in enumerate(keys):
            target = "" if i in unlabeled else repr(float(y[i]))
            handle.write(",".join([key, *(repr(float(v)) for v in X[i]), target]) + "\n")
    one_pass = tmp_path / "one"
    common = ["--key-by", "store", "--rolling-window", "50", "--max-live-keys", "7"]
    cli("replay", str(path), "--state-dir", str(one_pass), *common)
    state = tmp_path / "killed"
    # Slow enough that a run resumed late in the stream is still running when its kill comes:
    # at 3000 rows/s the last runs ended first on a busy machine (8 kills, not 10).
    command = ["replay", str(path), "--state-dir", str(state), *common, "--rate", "600"]
    rng = random.Random(2024)
    kills = kill_at_random_moments(
        command, state, (97, 1, 500, 13, 250, 3, 40, 700, 9, 150, 60, 5), rng, 0.4
    )
    assert kills >= 10
    cli(*command[:-2])  # to the end
    want, got = learners(one_pass), learners(state)
    assert sorted(want) == sorted(got)
    labeled = [i for i in range(len(keys)) if i not in unlabeled]
    for key, rows in by_key([keys[i] for i in labeled]).items():
        assert got[key].records_learned == len(rows), key
        assert got[key].model.weights == want[key].model.weights, key
        assert got[key].model.intercept == want[key].model.intercept, key
        assert got[key].summary() == want[key].summary(), key
