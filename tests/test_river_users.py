"""What the README tells River users, checked.

``sgd --lr 0.01`` learns what River's ``LinearRegression(optimizer=SGD(0.005),
intercept_lr=0.005)`` learns: River's squared loss has the gradient ``2 (yhat - y)``, so half
the rate makes the same step. Only the order of the floating-point operations differs (River
adds the intercept last, and multiplies the rate in last), so the weights agree to their last
bits, not bit for bit: to 1e-12 over thousands of records. And the bundled example stream,
which River's ``iter_csv`` stops on at its first bad row, is read whole: its bad rows go to the
dead letters.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from river import linear_model, optim, stream

from streamhelpers import ROOT, cli, make_regression, write_csv
from streamlearn.models.sgd import SGDRegressor

STREAM = ROOT / "examples" / "stream.csv"


def test_sgd_learns_what_rivers_linear_regression_learns_at_half_the_rate() -> None:
    X, y, _ = make_regression(5000, d=4, seed=3)
    ours = SGDRegressor(lr=0.01)
    rivers = linear_model.LinearRegression(optimizer=optim.SGD(0.005), intercept_lr=0.005)
    plain = linear_model.LinearRegression(optimizer=optim.SGD(0.01), intercept_lr=0.01)
    gaps = []
    for row, target in zip(X.tolist(), y.tolist(), strict=True):
        x = {f"x{j}": value for j, value in enumerate(row)}
        gaps.append(abs(ours.predict_one(x) - rivers.predict_one(x)))
        for model in (ours, rivers, plain):
            model.learn_one(x, target)
    assert max(gaps) < 1e-12  # every prediction, made before learning
    for name, weight in ours.weights.items():
        assert abs(weight - rivers.weights[name]) < 1e-12
    assert abs(ours.intercept - rivers.intercept) < 1e-12
    # The same rate in River is another model: its step is twice as long.
    assert max(abs(ours.weights[k] - plain.weights[k]) for k in ours.weights) > 1e-6


@pytest.mark.slow
def test_the_same_through_the_daemon(tmp_path) -> None:
    X, y, _ = make_regression(3000, d=3, seed=12)
    data = tmp_path / "data.csv"
    write_csv(data, X, y)
    ours = json.loads(cli("replay", str(data), "--lr", "0.01", "--inspect-json").stdout)
    spec = "LinearRegression(optimizer=SGD(lr=0.005), intercept_lr=0.005)"
    rivers = json.loads(cli("replay", str(data), "--model", spec, "--inspect-json").stdout)
    assert rivers["model"] == spec
    for name, weight in ours["weights"].items():
        assert abs(weight - rivers["weights"][name]) < 1e-12
    assert abs(ours["intercept"] - rivers["intercept"]) < 1e-12
    assert ours["metrics"]["mae"] == pytest.approx(rivers["metrics"]["mae"], rel=1e-12)


def test_rivers_iter_csv_stops_on_the_example_stream_streamlearn_reads_it_whole(tmp_path) -> None:
    converters = {"x1": float, "x2": float, "x3": float, "y": float}
    read = 0
    with pytest.raises(ValueError, match="could not convert string to float: 'oops'"):
        for _x, _y in stream.iter_csv(str(STREAM), target="y", converters=converters):
            read += 1
    assert read == 2000  # the rows before the first bad one; nothing after it

    letters = tmp_path / "rejected.jsonl"
    result = cli("replay", str(STREAM), "--dead-letter", str(letters), "--inspect-json")
    summary = json.loads(result.stdout)
    assert summary["records_learned"] == 2000
    assert summary["records_unlabeled"] == 2  # after the bad rows: still read
    rejected = [json.loads(line) for line in letters.read_text().splitlines()]
    assert [letter["reason"] for letter in rejected] == ["non_numeric", "non_finite", "field_count"]
    assert [letter["raw"].rstrip("\n") for letter in rejected] == [
        "0.1,0.2,oops,1.0",
        "0.5,nan,0.1,2.0",
        "1.0,2.0,3.0",
    ]
    assert np.allclose(
        [summary["weights"][k] for k in ("x1", "x2", "x3")], [1.5, -2, 0.5], atol=0.05
    )
