"""A model that cannot predict a record yet is not a diverged model: it learns the record.

River's ``MinMaxScaler`` scales by ``max - min``, which is ``-inf - inf`` before it has seen a
feature: a pipeline starting with it predicts NaN on its first record and on every record that
brings a feature it never saw. River's ``AMFRegressor`` predicts ``None`` before its first
record. Such a record is learned and not scored; a prediction that stays non-finite once the
model has learned the record is a divergence, as before.

The oracle is River's ``evaluate.progressive_val_score``, which skips the metric update of a
``None`` prediction and learns the record: exactly what the daemon does with it. A NaN
prediction is scored by River, which makes its metrics NaN from then on; the daemon treats it
as the ``None`` it stands for, so its metrics equal River's on a pipeline that answers ``None``
where it cannot predict (``_NoneWhenNotFinite``).
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from river import base, evaluate, metrics

from streamhelpers import cli
from streamlearn.learner import Learner
from streamlearn.models.registry import build_model

ROWS = 600


class _NoneWhenNotFinite(base.Regressor):
    """``model``, answering ``None`` (River's "no prediction") where it would answer NaN/inf."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def learn_one(self, x: dict[str, float], y: float) -> None:
        self.model.learn_one(x, y)

    def predict_one(self, x: dict[str, float]) -> float | None:
        yhat = self.model.predict_one(x)
        return yhat if yhat is not None and math.isfinite(yhat) else None


def _rows(new_feature_at: int | None = None) -> list[tuple[dict[str, float], float]]:
    rng = random.Random(11)
    rows = []
    for i in range(ROWS):
        x = {"a": rng.uniform(-2, 2), "b": rng.uniform(0, 5)}
        if new_feature_at is not None and i >= new_feature_at:
            x["c"] = rng.uniform(-1, 1)
        rows.append((x, 2 * x["a"] - 0.5 * x["b"] + x.get("c", 0.0) + rng.gauss(0, 0.1)))
    return rows


def _river(rows: list[tuple[dict[str, float], float]], model: Any) -> dict[str, float]:
    metric = metrics.MAE() + metrics.RMSE() + metrics.R2()
    evaluate.progressive_val_score(rows, model, metric)
    return {"mae": metric[0].get(), "rmse": metric[1].get(), "r2": metric[2].get()}


def _replay(path: Path, spec: str, *, fast: bool, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    result = cli(
        "replay", str(path), "--model", spec, "--inspect-json", *extra,
        env={"STREAMLEARN_FASTPATH": "1" if fast else "0"},
    )  # fmt: skip
    assert "diverged" not in result.stderr, result.stderr
    return dict(json.loads(result.stdout))


def _assert_metrics(summary: dict[str, Any], expected: dict[str, float]) -> None:
    for name, value in expected.items():
        assert summary["metrics"][name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def _write_csv(path: Path, rows: list[tuple[dict[str, float], float]]) -> None:
    lines = ["a,b,y"] + [f"{x['a']!r},{x['b']!r},{y!r}" for x, y in rows]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.slow
@pytest.mark.parametrize("fast", [True, False], ids=["blocks", "records"])
def test_min_max_scaler_learns_from_its_first_record(tmp_path: Path, fast: bool) -> None:
    spec = "MinMaxScaler | LinearRegression"
    rows = _rows()
    _write_csv(tmp_path / "s.csv", rows)
    summary = _replay(tmp_path / "s.csv", spec, fast=fast)
    assert summary["records_learned"] == ROWS
    assert summary["divergence_events"] == 0
    # River scores the first record's NaN: its metrics are NaN from then on.
    assert math.isnan(_river(rows, build_model(spec))["mae"])
    _assert_metrics(summary, _river(rows, _NoneWhenNotFinite(build_model(spec))))


@pytest.mark.slow
def test_a_feature_the_scaler_never_saw_is_learned_not_taken_for_a_divergence(
    tmp_path: Path,
) -> None:
    spec = "MinMaxScaler | LinearRegression"
    rows = _rows(new_feature_at=250)
    lines = [json.dumps({**x, "y": y}) for x, y in rows]
    # Unlabeled, with "c" before any record with it is learned: no prediction, no restore
    # (which would lose what was learned since the last checkpoint, here everything).
    lines.insert(250, json.dumps({"a": 0.5, "b": 1.0, "c": 0.5}))
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines) + "\n")
    predictions = tmp_path / "pred.jsonl"
    summary = _replay(path, spec, fast=True, extra=("--predictions", str(predictions)))
    assert summary["records_learned"] == ROWS
    assert summary["divergence_events"] == 0
    assert predictions.read_text() == ""
    _assert_metrics(summary, _river(rows, _NoneWhenNotFinite(build_model(spec))))


@pytest.mark.slow
@pytest.mark.parametrize("fast", [True, False], ids=["blocks", "records"])
def test_amf_regressor_predicting_none_before_learning_is_no_traceback(
    tmp_path: Path, fast: bool
) -> None:
    spec = "AMFRegressor(seed=1)"
    rows = _rows()[:300]
    _write_csv(tmp_path / "s.csv", rows)
    summary = _replay(tmp_path / "s.csv", spec, fast=fast)
    assert summary["records_learned"] == len(rows)
    assert summary["divergence_events"] == 0
    # River skips the metric of a None prediction and learns the record, as the daemon does.
    _assert_metrics(summary, _river(rows, build_model(spec)))


@pytest.mark.slow
def test_no_learn_scores_nothing_of_a_model_that_never_predicts(tmp_path: Path) -> None:
    rows = _rows()[:100]
    _write_csv(tmp_path / "s.csv", rows)
    summary = _replay(tmp_path / "s.csv", "AMFRegressor(seed=1)", fast=True, extra=("--no-learn",))
    assert (summary["records_seen"], summary["records_scored"]) == (100, 0)
    assert summary["divergence_events"] == 0
    assert summary["metrics"] == {"mae": None, "rmse": None, "r2": None}


@pytest.mark.slow
def test_an_unlabeled_record_before_any_label_is_not_a_divergence(tmp_path: Path) -> None:
    rows = _rows()[:50]
    lines = ['{"a": 0.5, "b": 1.0}'] + [json.dumps({**x, "y": y}) for x, y in rows]
    lines += ['{"a": 0.5, "b": 1.0}']
    (tmp_path / "s.jsonl").write_text("\n".join(lines) + "\n")
    predictions = tmp_path / "pred.jsonl"
    result = cli(
        "replay", str(tmp_path / "s.jsonl"), "--model", "AMFRegressor(seed=1)",
        "--predictions", str(predictions), "--inspect-json",
    )  # fmt: skip
    assert "diverged" not in result.stderr, result.stderr
    summary = json.loads(result.stdout)
    assert summary["divergence_events"] == 0
    assert summary["records_learned"] == len(rows)
    # Nothing to say about the first (the model has learned nothing); the last is predicted.
    served = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(served) == 1 and math.isfinite(served[0]["prediction"])


def test_step_learns_a_record_it_cannot_predict_without_scoring_it() -> None:
    learner = Learner(build_model("MinMaxScaler | LinearRegression"))
    assert learner.step({"a": 1.0}, 2.0) is None  # learned, not scored
    assert learner.records_learned == 1 and learner.records_unscored == 1
    assert learner.summary() == {"mae": None, "rmse": None, "r2": None}
    assert learner.rolling_summary()["mae"] is None
    yhat = learner.step({"a": 3.0}, 4.0)
    assert yhat is not None and math.isfinite(yhat)
    assert learner.records_learned == 2 and learner.records_unscored == 1
    assert learner.summary()["mae"] == pytest.approx(abs(4.0 - yhat))


def test_a_prediction_still_not_finite_after_learning_is_a_divergence() -> None:
    class Broken(base.Regressor):
        learned = 0

        def learn_one(self, x: dict[str, float], y: float) -> None:
            self.learned += 1

        def predict_one(self, x: dict[str, float]) -> float:
            return math.nan

    learner = Learner(Broken())
    assert math.isnan(learner.step({"a": 1.0}, 2.0))  # the caller's guard restores the model
    assert learner.records_learned == 0 and learner.records_unscored == 0


def test_a_none_prediction_is_learned_unscored_and_never_served() -> None:
    learner = Learner(build_model("AMFRegressor(seed=1)"))
    assert math.isnan(learner.predict({"a": 1.0})) and math.isnan(learner.serve({"a": 1.0}))
    assert learner.step({"a": 1.0}, 2.0) is None
    assert (learner.records_learned, learner.records_unscored) == (1, 1)
    assert math.isfinite(learner.predict({"a": 1.0}))
