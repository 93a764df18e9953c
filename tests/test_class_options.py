"""``--classes`` and ``--positive-class`` as given on the command line, the environment or a
config file: a list with an empty or a repeated class, or a positive class outside the fixed
classes, is a one-line usage error (exit 2) saying why, before anything is learned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import Result

from streamhelpers import invoke


def assert_usage_error(result: Result, state: Path, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error:"), result.stderr
    for needle in needles:
        assert needle in last, result.stderr
    assert not list(state.glob("*.ckpt")), "nothing is saved"


@pytest.fixture
def stream(tmp_path: Path) -> Path:
    path = tmp_path / "s.csv"
    path.write_text("a,b,y\n1,2,x\n2,3,z\n1,1,x\n")
    return path


@pytest.mark.parametrize(
    ("classes", "needle"),
    [
        (",", "an empty class"),
        ("", "an empty class"),
        (" , ", "an empty class"),
        ("x,,z", "an empty class"),
        ("x,z,", "an empty class"),
        ("x,x", "'x' twice"),
        ("x, z,x ", "'x' twice"),
    ],
)
@pytest.mark.parametrize("model", ["HoeffdingTreeClassifier", "logistic"])
def test_an_empty_or_repeated_class_is_a_usage_error(
    stream: Path, tmp_path: Path, classes: str, needle: str, model: str
) -> None:
    state = tmp_path / "state"
    args = ("replay", str(stream), "--model", model, "--state-dir", str(state))
    result = invoke(*args, "--classes", classes, "--positive-class", "x")
    assert_usage_error(result, state, "--classes", needle)


def test_the_classes_from_the_environment_are_checked_alike(stream: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    args = ("replay", str(stream), "--model", "HoeffdingTreeClassifier", "--state-dir", str(state))
    result = invoke(*args, env={"STREAMLEARN_CLASSES": "x,,z"})
    assert_usage_error(result, state, "--classes", "an empty class")


@pytest.mark.parametrize("model", ["HoeffdingTreeClassifier", "logistic"])
def test_a_positive_class_outside_the_classes_is_a_usage_error(
    stream: Path, tmp_path: Path, model: str
) -> None:
    state = tmp_path / "state"
    args = ("replay", str(stream), "--model", model, "--state-dir", str(state))
    result = invoke(*args, "--classes", "x,z", "--positive-class", "q")
    assert_usage_error(result, state, "--positive-class 'q' is not one of --classes")


@pytest.mark.parametrize("model", ["HoeffdingTreeClassifier", "logistic"])
@pytest.mark.parametrize("positive", ["", " "])
def test_an_empty_positive_class_is_a_usage_error(
    stream: Path, tmp_path: Path, model: str, positive: str
) -> None:
    state = tmp_path / "state"
    args = ("replay", str(stream), "--model", model, "--state-dir", str(state))
    result = invoke(*args, "--positive-class", positive)
    assert_usage_error(result, state, "--positive-class has an empty class")


def test_good_classes_learn(stream: Path, tmp_path: Path) -> None:
    """The same command with a good list runs: the errors above are the lists'."""
    state = tmp_path / "state"
    args = ("replay", str(stream), "--model", "HoeffdingTreeClassifier", "--state-dir", str(state))
    result = invoke(*args, "--classes", " x , z", "--positive-class", "z", "--inspect-json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["classes"] == ["x", "z"]
