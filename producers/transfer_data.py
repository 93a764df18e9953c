"""The transfer-learning example of the seed: a data-rich source task and a related target task.

Model A is trained in batch on the source task (5000 rows); the target task (2000 rows) is the
same curve shifted and stretched, so a model started from A should learn it from far fewer
records than one started cold. Both are 1-d, like the seed's ``transfer_data.csv`` and
``transfer_data2.csv``, and fixed by a seed so that tests and docs see the same numbers.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "make_transfer_pair",
    "source_function",
    "target_function",
    "write_csv",
    "write_transfer_pair",
]

FloatArray = npt.NDArray[np.float64]

X_RANGE = (-3.0, 3.0)


def source_function(x: FloatArray) -> FloatArray:
    """The source task's noiseless curve: a wave on a parabola."""
    return 2.0 * np.sin(1.5 * x) + 0.3 * x**2


def target_function(x: FloatArray) -> FloatArray:
    """The target task: the source curve moved right by 0.4, stretched by 1.3 and lifted by 0.8."""
    return 1.3 * source_function(x - 0.4) + 0.8


def make_transfer_pair(
    seed: int = 0, n_source: int = 5000, n_target: int = 2000, noise: float = 0.2
) -> tuple[tuple[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]:
    """Draw ``((x, y) source, (x, y) target)``; x uniform in [-3, 3], Gaussian noise on y.

    Examples
    --------
    >>> (xs, ys), (xt, yt) = make_transfer_pair(n_source=5, n_target=3)
    >>> xs.shape, yt.shape
    ((5,), (3,))
    >>> bool(np.all(np.abs(xt) <= 3.0))
    True
    """
    rng = np.random.default_rng(seed)
    x_source = rng.uniform(*X_RANGE, size=n_source)
    y_source = source_function(x_source) + rng.normal(0.0, noise, size=n_source)
    x_target = rng.uniform(*X_RANGE, size=n_target)
    y_target = target_function(x_target) + rng.normal(0.0, noise, size=n_target)
    return (x_source, y_source), (x_target, y_target)


def write_csv(path: str | os.PathLike[str], x: FloatArray, y: FloatArray) -> Path:
    """Write ``x,y`` rows with a header; six decimals keep the files small and exact enough."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["x,y"] + [f"{xi:.6f},{yi:.6f}" for xi, yi in zip(x.tolist(), y.tolist(), strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_transfer_pair(
    directory: str | os.PathLike[str] = "examples", seed: int = 0
) -> tuple[Path, Path]:
    """Write ``transfer_source.csv`` and ``transfer_target.csv`` into ``directory``.

    Examples
    --------
    >>> import tempfile
    >>> source, target = write_transfer_pair(tempfile.mkdtemp())
    >>> source.name, len(source.read_text().splitlines()), len(target.read_text().splitlines())
    ('transfer_source.csv', 5001, 2001)
    >>> target.read_text().splitlines()[0]
    'x,y'
    """
    (x_source, y_source), (x_target, y_target) = make_transfer_pair(seed)
    directory = Path(directory)
    return (
        write_csv(directory / "transfer_source.csv", x_source, y_source),
        write_csv(directory / "transfer_target.csv", x_target, y_target),
    )


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m streamlearn.producers.transfer_data [--out-dir examples] [--seed 0]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out-dir", default="examples", help="where to write the two CSV files")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the pair")
    args = parser.parse_args(argv)
    for path in write_transfer_pair(args.out_dir, args.seed):
        print(path)


if __name__ == "__main__":
    main()
