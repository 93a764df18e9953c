"""The keyed store: checkpoint time against the keys changed and the keys held; spill and load.

For each number of keys held, a state dir is filled with that many keys (an ``sgd`` learner
each, learned once, all written by a first checkpoint); then, for each number of keys
changed, that many keys learn one record and a checkpoint is taken and timed in its three
parts: ``KeyedModels.checkpoint`` (on the loop: the changed keys and index shards appended
to the segments), ``sync`` (the writer thread: fsync of the segments) and the generation file
(``CheckpointStore.save`` of the manifest beside a position: pickle, HMAC, fsync, rename).
Then the cost of one spill (pickle, sign, append) and one load (read, check, unpickle) with
``max_live`` far below the keys cycled through.

Run: python bench/bench_keys.py [--held 1000,10000,100000] [--changed 1,10,100,1000,10000]
     [--window 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from streamlearn.curve import Curve
from streamlearn.keys import KeyedModels, LearnerCodec
from streamlearn.keys.codec import KEY_CURVE_POINTS
from streamlearn.learner import Learner
from streamlearn.models.sgd import SGDRegressor
from streamlearn.state import CheckpointStore

FEATURES = 5


def _x(rng: random.Random) -> dict[str, float]:
    return {f"x{j}": rng.gauss(0.0, 1.0) for j in range(FEATURES)}


def _learner(window: int) -> Learner:
    learner = Learner(SGDRegressor(lr=0.01), rolling_window=window)
    learner.curve = Curve(max_points=KEY_CURVE_POINTS)
    return learner


def _codec(window: int) -> LearnerCodec[Learner]:
    return LearnerCodec(lambda: _learner(window))


def checkpoint_times(
    held: int, changes: list[int], window: int, repeat: int
) -> list[dict[str, float]]:
    """Seconds of each part of a checkpoint after ``k`` of ``held`` keys changed, for each k."""
    rng = random.Random(held)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-keys-") as directory:
        store = CheckpointStore(directory)
        models = KeyedModels(
            _codec(window), directory=Path(directory) / "keys", key=store.signing_key
        )
        position = 0
        for i in range(held):
            models.get(f"key-{i}").step(_x(rng), rng.gauss(0.0, 1.0))
            position += 1
        _checkpoint(models, store, position)
        for changed in changes:
            if changed > held:
                continue
            runs = []
            for _ in range(repeat):
                for i in rng.sample(range(held), changed):
                    models.get(f"key-{i}").step(_x(rng), rng.gauss(0.0, 1.0))
                    position += 1
                before = models.log.bytes_written
                parts = _checkpoint(models, store, position)
                parts["segment_bytes"] = models.log.bytes_written - before
                runs.append(parts)
            row = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
            rows.append({"held": held, "changed": changed, **row})
        models.close()
        store.close()
    return rows


def _checkpoint(
    models: KeyedModels[Learner], store: CheckpointStore, position: int
) -> dict[str, float]:
    started = time.perf_counter()
    manifest = models.checkpoint()
    loop = time.perf_counter()
    models.sync()
    synced = time.perf_counter()
    blob = store.encode({"position": position, "keys": manifest})
    store.write(blob)
    written = time.perf_counter()
    models.durable(manifest.seq)
    return {
        "loop_s": loop - started,
        "sync_s": synced - loop,
        "generation_s": written - synced,
        "generation_bytes": float(len(blob)),
    }


def spill_and_load(keys: int, window: int) -> dict[str, float]:
    """Seconds per spill and per load, and bytes per key, cycling over ``keys`` with 100 live."""
    rng = random.Random(keys)
    with tempfile.TemporaryDirectory(prefix="bench-keys-") as directory:
        store = CheckpointStore(directory)
        models = KeyedModels(
            _codec(window), directory=Path(directory) / "keys", key=store.signing_key, max_live=100
        )
        for _ in range(3):
            for i in range(keys):
                models.get(f"key-{i}").step(_x(rng), rng.gauss(0.0, 1.0))
        blob = len(models.codec.dump(models.peek("key-0")))
        out = {
            "spill_us": 1e6 * models.spill_seconds / models.spills,
            "load_us": 1e6 * models.load_seconds / models.loads,
            "blob_bytes": float(blob),
        }
        models.close()
        store.close()
    return out


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_against_keys(stops: list[int], window: int, max_live: int) -> list[tuple[int, float]]:
    """Resident memory as new keys keep coming, ``max_live`` of them in memory."""
    rng = random.Random(0)
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-keys-") as directory:
        store = CheckpointStore(directory)
        models = KeyedModels(
            _codec(window),
            directory=Path(directory) / "keys",
            key=store.signing_key,
            max_live=max_live,
        )
        made = 0
        for stop in stops:
            while made < stop:
                models.get(f"key-{made}").step(_x(rng), rng.gauss(0.0, 1.0))
                made += 1
            models.checkpoint()
            out.append((made, _rss_mib()))
        models.close()
        store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--held", default="1000,10000,100000")
    parser.add_argument("--changed", default="1,10,100,1000,10000")
    parser.add_argument("--window", type=int, default=100, help="each key's rolling window")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rss", default="10000,50000,100000,200000", help="keys made, RSS read")
    args = parser.parse_args()
    held = [int(n) for n in args.held.split(",")]
    changes = [int(n) for n in args.changed.split(",")]
    print(
        f"python {sys.version.split()[0]}, sgd per key, {FEATURES} features, window {args.window}"
    )
    print()
    print(
        "| keys held | keys changed | on the loop (ms) | fsync segments (ms) | generation file (ms) | generation bytes | segment bytes |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for count in held:
        for row in checkpoint_times(count, changes, args.window, args.repeat):
            print(
                f"| {row['held']:,} | {row['changed']:,} | {1e3 * row['loop_s']:.2f} | "
                f"{1e3 * row['sync_s']:.2f} | {1e3 * row['generation_s']:.2f} | "
                f"{row['generation_bytes']:,.0f} | {row['segment_bytes']:,.0f} |"
            )
    print()
    print()
    print(f"RSS with max_live 10,000 as new keys come (window {args.window}):")
    for made, rss in rss_against_keys([int(n) for n in args.rss.split(",")], args.window, 10_000):
        print(f"  {made:,} keys held: {rss:.0f} MiB")
    print()
    for window in (args.window, 1000):
        cost = spill_and_load(2000, window)
        print(
            f"window {window}: spill {cost['spill_us']:.0f} us, load {cost['load_us']:.0f} us, "
            f"{cost['blob_bytes']:,.0f} bytes a key"
        )


if __name__ == "__main__":
    main()
