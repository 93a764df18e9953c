"""The keyed store: checkpoint time against the keys changed and the keys held; spill and load.

For each number of keys held, a state dir is filled with that many keys (an ``sgd`` learner
each, learned once, all written by a first checkpoint); then, for each number of keys
changed, that many keys learn one record and a checkpoint is taken and timed in its three
parts: ``KeyedModels.checkpoint`` (on the loop: the changed keys and index shards appended
to the segments), ``sync`` (the writer thread: fsync of the segments) and the generation file
(``CheckpointStore.save`` of the manifest beside a position: pickle, HMAC, fsync, rename).
Then the cost of one spill (pickle, sign, append) and one load (read, check, unpickle) with
``max_live`` far below the keys cycled through.

With ``--run``, whole ``streamlearn replay`` processes instead, side by side in one run on
rows of 5 features: one ``sgd`` (block path and record path) against ``--key-by`` over
``--keys`` keys, all live and with ``--max-live-keys`` (the default 10,000), each with its
peak RSS; the keyed rate over the one-model block rate; and a River spec per key against a
plain River loop keeping a dict of models per key, on the same rows.

Run: python bench/bench_keys.py [--held 1000,10000,100000] [--changed 1,10,100,1000,10000]
     [--window 100] [--repeat 3]
     python bench/bench_keys.py --run [--rows 1000000] [--keys 100000] [--max-live 10000]
     [--river-rows 100000] [--river-keys 1000] [--river-only] [--river-parsed] [--repeat 3]
     [--abreast ROUNDS]
     [--sgd-only] [--steady] [--before PYTHONPATH]

(``--abreast ROUNDS --steady``: keyed ``sgd`` all live and one ``sgd`` at the same moment.)
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from streamlearn.curve import Curve
from streamlearn.keys import KeyedModels, LearnerCodec
from streamlearn.keys.codec import KEY_CURVE_POINTS
from streamlearn.keys.units import KeyRegressor
from streamlearn.learner import Learner
from streamlearn.models.sgd import SGDRegressor
from streamlearn.state import CheckpointStore

FEATURES = 5


def _x(rng: random.Random) -> dict[str, float]:
    return {f"x{j}": rng.gauss(0.0, 1.0) for j in range(FEATURES)}


def _learner(window: int) -> Learner:
    learner = KeyRegressor(SGDRegressor(lr=0.01), rolling_window=window)
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


def rss_against_keys(stops: list[int], window: int, max_live: int) -> Iterator[tuple[int, float]]:
    """Resident memory as new keys keep coming, ``max_live`` of them in memory (at each stop,
    after a checkpoint; as it goes)."""
    rng = random.Random(0)
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
            yield made, _rss_mib()
        models.close()
        store.close()


#: The log line a replay writes as its loop starts (after its imports and model are made).
_STARTS = re.compile(rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO streamlearn: replay ", re.M)


def _replay(path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Seconds of the loop of ``streamlearn replay PATH ARGS`` (from its start line to its
    exit: the start-up, e.g. importing River, is left out) and its peak RSS (MiB)."""
    seconds, _, rss = _replay_cpu(path, *args, env=env)
    return seconds, rss


def _replay_cpu(
    path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[float, float, float]:
    """``_replay``'s seconds, the process's CPU seconds (user + system, start-up included)
    and its peak RSS (MiB)."""
    command = [sys.executable, "-m", "streamlearn.cli", "replay", str(path), "--no-progress"]
    child = subprocess.Popen(
        [*command, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    assert child.stderr is not None
    err = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    ended = time.time()
    child.returncode = os.waitstatus_to_exitcode(status)
    found = _STARTS.findall(err)
    if child.returncode or not found:
        raise SystemExit(f"replay {path} {' '.join(args)} failed:\n{err.decode()[-2000:]}")
    started = datetime.strptime(found[-1].decode(), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return ended - started, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _loop(
    path: Path, empty: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """``_replay`` of ``path`` less that of ``empty`` (its header, no rows) with the same
    options: what remains is the rows' time (the lazy imports and the exit are left out)."""
    fixed, _ = _replay(empty, *args, env=env)
    seconds, rss = _replay(path, *args, env=env)
    return seconds - fixed, rss


def run_rates(args: argparse.Namespace) -> None:
    """Whole replays side by side: one model, keyed all live, keyed spilling; River per key.
    ``--repeat`` rounds, the runs alternated in each. With ``--steady`` the second half of
    the rows too: a file of twice the rows less one of its first half (the same lines), for
    one model and keyed all live (most keys were seen in the first half)."""
    from bench_keyed_run import write

    model = ("--model", args.model, "--lr", "0.05")
    window = ("--rolling-window", str(args.window), *model)
    classes = args.model == "logistic"
    one = f"one {args.model}"
    with tempfile.TemporaryDirectory(prefix="bench-keys-") as tmp:
        folder = Path(tmp)
        if args.river_only:
            river_rates(args, folder)
            return
        plain, keyed = folder / "plain.csv", folder / "keyed.csv"
        empty_plain, empty_keyed = folder / "plain0.csv", folder / "keyed0.csv"
        write(plain, args.rows, None, classes=classes)
        write(keyed, args.rows, args.keys, classes=classes)
        write(empty_plain, 0, None, classes=classes)
        write(empty_keyed, 0, args.keys, classes=classes)
        print(f"rows {args.rows:,}, 5 features, window {args.window}, --model {args.model}; "
              "seconds of the rows")  # fmt: skip
        many = ("--key-by", "store", "--max-live-keys")
        live = (*many, str(args.keys))
        slow = {"STREAMLEARN_FASTPATH": "0"}
        # name, file, the file whose time is taken off, options, environment, run compared to
        runs = [
            (f"{one}, block path", plain, empty_plain, (), None, 0),
            (f"{one}, record path", plain, empty_plain, (), slow, 0),
            (f"--key-by, {args.keys:,} keys, all live", keyed, empty_keyed, live, None, 0),
            (f"--key-by, {args.keys:,} keys, --max-live-keys {args.max_live:,}", keyed,
             empty_keyed, (*many, str(args.max_live)), None, 0),
            (f"--key-by, {args.keys:,} keys, all live, record path", keyed, empty_keyed, live,
             slow, 0),
        ]  # fmt: skip
        if args.sgd_only:
            runs = [runs[0], runs[2]]
        if args.steady:
            plain2, keyed2 = folder / "plain2.csv", folder / "keyed2.csv"
            write(plain2, 2 * args.rows, None, classes=classes)
            write(keyed2, 2 * args.rows, args.keys, classes=classes)
            for double, half in ((plain2, plain), (keyed2, keyed)):  # the first half's lines
                with open(double) as whole, open(half, "w") as out:
                    out.writelines(itertools.islice(whole, args.rows + 1))
            first = len(runs)
            runs.append((f"{one}, block path, rows N..2N", plain2, plain, (), None, first))
            runs.append(("--key-by all live, rows N..2N", keyed2, keyed, live, None, first))
        if args.before:  # the keyed runs again on another tree's package (its own kernels)
            old = {"PYTHONPATH": args.before}
            runs += [(f"{name} (before)", path, empty, extra, old, base)
                     for name, path, empty, extra, env, base in runs if "--key-by" in name]  # fmt: skip
        # CPU seconds too (user + system, less the other file's): a shared machine stretches
        # wall time by whatever else runs.
        print(f"| round | run | s | rec/s | x {one} (block) | CPU s | x (CPU) | peak RSS MiB |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for round_ in range(args.repeat):
            rates: list[tuple[float, float]] = []
            for name, path, empty, extra, env, base in runs:
                fixed, fixed_cpu, _ = _replay_cpu(empty, *window, *extra, env=env)
                seconds, cpu, rss = _replay_cpu(path, *window, *extra, env=env)
                seconds, cpu = seconds - fixed, cpu - fixed_cpu
                rates.append((args.rows / max(seconds, 1e-9), args.rows / max(cpu, 1e-9)))
                print(
                    f"| {round_ + 1} | {name} | {seconds:.2f} | {rates[-1][0]:,.0f} | "
                    f"{rates[-1][0] / rates[base][0]:.4f} | {cpu:.2f} | "
                    f"{rates[-1][1] / rates[base][1]:.4f} | {rss:.0f} |",
                    flush=True,
                )
        if args.abreast and args.steady:
            _sgd_abreast(args, (empty_plain, plain, plain2), (empty_keyed, keyed, keyed2))
        if not args.sgd_only and args.model == "sgd":  # the River pair is a regression's
            river_rates(args, folder)


#: A replay timed from inside its process: the same replay of the header-only file first (the
#: lazy imports, the kernels' loading), then CPU seconds of the replay of the file, printed.
#: Start-up and exit, which vary by a few tenths of a second from process to process, are
#: outside the figure. ``sys.argv[1:]``: the header-only file, the file, the options.
TIMED_REPLAY = """
import sys, time
from streamlearn.cli import main
empty, path, options = sys.argv[1], sys.argv[2], sys.argv[3:]
main(["replay", empty, *options], standalone_mode=False)
started = time.process_time()
main(["replay", path, *options], standalone_mode=False)
print(time.process_time() - started)
"""


def _timed_at_once(commands: list[list[str]]) -> list[float]:
    """``TIMED_REPLAY``'s figures of each command, all started at once."""
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for cmd in commands
    ]
    figures = []
    for proc, cmd in zip(procs, commands, strict=True):
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"failed (exit {proc.returncode}): {' '.join(cmd)}")
        figures.append(float(out.decode().split()[-1]))
    return figures


def _sgd_abreast(
    args: argparse.Namespace, plain: tuple[Path, Path, Path], keyed: tuple[Path, Path, Path]
) -> None:
    """``--abreast`` with ``--steady``: keyed all live and one ``sgd`` run at the same
    moment, one a core, each on rows N..2N: CPU seconds of its replay of 2N rows less its
    replay of N, each timed inside its process (``TIMED_REPLAY``). Who starts first
    alternates."""
    options = ["--no-progress", "--rolling-window", str(args.window), "--model", args.model,
               "--lr", "0.05"]  # fmt: skip
    live = ["--key-by", "store", "--max-live-keys", str(args.keys)]
    runs = {
        "one sgd": (plain, options),
        "--key-by all live": (keyed, [*options, *live]),
    }  # "one sgd": one model of --model
    ratios = []
    for round_ in range(args.abreast):
        names = list(runs) if round_ % 2 == 0 else list(runs)[::-1]
        seconds: dict[str, list[float]] = {name: [] for name in names}
        for at in (2, 1):  # 2N rows, then N
            commands = [
                [sys.executable, "-c", TIMED_REPLAY, str(files[0]), str(files[at]), *options]
                for files, options in (runs[name] for name in names)
            ]
            for name, figure in zip(names, _timed_at_once(commands), strict=True):
                seconds[name].append(figure)
        one, many = (
            full - half for full, half in (seconds["one sgd"], seconds["--key-by all live"])
        )
        ratios.append(one / many)
        print(
            f"  [{round_ + 1}/{args.abreast}] rows N..2N CPU s: one {args.model} {one:.3f}, --key-by "
            f"{many:.3f}: {one / many:.3f}x",
            flush=True,
        )
    print(
        f"  rows N..2N at the same moment, one a core, timed inside each process, "
        f"{args.abreast} rounds: --key-by all live / one {args.model}, CPU: median "
        f"{statistics.median(ratios):.3f}x, min {min(ratios):.3f}x, max {max(ratios):.3f}x"
    )


#: The loop a user writes for a River spec per key (as ``bench_replay``'s ``RIVER_LOOP`` for
#: one model): ``iter_csv`` with converters, a model per key cloned from the spec, and per
#: key an MAE updated as ``progressive_val_score`` does (predict, score, then learn).
RIVER_KEYED_LOOP = """
import sys
from river import linear_model, metrics, preprocessing, stream
spec = preprocessing.StandardScaler() | linear_model.LinearRegression()
converters = {{**{{name: float for name in {features!r}}}, "y": float}}
models, maes = {{}}, {{}}
for x, y in stream.iter_csv(sys.argv[1], target="y", converters=converters):
    key = x.pop("store")
    model = models.get(key)
    if model is None:
        model = models[key] = spec.clone()
        maes[key] = metrics.MAE()
    y_pred = model.predict_one(x)
    if y_pred is not None:
        maes[key].update(y, y_pred)
    model.learn_one(x, y)
"""


def river_rates(args: argparse.Namespace, folder: Path) -> None:
    """A River spec per key: the River loop a user writes against ``--key-by`` (and against
    it record by record, ``STREAMLEARN_FASTPATH=0``), whole processes, ``--repeat`` rounds in
    turn (the machine is shared: each round's ratios, and their median), in wall and CPU
    seconds of the rows (a process on the rows less the same process on the header alone).
    With ``--river-parsed``, then River on rows parsed before its clock starts."""
    from bench_keyed_run import FEATURES, SPEC, river_dict_loop, write
    from contenders import timed_cpu

    river, river0 = folder / "river.csv", folder / "river0.csv"
    write(river, args.river_rows, args.river_keys)
    write(river0, 0, args.river_keys)
    print(f"\n{SPEC} per key, {args.river_rows:,} rows, {args.river_keys:,} keys:")
    loop = [sys.executable, "-c", RIVER_KEYED_LOOP.format(features=FEATURES)]
    replay = [sys.executable, "-m", "streamlearn.cli", "replay", "--no-progress"]
    keyed = ("--key-by", "store", "--model", SPEC)
    contenders: list[tuple[list[str], dict[str, str] | None]] = [
        ([*loop, "{file}"], None),  # River loop (iter_csv, clone per key, MAE per key)
        ([*replay, "{file}", *keyed], None),  # streamlearn replay --key-by store
        ([*replay, "{file}", *keyed], {"STREAMLEARN_FASTPATH": "0"}),  # record by record
    ]
    rounds: list[list[tuple[float, float]]] = []
    for _ in range(args.repeat):
        times = []
        for command, env in contenders:
            (wall0, cpu0), (wall, cpu) = (
                timed_cpu([part.replace("{file}", str(path)) for part in command], env)
                for path in (river0, river)
            )
            times.append((wall - wall0, cpu - cpu0))
        rounds.append(times)
        (loop_wall, loop_cpu), (ours_wall, ours_cpu), (record_wall, record_cpu) = times
        print(
            f"  wall: River loop {loop_wall:.2f} s, --key-by {ours_wall:.2f} s "
            f"(record path {record_wall:.2f} s): {loop_wall / ours_wall:.2f}x "
            f"({loop_wall / record_wall:.2f}x); CPU: {loop_cpu:.2f} s, {ours_cpu:.2f} s "
            f"({record_cpu:.2f} s): {loop_cpu / ours_cpu:.2f}x ({loop_cpu / record_cpu:.2f}x)",
            flush=True,
        )
    for name, at in (("--key-by", 1), ("--key-by, record path", 2)) if rounds else ():
        wall, cpu = (
            statistics.median(times[0][i] / times[at][i] for times in rounds) for i in (0, 1)
        )
        print(f"  median, {name}: wall {wall:.2f}x, CPU {cpu:.2f}x the River loop")
    if args.abreast:
        _abreast(args.abreast, (river0, river), ["--no-progress", *keyed])
    if not args.river_parsed:
        return
    print("  River on rows parsed before its clock starts (no iter_csv), against --key-by:")
    ratios: list[tuple[float, float]] = []
    for _ in range(args.repeat):
        parsed = river_dict_loop(river)  # River imported before its clock starts
        ours, _ = _loop(river, river0, *keyed)
        parsed_cpu = river_dict_loop(river, clock=time.process_time)
        ours_cpu = _cpu(river, *keyed) - _cpu(river0, *keyed)
        ratios.append((parsed / ours, parsed_cpu / ours_cpu))
        print(
            f"  wall: River parsed {parsed:.2f} s, --key-by {ours:.2f} s: {parsed / ours:.2f}x; "
            f"CPU: {parsed_cpu:.2f} s, {ours_cpu:.2f} s: {parsed_cpu / ours_cpu:.2f}x",
            flush=True,
        )
    wall, cpu = (statistics.median(ratio[i] for ratio in ratios) for i in (0, 1))
    print(f"  median: wall {wall:.2f}x, CPU {cpu:.2f}x")


#: ``RIVER_KEYED_LOOP`` timed inside its process: CPU seconds from after River's import and
#: the spec's construction to the end of the loop, printed.
RIVER_KEYED_LOOP_TIMED = (
    RIVER_KEYED_LOOP.replace(
        "models, maes = {{}}, {{}}\n",
        "import time\nstarted = time.process_time()\nmodels, maes = {{}}, {{}}\n",
    )
    + "print(time.process_time() - started)\n"
)


def _abreast(rounds: int, files: tuple[Path, Path], options: list[str]) -> None:
    """``--abreast``: ``replay --key-by`` (``options``) and the River loop run at the same
    moment, one a core, on the file of rows (``files``: the header-only file, that file),
    each timed inside its process (``TIMED_REPLAY``, ``RIVER_KEYED_LOOP_TIMED``): start-up
    and exit are outside the figures. Who starts first alternates."""
    from bench_keyed_run import FEATURES

    empty, path = (str(file) for file in files)
    commands = {
        "--key-by": [sys.executable, "-c", TIMED_REPLAY, empty, path, *options],
        "River loop": [
            sys.executable, "-c", RIVER_KEYED_LOOP_TIMED.format(features=FEATURES), path
        ],
    }  # fmt: skip
    ratios = []
    for round_ in range(rounds):
        names = list(commands) if round_ % 2 == 0 else list(commands)[::-1]
        seconds = dict(zip(names, _timed_at_once([commands[n] for n in names]), strict=True))
        ratios.append(seconds["River loop"] / seconds["--key-by"])
        print(
            f"  [{round_ + 1}/{rounds}] CPU s of the rows: River loop {seconds['River loop']:.2f}, "
            f"--key-by {seconds['--key-by']:.2f}: {ratios[-1]:.3f}x",
            flush=True,
        )
    print(
        f"  at the same moment, one a core, timed inside each process, {rounds} rounds: "
        f"--key-by / River loop, CPU: median {statistics.median(ratios):.3f}x, "
        f"min {min(ratios):.3f}x, max {max(ratios):.3f}x"
    )


def _cpu(path: Path, *args: str) -> float:
    """CPU seconds (user + system) of a whole ``streamlearn replay PATH ARGS``."""
    command = [sys.executable, "-m", "streamlearn.cli", "replay", str(path), "--no-progress"]
    child = subprocess.Popen(
        [*command, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"replay {path} {' '.join(args)} failed (exit {child.returncode})")
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="store_true", help="whole replays, side by side")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--max-live", type=int, default=10_000)
    parser.add_argument("--river-rows", type=int, default=100_000)
    parser.add_argument("--river-keys", type=int, default=1000)
    parser.add_argument("--river-only", action="store_true", help="--run: the River pair only")
    parser.add_argument(
        "--model", default="sgd", choices=("sgd", "logistic"),
        help="--run: the model of the one-model and keyed runs (logistic: classes 1/0)",
    )  # fmt: skip
    parser.add_argument(
        "--abreast",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="--run: also ROUNDS rounds of --key-by and the River loop run at the same moment, "
        "one a core (the load of the moment falls on both alike); with --steady, of keyed "
        "sgd all live and one sgd on rows N..2N too",
    )
    parser.add_argument(
        "--sgd-only",
        action="store_true",
        help="--run: one model's block path and keyed all live only",
    )
    parser.add_argument("--steady", action="store_true", help="--run: rows N..2N timed too")
    parser.add_argument("--before", help="--run: keyed runs again with this PYTHONPATH too")
    parser.add_argument(
        "--river-parsed", action="store_true", help="--run: River on rows parsed beforehand too"
    )
    parser.add_argument("--held", default="1000,10000,100000")
    parser.add_argument("--changed", default="1,10,100,1000,10000")
    parser.add_argument("--window", type=int, default=100, help="each key's rolling window")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rss", default="10000,50000,100000,200000", help="keys made, RSS read")
    args = parser.parse_args()
    print("python " + " ".join(sys.argv))
    if args.run:
        run_rates(args)
        return
    held = [int(n) for n in args.held.split(",") if n]
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
        print(f"  {made:,} keys held: {rss:.0f} MiB", flush=True)
    print()
    for window in (args.window, 1000):
        cost = spill_and_load(2000, window)
        print(
            f"window {window}: spill {cost['spill_us']:.0f} us, load {cost['load_us']:.0f} us, "
            f"{cost['blob_bytes']:,.0f} bytes a key"
        )


if __name__ == "__main__":
    main()
