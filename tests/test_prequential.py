"""The daemon's prequential metrics equal River's progressive_val_score on the same data."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
import river
from river import datasets, evaluate, metrics

from streamhelpers import cli, make_regression, write_csv
from streamlearn.models.registry import build_model

TRUMP = Path(os.path.dirname(river.__file__)) / "datasets" / "trump_approval.csv.gz"


@pytest.fixture(scope="module")
def trump_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("trump") / "trump_approval.csv"
    path.write_bytes(gzip.decompress(TRUMP.read_bytes()))
    return path


def _river_scores(dataset, spec: str) -> dict[str, float]:
    metric = metrics.MAE() + metrics.RMSE() + metrics.R2()
    evaluate.progressive_val_score(dataset, build_model(spec), metric)
    return {"mae": metric[0].get(), "rmse": metric[1].get(), "r2": metric[2].get()}


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec", ["StandardScaler | LinearRegression", "HoeffdingTreeRegressor(grace_period=50)"]
)
def test_metrics_equal_progressive_val_score_on_trump_approval(trump_csv, spec):
    expected = _river_scores(datasets.TrumpApproval(), spec)
    result = cli(
        "replay", str(trump_csv), "--target", "five_thirty_eight", "--model", spec, "--inspect-json"
    )
    summary = json.loads(result.stdout)
    assert summary["records_learned"] == 1001
    for name in ("mae", "rmse", "r2"):
        assert summary["metrics"][name] == pytest.approx(expected[name], rel=1e-12, abs=1e-12)


def test_sgd_metrics_equal_progressive_val_score(tmp_path):
    X, y, _ = make_regression(3000, d=4, seed=11)
    names = write_csv(tmp_path / "s.csv", X, y)
    dataset = [
        ({n: float(v) for n, v in zip(names, row, strict=True)}, float(t))
        for row, t in zip(X, y, strict=True)
    ]
    expected = _river_scores(dataset, "sgd")
    summary = json.loads(cli("replay", str(tmp_path / "s.csv"), "--inspect-json").stdout)
    for name in ("mae", "rmse", "r2"):
        assert summary["metrics"][name] == pytest.approx(expected[name], rel=1e-12, abs=1e-12)


def test_rolling_metrics_equal_rivers_rolling_metrics():
    from river import utils

    from streamlearn.learner import Learner

    X, y, _ = make_regression(700, d=3, seed=4, noise=0.5)
    learner = Learner(build_model("sgd"), rolling_window=100)
    rolling = {
        name: utils.Rolling(cls, window_size=100)
        for name, cls in (("mae", metrics.MAE), ("rmse", metrics.RMSE), ("r2", metrics.R2))
    }
    for row, target in zip(X, y, strict=True):
        x = {f"x{j}": float(v) for j, v in enumerate(row)}
        yhat = learner.step(x, float(target))
        for metric in rolling.values():
            metric.update(float(target), yhat)
    ours = learner.rolling_summary()
    for name, metric in rolling.items():
        assert ours[name] == pytest.approx(metric.get(), rel=1e-9)
    # The curve's rolling MAE is the same window's.
    assert learner.curve.points[-1][1] == pytest.approx(rolling["mae"].get(), rel=1e-9)
