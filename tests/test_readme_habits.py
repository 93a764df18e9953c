"""The README's "Habits from kcat, Vowpal Wabbit and River" commands, run as written.

Each command of the section's shell block runs in a scratch directory (with ``examples/`` and
a ``held_out.csv``), against the test broker instead of ``localhost:9092`` and on a topic of
this test's own instead of ``events``; every one must exit 0, and what they leave behind is
checked.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import uuid
from pathlib import Path

import pytest

from streamhelpers import ROOT, STREAMLEARN

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SECTION = "### Habits from kcat, Vowpal Wabbit and River"


def section_commands() -> list[str]:
    """The commands of the section's first ``sh`` block, comments and blank lines left out."""
    text = (ROOT / "README.md").read_text()
    assert SECTION in text, f"the README lost its section {SECTION!r}"
    block = text.split(SECTION, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_habits_run_as_written(kafka_bootstrap: str, tmp_path: Path) -> None:
    commands = section_commands()
    assert len(commands) >= 10
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    rows = (ROOT / "examples" / "stream.csv").read_text().splitlines()
    (tmp_path / "held_out.csv").write_text("\n".join([rows[0], *rows[1501:2001]]) + "\n")
    topic = f"events-{uuid.uuid4().hex[:8]}"
    outputs = []
    for command in commands:
        words = shlex.split(command.replace("localhost:9092", kafka_bootstrap), comments=True)
        words = [word.replace("events", topic) for word in words]
        assert words[0] == "streamlearn", command
        result = subprocess.run(
            [*STREAMLEARN, *words[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=180
        )
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        outputs.append(result)

    out = tmp_path / "out"
    inspect = [*STREAMLEARN, "inspect", "--json"]

    def summary(state: str) -> dict:
        result = subprocess.run([*inspect, str(out / state)], capture_output=True, text=True)
        return json.loads(result.stdout)

    backfill = summary(topic)
    assert backfill["records_learned"] == 2000  # all that produce sent (it skips bad rows)
    assert summary("since")["records_learned"] == 2000  # every record is after that time
    assert summary("p2")["records_learned"] <= 50
    assert list(summary("p2")["position"]["next_offsets"]) == ["2"]
    assert len((out / "all.jsonl").read_text().splitlines()) == 2002
    scored = next(json.loads(r.stdout) for r in outputs if '"records_scored"' in r.stdout)
    assert scored["records_scored"] == 500 and scored["records_learned"] == 0
    assert summary("model")["records_learned"] == 2000  # --no-learn left it as it was
    assert len((out / "rejected.jsonl").read_text().splitlines()) == 3
    assert b"<svg" in (out / "curves.svg").read_bytes()[:500]
