"""The command line as users meet it: exit codes, one-line errors, resume, config precedence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from streamhelpers import STREAMLEARN, cli, inspect_json, make_regression, sgd_oracle, write_csv


@pytest.fixture
def data(tmp_path):
    X, y, _ = make_regression(600, d=3, seed=5)
    path = tmp_path / "stream.csv"
    write_csv(path, X, y)
    return path, X, y


def assert_one_line_error(result, code, *needles):
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error:"), result.stderr
    for needle in needles:
        assert needle in result.stderr


def test_missing_file(tmp_path):
    result = cli("replay", str(tmp_path / "nope.csv"), check=False)
    assert_one_line_error(result, 1, "no such file")


def test_unknown_model_is_a_usage_error_listing_known_names(data):
    path, _, _ = data
    result = cli("replay", str(path), "--model", "Bogus(x=1)", check=False)
    assert_one_line_error(result, 2, "unknown model 'Bogus'", "LinearRegression", "sgd")


def test_model_spec_is_never_evaluated(data, tmp_path):
    path, _, _ = data
    marker = tmp_path / "pwned"
    spec = f"LinearRegression(l2=__import__('pathlib').Path({str(marker)!r}).touch())"
    result = cli("replay", str(path), "--model", spec, check=False)
    assert_one_line_error(result, 2, "literals")
    assert not marker.exists()


def test_locked_state_dir(data, tmp_path):
    path, _, _ = data
    from streamlearn.state import CheckpointStore

    store = CheckpointStore(tmp_path / "state")
    result = cli("replay", str(path), "--state-dir", str(tmp_path / "state"), check=False)
    assert_one_line_error(result, 1, "in use by another streamlearn")
    store.close()


def test_unreadable_and_invalid_config(data, tmp_path):
    path, _, _ = data
    result = cli("replay", str(path), "--config", str(tmp_path / "missing.toml"), check=False)
    assert_one_line_error(result, 2, "does not exist")
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = = 3\n")
    result = cli("replay", str(path), "--config", str(bad), check=False)
    assert_one_line_error(result, 2, "not valid TOML")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("learning_rate = 3\n")
    result = cli("replay", str(path), "--config", str(unknown), check=False)
    assert_one_line_error(result, 2, "unknown settings", "learning_rate")
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.toml"
        locked.write_text("lr = 0.1\n")
        locked.chmod(0)
        result = cli("replay", str(path), "--config", str(locked), check=False)
        assert_one_line_error(result, 2, "not readable")


def test_config_file_then_environment_then_flag(data, tmp_path):
    path, X, y = data
    config = tmp_path / "streamlearn.toml"
    config.write_text("lr = 0.002\n[replay]\nrolling-window = 10\n")

    def weights(*args, env=None):
        summary = json.loads(cli("replay", str(path), "--inspect-json", *args, env=env).stdout)
        return summary, np.array([summary["weights"][f"x{j}"] for j in range(3)])

    for lr, args, env in [
        (0.002, ["--config", str(config)], None),
        (0.003, ["--config", str(config)], {"STREAMLEARN_LR": "0.003"}),
        (0.004, ["--config", str(config), "--lr", "0.004"], {"STREAMLEARN_LR": "0.003"}),
    ]:
        summary, learned = weights(*args, env=env)
        theta, _, _ = sgd_oracle(X, y, lr)
        np.testing.assert_allclose(learned, theta, rtol=0, atol=1e-12)
        assert summary["rolling_window"] == 10


@pytest.mark.slow
def test_replay_resumes_only_new_rows_of_the_same_file(tmp_path):
    X, y, _ = make_regression(900, d=3, seed=8)
    path = tmp_path / "grow.csv"
    write_csv(path, X[:500], y[:500])
    state = tmp_path / "state"
    cli("replay", str(path), "--state-dir", str(state), "--checkpoint-every", "64")
    assert inspect_json(state)["records_learned"] == 500
    with open(path, "a") as handle:
        for i in range(500, 900):
            handle.write(",".join(repr(float(v)) for v in X[i]) + f",{float(y[i])!r}\n")
    cli("replay", str(path), "--state-dir", str(state))
    summary = inspect_json(state)
    assert summary["records_learned"] == 900
    theta, theta0, _ = sgd_oracle(X, y, 0.01)
    np.testing.assert_allclose(
        [summary["weights"][f"x{j}"] for j in range(3)], theta, rtol=0, atol=1e-12
    )
    assert abs(summary["intercept"] - theta0) < 1e-12


@pytest.mark.slow
def test_a_different_file_is_refused_unless_reset(data, tmp_path):
    path, _, _ = data
    state = tmp_path / "state"
    cli("replay", str(path), "--state-dir", str(state))
    X, y, _ = make_regression(50, d=3, seed=99)
    other = tmp_path / "other.csv"
    write_csv(other, X, y)
    result = cli("replay", str(other), "--state-dir", str(state), check=False)
    assert_one_line_error(result, 1, "--reset")
    cli("replay", str(other), "--state-dir", str(state), "--reset")
    assert inspect_json(state)["records_learned"] == 50


@pytest.mark.slow
def test_a_state_of_another_model_is_refused_when_model_is_given(data, tmp_path):
    path, _, _ = data
    state = tmp_path / "state"
    cli("replay", str(path), "--state-dir", str(state))
    result = cli(
        "replay",
        str(path),
        "--state-dir",
        str(state),
        "--model",
        "StandardScaler | LinearRegression",
        check=False,
    )
    assert_one_line_error(result, 1, "holds a 'sgd' model")


def test_corrupt_latest_checkpoint_falls_back_with_a_warning(data, tmp_path):
    path, _, _ = data
    state = tmp_path / "state"
    cli("replay", str(path), "--state-dir", str(state), "--checkpoint-every", "100")
    generations = sorted(state.glob("gen-*.ckpt"))
    assert len(generations) == 2
    generations[-1].write_bytes(b"SLCKPT\x00\x01 torn write")
    result = cli("inspect", str(state), "--json")
    assert "OLDER CHECKPOINT" in result.stderr
    assert json.loads(result.stdout)["checkpoint"]["generation"] == int(generations[0].stem[4:])


def test_dead_letters_and_predictions_files(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("id,a,y\nr1,1,2\nr2,2,\nr3,oops,1\nr4,3,\n")
    dead, predictions = tmp_path / "dead.jsonl", tmp_path / "pred.jsonl"
    summary = json.loads(
        cli(
            "replay",
            str(path),
            "--id-column",
            "id",
            "--dead-letter",
            str(dead),
            "--predictions",
            str(predictions),
            "--inspect-json",
        ).stdout
    )
    assert summary["records_learned"] == 1
    assert summary["records_unlabeled"] == 2
    assert summary["rejected_by_reason"] == {"non_numeric": 1}
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(d["reason"], d["raw"], d["position"]) for d in letters] == [
        ("non_numeric", "r3,oops,1\n", {"offset": path.read_text().index("r3")})
    ]
    preds = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [p["id"] for p in preds] == ["r2", "r4"]
    # After learning (a=1 -> y=2) once: w = 0.02, b = 0.02, so a=2 predicts 0.06.
    assert preds[0]["prediction"] == pytest.approx(0.06)


def test_inspect_readable_summary_and_missing_state(data, tmp_path):
    path, _, _ = data
    state = tmp_path / "state"
    cli("replay", str(path), "--state-dir", str(state))
    text = cli("inspect", str(state)).stdout
    assert "records learned  600" in text and "weights" in text
    result = cli("inspect", str(tmp_path / "nothing"), check=False)
    assert_one_line_error(result, 1, "no state dir")


def test_run_follows_the_file_and_exits_0_on_sigterm(tmp_path):
    X, y, _ = make_regression(300, d=3, seed=2)
    path = tmp_path / "live.csv"
    write_csv(path, X[:100], y[:100])
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [*STREAMLEARN, "run", str(path), "--state-dir", str(state), "--checkpoint-interval", "0.2"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with open(path, "a") as handle:
            for i in range(100, 300):
                handle.write(",".join(repr(float(v)) for v in X[i]) + f",{float(y[i])!r}\n")
                if i % 50 == 0:
                    handle.flush()
                    time.sleep(0.1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = state.exists() and list(state.glob("gen-*.ckpt"))
            if ready and inspect_json(state)["records_learned"] == 300:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    summary = inspect_json(state)
    assert summary["records_learned"] == 300
    theta, _, _ = sgd_oracle(X, y, 0.01)
    np.testing.assert_allclose(
        [summary["weights"][f"x{j}"] for j in range(3)], theta, rtol=0, atol=1e-12
    )


def test_help_explains_every_option():
    text = cli("replay", "--help").stdout
    for option in (
        "--target",
        "--model",
        "--lr",
        "--state-dir",
        "--dead-letter",
        "--predictions",
        "--checkpoint-every",
        "--checkpoint-interval",
        "--id-column",
        "--config",
        "--rate",
        "--inspect-json",
    ):
        assert option in text
    assert "inspect" in cli("--help").stdout


def test_jsonl_replay(tmp_path: Path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"x": {"a": 1}, "y": 2}\n{"a": 2, "y": 4}\n\n{"a": "x", "y": 1}\n')
    summary = json.loads(cli("replay", str(path), "--inspect-json").stdout)
    assert summary["records_learned"] == 2 and summary["records_rejected"] == 1


@pytest.fixture
def model_a(tmp_path):
    """A batch model A of the ``data`` stream's features: a state dir (loads without pickle)."""
    X, y, _ = make_regression(200, d=3, seed=6)
    source = tmp_path / "source.csv"
    write_csv(source, X, y)
    path = tmp_path / "A"
    cli("replay", str(source), "--state-dir", str(path))
    return path


def test_warm_start_with_pseudo_labels_uses_model_a_as_the_default_teacher(tmp_path, model_a):
    X, y, _ = make_regression(600, d=3, seed=5)
    path = tmp_path / "stream.csv"
    write_csv(path, X, y, unlabeled=set(range(1, 600, 3)))
    result = cli(
        "replay", str(path), "--warm-start", str(model_a), "--pseudo-label", "--inspect-json",
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--teacher" not in result.stderr
    pseudo = json.loads(result.stdout)["pseudo_labels"]
    assert pseudo["teacher"] == f"warm start from {model_a}"
    assert pseudo["offered"] == 200
    # Asked for by name, the committee (copies of --model, which a warm start replaces)
    # is refused with what to write instead.
    result = cli(
        "replay", str(path), "--warm-start", str(model_a), "--pseudo-label",
        "--teacher", "committee", check=False,
    )  # fmt: skip
    assert_one_line_error(result, 2, "'--teacher'", "warm:", "committee:SPEC")


HELP_SECTIONS = [
    "Main options",
    "Input",
    "Model",
    "State, checkpoints and limits",
    "Output",
    "Warm start (transfer learning)",
    "Kafka",
    "Keys (one model per key)",
    "Pseudo-labels and late labels",
    "Drift",
    "HTTP: metrics, health, predictions",
    "Logging",
    "Other options",
]


@pytest.mark.parametrize("command", ["run", "replay"])
def test_help_lists_the_options_in_sections_with_their_variables(command):
    from streamlearn.cli import main

    text = cli(command, "--help").stdout
    lines = text.splitlines()
    titles = [line[:-1] for line in lines if line.endswith(":") and not line.startswith(" ")]
    expected = list(HELP_SECTIONS)
    if command == "replay":
        expected.insert(expected.index("Output") + 1, "Replay")
    assert titles == expected
    # The options people set first come first.
    first, end = lines.index("Main options:"), lines.index("Input:")
    options = [line.split()[0] for line in lines[first + 1 : end] if line.startswith("  --")]
    assert options[:3] == ["--model", "--state-dir", "--target"]
    # Every option with a variable names it; every option is listed once.
    flat = " ".join(text.split())
    params = main.commands[command].params
    for param in params:
        if param.envvar:
            assert f"env var: {param.envvar}" in flat, param.name
    entries = [line.split()[0] for line in lines if line.startswith("  -")]
    for param in params:
        if param.param_type_name == "option":
            named = param.opts[-1]
            assert sum(entry.rstrip(",") in param.opts for entry in entries) == 1, named
    for shown in (
        "--state-dir DIR", "--config FILE", "--warm-start PATH", "--kafka-config FILE",
        "--dead-letter FILE|URL", "--predictions FILE|URL",
    ):  # fmt: skip
        assert shown in text


def test_help_imports_nothing_heavy():
    """``--help`` answers without the model libraries: start-up stays short."""
    code = (
        "import sys\n"
        "from streamlearn.cli import main\n"
        "try:\n"
        "    main(['replay', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = {'numpy', 'river', 'sklearn', 'pandas', 'prometheus_client', 'kafka', 'tqdm'}\n"
        "print(sorted(heavy & set(sys.modules)), file=sys.stderr)\n"
    )
    import sys

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stderr.strip() == "[]"


@pytest.mark.slow
def test_log_level_after_the_command(data, tmp_path):
    path, _, _ = data
    state = tmp_path / "state"
    cli("replay", str(path), "--state-dir", str(state))
    resumed = "INFO streamlearn.app: resuming"
    assert resumed in cli("replay", str(path), "--state-dir", str(state)).stderr
    quiet = cli("replay", str(path), "--state-dir", str(state), "--log-level", "warning")
    assert resumed not in quiet.stderr
    quiet = cli("--log-level", "warning", "replay", str(path), "--state-dir", str(state))
    assert resumed not in quiet.stderr
    # After the command, it wins over the one before it and over the variable.
    loud = cli(
        "--log-level", "error", "replay", str(path), "--state-dir", str(state),
        "--log-level", "info", env={"STREAMLEARN_LOG_LEVEL": "error"},
    )  # fmt: skip
    assert resumed in loud.stderr
    assert "--log-level" in cli("inspect", "--help").stdout
    assert "env var: STREAMLEARN_LOG_LEVEL" in " ".join(cli("--help").stdout.split())
    assert cli("inspect", str(state), "--log-level", "debug").returncode == 0
