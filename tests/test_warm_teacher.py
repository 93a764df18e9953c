"""Model A as the pseudo-label teacher: it survives a resume and fine-tunes at B's rate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamhelpers import ROOT, cli

# Every test here needs model A, pretrained in a process of its own (seconds of imports).
pytestmark = pytest.mark.slow

TARGET = ROOT / "examples" / "transfer_target.csv"


@pytest.fixture(scope="module")
def model_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MLP A (Adam, so it has a learning rate of its own) of the example source."""
    path = tmp_path_factory.mktemp("a") / "A.skops"
    source = ROOT / "examples" / "transfer_source.csv"
    cli("pretrain", str(source), "--out", str(path), "--hidden", "8", "--epochs", "30")
    return path


def _blanked(lines: list[str], start: int) -> list[str]:
    """Rows ``x,y`` with every third target blanked (counted from ``start``)."""
    return [
        line.split(",")[0] + "," if (start + i) % 3 == 1 else line for i, line in enumerate(lines)
    ]


def test_resume_without_warm_start_keeps_model_a_as_teacher(tmp_path: Path, model_a: Path):
    header, *rows = TARGET.read_text().splitlines()
    half = len(rows) // 2
    stream = tmp_path / "stream.csv"
    stream.write_text("\n".join([header, *_blanked(rows[:half], 0)]) + "\n")
    state = tmp_path / "state"
    cli(
        "replay", str(stream), "--state-dir", str(state), "--warm-start", str(model_a),
        "--pseudo-label",
    )  # fmt: skip
    with stream.open("a") as handle:  # the file grows: its continuation is replayed next
        handle.write("\n".join(_blanked(rows[half:], half)) + "\n")
    result = cli(
        "replay", str(stream), "--state-dir", str(state), "--pseudo-label", "--inspect-json",
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    pseudo = json.loads(result.stdout)["pseudo_labels"]
    assert pseudo["teacher"] == f"warm start from {model_a}"
    kept = [line for line in result.stderr.splitlines() if "teacher" in line]
    assert len(kept) == 1 and "checkpoint's teacher" in kept[0], result.stderr
    # Asked for by name, another teacher replaces the checkpoint's (the existing rule).
    result = cli(
        "replay", str(stream), "--state-dir", str(state), "--pseudo-label", "--inspect-json",
        "--teacher", "KNNRegressor",
    )  # fmt: skip
    assert json.loads(result.stdout)["pseudo_labels"]["teacher"] == "KNNRegressor"
    assert "starting a new teacher" in result.stderr


@pytest.mark.parametrize(("lr", "lr_given"), [(0.01, False), (0.05, True)])
def test_model_a_teacher_fine_tunes_at_the_rate_of_b(model_a: Path, lr: float, lr_given: bool):
    """Without --lr, model A as teacher steps as B does (a tenth of A's own), else at --lr."""
    from streamlearn.app import build
    from streamlearn.config import Settings
    from streamlearn.labels.settings import PseudoSettings
    from streamlearn.models.transfer import load_batch_model, suited_lr

    settings = Settings(
        source=str(TARGET),
        follow=False,
        warm_start=str(model_a),
        lr=lr,
        lr_from_flag=lr_given,
        pseudo=PseudoSettings(pseudo_label=True, teacher=f"warm:{model_a}"),
    )
    app = build(settings)
    try:
        student, teacher = app.daemon.learner.model, app.daemon.pseudo.teacher
    finally:
        app.close()
    expected = lr if lr_given else suited_lr(load_batch_model(model_a))
    assert expected != 0.01 or lr_given  # A's own rule differs from the default --lr
    assert student.lr == pytest.approx(expected)
    assert teacher.model.lr == pytest.approx(expected)
