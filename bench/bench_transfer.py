"""The seed's transfer-learning experiment as a stream: how many target records until the model is good?

Model A is the seed's network (1 -> 50 relu -> 50 relu -> 1) trained in batch for 400 epochs on the
source task (``examples/transfer_source.csv``); it is cached in a temporary folder. Then the target
task (``examples/transfer_target.csv``) is replayed once, prequentially (predict, score, learn), in
file order, by a cold model and by each transfer mode started from A. A run "reaches the target"
at the first record count n >= window where the MAE of the last ``window`` predictions is at most
``--target-mae``. The seed fine-tuned for 30 epochs where A took 400; here the same shows as
records needed. extract fits its output layer by recursive least squares (``head="rls"``, where
``--lr`` does not apply); partial K=1 is the same network with the SGD head.

Run: python bench/bench_transfer.py [--target-mae 0.35] [--window 100] [--lr 0.01]
                                    [--out out/transfer_curves.png] [--sweep] [--cost]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import math
import os
import platform
import shlex
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import river
import sklearn
from optional import require

from streamlearn.learner import Learner
from streamlearn.models.pretrain import pretrain
from streamlearn.models.registry import build_model, final_estimator
from streamlearn.models.transfer import BatchModel, frozen_baseline, load_batch_model, warm_start
from streamlearn.observe.report import Run, plot_curves, rolling_mae

ROOT = Path(__file__).resolve().parent.parent
SWEEP_LRS = (0.003, 0.01, 0.03, 0.1)

Rows = list[tuple[dict[str, float], float]]


@dataclass(frozen=True)
class Result:
    """One prequential pass over the target stream.

    ``records_to_target`` is None when the rolling MAE never reached the target; ``skipped``
    counts NaN/inf predictions and steps an MLP refused because they would make a weight
    non-finite; ``worst_error`` is the largest error relative to the range of the targets;
    ``seconds`` is the wall time of the whole pass (predict, score and learn every record).
    """

    mode: str
    abs_errors: np.ndarray
    records_to_target: int | None
    final_rolling_mae: float
    cumulative_mae: float
    worst_error: float
    skipped: int
    seconds: float

    @property
    def us_per_record(self) -> float:
        """Wall time per record, in microseconds (predict, score, learn)."""
        return 1e6 * self.seconds / max(len(self.abs_errors), 1)

    @property
    def diverged(self) -> bool:
        """Skipped steps, or an error a thousand times the range of the targets.

        A blown-up MLP may come back as a constant (dead ReLUs) with a modest final MAE; its
        huge errors on the way are what tell it apart.
        """
        return self.skipped > 0 or not self.worst_error <= 1000


def cached_model_a(source: Path, epochs: int, seed: int, cache_dir: Path) -> tuple[Path, str]:
    """Train A once per (source data, epochs, seed, scikit-learn version); reuse it after."""
    key = hashlib.sha256(
        source.read_bytes() + f"|{epochs}|{seed}|{sklearn.__version__}".encode()
    ).hexdigest()[:16]
    path = cache_dir / f"A-{key}.skops"
    if path.exists():
        return path, f"cached in {path}"
    started = time.perf_counter()
    result = pretrain(source, out=path, epochs=epochs, seed=seed)
    return path, (
        f"trained in {time.perf_counter() - started:.1f} s ({result.epochs_run} epochs, "
        f"training MSE {result.loss:.4f}), cached in {path}"
    )


def read_rows(path: Path, target: str = "y") -> tuple[Rows, list[str]]:
    """The CSV's rows as ``(x, y)`` in file order, and its feature names."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        features = [name for name in reader.fieldnames or [] if name != target]
        rows = [({f: float(row[f]) for f in features}, float(row[target])) for row in reader]
    return rows, features


def order_check(rows: Rows, features: Sequence[str]) -> float:
    """The largest |Spearman correlation| between a feature and the row number.

    A file sorted by x would make a prequential pass an extrapolation test, not a learning curve.
    """
    position = np.arange(len(rows), dtype=np.float64)
    worst = 0.0
    for name in features:
        ranks = np.argsort(np.argsort([x[name] for x, _ in rows])).astype(np.float64)
        worst = max(worst, abs(float(np.corrcoef(ranks, position)[0, 1])))
    return worst


def prequential(mode: str, model: Any, rows: Rows, window: int, target_mae: float) -> Result:
    """Replay ``rows`` through a ``Learner`` (the daemon's own test-then-train step)."""
    learner = Learner(model, rolling_window=window)
    ys = [y for _, y in rows]
    y_range = (max(ys) - min(ys)) or 1.0
    errors: list[float] = []
    skipped = 0
    started = time.perf_counter()
    for x, y in rows:
        yhat = learner.step(x, y)
        if math.isfinite(yhat):
            errors.append(abs(y - yhat))
        else:  # the Learner neither scores nor learns a NaN/inf prediction
            skipped += 1
    seconds = time.perf_counter() - started
    # An MLP refuses a step that would make a weight non-finite: a sign the lr is too large.
    skipped += int(getattr(final_estimator(model), "n_skipped_steps_", 0))
    abs_errors = np.array(errors)
    rolling = rolling_mae(abs_errors, window)[window - 1 :]
    reached = np.flatnonzero(rolling <= target_mae)
    rolling_now = learner.rolling_summary()["mae"]
    cumulative = learner.summary()["mae"]
    return Result(
        mode=mode,
        abs_errors=abs_errors,
        records_to_target=int(reached[0]) + window if reached.size else None,
        final_rolling_mae=math.nan if rolling_now is None else rolling_now,
        cumulative_mae=math.nan if cumulative is None else cumulative,
        skipped=skipped,
        seconds=seconds,
        worst_error=float(abs_errors.max(initial=0.0)) / y_range,
    )


def contenders(a: BatchModel, features: list[str], lr: float) -> dict[str, Callable[[], Any]]:
    """Mode name -> a factory of a fresh model. The cold MLP has A's shape but random weights."""
    return {
        "cold mlp(hidden=(50, 50))": lambda: build_model("mlp(hidden=(50, 50))", lr=lr),
        "cold StandardScaler | LinearRegression": lambda: build_model(
            "StandardScaler | LinearRegression"
        ),
        "A as is (frozen baseline)": lambda: frozen_baseline(a, stream_features=features),
        "extract": lambda: warm_start(a, "extract", stream_features=features, lr=lr),
        "finetune": lambda: warm_start(a, "finetune", stream_features=features, lr=lr),
        "partial K=1": lambda: warm_start(a, "partial", 1, stream_features=features, lr=lr),
        "partial K=2": lambda: warm_start(a, "partial", 2, stream_features=features, lr=lr),
    }


def learn_cost(make: Callable[[], Any], rows: Rows, passes: int = 20) -> tuple[float, float]:
    """Microseconds per ``learn_one`` and per ``predict_one``: the best of ``passes`` passes.

    The best pass, not the mean: on a shared machine the other processes only ever add time.
    The model first learns every row once, so its head is timed in its steady state.
    """
    model = make()
    for x, y in rows:
        model.learn_one(x, y)
    learn = min(
        timeit.repeat(lambda: [model.learn_one(x, y) for x, y in rows], number=1, repeat=passes)
    )
    predict = min(
        timeit.repeat(lambda: [model.predict_one(x) for x, _ in rows], number=1, repeat=passes)
    )
    return 1e6 * learn / len(rows), 1e6 * predict / len(rows)


def table(results: Sequence[Result], n_rows: int, cold: Result) -> str:
    """The results as a Markdown table."""
    lines = [
        "| mode | records to target | % of cold MLP | final rolling MAE | cumulative MAE "
        "| µs per record |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.records_to_target is None:
            reached, share = f"not in {n_rows}", "-"
        else:
            reached = str(r.records_to_target)
            share = (
                f"{100 * r.records_to_target / cold.records_to_target:.0f} %"
                if cold.records_to_target
                else "-"
            )
        note = " (diverged)" if r.diverged else ""
        lines.append(
            f"| {_cell(r.mode)}{note} | {reached} | {share} | {r.final_rolling_mae:.3f} "
            f"| {r.cumulative_mae:.3f} | {r.us_per_record:.0f} |"
        )
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (a pipeline's ``|`` would split it)."""
    return text.replace("|", "\\|")


def machine() -> str:
    """One line about where the numbers come from."""
    cpu = platform.processor() or platform.machine()
    return (
        f"{platform.system()} {platform.release()} {cpu}, {os.cpu_count()} CPUs; "
        f"Python {platform.python_version()}, river {river.__version__}, "
        f"scikit-learn {sklearn.__version__}, numpy {np.__version__}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", type=Path, default=ROOT / "examples" / "transfer_source.csv")
    parser.add_argument("--target", type=Path, default=ROOT / "examples" / "transfer_target.csv")
    parser.add_argument("--epochs", type=int, default=400, help="A's batch epochs (the seed: 400)")
    parser.add_argument("--seed", type=int, default=0, help="seed of A and of any shuffle")
    parser.add_argument("--window", type=int, default=100, help="records in the rolling MAE")
    parser.add_argument(
        "--target-mae",
        type=float,
        default=0.35,
        help="rolling MAE to reach (the noise alone gives about 0.16 on the example)",
    )
    parser.add_argument("--lr", type=float, default=0.01, help="learning rate of every MLP")
    parser.add_argument("--out", type=Path, default=Path("out") / "transfer_curves.png")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "streamlearn-bench-transfer",
        help="where model A is cached",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help=f"also print records to target for lr in {', '.join(map(str, SWEEP_LRS))}",
    )
    parser.add_argument(
        "--cost",
        action="store_true",
        help="also time learn_one and predict_one of the single-layer heads (best of 20 passes)",
    )
    args = parser.parse_args(argv)
    require("matplotlib")  # the curves
    if args.window < 1 or args.target_mae <= 0 or args.lr <= 0:
        parser.error("--window, --target-mae and --lr must be positive")

    command = shlex.join(["python", "bench/bench_transfer.py", *sys.argv[1:]])
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"command: {command}")
    print(f"date:    {now}")
    print(f"machine: {machine()}")

    args.cache_dir.mkdir(parents=True, exist_ok=True)
    a_path, how = cached_model_a(args.source, args.epochs, args.seed, args.cache_dir)
    a = load_batch_model(a_path)
    print(f"model A: {a.describe()}; {how}")

    rows, features = read_rows(args.target)
    rho = order_check(rows, features)
    if rho > 0.5:
        # Sorted data would measure extrapolation, not learning: shuffle reproducibly.
        order = np.random.default_rng(args.seed).permutation(len(rows))
        rows = [rows[i] for i in order]
        print(f"target:  {len(rows)} rows, sorted by a feature (|Spearman| {rho:.2f}): shuffled")
    else:
        print(f"target:  {len(rows)} rows in file order (|Spearman| of x vs row {rho:.2f})")
    print(
        f"goal:    rolling MAE over the last {args.window} records <= {args.target_mae}; "
        f"lr {args.lr} for every MLP"
    )

    results = [
        prequential(mode, make(), rows, args.window, args.target_mae)
        for mode, make in contenders(a, features, args.lr).items()
    ]
    print()
    print(table(results, len(rows), results[0]))
    extract_head = getattr(warm_start(a, "extract", stream_features=features), "head", None)
    print(
        f"(extract and partial K=1 are A's layers with only the output layer learning, started "
        f"from A's; extract's head: {extract_head}, partial K=1's: sgd)"
    )

    if args.sweep:
        print()
        print(f"records to target by lr (window {args.window}, target {args.target_mae}):")
        print("| mode | " + " | ".join(f"lr {lr}" for lr in SWEEP_LRS) + " |")
        print("|---|" + "---:|" * len(SWEEP_LRS))
        by_mode: dict[str, list[str]] = {}
        for lr in SWEEP_LRS:
            for mode, make in contenders(a, features, lr).items():
                r = prequential(mode, make(), rows, args.window, args.target_mae)
                cell = "-" if r.records_to_target is None else str(r.records_to_target)
                by_mode.setdefault(mode, []).append(cell + (" (diverged)" if r.diverged else ""))
        for mode, cells in by_mode.items():
            print(f"| {_cell(mode)} | " + " | ".join(cells) + " |")

    if args.cost:
        heads: dict[str, Callable[[], Any]] = {
            "extract, RLS head (rls_forgetting 0.999, default)": lambda: warm_start(
                a, "extract", stream_features=features
            ),
            "extract, RLS head, rls_forgetting 1": lambda: warm_start(
                a, "extract", stream_features=features
            ).clone({"rls_forgetting": 1.0}),
            "partial K=1 (SGD head)": lambda: warm_start(a, "partial", 1, stream_features=features),
            "finetune (all layers, SGD)": lambda: warm_start(
                a, "finetune", stream_features=features
            ),
        }
        print()
        print("cost per record (best of 20 passes over the first 500 target records):")
        print("| model | learn_one µs | predict_one µs |")
        print("|---|---:|---:|")
        for name, make in heads.items():
            learn_us, predict_us = learn_cost(make, rows[:500])
            print(f"| {name} | {learn_us:.1f} | {predict_us:.1f} |")

    path = plot_curves(
        [Run(r.mode, r.abs_errors) for r in results],
        args.out,
        window=args.window,
        title=f"Target task, prequential: rolling MAE over {args.window} records (lr {args.lr})",
    )
    print()
    print(f"curves:  {path}")


if __name__ == "__main__":
    main()
