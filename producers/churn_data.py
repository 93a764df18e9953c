"""The binary classification example: customers who churn (``yes``) or stay (``no``).

Four features, each of a scale the seed's update takes raw, and a label drawn from a logistic
model of them, so ``--model logistic`` has a true answer to approach. After the labeled rows
come three malformed rows (text for a number, NaN, a third class: dead letters) and three
unlabeled ones (they get predictions), as ``examples/stream.csv`` has. Fixed by a seed, so
tests and the README see the same numbers: ``python -m streamlearn.producers.churn_data``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["COEFFICIENTS", "FEATURES", "INTERCEPT", "TARGET", "churn_rows", "write_churn"]

#: The feature columns, in order: years as a customer, monthly charges in hundreds, support
#: calls this quarter, 1 for a month-to-month contract.
FEATURES = ("tenure_years", "monthly_charges", "support_calls", "month_to_month")
#: The target column: ``yes`` (churned, the positive class) or ``no``.
TARGET = "churned"
#: The true model: ``P(churned) = sigmoid(INTERCEPT + COEFFICIENTS . x)``.
COEFFICIENTS = (-0.6, 2.0, 0.5, 1.2)
INTERCEPT = -1.5

#: Rows that go to the dead letters: text for a number, NaN, a class a binary model lacks.
BAD_ROWS = ("2.5,0.71,two,1,no", "1.0,nan,1,0,yes", "0.4,0.93,3,1,maybe")
#: Rows without a label: each gets a prediction.
UNLABELED_ROWS = ("0.2,1.05,4,1,", "5.5,0.35,0,0,", "2.0,0.80,1,1,")


def churn_rows(n: int = 2000, seed: int = 0) -> list[str]:
    """The CSV lines (header first) of ``n`` labeled rows, then the bad and unlabeled ones.

    >>> rows = churn_rows(n=3)
    >>> rows[0]
    'tenure_years,monthly_charges,support_calls,month_to_month,churned'
    >>> len(rows), rows[1].split(",")[-1] in ("yes", "no"), rows[-1]
    (10, True, '2.0,0.80,1,1,')
    """
    rng = np.random.default_rng(seed)
    tenure = rng.uniform(0.0, 6.0, size=n)
    charges = rng.uniform(0.2, 1.2, size=n)
    calls = rng.poisson(1.0, size=n)
    monthly = (rng.uniform(size=n) < 0.5).astype(np.int64)
    margin = INTERCEPT + np.column_stack([tenure, charges, calls, monthly]) @ COEFFICIENTS
    churned = rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-margin))
    lines = [",".join((*FEATURES, TARGET))]
    for t, c, k, m, y in zip(tenure, charges, calls, monthly, churned, strict=True):
        lines.append(f"{t:.2f},{c:.2f},{k},{m},{'yes' if y else 'no'}")
    return [*lines, *BAD_ROWS, *UNLABELED_ROWS]


def write_churn(path: Path, n: int = 2000, seed: int = 0) -> Path:
    """Write ``churn_rows(n, seed)`` to ``path``."""
    path.write_text("\n".join(churn_rows(n, seed)) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m streamlearn.producers.churn_data [PATH]``: write the example stream."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="examples/churn.csv", type=Path)
    parser.add_argument("--rows", type=int, default=2000, help="labeled rows (at most 1e6)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 1 <= args.rows <= 1_000_000:
        parser.error(f"--rows must be in 1..1000000, got {args.rows}")
    write_churn(args.path, args.rows, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
