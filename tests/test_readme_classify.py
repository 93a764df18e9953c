"""The README's "Classification" commands, run as written on ``examples/churn.csv``.

Each command of the section's shell block runs in a scratch directory (with ``examples/``);
every one must exit 0, and what the README says they print and leave is checked: the final
line, the dead letters' reasons, the predictions of the unlabeled rows, the confusion matrix,
and weights equal to a numpy loop of the seed's formula with a sigmoid.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_class_labels import logistic_oracle

from streamhelpers import ROOT, STREAMLEARN
from streamlearn.producers.churn_data import FEATURES, churn_rows

SECTION = "### Classification"
FINAL = "learned 2000 records (seen 2006, rejected 3); accuracy 0.7265, log loss 0.544527"


def section() -> str:
    text = (ROOT / "README.md").read_text()
    assert SECTION in text, f"the README lost its section {SECTION!r}"
    return text.split(SECTION, 1)[1].split("\n### ", 1)[0]


def section_commands() -> list[str]:
    """The commands of the section's ``sh`` block, continuation lines joined."""
    block = section().split("```sh\n", 1)[1].split("```", 1)[0]
    joined = block.replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_the_example_is_what_its_generator_writes() -> None:
    committed = (ROOT / "examples" / "churn.csv").read_text()
    assert committed == "\n".join(churn_rows()) + "\n"


@pytest.mark.slow
def test_the_readme_classification_runs_as_written(tmp_path: Path) -> None:
    commands = section_commands()
    assert len(commands) == 4
    assert FINAL in " ".join(section().split())  # the README says what the replay prints
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    outputs = []
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "streamlearn", command
        result = subprocess.run(
            [*STREAMLEARN, *words[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        outputs.append(result.stdout + result.stderr)
    replay, text, document, river = outputs
    assert FINAL in replay
    assert FINAL in river  # River's LogisticRegression scores every record alike
    out = tmp_path / "out"
    rejected = [
        json.loads(line) for line in (out / "churn-rejected.jsonl").read_text().splitlines()
    ]
    assert [r["reason"] for r in rejected] == ["non_numeric", "non_finite", "third_class"]
    predictions = [json.loads(line) for line in (out / "churn.jsonl").read_text().splitlines()]
    assert [p["prediction"] for p in predictions] == ["yes", "no", "yes"]
    for p in predictions:
        assert set(p["probabilities"]) == {"no", "yes"}
        assert sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-12)
    assert f"{predictions[0]['probabilities']['no']:.6f}".startswith("0.0253")

    summary = json.loads(document)
    assert summary["task"] == "classification" and summary["classes"] == ["no", "yes"]
    metrics = summary["metrics"]
    assert metrics["confusion"] == {"no": {"no": 1067, "yes": 233}, "yes": {"no": 314, "yes": 386}}
    assert round(metrics["accuracy"], 4) == 0.7265 and round(metrics["log_loss"], 6) == 0.544527
    assert {"f1", "roc_auc"} <= set(metrics) and "confusion" in summary["rolling_metrics"]
    for cell in ("1067", "233", "314", "386", "accuracy", "log loss", "F1", "ROC AUC"):
        assert cell in text

    rows = [line.split(",") for line in churn_rows()[1:2001]]
    X = np.array([[float(v) for v in row[:4]] for row in rows])
    y = np.array([1.0 if row[4] == "yes" else 0.0 for row in rows])
    theta, theta0 = logistic_oracle(X, y, lr=0.05)
    weights = summary["weights"]
    assert [weights[name] for name in FEATURES] == pytest.approx(theta, abs=1e-12, rel=0)
    assert summary["intercept"] == pytest.approx(theta0, abs=1e-12)
