"""Sizes are bounded before anything is allocated (issue 16, item 9).

A model spec is checked against a parameter budget computed from the spec, settings against
documented caps, and the distinct feature names a JSON stream brings against --max-features:
each beyond its bound is a one-line error (exit 2), or, for records, a dead letter.
"""

from __future__ import annotations

import json
import random
import resource
import string
from pathlib import Path

import pytest

from streamhelpers import cli, inspect_json, make_regression, write_csv
from streamlearn.models.registry import SpecError, parse_spec

#: The parameter budget of a model spec (``streamlearn.models.spec_bounds.MAX_PARAMETERS``).
MAX_PARAMETERS = 10_000_000

#: The address space a CLI run gets in these tests: an allocation the bounds should have
#: prevented fails there instead of taking the machine's memory.
ADDRESS_SPACE = 2 << 30


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def assert_usage_error(result, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error:"), result.stderr
    for needle in needles:
        assert needle in lines[-1], result.stderr


@pytest.fixture
def stream_csv(tmp_path: Path) -> Path:
    X, y, _ = make_regression(50, d=3, seed=1)
    path = tmp_path / "stream.csv"
    write_csv(path, X, y)
    return path


@pytest.mark.parametrize("spec", ["mlp(hidden=(1000000000,))", "mlp(hidden=(100000, 100000))"])
def test_an_oversized_network_is_refused_before_any_weight_exists(stream_csv, spec):
    # Under a 2 GiB address space: were the check missing, the weights' allocation would fail
    # here (a MemoryError traceback) rather than take the machine's memory.
    result = cli("replay", str(stream_csv), "--model", spec, check=False, preexec_fn=_limit_memory)
    assert_usage_error(result, "budget", f"{MAX_PARAMETERS:,}")


def test_the_budget_is_computed_from_the_spec_before_anything_is_built():
    with pytest.raises(SpecError, match="budget"):
        parse_spec("mlp(hidden=(1000000000,))")
    with pytest.raises(SpecError, match="budget"):
        parse_spec("mlp(hidden=(4000, 4000))")
    from streamlearn.models.registry import check_size

    # The input width counts: 10,000 features into 2,000 units is 20M weights.
    check_size("mlp(hidden=(2000,))", 3)
    with pytest.raises(SpecError, match="10,000 input features"):
        check_size("mlp(hidden=(2000,))", 10_000)
    # ...and it is followed through a pipeline: a degree-3 expansion of 1,000 features.
    with pytest.raises(SpecError, match="PolynomialExtender"):
        check_size("PolynomialExtender(degree=3) | LinearRegression", 1_000)
    with pytest.raises(SpecError, match="n_models is at most"):
        parse_spec("ARFRegressor(n_models=1000000)")
    with pytest.raises(SpecError, match="n_components is at most"):
        parse_spec("RBFSampler(n_components=1000000000) | LinearRegression")


def test_json_without_features_budgets_for_max_features(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps({"a": i, "b": 1, "y": i}) + "\n" for i in range(20)))
    result = cli("replay", str(path), "--model", "mlp(hidden=(2000,))", check=False)
    assert_usage_error(result, "budget", "--max-features")
    # Named features (or a lower cap) make the same network fit.
    cli("replay", str(path), "--model", "mlp(hidden=(2000,))", "--features", "a,b")
    cli("replay", str(path), "--model", "mlp(hidden=(2000,))", "--max-features", "100")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--rolling-window", "20000000"], "--rolling-window"),
        (["--max-line-bytes", str(1 << 40)], "--max-line-bytes"),
        (["--checkpoint-every", str(10**20)], "--checkpoint-every"),
        (["--pseudo-label", "--teacher-k", "1000"], "--teacher-k"),
        (["--pseudo-label", "--pseudo-queue", str(10**20)], "--pseudo-queue"),
        (["--pseudo-label", "--max-pending-labels", str(10**20)], "--max-pending-labels"),
        (["--on-drift", "background", "--drift-swap-window", str(10**20)], "--drift-swap-window"),
        (["--max-features", str(10**9)], "--max-features"),
    ],
)
def test_settings_beyond_their_caps_are_usage_errors(stream_csv, args, option):
    result = cli("replay", str(stream_csv), *args, check=False, preexec_fn=_limit_memory)
    assert_usage_error(result, option)


def test_caps_are_documented_in_help():
    help_text = cli("replay", "--help").stdout
    assert "1<=x<=1000000" in help_text  # --rolling-window
    assert "--max-features" in help_text


def _names(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(string.ascii_lowercase, k=12)) for _ in range(n)]


@pytest.mark.slow
def test_new_feature_names_beyond_the_cap_are_dead_letters(tmp_path):
    names = _names(20_000, seed=7)
    path = tmp_path / "names.jsonl"
    path.write_text("".join(json.dumps({name: 1.0, "y": 2.0}) + "\n" for name in names))
    dead = tmp_path / "dead.jsonl"
    state = tmp_path / "state"
    cli("replay", str(path), "--state-dir", str(state), "--dead-letter", str(dead))
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert len(letters) == 10_000
    assert {letter["reason"] for letter in letters} == {"too_many_features"}
    summary = inspect_json(state)
    assert summary["records_learned"] == 10_000
    assert len(summary["weights"]) == 10_000  # the model holds the cap, no more

    # A restart goes on counting: names it knows are learned, new ones are still refused.
    with path.open("a") as handle:
        for name in names[:50]:
            handle.write(json.dumps({name: 2.0, "y": 3.0}) + "\n")
        for name in _names(50, seed=8):
            handle.write(json.dumps({name: 2.0, "y": 3.0}) + "\n")
    cli("replay", str(path), "--state-dir", str(state), "--dead-letter", str(dead))
    assert len(dead.read_text().splitlines()) == 10_050
    summary = inspect_json(state)
    assert summary["records_learned"] == 10_050
    assert len(summary["weights"]) == 10_000


def test_a_header_wider_than_max_features_is_refused(stream_csv):
    result = cli("replay", str(stream_csv), "--max-features", "2", check=False)
    assert_usage_error(result, "--max-features")


@pytest.mark.slow
def test_a_classifier_is_budgeted_for_max_classes(tmp_path):
    # softmax keeps a weight per feature and class: 2,000 features x 10,000 classes is over
    # the budget, refused before a record is read; fewer classes make the same model fit.
    path = tmp_path / "c.csv"
    names = [f"f{i}" for i in range(2000)]
    path.write_text(",".join([*names, "y"]) + "\n" + ",".join(["1"] * 2000 + ["a"]) + "\n")
    result = cli("replay", str(path), "--model", "softmax", "--max-classes", "10000", check=False)
    assert_usage_error(result, "budget")
    cli("replay", str(path), "--model", "softmax", "--max-classes", "50")
    assert cli("replay", str(path), "--model", "softmax", "--classes", "a,b").returncode == 0
