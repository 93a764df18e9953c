"""A keyed run in miniature, for the keyed store's tests: 50 keys' records learned through
``KeyedModels``, checkpointed with ``CheckpointStore`` beside the position.

Run as a script it learns from where the state dir says, checkpointing every ``--every``
records, and SIGKILLs itself at record ``--kill-at`` at the chosen stage: ``spill`` (keys
spilled since the last checkpoint, none begun), ``manifest`` (the keys' checkpoint written
to the segments, not synced), ``synced`` (synced, no generation yet) or ``generation`` (the
generation written, the store not told it is durable).

    python tests/keyed_run.py STATE_DIR --kill-at 1234 --stage spill
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import numpy as np

from streamlearn.curve import Curve
from streamlearn.keys import KeyedModels, LearnerCodec
from streamlearn.keys.codec import KEY_CURVE_POINTS
from streamlearn.learner import Learner
from streamlearn.models.sgd import SGDRegressor
from streamlearn.state import CheckpointStore

KEYS = 50
FEATURES = 3
ROWS = 3000
WINDOW = 50
Row = tuple[str, dict[str, float], float]


def rows(count: int = ROWS, keys: int = KEYS, seed: int = 7) -> list[Row]:
    """``count`` records of ``keys`` keys, interleaved at random, each key with its own
    true weights and intercept."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(keys, FEATURES))
    intercepts = rng.normal(size=keys)
    out: list[Row] = []
    for _ in range(count):
        key = int(rng.integers(keys))
        x = rng.normal(size=FEATURES)
        y = float(x @ weights[key] + intercepts[key] + 0.1 * rng.normal())
        out.append((f"key-{key}", {f"x{j}": float(x[j]) for j in range(FEATURES)}, y))
    return out


def new_learner() -> Learner:
    learner = Learner(SGDRegressor(lr=0.05), rolling_window=WINDOW)
    learner.curve = Curve(max_points=KEY_CURVE_POINTS)
    return learner


def codec() -> LearnerCodec[Learner]:
    return LearnerCodec(new_learner)


def reference(records: list[Row]) -> dict[str, Learner]:
    """Each key's learner after its records, learned one dict of learners, nothing spilled."""
    learners: dict[str, Learner] = {}
    for key, x, y in records:
        learner = learners.get(key)
        if learner is None:
            learner = learners[key] = new_learner()
        learner.step(x, y)
    return learners


def same(a: Learner, b: Learner) -> bool:
    """Bit for bit the same learner: weights, intercept, counts, metrics, window, curve."""
    pa, pb = a.export_prequential(), b.export_prequential()
    return (
        a.model.weights == b.model.weights
        and a.model.intercept == b.model.intercept
        and a.records_learned == b.records_learned
        and a.summary() == b.summary()
        and pa.metrics == pb.metrics
        and pa.window_y == pb.window_y
        and pa.window_yhat == pb.window_yhat
        and (pa.window_next, pa.window_len, pa.abs_sum)
        == (pb.window_next, pb.window_len, pb.abs_sum)
        and a.curve.points == b.curve.points
    )


class Run:
    """The state dir's keyed run: its position, its keys, its checkpoints."""

    def __init__(self, state_dir: Path, *, max_live: int = 5, segment_bytes: int = 16384) -> None:
        self.store = CheckpointStore(state_dir)
        loaded = self.store.load()
        self.position = loaded.state["position"] if loaded is not None else 0
        self.keys = KeyedModels(
            codec(),
            directory=state_dir / "keys",
            key=self.store.signing_key,
            manifest=loaded.state["keys"] if loaded is not None else None,
            max_live=max_live,
            segment_bytes=segment_bytes,
        )

    def learn(self, records: list[Row], stop: int) -> None:
        for key, x, y in records[self.position : stop]:
            self.keys.get(key).step(x, y)
            self.position += 1

    def checkpoint(self, kill: str | None = None) -> None:
        manifest = self.keys.checkpoint()
        _kill_if(kill == "manifest")
        self.keys.sync()
        _kill_if(kill == "synced")
        self.store.save({"position": self.position, "keys": manifest})
        _kill_if(kill == "generation")
        self.keys.durable(manifest.seq)

    def close(self) -> None:
        self.keys.close()
        self.store.close()


def _kill_if(now: bool) -> None:
    if now:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("--kill-at", type=int, required=True)
    parser.add_argument("--stage", choices=("spill", "manifest", "synced", "generation"))
    parser.add_argument("--every", type=int, default=150)
    args = parser.parse_args()
    records = rows()
    run = Run(args.state_dir)
    while run.position < args.kill_at:
        run.learn(records, min(args.kill_at, run.position + args.every))
        if run.position < args.kill_at:
            run.checkpoint()
    run.checkpoint(kill=args.stage) if args.stage != "spill" else _kill_if(True)


if __name__ == "__main__":
    main()
