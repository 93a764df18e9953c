"""State dirs written before the restructure (commit 1091d7a) load, resume and report.

The fixtures (tests/fixtures/state_1091d7a, README.md there) are checkpoints whose pickles
name the old flat modules (``streamlearn.pseudo``, ``streamlearn.drift``, ...). A user who
upgrades must not lose months of learning: ``inspect`` shows what the old version showed,
and a resumed replay ends where this version's own resume and its replay of everything from
scratch end (to the last bit, where no pseudo-labels are learned).
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from streamhelpers import STREAMLEARN, cli
from streamlearn.drift.monitor import DriftMonitor
from streamlearn.state import CheckpointStore

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "state_1091d7a"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: Each state dir: its input and the flags it was made with (as in make_states.sh).
STATES: dict[str, tuple[str, list[str]]] = {
    "sgd": (
        "drift.csv",
        ["--id-column", "id", "--label-ttl", "200r", "--on-drift", "background"],
    ),
    "river": (
        "late.jsonl",
        [
            *("--model", "StandardScaler | LinearRegression", "--drift-detector", "page-hinkley"),
            *("--drift-features", "a,b", "--drift-warmup", "200", "--on-drift", "reset"),
            *("--pseudo-label", "--teacher", "KNNRegressor", "--label-ttl", "100r"),
        ],
    ),
    # A.joblib is a pickle, as 1091d7a's pretrain wrote it: loading it needs --trust-pickle.
    "mlp": (
        "warm.csv",
        ["--warm-start", "A.joblib", "--trust-pickle", "--transfer-mode", "extract"],
    ),
    "renamed": (
        "renamed.csv",
        ["--warm-start", "river", "--feature-map", "u=a,v=b", "--drift-detector", "none"],
    ),
    "threaded": (
        "late.csv",
        [
            *("--id-column", "id", "--pseudo-label", "--pseudo-window", "10"),
            *("--teacher-k", "20", "--label-ttl", "200r", "--threaded"),
        ],
    ),
}
#: An old state resumed ends as this version's own resume and its replay of every row at
#: once, to the last bit: this version learns these flags as 1091d7a did.
EXACT = ("sgd",)
#: Warm starts: this version starts B otherwise (its learning rate, the baseline guard), so
#: a resumed old B is checked against itself continued record by record on the new rows.
CONTINUED = ("mlp", "renamed")
#: Pseudo-labels: where in the stream one is learned changed (1091d7a: at the end of the
#: loop's batch; now when its window fills), and with it the model; the counts did not.
PSEUDO = ("river", "threaded")
#: Inputs of the model predictions compared after a resume.
PROBES = {
    "sgd": [{"a": 0.3, "b": -1.2}, {"a": -2.0, "b": 0.5}],
    "mlp": [{"x0": 0.3, "x1": -1.2, "x2": 0.7}, {"x0": -2.0, "x1": 0.5, "x2": 0.0}],
    "renamed": [{"u": 0.3, "v": -1.2}, {"u": -2.0, "v": 0.5}],
}


def _workspace(folder: Path) -> Path:
    """A copy of the fixtures (the tests write new generations; the fixtures stay as made).

    Their checkpoints are of format 1, from before checkpoints were signed: their user
    vouches for them once with ``streamlearn sign``, as the upgrade notes say.
    """
    work = folder / "work"
    shutil.copytree(FIXTURES, work, ignore=shutil.ignore_patterns("*.inspect.json"))
    for state in STATES:
        assert cli("sign", str(work / state)).stdout.startswith("signed ")
    return work


def _run_all(commands: list[tuple[Path, list[str]]]) -> list[str]:
    """Run ``streamlearn`` commands (in their folders) two at a time, as the machine has
    two cores; their stdouts."""
    outputs: list[str] = []
    for start in range(0, len(commands), 2):
        pair = commands[start : start + 2]
        running = [
            subprocess.Popen(
                [*STREAMLEARN, *args],
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for cwd, args in pair
        ]
        for (_, args), process in zip(pair, running, strict=True):
            stdout, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, f"streamlearn {' '.join(args)}:\n{stderr}"
            outputs.append(stdout)
    return outputs


def _without_place(summary: dict[str, Any]) -> dict[str, Any]:
    """An ``inspect`` summary without what names the file and the moment (device, inode, time)."""
    return {key: value for key, value in summary.items() if key not in ("checkpoint", "position")}


def test_the_table_names_classes_that_exist() -> None:
    from streamlearn.state.format import RENAMED

    for (old_module, old_name), (module, name) in RENAMED.items():
        assert getattr(importlib.import_module(module), name) is not None, (old_module, old_name)


def _missing(shown: Any, expected: Any, where: str = "") -> list[str]:
    """Where ``shown`` does not say what ``expected`` says: every key of a dict the same,
    recursively (keys ``expected`` lacks are new in this version, and welcome)."""
    if isinstance(expected, dict) and isinstance(shown, dict):
        return [
            wrong
            for key, value in expected.items()
            for wrong in (
                _missing(shown[key], value, f"{where}.{key}")
                if key in shown
                else [f"{where}.{key}: missing"]
            )
        ]
    return [] if shown == expected else [f"{where}: {shown!r}, not {expected!r}"]


@pytest.mark.slow
@pytest.mark.parametrize("state", sorted(STATES))
def test_inspect_reads_an_old_state_as_the_old_version_did(tmp_path: Path, state: str) -> None:
    work = _workspace(tmp_path)
    result = cli("inspect", "--json", str(work / state), check=False)
    assert result.returncode == 0, result.stderr
    expected = json.loads((FIXTURES / f"{state}.inspect.json").read_text())
    assert _missing(json.loads(result.stdout), expected) == []


def _model(state_dir: Path) -> Any:
    # The fixtures themselves are read as they are: unsigned, trusted here explicitly.
    store = CheckpointStore(state_dir, lock=False, unsigned=state_dir.is_relative_to(FIXTURES))
    loaded = store.load()
    assert loaded is not None
    return loaded.state["learner"].model


def test_an_old_error_watch_warms_up_as_this_versions_does() -> None:
    """A restored 1091d7a drift monitor is this version's: its error watch counts the
    warm-up it did as one round, and after a reset or swap it warms up in rounds while the
    error falls, as a fresh monitor's does (1091d7a's warm-up was a fixed one)."""
    loaded = CheckpointStore(FIXTURES / "sgd", lock=False, unsigned=True).load()
    assert loaded is not None
    old = loaded.state["extensions"]["drift"]
    fresh = DriftMonitor(old.config)
    assert old.error_watch.state() == {
        "phase": "monitoring",
        "warmup_rounds": 1,
        "scale": old.error_watch.scale,
    }
    for monitor in (old, fresh):
        monitor.error_watch.restart(old.config.warmup)
    assert old.error_watch.state() == fresh.error_watch.state()
    assert old.error_watch.round_length == fresh.error_watch.round_length == old.config.warmup


def _replay(state: str, state_dir: str) -> list[str]:
    """``replay`` arguments: the state's input and flags, into ``state_dir``."""
    source, flags = STATES[state]
    return ["replay", source, "--state-dir", state_dir, *flags, "--no-progress", "--inspect-json"]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Any]:
    """Each old state resumed on its input's next rows (``"old"``); for ``EXACT`` and
    ``PSEUDO`` states this version's own run of the same two steps (``"first"``: the first
    rows from scratch, then ``"new"``: the resume), and for ``EXACT`` states this version
    replaying all rows at once (``"scratch"``). ``{(state, step): inspect summary}``;
    ``(state, "work")`` is the state's folder.
    """
    folder = tmp_path_factory.mktemp("compat")
    works = {state: _workspace(folder / state) for state in STATES}
    own = [state for state in STATES if state not in CONTINUED]
    first = _run_all([(works[state], _replay(state, "new")) for state in own])
    for state, work in works.items():
        stem, ext = STATES[state][0].rsplit(".", 1)
        with open(work / f"{stem}.{ext}", "a") as whole:
            whole.write((work / f"{stem}.more.{ext}").read_text())
    steps = [(state, "old") for state in STATES] + [(state, "new") for state in own]
    steps += [(state, "scratch") for state in EXACT]
    resumes = [
        (works[state], _replay(state, state if step == "old" else step)) for state, step in steps
    ]
    summaries: dict[tuple[str, str], Any] = {
        key: json.loads(out) for key, out in zip(steps, _run_all(resumes), strict=True)
    }
    for state, out in zip(own, first, strict=True):
        summaries[state, "first"] = json.loads(out)
    for state, work in works.items():
        summaries[state, "work"] = work
    return summaries


@pytest.mark.slow  # the resumes: about twenty replays
@pytest.mark.parametrize("state", EXACT)
def test_a_resumed_old_state_ends_as_a_replay_from_scratch(
    resumed: dict[tuple[str, str], Any], state: str
) -> None:
    before = json.loads((FIXTURES / f"{state}.inspect.json").read_text())
    assert _missing(_without_place(resumed[state, "first"]), _without_place(before)) == [], (
        "this version no longer learns the first rows as 1091d7a did: the comparisons "
        "below stand on that; see CONTINUED and PSEUDO for states compared otherwise"
    )
    old = resumed[state, "old"]
    assert old["records_learned"] > before["records_learned"]  # it went on learning
    work = resumed[state, "work"]
    old_model = _model(work / state)
    for oracle in ("new", "scratch"):
        assert _without_place(old) == _without_place(resumed[state, oracle]), oracle
        model = _model(work / oracle)
        for x in PROBES[state]:
            assert old_model.predict_one(x) == model.predict_one(x), oracle


def _rows(path: Path, header: str) -> list[tuple[dict[str, float], float]]:
    """``(x, y)`` of a headerless CSV of floats whose last column is the target."""
    *names, _ = header.split(",")
    rows = []
    for line in path.read_text().splitlines():
        *values, y = (float(value) for value in line.split(","))
        rows.append((dict(zip(names, values, strict=True)), y))
    return rows


@pytest.mark.slow  # the resumes: about twenty replays
@pytest.mark.parametrize("state", CONTINUED)
def test_a_resumed_old_warm_start_goes_on_learning_its_own_model(
    resumed: dict[tuple[str, str], Any], state: str
) -> None:
    source = STATES[state][0]
    stem, ext = source.rsplit(".", 1)
    header = (FIXTURES / source).read_text().split("\n", 1)[0]
    rows = _rows(FIXTURES / f"{stem}.more.{ext}", header)
    before = json.loads((FIXTURES / f"{state}.inspect.json").read_text())
    old = resumed[state, "old"]
    assert old["records_learned"] == before["records_learned"] + len(rows)
    # The old model, loaded as it was saved, then predicted and learned on each new row.
    by_hand = _model(FIXTURES / state)
    for x, y in rows:
        by_hand.predict_one(x)
        by_hand.learn_one(x, y)
    resumed_model = _model(resumed[state, "work"] / state)
    for x in PROBES[state]:
        assert resumed_model.predict_one(x) == by_hand.predict_one(x)


@pytest.mark.slow  # the resumes: about twenty replays
@pytest.mark.parametrize("state", PSEUDO)
def test_a_resumed_old_pseudo_label_state_decides_every_candidate_once(
    resumed: dict[tuple[str, str], Any], state: str
) -> None:
    """The labeler's queue, its verdicts not yet applied and its teacher carry over: every
    unlabeled record is decided once, the teacher has learned every true label once, and
    the true labels are learned and joined as by this version's own resume."""
    old, new = resumed[state, "old"], resumed[state, "new"]
    for key in ("records_seen", "records_learned", "records_unlabeled", "pending_labels"):
        assert old[key] == new[key], key
    counts = old["pseudo_labels"]
    assert counts["accepted"] + counts["rejected"] + counts["queued"] == counts["offered"]
    for key in ("offered", "teacher_learned"):
        assert counts[key] == new["pseudo_labels"][key], key


@pytest.mark.slow
def test_report_draws_old_states(tmp_path: Path) -> None:
    work = _workspace(tmp_path)
    out = tmp_path / "old.png"
    result = cli("report", *(str(work / state) for state in sorted(STATES)), "--out", str(out))
    assert result.stdout.strip() == str(out)
    assert out.read_bytes()[:8] == PNG_MAGIC
