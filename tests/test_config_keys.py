"""The ``--config`` TOML file through the command line: keys are the options' names.

A key is an option's long name without its dashes, written with dashes or underscores
(``state-dir``, ``state_dir``, ``from``, ``inspect-json``); ``X`` (a list) or a ``[kafka]``
table hold ``-X`` client settings; top-level keys are shared by ``run`` and ``replay``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from streamhelpers import cli, make_regression, write_csv
from streamlearn.cli import main
from streamlearn.config import Settings


@pytest.fixture
def stream(tmp_path: Path) -> Path:
    X, y, _ = make_regression(300, d=2, seed=3)
    path = tmp_path / "stream.csv"
    write_csv(path, X, y)
    return path


def toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "streamlearn.toml"
    path.write_text(text)
    return path


def settings_of(monkeypatch: pytest.MonkeyPatch, *args: str) -> Settings:
    """The ``Settings`` the command line resolves (nothing is run)."""
    import streamlearn.cli.run as commands

    seen: list[Settings] = []

    def resolve(params: dict[str, Any], *, follow: bool, inspect_json: bool = False) -> None:
        seen.append(commands._settings(params, follow=follow))

    monkeypatch.setattr(commands, "run_app", resolve)
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return seen[0]


def test_keys_are_option_names_with_dashes_or_underscores(stream, tmp_path, monkeypatch):
    config = toml(
        tmp_path,
        'from = "latest"\nstate-dir = "s"\nrolling_window = 7\nbootstrap-servers = "b:9092"\n'
        'X = ["fetch.max.bytes=1000"]\nthreaded = true\n'
        '[kafka]\n"request.timeout.ms" = 20000\n"ssl.check.hostname" = false\n'
        "[run]\ngroup_id = \"g\"\n",
    )  # fmt: skip
    settings = settings_of(monkeypatch, "run", "kafka://b:9092/t", "--config", str(config))
    assert settings.start_from == "latest"
    assert settings.state_dir == Path("s") and settings.rolling_window == 7
    assert settings.bootstrap_servers == "b:9092" and settings.group_id == "g"
    assert settings.kafka_options == (
        "fetch.max.bytes=1000",
        "request.timeout.ms=20000",
        "ssl.check.hostname=false",
    )
    assert settings.pseudo.deterministic is False  # threaded = true: the flag's other name


def test_the_kafka_table_reaches_the_kafka_client(tmp_path):
    config = toml(tmp_path, '[kafka]\n"no.such.setting" = 1\n')
    result = cli("replay", "kafka://127.0.0.1:9/t", "--config", str(config), check=False)
    assert result.returncode == 2, result.stderr
    assert "unknown Kafka client setting 'no.such.setting'" in result.stderr


@pytest.mark.slow
def test_a_key_of_replay_only_at_top_level_does_not_break_run(stream, tmp_path, monkeypatch):
    config = toml(tmp_path, "inspect-json = true\nrate = 100\nprogress = false\nlr = 0.05\n")
    assert settings_of(monkeypatch, "run", str(stream), "--config", str(config)).lr == 0.05
    summary = json.loads(cli("replay", str(stream), "--config", str(config)).stdout)
    assert summary["records_learned"] == 300


def test_a_replay_key_in_the_run_table_is_an_error_naming_it(stream, tmp_path):
    config = toml(tmp_path, "[run]\ninspect_json = true\n")
    result = cli("run", str(stream), "--config", str(config), check=False)
    assert result.returncode == 2
    assert "inspect_json (an option of replay only)" in result.stderr


def test_unknown_keys_are_listed_with_the_option_names(stream, tmp_path):
    config = toml(tmp_path, "learning_rate = 0.1\nstart_fromm = 'latest'\n")
    result = cli("replay", str(stream), "--config", str(config), check=False)
    assert result.returncode == 2
    error = result.stderr
    assert "learning_rate" in error and "start_fromm" in error
    assert "did you mean" in error
    # The known keys are listed as options are named, never as parameters are.
    assert "state-dir" in error and "from" in error and "inspect-json" in error
    for internal in ("start_from", "kafka_options", "inspect_json"):
        assert internal not in error.replace("start_fromm", "")


def test_one_option_set_twice_in_a_table_is_an_error(stream, tmp_path):
    config = toml(tmp_path, 'state-dir = "a"\nstate_dir = "b"\n')
    result = cli("replay", str(stream), "--config", str(config), check=False)
    assert result.returncode == 2
    assert "state-dir" in result.stderr and "twice" in result.stderr


def test_bad_values_name_the_key(stream, tmp_path):
    for text, needles in [
        ('threaded = "yes"\n', ("threaded", "true or false")),
        ("[kafka]\nnested = {a = 1}\n", ("[kafka]", "nested")),
        ("X = 3\n", ("X", "KEY=VALUE")),
    ]:
        config = toml(tmp_path, text)
        result = cli("replay", str(stream), "--config", str(config), check=False)
        assert result.returncode == 2, text
        for needle in needles:
            assert needle in result.stderr, (text, result.stderr)


def test_the_command_help_names_the_config_keys():
    text = click.unstyle(cli("run", "--help").stdout)
    assert "[kafka]" in text
