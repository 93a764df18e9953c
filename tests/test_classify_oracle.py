"""A classifier's replay through the daemon equals River's ``progressive_val_score``.

River's bundled binary (Phishing) and multiclass (ImageSegments) data sets are written to CSV
and replayed by ``streamlearn replay``; the metrics ``inspect --json`` reports equal River's
metric objects given the same model on the same rows (the same float features the CSV
decoder reads). Late labels are scored with the probabilities given at prediction time.
"""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from river import datasets, evaluate, linear_model, preprocessing, tree
from river import metrics as rm

from streamhelpers import cli, inspect_json


def _write(path: Path, rows: list[tuple[dict[str, Any], Any]], label: Any) -> list[str]:
    names = list(rows[0][0])
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow([*names, "label"])
        for x, y in rows:
            out.writerow([*(repr(float(x[n])) for n in names), label(y)])
    return names


@pytest.fixture(scope="module")
def phishing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[dict, bool]]]:
    path = tmp_path_factory.mktemp("phishing") / "phishing.csv"
    rows = list(datasets.Phishing())
    names = _write(path, rows, lambda y: "true" if y else "false")
    # What the daemon's model sees: the features as the CSV decoder reads them.
    return path, [({n: float(x[n]) for n in names}, bool(y)) for x, y in rows]


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[dict, str]]]:
    path = tmp_path_factory.mktemp("segments") / "segments.csv"
    rows = list(datasets.ImageSegments())
    names = _write(path, rows, str)
    return path, [({n: float(x[n]) for n in names}, y) for x, y in rows]


def _replay(path: Path, state: Path, spec: str, *extra: str) -> dict[str, Any]:
    cli(
        "replay",
        str(path),
        "--model",
        spec,
        "--target",
        "label",
        "--state-dir",
        str(state),
        "--drift-detector",
        "none",
        *extra,
        timeout=300,
    )
    return inspect_json(state)


def _confusion(cm: rm.ConfusionMatrix, name: Any = str) -> dict[str, dict[str, int]]:
    return {
        name(t): {name(p): int(c) for p, c in row.items() if c}
        for t, row in cm.data.items()
        if any(row.values())
    }


BINARY = {
    "linear": ("LogisticRegression", linear_model.LogisticRegression),
    "pipeline": (
        "StandardScaler | LogisticRegression",
        lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(),
    ),
}
MULTICLASS = {
    "linear": ("SoftmaxRegression", linear_model.SoftmaxRegression),
    "tree": ("HoeffdingTreeClassifier", tree.HoeffdingTreeClassifier),
    "pipeline": (
        "StandardScaler | SoftmaxRegression",
        lambda: preprocessing.StandardScaler() | linear_model.SoftmaxRegression(),
    ),
}


def test_a_short_binary_replay_equals_progressive_val_score(tmp_path):
    """The quick loop's oracle (the whole data sets' runs below are ``slow``): 200 rows."""
    rows = list(itertools.islice(datasets.Phishing(), 200))
    path = tmp_path / "head.csv"
    names = _write(path, rows, lambda y: "true" if y else "false")
    summary = _replay(path, tmp_path / "state", "LogisticRegression")
    seen = [({n: float(x[n]) for n in names}, bool(y)) for x, y in rows]
    acc, loss, f1, auc, cm = rm.Accuracy(), rm.LogLoss(), rm.F1(), rm.ROCAUC(), rm.ConfusionMatrix()
    evaluate.progressive_val_score(
        seen, linear_model.LogisticRegression(), acc + loss + f1 + auc + cm
    )
    metrics = summary["metrics"]
    assert summary["records_learned"] == 200
    assert metrics["accuracy"] == acc.get()
    assert metrics["log_loss"] == loss.get()
    assert metrics["f1"] == f1.get()
    assert metrics["roc_auc"] == auc.get()
    assert metrics["confusion"] == _confusion(cm, lambda b: "true" if b else "false")


@pytest.mark.slow  # the whole data set (1,250 rows), a daemon process per model
@pytest.mark.parametrize("kind", sorted(BINARY))
def test_binary_metrics_equal_progressive_val_score(phishing, tmp_path, kind):
    path, rows = phishing
    spec, make = BINARY[kind]
    summary = _replay(path, tmp_path / "state", spec)
    assert summary["task"] == "classification" and summary["classes"] == ["false", "true"]
    acc, loss, f1, auc, cm = rm.Accuracy(), rm.LogLoss(), rm.F1(), rm.ROCAUC(), rm.ConfusionMatrix()
    evaluate.progressive_val_score(rows, make(), acc + loss + f1 + auc + cm)
    metrics = summary["metrics"]
    assert summary["records_learned"] == len(rows)
    # The same bits: River's formulas restated operation for operation.
    assert metrics["accuracy"] == acc.get()
    assert metrics["log_loss"] == loss.get()
    assert metrics["f1"] == f1.get()
    assert metrics["roc_auc"] == auc.get()
    assert metrics["confusion"] == _confusion(cm, lambda b: "true" if b else "false")
    assert 0.5 < metrics["accuracy"] < 1.0  # a model that learned something


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(MULTICLASS))
def test_multiclass_metrics_equal_progressive_val_score(segments, tmp_path, kind):
    path, rows = segments
    spec, make = MULTICLASS[kind]
    summary = _replay(path, tmp_path / "state", spec)
    acc, loss, f1, cm = rm.Accuracy(), rm.CrossEntropy(), rm.MacroF1(), rm.ConfusionMatrix()
    evaluate.progressive_val_score(rows, make(), acc + loss + f1 + cm)
    metrics = summary["metrics"]
    assert summary["records_learned"] == len(rows)
    assert sorted(summary["classes"]) == sorted({y for _, y in rows})
    assert metrics["accuracy"] == acc.get()
    assert metrics["cross_entropy"] == loss.get()
    # River sums the classes' F1 in the order of a set: equal up to that order of addition.
    assert metrics["macro_f1"] == pytest.approx(f1.get(), rel=1e-14, abs=0)
    assert metrics["confusion"] == _confusion(cm)
    assert "f1" not in metrics and "roc_auc" not in metrics


@pytest.mark.slow
def test_a_tree_on_a_binary_stream_is_multiclass_with_two_classes(phishing, tmp_path):
    """A model that is not binary only learns the label text: cross-entropy and macro F1."""
    path, rows = phishing
    summary = _replay(path, tmp_path / "state", "HoeffdingTreeClassifier")
    texts = [(x, "true" if y else "false") for x, y in rows]
    acc, loss, f1, cm = rm.Accuracy(), rm.CrossEntropy(), rm.MacroF1(), rm.ConfusionMatrix()
    evaluate.progressive_val_score(texts, tree.HoeffdingTreeClassifier(), acc + loss + f1 + cm)
    metrics = summary["metrics"]
    assert metrics["accuracy"] == acc.get()
    assert metrics["cross_entropy"] == loss.get()
    assert metrics["macro_f1"] == pytest.approx(f1.get(), rel=1e-14, abs=0)
    assert metrics["confusion"] == _confusion(cm)


@pytest.mark.slow
def test_predictions_carry_the_class_and_its_probabilities(phishing, tmp_path):
    path, rows = phishing
    head = path.read_text().splitlines()
    stream = tmp_path / "some-unlabeled.csv"
    # Every 5th record unlabeled: its prediction is written, it is not learned.
    stream.write_text(
        "\n".join(
            [head[0]]
            + [
                line.rsplit(",", 1)[0] + "," if i % 5 == 4 else line
                for i, line in enumerate(head[1:301])
            ]
        )
        + "\n"
    )
    predictions = tmp_path / "pred.jsonl"
    summary = _replay(
        stream, tmp_path / "state", "LogisticRegression", "--predictions", str(predictions)
    )
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(lines) == summary["predictions"] == 60
    model = linear_model.LogisticRegression()
    for i, (x, y) in enumerate(rows[:300]):
        if i % 5 == 4:
            proba = model.predict_proba_one(x)
            line = lines[i // 5]
            assert line["probabilities"] == {"false": proba[False], "true": proba[True]}
            assert line["prediction"] == ("true" if proba[True] > proba[False] else "false")
        else:
            model.learn_one(x, y)
    assert summary["records_learned"] == 240
