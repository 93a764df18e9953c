"""Whole-process contenders timed side by side: the runner ``bench_replay`` and
``bench_classify`` share.

A contender is a command template (``{file}`` stands for the data file) run on three files:
header only (start-up), a warm head of the stream, and the full stream. :func:`race` runs
every contender on the three, round after round, the contenders alternating within a round
(the machine's load moves them alike), and keeps the best time of each and every round's
times. Rates: rows / (full - header) (start-up subtracted) and (rows - warm rows) /
(full - warm) (every one-time cost paid in both runs), wall clock and CPU.

:func:`ratio` compares two contenders: the ratio of their best rates, and the median of the
ratios round by round (two runs next to each other saw the same load).

:func:`abreast` runs two contenders at the same moment, one a core on a two-core machine:
the load of the moment, which moves a tree's CPU time by 15-30% between runs one after the
other, then falls on both alike.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["Contender", "abreast", "race", "ratio", "timed_cpu"]


class Contender(NamedTuple):
    """A command to time (``template``: its arguments, ``{file}`` the data file)."""

    name: str
    template: list[str]
    env: dict[str, str] | None
    #: The header-only, warm and full files.
    files: tuple[Path, Path, Path]
    #: Rows of the full file, and of the warm one.
    rows: int
    warm_rows: int


def timed_cpu(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system, all threads) of a whole process.

    On a shared machine the CPU time moves far less with the load than the wall clock. A
    failing command stops the bench with its last lines of stderr.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    if done.returncode:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise SystemExit(f"failed (exit {done.returncode}): {' '.join(cmd)}\n" + "\n".join(tail))
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _rates(rows: int, warm_rows: int, wall: list[float], cpu: list[float]) -> dict[str, float]:
    start_up, warm, total = wall
    _, warm_cpu, total_cpu = cpu
    return {
        "rate": rows / max(total - start_up, 1e-9),
        "warm_rate": (rows - warm_rows) / max(total - warm, 1e-9),
        "warm_cpu_rate": (rows - warm_rows) / max(total_cpu - warm_cpu, 1e-9),
    }


def race(contenders: list[Contender], repeat: int, shown: Any = None) -> list[dict[str, Any]]:
    """Each contender on its header-only, warm and full files, ``repeat`` rounds, the
    contenders alternating; per contender its best times, rates, and each round's rates.

    ``shown(template, env)``: the command as the report shows it (default: joined).
    """
    best: dict[str, list[float]] = {}
    best_cpu: dict[str, list[float]] = {}
    rounds: dict[str, list[dict[str, float]]] = {}
    for round_ in range(repeat):
        for name, template, env, files, rows, warm_rows in contenders:
            runs = [
                timed_cpu([part.replace("{file}", str(path)) for part in template], env)
                for path in files
            ]
            walls, cpus = [wall for wall, _ in runs], [cpu for _, cpu in runs]
            for table, times in ((best, walls), (best_cpu, cpus)):
                table[name] = [
                    min(a, b) for a, b in zip(table.get(name, times), times, strict=True)
                ]
            rounds.setdefault(name, []).append(_rates(rows, warm_rows, walls, cpus))
            print(f"  [{round_ + 1}/{repeat}] {name}: {walls[2]:.2f} s", flush=True)
    results = []
    for name, template, env, _, rows, warm_rows in contenders:
        start_up, warm, total = best[name]
        results.append(
            {
                "name": name,
                "command": shown(template, env) if shown else " ".join(template),
                "rows": rows,
                "start_up": start_up,
                "warm": warm,
                "total": total,
                **_rates(rows, warm_rows, best[name], best_cpu[name]),
                "rounds": rounds[name],
            }
        )
    return results


def ratio(ours: dict[str, Any], theirs: dict[str, Any], key: str) -> tuple[float, float]:
    """``ours[key] / theirs[key]`` (a rate of :func:`race`): of the best times, and the
    median over the rounds of each round's ratio."""
    best = ours[key] / theirs[key]
    pairs = zip(ours["rounds"], theirs["rounds"], strict=True)
    return best, statistics.median(mine[key] / other[key] for mine, other in pairs)


def _cpu_at_once(commands: list[list[str]], envs: list[dict[str, str] | None]) -> list[float]:
    """CPU seconds (user + system) of each command, all started at once."""
    procs = [
        subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        for cmd, env in zip(commands, envs, strict=True)
    ]
    cpu = []
    for proc, cmd in zip(procs, commands, strict=True):
        _, status, usage = os.wait4(proc.pid, 0)  # this process's own usage, in their order
        if status:
            raise SystemExit(f"failed (wait status {status}): {' '.join(cmd)}")
        cpu.append(usage.ru_utime + usage.ru_stime)
    return cpu


def abreast(ours: Contender, theirs: Contender, repeat: int) -> list[float]:
    """``repeat`` rounds of ``ours`` and ``theirs`` run at the same moment (on the full file,
    then on the warm one; who starts first alternates); each round's ratio of their CPU
    rates, (rows - warm rows) / (full - warm), ours over theirs."""
    ratios = []
    for round_ in range(repeat):
        pair = [ours, theirs] if round_ % 2 == 0 else [theirs, ours]
        cpu = []
        for at in (2, 1):  # the full file, the warm one
            commands = [
                [part.replace("{file}", str(c.files[at])) for part in c.template] for c in pair
            ]
            cpu.append(_cpu_at_once(commands, [c.env for c in pair]))
        rates = [
            (c.rows - c.warm_rows) / max(full - warm, 1e-9)
            for c, full, warm in zip(pair, cpu[0], cpu[1], strict=True)
        ]
        mine, other = rates if pair[0] is ours else rates[::-1]
        ratios.append(mine / other)
        print(
            f"  [{round_ + 1}/{repeat}] {ours.name} / {theirs.name}, at once: {mine / other:.3f}x",
            flush=True,
        )
    return ratios
