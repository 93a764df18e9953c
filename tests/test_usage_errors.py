"""One line, never a traceback (issue 16, items 10 and 12).

A value the daemon cannot use, or a flag that means nothing with the others given, is said
in one line with the option to change: exit 2 for how the command was called, exit 1 for a
file or a directory. Flags set to their defaults through the environment or the config file
are not "given".
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import Result

from streamhelpers import ROOT, cli, invoke, make_regression, write_csv


def assert_one_line(result: Result, code: int, *needles: str) -> None:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error:"), result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.fixture
def stream_csv(tmp_path: Path) -> Path:
    X, y, _ = make_regression(30, d=2, seed=3)
    path = tmp_path / "stream.csv"
    write_csv(path, X, y)
    return path


def _toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "streamlearn.toml"
    path.write_text(text)
    return str(path)


# -- item 10: tracebacks where a one-line error belongs --------------------------------------


def test_a_5000_step_pipeline_is_a_usage_error(stream_csv):
    spec = " | ".join(["StandardScaler"] * 5000) + " | LinearRegression"
    assert_one_line(invoke("replay", str(stream_csv), "--model", spec), 2, "at most")


def test_argument_types_are_checked_when_the_spec_is_built(stream_csv):
    result = invoke("replay", str(stream_csv), "--model", "LinearRegression(l2=b'x')")
    assert_one_line(result, 2, "l2 must be a number")
    result = invoke(
        "replay", str(stream_csv), "--model", "HoeffdingTreeRegressor(grace_period=2.5)"
    )
    assert_one_line(result, 2, "grace_period must be an integer")
    result = invoke("replay", str(stream_csv), "--model", "LinearRegression(l2=1e999)")
    assert_one_line(result, 2, "finite")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("state_dir = 5", "state-dir must be a string"),
        ("rolling_window = 9999999999999999999", "rolling-window"),
        ("checkpoint_every = 1.5", "checkpoint-every must be an integer"),
        ("checkpoint_every = true", "checkpoint-every must be an integer"),
        ("reset = 'yes'", "reset must be true or false"),
        ("lr = '0.1'", "lr must be a number"),
    ],
)
def test_config_values_of_the_wrong_type_are_refused(stream_csv, tmp_path, text, needle):
    result = invoke("replay", str(stream_csv), "--config", _toml(tmp_path, text))
    assert_one_line(result, 2, needle)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--rate", "1e-300"], "--rate"),
        (["--rate", "inf"], "--rate"),
        (["--divergence-factor", "nan"], "--divergence-factor"),
        (["--checkpoint-interval", "1e300"], "--checkpoint-interval"),
        (["--metrics-host", "", "--metrics-port", "0"], "--metrics-host"),
        (["--metrics-host", "  ", "--metrics-port", "0"], "--metrics-host"),
    ],
)
def test_values_no_clock_or_socket_can_use_are_usage_errors(stream_csv, args, needle):
    assert_one_line(invoke("replay", str(stream_csv), *args), 2, needle)


def test_a_bad_checkpoint_fork_mode_is_a_usage_error_at_start(stream_csv, tmp_path):
    result = invoke(
        "replay",
        str(stream_csv),
        "--state-dir",
        str(tmp_path / "state"),
        env={"STREAMLEARN_CHECKPOINT_FORK": "sometimes"},
    )
    assert_one_line(result, 2, "STREAMLEARN_CHECKPOINT_FORK")


def _read_only_dir(tmp_path: Path) -> Path:
    target = tmp_path / "ro"
    target.mkdir()
    if os.geteuid() != 0:
        target.chmod(0o555)
        return target
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"running as root and cannot mount a read-only tmpfs: {mounted.stderr!r}")
    return target


def test_a_read_only_state_dir_is_a_one_line_error(stream_csv, tmp_path):
    state = _read_only_dir(tmp_path)
    try:
        result = cli("replay", str(stream_csv), "--state-dir", str(state), check=False)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(state)], check=False)
        else:
            state.chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error:") and str(state) in last, result.stderr


def test_the_installed_daemon_reads_no_test_only_variable():
    found = subprocess.run(
        ["grep", "-rn", "STREAMLEARN_TEST", str(ROOT / "daemon")], capture_output=True, text=True
    )
    assert found.stdout == "", found.stdout


# -- item 12: meaningless combinations --------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--reset"], "--state-dir"),
        (["--transfer-mode", "extract"], "--warm-start"),
        (["--feature-map", "a=x"], "--warm-start"),
        (["--teacher", "KNNRegressor"], "--pseudo-label"),
        (["-G", "group"], "kafka://"),
        (["-X", "fetch.max.bytes=1"], "kafka://"),
        (["--kafka-config", "client.properties"], "kafka://"),
        (["--from", "latest"], "kafka://"),
        (["--kafka-client", "confluent"], "kafka://"),
        (["--on-data-loss", "reset"], "kafka://"),
        (["--target", "x0", "--id-column", "x0"], "--id-column"),
        (["--id-column", "x0", "--features", "x0,x1"], "--features"),
        (["--label-ttl", "10m"], "--id-column"),
    ],
)
def test_meaningless_combinations_are_usage_errors(stream_csv, args, needle):
    assert_one_line(invoke("replay", str(stream_csv), *args), 2, needle)


def test_a_flag_at_its_default_through_env_or_config_is_not_given(stream_csv, tmp_path):
    env = {"STREAMLEARN_TRANSFER_MODE": "finetune", "STREAMLEARN_FROM": "earliest"}
    result = invoke("replay", str(stream_csv), env=env)
    assert result.exit_code == 0, result.output
    config = _toml(tmp_path, 'reset = false\nkafka_client = "kafka-python"\nteacher = "committee"')
    result = invoke("replay", str(stream_csv), "--config", config)
    assert result.exit_code == 0, result.output
    # Not at the default: given, and meaningless without --warm-start.
    config = _toml(tmp_path, 'transfer_mode = "extract"')
    assert_one_line(invoke("replay", str(stream_csv), "--config", config), 2, "--warm-start")
    result = invoke("replay", str(stream_csv), env={"STREAMLEARN_RESET": "1"})
    assert_one_line(result, 2, "--state-dir")


def test_an_empty_column_name_in_a_csv_header_is_refused(tmp_path):
    path = tmp_path / "trailing.csv"
    path.write_text("a,b,y,\n1,2,3,\n")
    result = cli("replay", str(path), check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error:") and "empty" in last, result.stderr


@pytest.mark.slow
def test_a_json_stream_without_the_target_key_warns_once(tmp_path):
    path = tmp_path / "unlabeled.jsonl"
    path.write_text("".join(json.dumps({"a": i, "label": i}) + "\n" for i in range(2500)))
    result = cli("replay", str(path))
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, result.stderr
    assert "'y'" in warnings[0] and "--target" in warnings[0] and "1000" in warnings[0]
    # With the target there (even only now and then) nothing is said.
    rows = [{"a": i % 7, "y": 1.5} if i % 500 == 0 else {"a": i % 7} for i in range(2500)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert "target key" not in cli("replay", str(path)).stderr
    # ...nor when the labeled values are learned a block at a time, without the decoder (a
    # model that knows every feature already: after a restart).
    state = str(tmp_path / "state")
    labeled = [{"a": (i % 7) / 7, "y": 0.5 * (i % 7) / 7} for i in range(3000)]
    path.write_text("".join(json.dumps(row) + "\n" for row in labeled))
    cli("replay", str(path), "--state-dir", state)
    with path.open("a") as handle:
        for i, row in enumerate(labeled):
            handle.write(json.dumps(row if i % 4 == 0 else {"a": row["a"]}) + "\n")
    assert "target key" not in cli("replay", str(path), "--state-dir", state).stderr
