"""Learning-curve plots: a real PNG whose content follows the runs given."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from streamlearn.observe.report import Run, plot_curves, rolling_mae

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture
def errors() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    cold = np.abs(rng.normal(0, 1, 400)) * np.linspace(3, 0.5, 400)
    warm = np.abs(rng.normal(0, 0.3, 400))
    return cold, warm


def test_writes_a_png(tmp_path: Path, errors: tuple[np.ndarray, np.ndarray]) -> None:
    cold, _ = errors
    path = plot_curves([Run("cold", cold)], tmp_path / "deep" / "curves.png", window=50)
    assert path == tmp_path / "deep" / "curves.png"
    assert path.stat().st_size > 5000  # axes, a line, labels: far more than an empty image
    assert _png_size(path) == (900, 450)


def test_each_run_and_drift_marker_shows(
    tmp_path: Path, errors: tuple[np.ndarray, np.ndarray]
) -> None:
    cold, warm = errors
    one = plot_curves([Run("cold", cold)], tmp_path / "one.png", window=50).read_bytes()
    again = plot_curves([Run("cold", cold)], tmp_path / "again.png", window=50).read_bytes()
    two = plot_curves(
        [Run("cold", cold), Run("warm", list(warm))], tmp_path / "two.png", window=50
    ).read_bytes()
    drift = plot_curves(
        [Run("cold", cold, drift_at=[120, 300]), Run("warm", warm)], tmp_path / "d.png", window=50
    ).read_bytes()
    assert one == again  # the same runs draw the same picture
    assert len({one, two, drift}) == 3


def test_rolling_mae_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 5, 257)
    for window in (1, 7, 100, 1000):
        expected = [values[max(0, i + 1 - window) : i + 1].mean() for i in range(values.size)]
        np.testing.assert_allclose(rolling_mae(values, window), expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("runs", "window", "message"),
    [
        ([], 10, "at least one run"),
        ([Run("empty", [])], 10, "'empty' has no errors"),
        ([Run("bad", [1.0, float("nan")])], 10, "'bad' has NaN"),
        ([Run("ok", [1.0])], 0, "window must be at least 1"),
    ],
)
def test_bad_input_is_explained(tmp_path: Path, runs: list[Run], window: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plot_curves(runs, tmp_path / "x.png", window=window)
    assert not (tmp_path / "x.png").exists()
