"""A classifier through the daemon: bad labels, late labels, kill -9 and resume, /predict,
the learner's state (pickled, exported and put back)."""

from __future__ import annotations

import json
import pickle
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from river import linear_model, tree
from river import metrics as rm

from streamhelpers import STREAMLEARN, cli, inspect_json
from streamlearn.app import build
from streamlearn.classify.learner import ClassLearner
from streamlearn.classify.space import ClassSpace
from streamlearn.config import Settings


def _rows(n: int, seed: int) -> list[tuple[dict[str, float], bool]]:
    """A separable-ish binary stream: y = (2a - b + noise > 0)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = round(rng.uniform(-1, 1), 6), round(rng.uniform(-1, 1), 6)
        out.append(({"a": a, "b": b}, 2 * a - b + rng.gauss(0, 0.3) > 0))
    return out


def _csv(path: Path, rows: list[tuple[dict[str, float], Any]], labels: list[str]) -> None:
    lines = ["a,b,label"] + [
        f"{x['a']!r},{x['b']!r},{label}" for (x, _), label in zip(rows, labels, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")


def _replay(path: Path, state: Path, *extra: str, check: bool = True) -> Any:
    return cli(
        "replay", str(path), "--target", "label", "--state-dir", str(state),
        "--drift-detector", "none", *extra, check=check, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_bad_labels_are_dead_letters_once_and_never_learned(tmp_path):
    rows = _rows(40, 1)
    # Multiclass with --classes a,b,c: 'd' is unknown; an empty label is an unlabeled record.
    labels = ["a", "b", "c", "d", "", "a", "b", "c"] * 5
    path = tmp_path / "fixed.csv"
    _csv(path, rows, labels)
    dead = tmp_path / "dead.jsonl"
    _replay(path, tmp_path / "s1", "--model", "HoeffdingTreeClassifier", "--classes", "a,b,c",
            "--dead-letter", str(dead))  # fmt: skip
    summary = inspect_json(tmp_path / "s1")
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [entry["reason"] for entry in letters] == ["unknown_class"] * 5
    assert summary["records_learned"] == 30 and summary["records_unlabeled"] == 5
    assert summary["classes"] == ["a", "b", "c"]
    assert sum(sum(row.values()) for row in summary["metrics"]["confusion"].values()) <= 30
    assert set(summary["metrics"]["confusion"]) <= {"a", "b", "c"}

    # A binary model: a third label is refused.
    labels = ["yes", "no", "maybe", "yes"] * 10
    path = tmp_path / "binary.csv"
    _csv(path, rows, labels)
    dead = tmp_path / "dead2.jsonl"
    _replay(path, tmp_path / "s2", "--model", "LogisticRegression", "--dead-letter", str(dead))
    summary = inspect_json(tmp_path / "s2")
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [entry["reason"] for entry in letters] == ["third_class"] * 10
    assert summary["records_learned"] == 30 and summary["classes"] == ["no", "yes"]
    model = linear_model.LogisticRegression()  # the same model on the good rows only
    for (x, _), label in zip(rows, labels, strict=True):
        if label != "maybe":
            model.learn_one(x, label == "yes")
    assert summary["weights"] == pytest.approx(model.weights, rel=0, abs=0)

    # Over --max-classes: the third class and its records are dead letters.
    labels = ["a", "b", "c", "a"] * 10
    path = tmp_path / "many.csv"
    _csv(path, rows, labels)
    dead = tmp_path / "dead3.jsonl"
    _replay(path, tmp_path / "s3", "--model", "HoeffdingTreeClassifier", "--max-classes", "2",
            "--dead-letter", str(dead))  # fmt: skip
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [entry["reason"] for entry in letters] == ["too_many_classes"] * 10
    summary = inspect_json(tmp_path / "s3")
    assert summary["classes"] == ["a", "b"] and summary["records_learned"] == 30


@pytest.mark.slow
def test_a_late_label_is_scored_with_the_probabilities_given_then(tmp_path):
    rows = _rows(200, 2)
    lines = []
    late = set(range(3, 200, 4))  # every 4th record waits for its label ...
    for i, (x, y) in enumerate(rows):
        text = "yes" if y else "no"
        if i in late:
            lines.append({"id": f"r{i}", "x": x})
        else:
            lines.append({"id": f"r{i}", "x": x, "y": text})
        if i >= 8 and i - 8 in late:  # ... which comes 8 records later
            lines.append({"id": f"r{i - 8}", "y": "yes" if rows[i - 8][1] else "no"})
    path = tmp_path / "late.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    predictions = tmp_path / "pred.jsonl"
    cli("replay", str(path), "--model", "LogisticRegression", "--label-ttl", "1000r",
        "--state-dir", str(tmp_path / "state"), "--drift-detector", "none",
        "--predictions", str(predictions), timeout=300)  # fmt: skip
    summary = inspect_json(tmp_path / "state")
    # The oracle, by hand: predict the late ones when their features come, learn them later.
    model = linear_model.LogisticRegression()
    acc, loss, f1, auc = rm.Accuracy(), rm.LogLoss(), rm.F1(), rm.ROCAUC()
    waiting: dict[str, tuple[dict[str, float], dict[bool, float]]] = {}
    for line in lines:
        if "x" in line and "y" in line:
            y = line["y"] == "yes"
            proba = model.predict_proba_one(line["x"])
            x = line["x"]
        elif "x" in line:
            waiting[line["id"]] = (line["x"], model.predict_proba_one(line["x"]))
            continue
        else:
            y = line["y"] == "yes"
            x, proba = waiting.pop(line["id"])
        for metric in (acc, f1):
            metric.update(y, max(proba, key=proba.get))
        for metric in (loss, auc):
            metric.update(y, proba)
        model.learn_one(x, y)
    metrics = summary["metrics"]
    assert summary["records_learned"] == 200 - len(waiting)
    assert metrics["accuracy"] == acc.get()
    assert metrics["log_loss"] == loss.get()
    assert metrics["f1"] == f1.get() and metrics["roc_auc"] == auc.get()
    assert summary["weights"] == pytest.approx(model.weights, rel=0, abs=0)
    written = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [line["id"] for line in written] == [f"r{i}" for i in sorted(late)]


@pytest.mark.slow
def test_kill_9_during_a_classification_replay_then_resume_equals_one_pass(tmp_path):
    rows = _rows(1500, 3)
    path = tmp_path / "stream.csv"
    _csv(path, rows, ["true" if y else "false" for _, y in rows])
    state = tmp_path / "state"
    args = [*STREAMLEARN, "replay", str(path), "--target", "label", "--model",
            "StandardScaler | LogisticRegression", "--state-dir", str(state),
            "--drift-detector", "none", "--rate", "500"]  # fmt: skip
    rng = random.Random(7)
    kills = 0
    for every in ("50", "7", "200"):
        before = sorted(state.glob("gen-*.ckpt"))
        proc = subprocess.Popen([*args, "--checkpoint-every", every], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while sorted(state.glob("gen-*.ckpt")) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 2
    cli(*args[len(STREAMLEARN) : -2], timeout=300)
    resumed = inspect_json(state)
    _replay(path, tmp_path / "once", "--model", "StandardScaler | LogisticRegression")
    once = inspect_json(tmp_path / "once")
    assert resumed["records_learned"] == once["records_learned"] == 1500
    assert resumed["metrics"] == once["metrics"]  # the confusion matrix among them
    assert resumed["weights"] == once["weights"] and resumed["intercept"] == once["intercept"]


def test_the_learner_pickles_and_puts_back_an_exported_state():
    space = ClassSpace(binary=False)
    learner = ClassLearner(tree.HoeffdingTreeClassifier(), space, rolling_window=50)
    rows = _rows(300, 4)
    for i, (x, y) in enumerate(rows[:200]):
        learner.step(x, space.encode("abc"[i % 3] if y else "abc"[(i + 1) % 3]))
    saved = learner.export_prequential(copy=True)
    before = (learner.summary(), learner.rolling_summary(), learner.records_learned)
    copy = pickle.loads(pickle.dumps(learner))
    for x, y in rows[200:]:
        learner.step(x, space.encode("a" if y else "b"))
    assert learner.summary() != before[0]
    learner.import_prequential(saved)
    assert (learner.summary(), learner.rolling_summary(), learner.records_learned) == before
    assert copy.summary() == before[0] and sorted(copy.classes.labels) == ["a", "b", "c"]
    assert copy.rolling_mae() == 1 - before[1]["accuracy"]


def test_http_predict_answers_the_class_and_its_probabilities():
    import threading
    import urllib.request
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry

    from streamlearn.observe.http import MetricsServer
    from streamlearn.observe.serving import ModelService

    space = ClassSpace(binary=True)
    learner = ClassLearner(linear_model.LogisticRegression(), space)
    for x, y in _rows(50, 5):
        learner.step(x, space.encode("yes" if y else "no"))
    daemon = SimpleNamespace(lock=threading.RLock(), learner=learner, join=None)
    service = ModelService(daemon, ["a", "b"])  # type: ignore[arg-type]
    server = MetricsServer(
        "127.0.0.1", 0, CollectorRegistry(), predict_many=service.predict_many,
        expected_features=lambda: ["a", "b"],
    )  # fmt: skip
    server.start()
    try:
        request = urllib.request.Request(
            server.url + "/predict",
            data=json.dumps({"a": 0.5, "b": -0.25}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
    finally:
        server.stop()
    proba = learner.model.predict_proba_one({"a": 0.5, "b": -0.25})
    assert answer == {
        "prediction": "yes" if proba[True] > proba[False] else "no",
        "probabilities": {"no": proba[False], "yes": proba[True]},
        "model_version": 50,
    }


@pytest.mark.slow
def test_predictions_all_writes_each_labeled_records_prediction_with_its_label(tmp_path):
    rows = _rows(30, 6)
    labels = ["yes" if y else "no" for _, y in rows]
    path = tmp_path / "all.csv"
    _csv(path, rows, labels)
    predictions = tmp_path / "pred.jsonl"
    _replay(path, tmp_path / "state", "--model", "LogisticRegression", "--predictions",
            str(predictions), "--predictions-all")  # fmt: skip
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    model = linear_model.LogisticRegression()
    assert len(lines) == 30
    for line, (x, y), label in zip(lines, rows, labels, strict=True):
        proba = model.predict_proba_one(x)
        assert line["label"] == label
        assert line["probabilities"] == {"no": proba[False], "yes": proba[True]}
        assert line["prediction"] == ("yes" if proba[True] > proba[False] else "no")
        model.learn_one(x, y)


class _Diverging:
    """A classifier that answers NaN probabilities once it has learned ``after`` records."""

    def __init__(self, after: int) -> None:
        self.after, self.learned = after, 0

    def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:
        if self.learned >= self.after:
            return {False: float("nan"), True: float("nan")}
        return {False: 0.25, True: 0.75}

    def learn_one(self, x: dict[str, float], y: bool) -> None:
        self.learned += 1


def test_nan_probabilities_restore_the_model_and_are_never_scored_or_served():
    from streamlearn.json_decoder import JsonDecoder
    from streamlearn.loop import Daemon
    from streamlearn.sinks.jsonlines import ListSink
    from streamlearn.testing import ListSource

    space = ClassSpace(binary=True)
    lines = [json.dumps({"x": {"a": float(i)}, "y": "yes"}).encode() for i in range(5)]
    lines.append(json.dumps({"x": {"a": 9.0}}).encode())  # unlabeled: predicted, not served NaN
    predictions = ListSink()
    daemon = Daemon(
        ListSource(lines),
        JsonDecoder(classes=space),
        ClassLearner(_Diverging(after=3), space),
        model_spec="diverging",
        predictions=predictions,
        model_factory=lambda: _Diverging(after=100),
    )
    summary = daemon.run()
    # Three scored and learned; the fourth answered NaN: restored, neither scored nor learned;
    # the fifth and the unlabeled one go to the fresh model.
    assert summary["divergence_events"] == 1
    assert summary["records_learned"] == 4
    assert summary["metrics"]["confusion"] == {"yes": {"yes": 4}}
    assert [line["probabilities"] for line in predictions.items] == [{"no": 0.25, "yes": 0.75}]


class _Fixed:
    """A frozen model A that always answers the same probabilities."""

    def __init__(self, p_yes: float) -> None:
        self.p_yes = p_yes

    def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:
        return {False: 1.0 - self.p_yes, True: self.p_yes}

    def learn_one(self, x: dict[str, float], y: bool) -> None:
        raise AssertionError("the baseline is frozen")


def test_a_baseline_is_scored_beside_the_model_and_serves_while_more_accurate():
    space = ClassSpace(binary=True)
    rows = _rows(400, 8)
    learner = ClassLearner(
        linear_model.LogisticRegression(), space, rolling_window=100, baseline=_Fixed(0.9)
    )
    assert learner.guard is not None and learner.guard.serving_baseline
    acc, loss = rm.Accuracy(), rm.LogLoss()
    for x, y in rows:
        learner.step(x, space.encode("yes" if y else "no"))
        acc.update(y, True)
        loss.update(y, {False: 0.1, True: 0.9})
    base = learner.baseline_summary()
    assert base is not None
    assert base["accuracy"] == acc.get() and base["log_loss"] == loss.get()
    # B learns the boundary; "always yes" is right about half the time: B serves.
    assert learner.summary()["accuracy"] > base["accuracy"] + 0.2
    assert not learner.guard.serving_baseline
    assert learner.serve({"a": -1.0, "b": 1.0}) == learner.predict({"a": -1.0, "b": 1.0})


def test_a_class_first_seen_in_a_late_label_scores_alike_at_any_batch_size(tmp_path):
    # Class "c" first comes as a late label. The decoder learns its name a batch ahead of the
    # model: the features waiting for it were predicted before the model knew "c", and River
    # scores a class its probabilities do not name as 0, at whatever batch size it arrived.
    rnd = random.Random(5)
    lines: list[dict[str, Any]] = []
    for i in range(120):
        label = "abc"[i % 3] if i >= 30 else "ab"[i % 2]
        x = {"u": rnd.gauss({"a": 0, "b": 2, "c": -2}[label], 1), "v": rnd.random()}
        if i == 30:  # the first "c": its label comes two records later
            lines.append({"id": f"r{i}", "x": x})
            pending = {"id": f"r{i}", "y": label}
        else:
            lines.append({"id": f"r{i}", "x": x, "y": label})
        if i == 32:
            lines.append(pending)
    path = tmp_path / "late.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    found = []
    for size in (1, 100):  # the loop's batch size is internal: no flag, so built here
        params = {"source": str(path), "follow": False, "model": "SoftmaxRegression",
                  "label_ttl": "1000r", "drift_detector": "none"}  # fmt: skip
        app = build(Settings.from_params(params, batch_size=size))
        try:
            found.append(app.daemon.run()["metrics"]["cross_entropy"])
        finally:
            app.close()
    model, loss = linear_model.SoftmaxRegression(), rm.CrossEntropy()
    waiting: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    for line in lines:
        if "x" not in line:
            x, proba = waiting.pop(line["id"])
        elif "y" not in line:
            waiting[line["id"]] = (line["x"], model.predict_proba_one(line["x"]))
            continue
        else:
            x, proba = line["x"], model.predict_proba_one(line["x"])
        if proba:
            loss.update(line["y"], proba)
        model.learn_one(x, line["y"])
    assert found[0] == found[1] == pytest.approx(loss.get(), rel=1e-12)
