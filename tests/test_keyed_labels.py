"""A keyed run's unlabeled records and late labels: predicted by their key's model or the
``--key-fallback``; a late label joins by id and is learned by the key its features came
with, scored with the prediction made then; ``--reset`` starts every key afresh."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamhelpers import cli
from streamlearn.learner import Learner
from streamlearn.models.sgd import SGDRegressor


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_late_labels_join_the_key_their_features_came_with(tmp_path: Path) -> None:
    events = []
    for i in range(40):  # two keys learn a little first
        key = "a" if i % 2 else "b"
        events.append(
            {"store": key, "x": {"f": i / 40}, "y": (2.0 if key == "a" else -1.0) * i / 40}
        )
    events.append({"id": "r1", "store": "a", "x": {"f": 0.5}})  # unlabeled, waits for its label
    events.append({"id": "r2", "store": "b", "x": {"f": 0.5}})
    events.append({"store": "b", "x": {"f": 0.25}, "y": -0.25})
    events.append({"id": "r1", "y": 1.0})  # late labels: no key of their own
    events.append({"id": "r2", "y": -0.5})
    events.append({"id": "r9", "y": 3.0})  # nothing waits for it
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    predictions, dead, state = tmp_path / "pred.jsonl", tmp_path / "dead.jsonl", tmp_path / "s"
    summary = json.loads(
        cli(
            "replay", str(path), "--key-by", "store", "--label-ttl", "1000r", "--lr", "0.1",
            "--predictions", str(predictions), "--dead-letter", str(dead), "--inspect-json",
            "--state-dir", str(state),
        ).stdout
    )  # fmt: skip
    assert summary["records_learned"] == 43 and summary["keys_total"] == 2
    assert [entry["reason"] for entry in _lines(dead)] == ["unjoined_label"]
    served = {line["id"]: line for line in _lines(predictions)}
    assert served["r1"]["key"] == "a" and served["r2"]["key"] == "b"
    # The oracle: each key's records in order, the late one learned when its label came and
    # scored with the prediction made when its features came.
    oracles = {}
    for key in ("a", "b"):
        learner = Learner(SGDRegressor(lr=0.1))
        for event in events[:40]:
            if event["store"] == key:
                learner.step(event["x"], event["y"])
        oracles[key] = learner
    a, b = oracles["a"], oracles["b"]
    yhat_a, yhat_b = a.predict({"f": 0.5}), b.predict({"f": 0.5})
    assert (served["r1"]["prediction"], served["r2"]["prediction"]) == (yhat_a, yhat_b)
    b.step({"f": 0.25}, -0.25)
    a.step_with_prediction({"f": 0.5}, 1.0, yhat_a)
    b.step_with_prediction({"f": 0.5}, -0.5, yhat_b)
    for key, learner in oracles.items():
        got = json.loads(cli("inspect", str(state), "--key", key, "--json").stdout)
        assert got["weights"] == learner.model.weights, key
        assert got["intercept"] == learner.model.intercept, key
        assert got["records_learned"] == learner.records_learned, key
        assert got["metrics"]["mae"] == learner.summary()["mae"], key


def test_fallbacks_for_a_key_without_a_model(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = [{"store": "a", "x": {"f": 1.0}, "y": 2.0}] * 20 + [{"store": "new", "x": {"f": 1.0}}]
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    none = tmp_path / "none.jsonl"
    result = cli("replay", str(path), "--key-by", "store", "--predictions", str(none),
                 "--inspect-json")  # fmt: skip
    summary = json.loads(result.stdout)
    assert summary["unserved_unlabeled"] == 1 and summary["predictions"] == 0
    assert "no prediction for an unlabeled record of key 'new'" in result.stderr  # logged
    assert none.read_text() == ""
    glob = tmp_path / "global.jsonl"
    summary = json.loads(
        cli("replay", str(path), "--key-by", "store", "--key-fallback", "global", "--lr", "0.1",
            "--predictions", str(glob), "--inspect-json").stdout
    )  # fmt: skip
    [line] = _lines(glob)
    learner = Learner(SGDRegressor(lr=0.1))
    for _ in range(20):
        learner.step({"f": 1.0}, 2.0)
    assert line["fallback"] == "global" and line["key"] == "new"
    assert line["prediction"] == learner.predict({"f": 1.0})
    assert summary["fallback_predictions"] == 1 and summary["keys_total"] == 1


@pytest.mark.slow
def test_reset_starts_every_key_afresh(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("store,a,y\n" + "".join(f"k{i % 4},{i},{i}\n" for i in range(40)))
    state = tmp_path / "state"
    cli("replay", str(path), "--key-by", "store", "--state-dir", str(state))
    assert list((state / "keys").glob("seg-*"))
    other = tmp_path / "e.csv"
    other.write_text("store,a,y\nz,1,2\n")
    refused = cli("replay", str(other), "--state-dir", str(state), check=False)
    assert refused.returncode == 1 and "key_by" in refused.stderr  # a keyed state, unkeyed run
    cli("replay", str(other), "--key-by", "store", "--state-dir", str(state), "--reset")
    summary = json.loads(cli("inspect", str(state), "--json").stdout)
    assert (summary["keys_total"], summary["records_learned"]) == (1, 1)
    keys = json.loads(cli("inspect", str(state), "--keys", "--json").stdout)
    assert [row["key"] for row in keys] == ["z"]


@pytest.mark.slow
def test_warm_start_each_key_from_model_a_and_warm_fallback(tmp_path: Path) -> None:
    import pandas as pd
    import skops.io
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"f": [0.0, 1.0, 2.0, 3.0], "g": [1.0, 0.0, 1.0, 0.0]})
    a = LinearRegression().fit(frame, 3.0 * frame["f"] - frame["g"] + 0.5)
    model_a = tmp_path / "a.skops"
    skops.io.dump(a, model_a)
    path = tmp_path / "events.jsonl"
    events = [
        {"store": "k1", "x": {"f": 1.0, "g": 1.0}, "y": 5.0},
        {"store": "k2", "x": {"f": 2.0, "g": 0.0}, "y": 1.0},
        {"store": "k1", "x": {"f": 1.0, "g": 1.0}, "y": 5.0},
        {"store": "new", "x": {"f": 2.0, "g": 1.0}},
    ]
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    predictions = tmp_path / "pred.jsonl"
    cli(
        "replay", str(path), "--key-by", "store", "--warm-start", str(model_a),
        "--features", "f,g", "--key-fallback", "warm", "--predictions", str(predictions),
        "--predictions-all", "--state-dir", str(tmp_path / "s"),
    )  # fmt: skip
    lines = _lines(predictions)
    a_of = [float(a.predict(pd.DataFrame([event["x"]]))[0]) for event in events]
    # each key's first record is predicted by its own copy of A, before it learned anything
    assert lines[0]["key"] == "k1" and abs(lines[0]["prediction"] - a_of[0]) < 1e-9
    assert lines[1]["key"] == "k2" and abs(lines[1]["prediction"] - a_of[1]) < 1e-9
    # k1 learned its first record: its second prediction is its own, no longer A's
    assert abs(lines[2]["prediction"] - a_of[2]) > 1e-6
    # a key without a model: model A answers, marked
    assert lines[3]["fallback"] == "warm" and abs(lines[3]["prediction"] - a_of[3]) < 1e-9
    # the keys' states name model A by reference: inspect reads them back with it
    one = json.loads(cli("inspect", str(tmp_path / "s"), "--key", "k1", "--json").stdout)
    assert one["records_learned"] == 2 and set(one["weights"]) == {"f", "g"}
