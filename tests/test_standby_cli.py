"""``run --standby`` is refused with one line, exit 2, where it cannot mean anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from streamlearn.cli import main


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["run", "{csv}", "--state-dir", "{state}"], "needs a kafka:// source"),
        (["run", "kafka://127.0.0.1:1/t?group=g"], "needs a --state-dir"),
        (["run", "kafka://127.0.0.1:1/t", "--state-dir", "{state}"], "needs a consumer group"),
        (
            ["run", "kafka://127.0.0.1:1/t?group=g", "--state-dir", "{state}", "--key-by", "k"],
            "with --key-by the group",
        ),
        (["replay", "kafka://127.0.0.1:1/t?group=g", "--state-dir", "{state}"], "for run"),
        (
            ["run", "kafka://127.0.0.1:1/t?group=g", "--state-dir", "{state}", "--reset"],
            "every takeover",
        ),
        (
            [
                "run",
                "kafka://127.0.0.1:1/t?group=g",
                "--state-dir",
                "{state}",
                "--predictions",
                "{csv}.out",
            ],
            "give a kafka:// topic",
        ),
    ],
)
def test_standby_without_what_it_needs_is_a_usage_error(
    tmp_path: Path, args: list[str], says: str
) -> None:
    csv = tmp_path / "rows.csv"
    csv.write_text("x,y\n1,2\n")
    filled = [a.format(csv=csv, state=tmp_path / "state") for a in args]
    result = CliRunner().invoke(main, [*filled, "--standby"])
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "state").exists()  # refused before anything was opened


def test_a_plain_run_refuses_a_state_dir_a_group_shares(tmp_path: Path) -> None:
    from streamlearn.state import CheckpointStore

    shared = CheckpointStore(tmp_path / "state", shared=True)  # an instance of a group
    try:
        csv = tmp_path / "rows.csv"
        csv.write_text("x,y\n1,2\n")
        result = CliRunner().invoke(
            main, ["replay", str(csv), "--state-dir", str(tmp_path / "state")]
        )
    finally:
        shared.close()
    assert result.exit_code == 1, result.output
    assert "in use by the --standby instances of a group" in result.output
