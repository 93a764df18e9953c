"""A teacher or a twin whose model answers None (River's "no prediction yet") never crashes."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest


def _stream(path: Path) -> int:
    """600 rows of y = 1.5 a - 2 b + 3 (+ noise), every third target blank; labeled count."""
    rng = random.Random(1)
    labeled = 0
    lines = ["a,b,y"]
    for i in range(600):
        a, b = rng.random(), rng.random()
        if i % 3 == 0:
            lines.append(f"{a:.5f},{b:.5f},")
        else:
            labeled += 1
            lines.append(f"{a:.5f},{b:.5f},{1.5 * a - 2 * b + 3 + rng.gauss(0, 0.1):.5f}")
    path.write_text("\n".join(lines) + "\n")
    return labeled


@pytest.mark.slow
def test_a_teacher_that_cannot_predict_yet_is_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    labeled = _stream(path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamlearn.cli",
            "replay",
            str(path),
            "--pseudo-label",
            "--teacher",
            "AMFRegressor",
            "--inspect-json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    summary = json.loads(done.stdout)
    assert summary["records_learned"] == labeled
    assert summary["records_unlabeled"] == 200
    values = [*summary["weights"].values(), summary["intercept"]]
    assert all(math.isfinite(value) for value in values)
    pseudo = summary["pseudo_labels"]
    # The teacher learned every true label and judged every unlabeled record.
    assert pseudo["teacher_learned"] == labeled
    assert pseudo["offered"] == 200 and pseudo["accepted"] + pseudo["rejected"] == 200
