"""``report``: SVG/PDF and --dpi, --log-y and --skip, readable drift marks with their actions,
a warm start's frozen baseline, and the extra to install when matplotlib is missing."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streamhelpers import cli, make_regression, write_csv
from streamlearn.observe.report import (
    ACTION_MARKERS,
    BASELINE_GID,
    DRIFT_GID,
    KEY_GID,
    CurveRun,
    Run,
    draw_curves,
    load_curve,
)


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """State dirs of one stream with an abrupt change half way: drift alerted, drift reset,
    and a warm start from a batch model A."""
    folder = tmp_path_factory.mktemp("report")
    X, y, w = make_regression(4000, d=3, seed=9, noise=0.05)
    y[2000:] = X[2000:] @ (-3 * w) + 10.0
    stream = folder / "stream.csv"
    write_csv(stream, X, y)
    write_csv(folder / "a.csv", X[:300], y[:300])
    dirs = {name: folder / name for name in ("alert", "reset", "A", "warm")}
    cli("replay", str(stream), "--state-dir", str(dirs["alert"]))
    cli("replay", str(stream), "--state-dir", str(dirs["reset"]), "--on-drift", "reset")
    cli("replay", str(folder / "a.csv"), "--state-dir", str(dirs["A"]))
    cli("replay", str(stream), "--state-dir", str(dirs["warm"]), "--warm-start", str(dirs["A"]))
    return dirs


def legend_texts(figure: Any) -> list[str]:
    return [text.get_text() for text in figure.axes[0].get_legend().get_texts()]


def drift_lines(figure: Any) -> list[Any]:
    return [line for line in figure.axes[0].lines if line.get_gid() == DRIFT_GID]


@pytest.mark.parametrize(
    ("suffix", "head"), [(".png", b"\x89PNG\r\n\x1a\n"), (".svg", b"<svg"), (".pdf", b"%PDF-")]
)
@pytest.mark.slow
def test_the_suffix_chooses_png_svg_or_pdf(states, tmp_path: Path, suffix: str, head: bytes):
    out = tmp_path / f"curves{suffix}"
    cli("report", str(states["alert"]), str(states["warm"]), "--out", str(out))
    data = out.read_bytes()
    assert data.startswith(head) if suffix != ".svg" else head in data[:500]


def test_dpi_sets_the_png_size(states, tmp_path: Path) -> None:
    out = tmp_path / "big.png"
    cli("report", str(states["alert"]), "--out", str(out), "--dpi", "200")
    assert struct.unpack(">II", out.read_bytes()[16:24]) == (1800, 900)


def test_another_suffix_is_one_line(states, tmp_path: Path) -> None:
    result = cli("report", str(states["alert"]), "--out", str(tmp_path / "x.jpg"), check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'x.jpg'}: write a .png, .svg or .pdf file (the suffix says which)"
    ]


def test_one_legend_entry_per_run_and_drift_actions_marked(states) -> None:
    runs = [load_curve(states[name], name) for name in ("alert", "reset", "warm")]
    assert "reset" in runs[1].drift_actions and set(runs[0].drift_actions) == {"alert"}
    figure = draw_curves(runs)
    assert legend_texts(figure) == ["alert", "reset", "warm"]
    key = [artist for artist in figure.axes[0].artists if artist.get_gid() == KEY_GID]
    assert len(key) == 1
    present = sorted({action for run in runs for action in run.drift_actions})
    assert [text.get_text() for text in key[0].get_texts()] == present
    lines = drift_lines(figure)
    assert len(lines) == sum(len(run.drift_at) for run in runs)
    handles = figure.axes[0].get_legend().legend_handles
    for run, handle in zip(runs, handles, strict=True):  # each run's marks in its colour
        assert sum(line.get_color() == handle.get_color() for line in lines) == len(run.drift_at)
    markers = [line.get_marker() for line in lines]
    assert markers.count(ACTION_MARKERS["reset"]) == runs[1].drift_actions.count("reset") > 0


def test_runs_marked_at_the_same_record_all_show() -> None:
    # Two runs, drift at the same record: their dashes interleave and their markers stack.
    runs = [
        CurveRun("a", [1, 500, 1000], [1.0, 0.5, 0.4], drift_at=[500], drift_actions=["alert"]),
        CurveRun("b", [1, 500, 1000], [1.2, 0.6, 0.5], drift_at=[500], drift_actions=["reset"]),
    ]
    figure = draw_curves(runs)
    first, second = drift_lines(figure)
    assert first.get_color() != second.get_color()
    # matplotlib has no public getter for a line's dash pattern (offset, on-off sequence).
    offsets = [line._unscaled_dash_pattern[0] for line in (first, second)]
    assert offsets[0] != offsets[1]  # the second run's dashes fill the first's gaps
    tops = [line.get_ydata()[1] for line in (first, second)]
    assert tops[0] > tops[1]  # stacked markers
    assert [first.get_marker(), second.get_marker()] == ["o", "v"]
    assert legend_texts(figure) == ["a", "b"]


def test_a_warm_start_draws_its_frozen_baseline(states) -> None:
    warm = load_curve(states["warm"])
    from streamlearn.state import CheckpointStore

    loaded = CheckpointStore(states["warm"], lock=False).load()
    assert loaded is not None
    assert warm.baseline_mae == loaded.state["learner"].baseline_summary()["mae"]
    figure = draw_curves([load_curve(states["alert"]), warm])
    baseline = [line for line in figure.axes[0].lines if line.get_gid() == BASELINE_GID]
    assert len(baseline) == 1
    assert baseline[0].get_ydata()[0] == warm.baseline_mae
    assert len(legend_texts(figure)) == 2  # the baseline is named on its line, not in the legend
    assert load_curve(states["alert"]).baseline_mae is None


def test_log_y_and_skip_keep_the_warm_up_spike_from_flattening_the_curve(states) -> None:
    run = load_curve(states["alert"])
    assert draw_curves([run], log_y=True).axes[0].get_yscale() == "log"
    figure = draw_curves([run], skip=500)
    curve = figure.axes[0].lines[0]
    assert min(curve.get_xdata()) > 500
    assert "after the first 500" in figure.axes[0].get_xlabel()
    spike = max(run.rolling_mae)
    assert figure.axes[0].get_ylim()[1] < spike  # the spike is no longer what sets the scale


def test_skip_past_every_point_is_explained(states, tmp_path: Path) -> None:
    result = cli(
        "report", str(states["alert"]), "--skip", "99999", "--out", str(tmp_path / "x.png"),
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "has no point after the first 99999 records" in result.stderr


def test_without_matplotlib_the_message_names_the_extra(states, tmp_path: Path) -> None:
    hide = (
        "import runpy, sys; sys.modules['matplotlib'] = None; "
        f"sys.argv = ['streamlearn', 'report', {str(states['alert'])!r}, "
        f"'--out', {str(tmp_path / 'x.png')!r}]; "
        "runpy.run_module('streamlearn.cli', run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide], capture_output=True, text=True, env=os.environ.copy()
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: plotting needs matplotlib: pip install 'streamlearn[plot]'"
    )
    assert not (tmp_path / "x.png").exists()


def test_a_run_of_errors_takes_its_actions_too() -> None:
    figure = draw_curves([Run("r", [1.0] * 50, drift_at=[9, 29], drift_actions=["swap", "x"])])
    assert [line.get_marker() for line in drift_lines(figure)] == ["s", "o"]
    with pytest.raises(ValueError, match="one drift action per drift event"):
        draw_curves([Run("r", [1.0] * 50, drift_at=[9], drift_actions=["a", "b"])])
