"""Pseudo-labeling: when it helps, when it hurts, and what memory it takes.

Part 1 replays synthetic streams with few labels, with and without
``--pseudo-label``, and prints the prequential MAE on the labeled rows (the only
rows ever scored), how many pseudo-labels were accepted, and their audit: every
unlabeled row has an id and its true label is delivered after the stream (after
the MAE was read), so ``audit_mae`` is the real error of the accepted
pseudo-labels, next to the student's own error on the same rows.

Part 2 streams many unlabeled rows with ids whose labels never come (plus 10%
labeled rows so the teacher works) and samples the resident set size: it must
level off once the queue and the join table are full.

Part 3 prices the twin (``streamlearn.labels.effect``): the copy of the student that
learns only the true labels, to measure what pseudo-labels do. Per student model: the
twin's memory (what a copy of the trained student allocates, and its pickled size in a
checkpoint) and its time (its prediction and learning of each true label, its
prediction of each unlabeled record with an id), against the whole replay.

Run: python bench/bench_pseudo.py [--rows 10000] [--memory-records 400000] [--twin-rows 20000]
"""

from __future__ import annotations

import argparse
import gc
import logging
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from streamlearn.json_decoder import JsonDecoder
from streamlearn.labels.build import build_pseudo
from streamlearn.labels.settings import PseudoSettings
from streamlearn.learner import Learner
from streamlearn.loop.daemon import Daemon
from streamlearn.models.registry import build_model
from streamlearn.sources.base import Raw, Source
from streamlearn.testing import ListSource

KNN = "StandardScaler | KNNRegressor(n_neighbors=5)"
POLY = "PolynomialExtender | StandardScaler | LinearRegression"

TARGETS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda X: 2 * X[:, 0] - X[:, 1] + 1,
    "quadratic": lambda X: X[:, 0] ** 2 + X[:, 1],
}


@dataclass(frozen=True)
class Case:
    verdict: str  # what we expect: "helps" or "hurts"
    target: str
    labeled: float
    student: str
    teacher: str
    threshold: float
    weight: float
    max_fraction: float = 1.0


CASES = [
    Case("helps", "linear", 0.02, "sgd", KNN, 0.7, 1.0),
    Case("helps", "quadratic", 0.05, "mlp", KNN, 0.5, 0.5),
    Case("helps", "quadratic", 0.05, "HoeffdingTreeRegressor", KNN, 0.5, 0.5),
    Case("neutral", "linear", 0.02, "sgd", "committee", 0.5, 0.5),
    Case("hurts", "linear", 0.02, "mlp", KNN, 0.5, 0.5),
    Case("hurts", "quadratic", 0.05, POLY, "committee:HoeffdingTreeRegressor", 0.5, 0.5),
]


def stream(target: str, n: int, labeled: float, seed: int) -> tuple[list[bytes], list[bytes], int]:
    """(records, late labels of the unlabeled records, number labeled)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, 2))
    y = TARGETS[target](X) + 0.1 * rng.normal(size=n)
    has_y = rng.random(n) < labeled
    records, labels = [], []
    for i in range(n):
        x = {"a": float(X[i, 0]), "b": float(X[i, 1])}
        if has_y[i]:
            records.append(orjson.dumps({"x": x, "y": float(y[i])}))
        else:
            records.append(orjson.dumps({"x": x, "y": None, "id": f"u{i}"}))
            labels.append(orjson.dumps({"id": f"u{i}", "y": float(y[i])}))
    return records, labels, int(has_y.sum())


def replay(case: Case, records: list[bytes], labels: list[bytes], pseudo_on: bool) -> dict:
    extra: dict[str, Any] = {}
    if pseudo_on:
        extra = {
            "pseudo_label": True,
            "teacher": case.teacher,
            "pseudo_threshold": case.threshold,
            "pseudo_weight": case.weight,
            "pseudo_max_fraction": case.max_fraction,
            "label_ttl": f"{2 * len(records)}r",
            "max_pending_labels": len(records),
        }
    pseudo, join = build_pseudo(
        PseudoSettings(**extra), model_spec=case.student, lr=0.01, restored=None
    )
    daemon = Daemon(
        ListSource(records),
        JsonDecoder(),
        Learner(build_model(case.student, lr=0.01)),
        model_spec=case.student,
        pseudo=pseudo,
        join=join,
    )
    started = time.perf_counter()
    daemon.run()
    if pseudo is None:
        return {"mae": daemon.learner.summary()["mae"], "seconds": time.perf_counter() - started}
    pseudo.flush(daemon)  # the end of a replay: the last partial window is decided too
    mae = daemon.learner.summary()["mae"]  # read before any late label is scored
    seconds = time.perf_counter() - started
    for start in range(0, len(labels), 1000):  # now the truth arrives: the audit
        daemon.process([Raw(v, start + i) for i, v in enumerate(labels[start : start + 1000])])
    counts = pseudo.summary()["pseudo_labels"]
    return {"mae": mae, "seconds": seconds, **counts}


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def part_one(rows: int, seed: int) -> None:
    print(f"## Part 1: prequential MAE on labeled rows, {rows} rows, seed {seed}\n")
    header = (
        "| expect | target | labeled | student | teacher | thr | w | MAE without | MAE with "
        "| change | accepted | rejected | audit MAE acc. (student) | audit MAE rej. | s |"
    )
    print(header)
    print("|" + "---|" * 15)
    for case in CASES:
        records, labels, _ = stream(case.target, rows, case.labeled, seed)
        without = replay(case, records, labels, pseudo_on=False)
        with_pl = replay(case, records, labels, pseudo_on=True)
        change = 100 * (with_pl["mae"] - without["mae"]) / without["mae"]
        print(
            f"| {case.verdict} | {case.target} | {case.labeled:.0%} | `{case.student}` "
            f"| `{case.teacher}` | {case.threshold} | {case.weight} | {fmt(without['mae'])} "
            f"| {fmt(with_pl['mae'])} | {change:+.1f}% | {with_pl['accepted']} "
            f"| {with_pl['rejected']} | {fmt(with_pl['audit_mae'])} "
            f"({fmt(with_pl['audit_student_mae'])}) | {fmt(with_pl['audit_mae_rejected'])} "
            f"| {with_pl['seconds']:.1f} |",
            flush=True,
        )
    print()


class SyntheticSource(Source):
    """``total`` JSON records made on the fly (constant memory): 10% labeled, 90% with an id."""

    kind = "synthetic"

    def __init__(self, total: int, seed: int = 0) -> None:
        self.total = total
        self.index = 0
        self.rng = np.random.default_rng(seed)
        self._done = False

    def next_batch(self, max_items: int) -> list[Raw]:
        count = min(max_items, self.total - self.index)
        if count <= 0:
            self._done = True
            return []
        X = self.rng.normal(size=(count, 3))
        y = X @ np.array([1.0, -2.0, 0.5]) + 1
        out = []
        for j in range(count):
            i = self.index + j
            x = {"a": float(X[j, 0]), "b": float(X[j, 1]), "c": float(X[j, 2])}
            if i % 10 == 0:
                obj: dict[str, Any] = {"x": x, "y": float(y[j])}
            else:  # a label that never comes
                obj = {"x": x, "y": None, "id": f"never-{i}"}
            out.append(Raw(orjson.dumps(obj), i))
        self.index += count
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"kind": self.kind, "index": self.index}

    @property
    def exhausted(self) -> bool:
        return self._done


def rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def part_two(total: int, max_pending: int, queue: int) -> None:
    print(
        f"## Part 2: RSS over {total} records (90% unlabeled with ids, labels never come); "
        f"--max-pending-labels {max_pending}, --pseudo-queue {queue}, --teacher committee\n"
    )
    extra = {
        "pseudo_label": True,
        "label_ttl": "1000000000r",  # never expires: only --max-pending-labels bounds the join
        "max_pending_labels": max_pending,
        "pseudo_queue": queue,  # deterministic: each window is decided as it fills, no overflow
    }
    pseudo, join = build_pseudo(PseudoSettings(**extra), model_spec="sgd", lr=0.01, restored=None)
    assert pseudo is not None and join is not None
    source = SyntheticSource(total)
    daemon = Daemon(
        source,
        JsonDecoder(),
        Learner(build_model("sgd", lr=0.01)),
        model_spec="sgd",
        pseudo=pseudo,
        join=join,
    )
    gc.collect()
    print("| records | RSS MiB | pending labels | evicted | queued | overflow | accepted |")
    print("|---|---|---|---|---|---|---|")
    print(f"| 0 | {rss_mib():.1f} | 0 | 0 | 0 | 0 | 0 |")
    step = max(total // 8, 1000)
    started = time.perf_counter()
    while not source.exhausted:
        batch = source.next_batch(1000)
        if batch:
            daemon.process(batch)
        if batch and (source.index % step == 0 or source.index == total):
            p = pseudo.summary()["pseudo_labels"]
            j = join.summary()["pending_labels"]
            print(
                f"| {source.index} | {rss_mib():.1f} | {j['pending']} | {j['evicted']} "
                f"| {p['queued']} | {p['overflow']} | {p['accepted']} |",
                flush=True,
            )
    rate = total / (time.perf_counter() - started)
    print(f"\n{rate:,.0f} records/s with pseudo-labeling and the join on (one core)\n")


TWIN_STUDENTS = (
    "sgd",
    "StandardScaler | LinearRegression",
    "mlp",
    "HoeffdingTreeRegressor",
    "StandardScaler | KNNRegressor",
    "ARFRegressor(n_models=10)",
)


def timed(owner: Any, name: str, spent: list[float]) -> None:
    """Wrap ``owner.name`` so that the seconds spent in it add up in ``spent[0]``."""
    method = getattr(owner, name)

    def wrapper(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args)
        finally:
            spent[0] += time.perf_counter() - started

    setattr(owner, name, wrapper)


def part_three(rows: int, seed: int) -> None:
    import copy
    import pickle
    import tracemalloc

    print(
        f"## Part 3: the twin's cost, {rows} rows (linear target, 10% labeled, every unlabeled "
        f"row with an id: the twin predicts it too), --teacher committee, seed {seed}\n"
    )
    print(
        "| student | twin KiB (copy) | twin KiB (pickled) | replay s | twin s | twin share "
        "| µs per true label | µs per unlabeled | guard pauses |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    logging.getLogger("streamlearn.labels.effect").setLevel(logging.ERROR)  # pauses: a column
    records, _, labeled = stream("linear", rows, 0.1, seed)
    for spec in TWIN_STUDENTS:
        extra = {"pseudo_label": True, "label_ttl": f"{2 * rows}r", "max_pending_labels": rows}
        pseudo, join = build_pseudo(
            PseudoSettings(**extra), model_spec=spec, lr=0.01, restored=None
        )
        assert pseudo is not None
        on_label, on_unlabeled = [0.0], [0.0]
        timed(pseudo.effect, "observe", on_label)
        timed(pseudo.effect, "twin_prediction", on_unlabeled)
        daemon = Daemon(
            ListSource(records),
            JsonDecoder(),
            Learner(build_model(spec, lr=0.01)),
            model_spec=spec,
            pseudo=pseudo,
            join=join,
        )
        started = time.perf_counter()
        daemon.run()
        seconds = time.perf_counter() - started
        model = daemon.learner.model
        gc.collect()
        tracemalloc.start()
        twin = copy.deepcopy(model)
        copied = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        pickled = len(pickle.dumps(twin, pickle.HIGHEST_PROTOCOL))
        twin_seconds = on_label[0] + on_unlabeled[0]
        print(
            f"| `{spec}` | {copied / 1024:.1f} | {pickled / 1024:.1f} | {seconds:.2f} "
            f"| {twin_seconds:.2f} | {100 * twin_seconds / seconds:.1f}% "
            f"| {1e6 * on_label[0] / labeled:.1f} | {1e6 * on_unlabeled[0] / (rows - labeled):.1f} "
            f"| {pseudo.effect.pauses} |",
            flush=True,
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--memory-records", type=int, default=400_000)
    parser.add_argument("--max-pending", type=int, default=100_000)
    parser.add_argument("--queue", type=int, default=500)
    parser.add_argument("--twin-rows", type=int, default=20_000)
    parser.add_argument("--skip-part-one", action="store_true")
    parser.add_argument("--only-twin", action="store_true", help="Part 3 only")
    args = parser.parse_args()
    print("command: python " + " ".join(shlex.quote(a) for a in sys.argv) + "\n")
    if args.only_twin:
        part_three(args.twin_rows, args.seed)
        return
    if args.skip_part_one:
        part_two(args.memory_records, args.max_pending, args.queue)
        return
    part_one(args.rows, args.seed)
    part_three(args.twin_rows, args.seed)
    # Part 2 in a fresh process, so that its RSS is not inflated by part 1.
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--skip-part-one",
            "--memory-records",
            str(args.memory_records),
            "--max-pending",
            str(args.max_pending),
            "--queue",
            str(args.queue),
        ],
        check=True,
    )


if __name__ == "__main__":
    main()
