"""A keyed checkpoint's stall of the loop: keys written on the loop, or by the forked child.

For each number of keys changed (of ``--held`` keys, ``sgd`` learners of 5 features), the
checkpoint goes through the ``BackgroundWriter`` as the daemon's does: ``fork="never"``
pickles and writes the changed keys on the loop (``KeyedModels.checkpoint``), then the
generation; ``fork="always"`` forks, and the child writes the keys and the generation. Timed
on the loop: ``snapshot`` (what holds learning up), and with the child, taking up its keys
once durable (``durable``: the index pointed at the child's frames, read from its segment).

Run: python bench/bench_keyed_fork.py [--held 20000] [--changed 100,1000,5000,20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from bench_keys import FEATURES, _learner, _x

from streamlearn.keys import KeyedModels, LearnerCodec
from streamlearn.state import BackgroundWriter, CheckpointStore


def stalls(held: int, changes: list[int], fork: str, repeat: int) -> list[dict[str, float]]:
    """Loop seconds of a keyed checkpoint after ``k`` of ``held`` keys changed, for each k."""
    rng = random.Random(held)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-keyed-fork-") as directory:
        store = CheckpointStore(directory)
        models = KeyedModels(
            LearnerCodec(lambda: _learner(100)),
            directory=Path(directory) / "keys",
            key=store.signing_key,
            max_live=held,
        )
        writer = BackgroundWriter(store, fork=fork, syncs=(models.sync,))
        for i in range(held):
            models.get(f"key-{i}").step(_x(rng), rng.gauss(0.0, 1.0))
        position = held
        for round_, changed in enumerate([held, *changes]):
            runs = []
            for _ in range(repeat):
                for i in rng.sample(range(held), changed):
                    models.get(f"key-{i}").step(_x(rng), rng.gauss(0.0, 1.0))
                    position += 1
                started = time.perf_counter()
                part = models.checkpoint_part()
                writer.snapshot({"position": position, "keys": part}, part.seq)
                stalled = time.perf_counter() - started
                writer.wait()
                taken = time.perf_counter()
                for _, seq in writer.durable():
                    models.durable(seq)
                runs.append({"loop_s": stalled, "durable_s": time.perf_counter() - taken})
            if round_:  # the first, of every key, only fills the store
                row = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
                rows.append({"held": held, "changed": changed, **row})
        writer.close()
        models.close()
        store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", type=int, default=20_000)
    parser.add_argument("--changed", default="100,1000,5000,20000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    changes = [int(c) for c in args.changed.split(",")]
    print(f"keyed checkpoint stall, {args.held} keys held, sgd of {FEATURES} features")
    print(f"{'changed':>8} {'loop, on loop':>14} {'loop, forked':>13} {'durable, forked':>16}")
    on_loop = stalls(args.held, changes, "never", args.repeat)
    forked = stalls(args.held, changes, "always", args.repeat)
    for a, b in zip(on_loop, forked, strict=True):
        print(
            f"{a['changed']:>8} {1e3 * a['loop_s']:>11.1f} ms {1e3 * b['loop_s']:>10.1f} ms "
            f"{1e3 * b['durable_s']:>13.1f} ms"
        )


if __name__ == "__main__":
    main()
