"""Fine-tuning cannot ruin model A unnoticed: B starts from a learning rate suited to A, and
the baseline guard serves the frozen A while B is worse than it.

The task where A is already good is River's Friedman regression (A: the seed's MLP trained on
5000 records of it, then the stream is 3000 more). There, B fine-tuned at the cold default
0.01 ends three times worse than A; the predictions the daemon serves must stay within the
guard's margin of A's all the same, in ``finetune`` and ``partial`` mode. On the seed's
target task, where A is poor, B must take over soon.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from streamhelpers import cli
from streamlearn.learner import Learner
from streamlearn.models.champion import DEFAULT_MARGIN, MIN_EVIDENCE, GuardOptions
from streamlearn.models.pretrain import pretrain
from streamlearn.models.transfer import (
    FALLBACK_LR,
    BatchModel,
    as_batch_model,
    frozen_baseline,
    load_batch_model,
    suited_lr,
    warm_start,
)
from streamlearn.state import CheckpointStore

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FRIEDMAN = [f"x{i}" for i in range(10)]
Rows = list[tuple[dict[Hashable, Any], float]]


def _friedman(seed: int, n: int) -> Rows:
    from river.datasets import synth

    return [
        ({f"x{i}": float(x[i]) for i in range(10)}, float(y))
        for x, y in synth.Friedman(seed=seed).take(n)
    ]


@pytest.fixture(scope="module")
def friedman_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A good model A of the Friedman task (its MAE about 0.9; the target's spread about 5)."""
    folder = tmp_path_factory.mktemp("friedman")
    frame = pd.DataFrame([{**x, "y": y} for x, y in _friedman(0, 5000)])
    frame.to_csv(folder / "source.csv", index=False)
    return pretrain(folder / "source.csv", out=folder / "A.skops", epochs=200).model_path


@pytest.fixture(scope="module")
def friedman_rows() -> Rows:
    return _friedman(1, 3000)


def _served_and_baseline_errors(learner: Learner, rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    """Each record's error of the prediction served before its label came, and of A's."""
    served, base = [], []
    for x, y in rows:
        served.append(abs(y - learner.serve(x)))
        base.append(abs(y - learner.baseline.predict_one(x)))
        learner.step(x, y)
    return np.array(served), np.array(base)


def _rolling(errors: np.ndarray, window: int) -> np.ndarray:
    """The rolling MAE over ``window`` records, at each record from the first full window on."""
    sums = np.cumsum(np.concatenate(([0.0], errors)))
    return (sums[window:] - sums[:-window]) / window


@pytest.mark.parametrize("lr", [None, 0.01], ids=["suited-lr", "cold-lr-0.01"])
@pytest.mark.parametrize("mode", ["finetune", "partial"])
def test_served_error_never_worse_than_frozen_a_beyond_the_margin(
    friedman_a: Path, friedman_rows: Rows, mode: str, lr: float | None
) -> None:
    a = load_batch_model(friedman_a)
    window = 500
    learner = Learner(
        warm_start(a, mode, stream_features=FRIEDMAN, lr=lr),
        rolling_window=window,
        baseline=frozen_baseline(a, stream_features=FRIEDMAN),
    )
    served, base = _served_and_baseline_errors(learner, friedman_rows)
    ratio = _rolling(served, window) / _rolling(base, window)
    assert ratio.max() <= 1.0 + DEFAULT_MARGIN, f"worst served/A rolling MAE {ratio.max():.4f}"
    summary = learner.guard.summary() if learner.guard is not None else {}
    assert summary["served_metrics"]["mae"] <= (1 + DEFAULT_MARGIN) * base.mean()
    if lr == 0.01 and mode == "finetune":
        # The case of the issue: B is ruined (MAE several times A's), and never served.
        assert learner.summary()["mae"] > 2 * base.mean()
        assert summary["serving"] == "baseline" and learner.guard.switches == 0


def test_b_takes_over_when_it_becomes_better(seed_target: Rows, seed_a: BatchModel) -> None:
    """On the seed's target task A is poor (MAE about 1.6); fine-tuned B soon beats it."""
    learner = Learner(
        warm_start(seed_a, "finetune", stream_features=["x"]),
        rolling_window=1000,
        baseline=frozen_baseline(seed_a),
    )
    served, base = _served_and_baseline_errors(learner, seed_target)
    guard = learner.guard
    assert guard is not None and guard.serving == "model"
    first = guard.events[0]
    assert first["serving"] == "model" and first["record"] <= 2 * MIN_EVIDENCE
    # From then on the served predictions are B's: its errors, not A's.
    assert served[first["record"] :].mean() < 0.5 * base[first["record"] :].mean()
    assert guard.summary()["served_metrics"]["mae"] < 0.5 * learner.baseline_summary()["mae"]


def test_reset_restarts_b_from_its_warm_start(friedman_a: Path, friedman_rows: Rows) -> None:
    a = load_batch_model(friedman_a)
    window = 300
    learner = Learner(
        warm_start(a, "finetune", stream_features=FRIEDMAN, lr=0.01),
        rolling_window=window,
        baseline=frozen_baseline(a, stream_features=FRIEDMAN),
        guard=GuardOptions(on_worse="reset"),
    )
    probe = friedman_rows[0][0]
    resets_seen = 0
    for x, y in friedman_rows[:1000]:
        learner.step(x, y)
        assert learner.guard is not None
        if learner.guard.resets > resets_seen:
            resets_seen = learner.guard.resets
            # B is A again, as warm-started (it has learned nothing since).
            assert learner.model.predict_one(probe) == pytest.approx(a.predict_one(probe))
            assert learner.guard.model_records == 0
    # B ruins itself within a window each time: restarted after each whole window.
    assert resets_seen == 1000 // window
    assert learner.guard.serving == "baseline"


def test_b_starts_from_a_tenth_of_as_own_learning_rate(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression
    from sklearn.linear_model import SGDRegressor as SkSGD
    from sklearn.neural_network import MLPRegressor as SkMLP

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 2)), columns=["a", "b"])
    target = frame["a"] - 2 * frame["b"]
    adam = as_batch_model(
        SkMLP(hidden_layer_sizes=(4,), learning_rate_init=0.003, max_iter=20).fit(frame, target)
    )
    assert adam.learning_rate == 0.003
    assert warm_start(adam, "finetune").lr == pytest.approx(0.0003)
    assert warm_start(adam, "partial").lr == pytest.approx(0.0003)
    assert warm_start(adam, "finetune", lr=0.05).lr == 0.05  # given: used as is
    sgd = SkSGD(eta0=0.02, power_t=0.25, max_iter=5, tol=None).fit(frame, target)
    expected = 0.02 / sgd.t_**0.25 / 10
    assert suited_lr(as_batch_model(sgd)) == pytest.approx(expected)
    closed_form = as_batch_model(LinearRegression().fit(frame, target))
    assert closed_form.learning_rate is None
    assert warm_start(closed_form, "finetune").lr == FALLBACK_LR


# -- the command line -----------------------------------------------------------------------


def _write_target(path: Path, rows: Rows, unlabeled_every: int) -> dict[str, float]:
    """Rows with an id; every ``unlabeled_every``-th has no label. Their true targets."""
    hidden: dict[str, float] = {}
    lines = ["id," + ",".join(FRIEDMAN) + ",y"]
    for i, (x, y) in enumerate(rows):
        label = f"{y!r}"
        if i % unlabeled_every == unlabeled_every - 1:
            hidden[f"r{i}"] = y
            label = ""
        lines.append(f"r{i}," + ",".join(repr(x[name]) for name in FRIEDMAN) + "," + label)
    path.write_text("\n".join(lines) + "\n")
    return hidden


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["finetune", "partial"])
def test_replay_serves_a_while_finetuned_b_is_worse(
    friedman_a: Path, friedman_rows: Rows, tmp_path: Path, mode: str
) -> None:
    """What a user sees: the predictions written for unlabeled records, and ``inspect``."""
    target = tmp_path / "target.csv"
    hidden = _write_target(target, friedman_rows, unlabeled_every=4)
    state, predictions = tmp_path / "state", tmp_path / "predictions.jsonl"
    run = cli(
        *("replay", str(target), "--id-column", "id", "--warm-start", str(friedman_a)),
        *("--transfer-mode", mode, "--rolling-window", "500", "--inspect-json"),
        *("--state-dir", str(state), "--predictions", str(predictions)),
        timeout=300,
    )
    summary = json.loads(run.stdout)
    a = frozen_baseline(load_batch_model(friedman_a))
    served: list[float] = []
    base: list[float] = []
    by_id = {f"r{i}": x for i, (x, _) in enumerate(friedman_rows)}
    for line in predictions.read_text().splitlines():
        answer = json.loads(line)
        y = hidden[answer["id"]]
        served.append(abs(y - answer["prediction"]))
        base.append(abs(y - a.predict_one(by_id[answer["id"]])))
    assert len(served) == len(hidden) == 750
    assert np.mean(served) <= (1 + DEFAULT_MARGIN) * np.mean(base)
    # inspect: B's metrics, A's, those of the predictions served, and which one serves.
    assert set(summary) >= {"metrics", "baseline_metrics", "served_metrics", "serving"}
    assert (
        summary["served_metrics"]["mae"]
        <= (1 + DEFAULT_MARGIN) * (summary["baseline_metrics"]["mae"])
    )
    assert summary["serving"] in ("model", "baseline")
    assert summary["baseline_guard"]["on_worse_than_baseline"] == "serve-baseline"
    loaded = CheckpointStore(state, lock=False).load()
    assert loaded is not None
    b = loaded.state["learner"].model
    assert b.lr == pytest.approx(0.0001)  # A trained with Adam at 0.001: a tenth of it


@pytest.mark.slow
def test_an_explicit_lr_is_used_and_inspect_reads_the_guard(
    friedman_a: Path, friedman_rows: Rows, tmp_path: Path
) -> None:
    target = tmp_path / "target.csv"
    _write_target(target, friedman_rows[:1200], unlabeled_every=1_000_000)
    state = tmp_path / "state"
    cli(
        *("replay", str(target), "--id-column", "id", "--warm-start", str(friedman_a)),
        *("--state-dir", str(state), "--lr", "0.01", "--on-worse-than-baseline", "reset"),
        *("--rolling-window", "300"),
        timeout=300,
    )
    inspected = json.loads(cli("inspect", str(state), "--json").stdout)
    guard = inspected["baseline_guard"]
    assert guard["on_worse_than_baseline"] == "reset" and guard["resets"] >= 3
    assert inspected["serving"] == "baseline"
    assert inspected["served_metrics"]["mae"] == pytest.approx(inspected["baseline_metrics"]["mae"])
    assert inspected["metrics"]["mae"] > 2 * inspected["baseline_metrics"]["mae"]
    loaded = CheckpointStore(state, lock=False).load()
    assert loaded is not None
    learner = loaded.state["learner"]
    assert learner.guard.start.lr == 0.01  # --lr given: B's rate as given
    # The guard survives the checkpoint: a resumed run continues its windows.
    restored = pickle.loads(pickle.dumps(learner))
    assert restored.guard.summary() == learner.guard.summary()


def test_telemetry_says_which_model_serves(friedman_a: Path, tmp_path: Path) -> None:
    from streamlearn.app import build
    from streamlearn.config import Settings
    from streamlearn.observe.face import make_telemetry

    target = tmp_path / "target.csv"
    _write_target(target, _friedman(2, 400), unlabeled_every=1_000_000)
    settings = Settings(
        source=str(target),
        follow=False,
        id_column="id",
        warm_start=str(friedman_a),
        lr=0.01,
        lr_from_flag=True,
        rolling_window=200,
    )
    app = build(settings)
    try:
        app.daemon.run()
        telemetry = make_telemetry(app.daemon, app.daemon.source, None)
        assert telemetry.value("streamlearn_serving_baseline") == 1.0
        served = telemetry.value("streamlearn_served_metric", metric="mae", window="cumulative")
        baseline = telemetry.value("streamlearn_baseline_metric", metric="mae", window="cumulative")
        assert served == pytest.approx(baseline)
        rolling = telemetry.value("streamlearn_baseline_metric", metric="mae", window="rolling")
        assert rolling is not None and rolling > 0
    finally:
        app.close()


# -- the seed's transfer pair: A poor on the target ------------------------------------------


@pytest.fixture(scope="module")
def seed_a(tmp_path_factory: pytest.TempPathFactory) -> BatchModel:
    out = tmp_path_factory.mktemp("seed-a") / "A.skops"
    return load_batch_model(
        pretrain(EXAMPLES / "transfer_source.csv", out=out, epochs=30).model_path
    )


@pytest.fixture(scope="module")
def seed_target() -> Rows:
    target = pd.read_csv(EXAMPLES / "transfer_target.csv")
    return [({"x": float(x)}, float(y)) for x, y in zip(target["x"], target["y"], strict=True)]
