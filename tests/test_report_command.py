"""``streamlearn report``: learning curves of real saved runs on one PNG, drift marked, mistakes
explained in one line."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from streamhelpers import ROOT, STREAMLEARN, cli
from streamlearn.cli.report import report_command
from streamlearn.learner import Learner
from streamlearn.models.sgd import SGDRegressor
from streamlearn.observe.report import (
    DRIFT_GID,
    CurveRun,
    ReportError,
    curve_from_state,
    draw_curves,
    load_curve,
    rolling_mae,
)
from streamlearn.state import CheckpointStore

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STREAM = ROOT / "examples" / "stream.csv"


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two real state dirs of examples/stream.csv: sgd, and StandardScaler | LinearRegression."""
    folder = tmp_path_factory.mktemp("states")
    sgd, river = folder / "D1", folder / "D2"
    # Both replays at once: the two cores make the fixture cost one replay.
    replays = [
        subprocess.Popen(
            [*STREAMLEARN, "replay", str(STREAM), "--state-dir", str(state_dir), *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for state_dir, extra in (
            (sgd, []),
            (river, ["--model", "StandardScaler | LinearRegression"]),
        )
    ]
    for replay in replays:
        _, stderr = replay.communicate(timeout=120)
        assert replay.returncode == 0, stderr
    return sgd, river


def _drift_lines(figure: Any) -> list[Any]:
    return [line for line in figure.axes[0].lines if line.get_gid() == DRIFT_GID]


@pytest.mark.slow
def test_two_runs_on_one_png(states: tuple[Path, Path], tmp_path: Path) -> None:
    d1, d2 = states
    out = tmp_path / "plots" / "x.png"
    result = cli("report", str(d1), str(d2), "--out", str(out))
    assert result.stdout.strip() == str(out)
    both = out.read_bytes()
    assert both[:8] == PNG_MAGIC
    single = CliRunner().invoke(report_command, [str(d1), "--out", str(tmp_path / "one.png")])
    assert single.exit_code == 0, single.output
    assert (tmp_path / "one.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "one.png").read_bytes() != both


@pytest.mark.slow
def test_curves_are_the_learners(states: tuple[Path, Path]) -> None:
    d1, d2 = states
    sgd, river = load_curve(d1), load_curve(d2)
    assert (sgd.label, river.label) == ("D1: sgd", "D2: StandardScaler | LinearRegression")
    assert sgd.records[0] == 1 and sgd.records[-1] == 2000
    assert sgd.window == 1000
    state = CheckpointStore(d1, lock=False).load()
    assert state is not None
    learner = state.state["learner"]
    assert sgd.rolling_mae[-1] == pytest.approx(learner.rolling_summary()["mae"], rel=1e-9)
    assert not np.allclose(sgd.rolling_mae, river.rolling_mae)


def test_reads_a_state_a_daemon_holds(states: tuple[Path, Path], tmp_path: Path) -> None:
    d1, _ = states
    held = CheckpointStore(d1)  # takes the lock, as a running daemon does
    try:
        result = CliRunner().invoke(
            report_command, [str(d1), "--out", str(tmp_path / "live.png"), "--label", "live"]
        )
    finally:
        held.close()
    assert result.exit_code == 0, result.output
    assert (tmp_path / "live.png").read_bytes()[:8] == PNG_MAGIC


def test_missing_state_is_one_line(tmp_path: Path) -> None:
    result = cli("report", str(tmp_path / "nope"), "--out", str(tmp_path / "x.png"), check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"Error: no state dir at {tmp_path / 'nope'}"]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "no checkpoint in"),
        (lambda p: _save(p, Learner(SGDRegressor())), "has learned no records yet"),
    ],
)
def test_states_with_nothing_to_plot(tmp_path: Path, make: Any, message: str) -> None:
    state_dir = tmp_path / "state"
    make(state_dir)
    result = CliRunner().invoke(report_command, [str(state_dir), "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_one_label_per_state(states: tuple[Path, Path], tmp_path: Path) -> None:
    d1, d2 = states
    result = CliRunner().invoke(report_command, [str(d1), str(d2), "--label", "only one"])
    assert result.exit_code == 2
    assert "give one --label per STATE_DIR (2) or none; got 1" in result.output


def test_without_matplotlib(
    states: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    result = CliRunner().invoke(report_command, [str(states[0]), "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: plotting needs matplotlib: pip install 'streamlearn[plot]'"
    )


# -- drift events -----------------------------------------------------------------------------


class FakeMonitor:
    """Stands in for the drift monitor: only ``summary()`` matters to the report."""

    def __init__(self, events: list[Mapping[str, Any]]) -> None:
        self.events = events

    def summary(self) -> dict[str, Any]:
        return {"drift_events": self.events, "drift_detectors": ["ADWIN"]}


def _learner(n: int) -> Learner:
    rng = np.random.default_rng(0)
    learner = Learner(SGDRegressor(lr=0.05), rolling_window=50)
    for i in range(n):
        x = float(rng.normal())
        learner.step({"x": x}, (2.0 if i < n // 2 else -3.0) * x + 1.0)
    return learner


def _save(state_dir: Path, learner: Learner) -> None:
    store = CheckpointStore(state_dir)
    store.save({"model_spec": "sgd", "learner": learner, "extensions": {}})
    store.close()


def test_drift_events_are_marked() -> None:
    learner = _learner(300)
    events = [
        {"record": 149, "detector": "ADWIN", "signal": "error"},
        {"record": 219, "detector": "PageHinkley", "signal": "error"},
    ]
    state = {
        "model_spec": "sgd",
        "learner": learner,
        "counters": {"records_seen": 300},
        "extensions": {"drift": FakeMonitor(events)},
    }
    run = curve_from_state(state, "with drift")
    # Stream index i is the (i + 1)-th record; here every record seen was learned.
    assert list(run.drift_at) == [150.0, 220.0]
    quiet = curve_from_state({"model_spec": "sgd", "learner": learner, "extensions": {}})
    figure = draw_curves([run, quiet])
    drift = _drift_lines(figure)
    assert len(drift) == 2
    assert [line.get_xdata()[0] for line in drift] == [150.0, 220.0]
    assert drift[0].get_color() == figure.axes[0].lines[0].get_color()  # the run's own colour
    assert len(figure.axes[0].lines) == 4  # two curves, two markers


def test_drift_events_map_onto_records_learned() -> None:
    learner = _learner(300)
    # 600 records seen, 300 learned (the others were unlabeled or rejected): stream index 399 is
    # about record 200 learned, unless the monitor says exactly when it was.
    events = [{"record": 399}, {"record": 9, "records_learned": 7}, {"detector": "no index"}]
    state = {
        "model_spec": "sgd",
        "learner": learner,
        "counters": {"records_seen": 600},
        "extensions": {"drift": FakeMonitor(events), "join": object()},
    }
    assert list(curve_from_state(state).drift_at) == [200.0, 7.0]


def test_no_drift_monitor_no_markers() -> None:
    learner = _learner(100)
    for extensions in ({}, {"drift": object()}, {"drift": FakeMonitor([])}):
        run = curve_from_state({"model_spec": "sgd", "learner": learner, "extensions": extensions})
        assert list(run.drift_at) == []
        assert _drift_lines(draw_curves([run])) == []
    assert curve_from_state({"model_spec": "sgd", "learner": learner}).label == "sgd"


def test_precomputed_points_need_matching_lengths() -> None:
    with pytest.raises(ValueError, match="one rolling MAE per point"):
        draw_curves([CurveRun("bad", [1, 2, 3], [0.5, 0.4])])
    with pytest.raises(ReportError, match="no learning curve"):
        curve_from_state({"model_spec": "sgd", "learner": object()})


def test_rolling_mae_survives_a_huge_error() -> None:
    # A model that blew up once (error 1e20) and recovered: with one running sum over the whole
    # stream, cancellation would draw the later windows at 0, the best score of all.
    errors = [1e20, 1.0, 1.0, 1.0, 0.5]
    np.testing.assert_allclose(rolling_mae(errors, 2), [1e20, 5e19, 1.0, 1.0, 0.75], rtol=1e-12)
