"""Resident memory of whole daemon processes over long streams: it must stay flat.

Each scenario runs ``streamlearn replay`` (or ``run``) as a child process on a
CSV written once into a temporary folder, and samples the child's resident set
size (``VmRSS`` in ``/proc/PID/status``) every ``--interval`` seconds. How far
the stream is comes from the size of the predictions file (unlabeled rows are
spread evenly, and the source's file offset moves in blocks of megabytes).
RSS is reported as the median over a tenth of the stream at 10%
(after warm-up: compiled kernels, buffers and tables at their working size), 50%
and the last tenth; growth is of the median RSS from the 10% tenth to the
last one. For the ``sgd`` scenarios it must stay under 5% (exit status 1 if not).

Scenarios:

- ``sgd``: default flags (metrics, ADWIN drift monitor, checkpoints into a
  ``--state-dir``, a ``--dead-letter`` sink, a ``--predictions`` sink); 0.1%
  bad rows of three kinds, 1% unlabeled rows.
- ``sgd + telemetry``: the same with ``--metrics-port`` (telemetry keeps its
  own state), its /metrics scraped every ``--scrape-every`` seconds.
- ``pseudo (replay)``: ``--pseudo-label`` with the delayed-label join on
  (``--id-column id``); 90% of the rows are unlabeled and carry ids whose
  labels never come, 1% are labels for ids never seen, so the join table and
  the queue fill up and must stay at their bounds (``--max-pending-labels``,
  ``--pseudo-queue``).
- ``pseudo (run, threaded)``: the same followed by ``run`` (the side loop on
  its own thread), stopped with SIGTERM once everything is learned.

Run: python bench/bench_memory.py [--records 10000000] [--pseudo-records 1000000]
(``--records 1000000 --pseudo-records 200000`` for a quick look.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
STREAMLEARN = ROOT / ".venv" / "bin" / "streamlearn"

FEATURES = 5
WEIGHTS = np.array([1.0, -0.5, 0.25, 0.8, -0.3])
CHUNK = 1_000_000
GROWTH_LIMIT = 5.0  # percent, for the sgd scenarios (issue 7)


# -- writing big CSV files fast ----------------------------------------------------------


def _cells(values: np.ndarray, sep: int) -> np.ndarray:
    """Fixed-width text of ``values`` (|v| < 10) as bytes: ``+d.dddd`` and ``sep``; (n, 8)."""
    q = np.rint(np.clip(np.abs(values), 0, 9.9999) * 10_000).astype(np.int64)
    out = np.empty((len(values), 8), dtype=np.uint8)
    out[:, 0] = np.where(values < 0, ord("-"), ord("+"))
    out[:, 1] = 48 + q // 10_000
    out[:, 2] = ord(".")
    for k, div in enumerate((1000, 100, 10, 1)):
        out[:, 3 + k] = 48 + (q // div) % 10
    out[:, 7] = sep
    return out


def _ids(start: int, n: int) -> np.ndarray:
    """``u`` and 9 digits, then a comma: (n, 11) bytes."""
    numbers = np.arange(start, start + n, dtype=np.int64)
    out = np.empty((n, 11), dtype=np.uint8)
    out[:, 0] = ord("u")
    for k in range(9):
        out[:, 1 + k] = 48 + (numbers // 10 ** (8 - k)) % 10
    out[:, 10] = ord(",")
    return out


def write_csv(
    path: Path,
    rows: int,
    *,
    unlabeled: float,
    bad: float,
    with_ids: bool,
    stray_labels: float = 0.0,
    seed: int = 0,
) -> dict[str, int]:
    """A CSV of ``rows`` data rows (features f0..f4, target y; ids first if ``with_ids``).

    Rows are built as one byte matrix per chunk and a keep-mask, so unlabeled rows
    (empty target), bad rows (a word, a missing field, a ``nan``) and stray late
    labels (``v<n>,,,,,,y``: an id never seen, so never joined) cost nothing
    extra: numpy writes about 1 GB in well under a minute.
    """
    rng = np.random.default_rng(seed)
    counts = {"rows": rows, "unlabeled": 0, "bad": 0, "stray_labels": 0}
    header = ("id," if with_ids else "") + ",".join(f"f{i}" for i in range(FEATURES)) + ",y\n"
    with open(path, "wb") as handle:
        handle.write(header.encode())
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            X = rng.normal(size=(n, FEATURES))
            y = X @ WEIGHTS + 1.0 + 0.1 * rng.normal(size=n)
            blocks = [_ids(start, n)] if with_ids else []
            blocks += [_cells(X[:, i], ord(",")) for i in range(FEATURES)]
            blocks.append(_cells(y, ord("\n")))
            matrix = np.hstack(blocks)
            keep = np.ones(matrix.shape, dtype=bool)
            target = matrix.shape[1] - 8  # first byte of the target cell
            kind = rng.random(n)
            no_y = kind < unlabeled
            matrix[no_y, target] = ord("\n")  # "...,f4,\n": an empty target
            keep[no_y, target + 1 :] = False
            counts["unlabeled"] += int(no_y.sum())
            broken = (kind >= unlabeled) & (kind < unlabeled + bad)
            rows_bad = np.flatnonzero(broken)
            first = 11 if with_ids else 0  # the first feature cell
            word = rows_bad[0::3]  # non_numeric: "+1.2345" -> "abc.def"
            matrix[np.ix_(word, np.arange(first, first + 7))] = np.frombuffer(b"abc.def", np.uint8)
            short = rows_bad[1::3]  # field_count: the first feature cell is dropped
            keep[np.ix_(short, np.arange(first, first + 8))] = False
            nan = rows_bad[2::3]  # non_finite: "nan," in the first feature cell
            matrix[np.ix_(nan, np.arange(first, first + 3))] = np.frombuffer(b"nan", np.uint8)
            keep[np.ix_(nan, np.arange(first + 3, first + 7))] = False
            counts["bad"] += len(rows_bad)
            if with_ids:
                stray = np.flatnonzero(
                    (kind >= unlabeled + bad) & (kind < unlabeled + bad + stray_labels)
                )
                matrix[stray, 0] = ord("v")  # ids of the data rows start with "u"
                for cell in range(FEATURES):  # keep only each feature cell's comma
                    keep[np.ix_(stray, np.arange(first + 8 * cell, first + 8 * cell + 7))] = False
                counts["stray_labels"] += len(stray)
            handle.write(matrix[keep].tobytes())
    return counts


# -- sampling a child process ------------------------------------------------------------


def _status(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def _offset(pid: int, target: Path) -> int | None:
    """The file offset of ``target`` in process ``pid`` (None while it is not open)."""
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(f"{fd_dir}/{fd}") == str(target):
                with open(f"/proc/{pid}/fdinfo/{fd}") as handle:
                    for line in handle:
                        if line.startswith("pos:"):
                            return int(line.split()[1])
        except OSError:
            continue
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Result:
    name: str
    command: list[str]
    records: int
    seconds: float = 0.0
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (t, fraction, KiB)
    peak_kib: int = 0
    scrapes: int = 0
    summary: str = ""

    def window(self, low: float, high: float) -> tuple[float, float, float]:
        """(least, median, most) RSS in MiB over samples between ``low`` and ``high``.

        Samples taken once every record was processed (the final checkpoint, exit)
        are left out: they are in ``peak_kib``. An empty window takes the nearest sample.
        """
        inside = [kib for _, f, kib in self.samples if low <= f < high and f < 1.0]
        if not inside:
            nearest = min(self.samples, key=lambda s: abs(s[1] - (low + high) / 2))
            inside = [nearest[2]]
        return min(inside) / 1024, float(np.median(inside)) / 1024, max(inside) / 1024

    def at(self, point: float) -> tuple[float, float, float]:
        """The window that stands for ``point``: a tenth of the stream around it (the last
        tenth for 1.0)."""
        low = min(point - 0.05, 0.9)
        return self.window(low, low + 0.1)

    @property
    def growth(self) -> float:
        """Percent change of the median RSS from the 10% window to the last tenth.

        The median, not the most: the file source reads 8 MiB at a time, and whether a
        read buffer is resident at a sample (the allocator keeps or returns it) moves
        RSS up and down by that much (4% here) without any growth.
        """
        first, last = self.at(0.1)[1], self.at(1.0)[1]
        return 100 * (last - first) / first

    @property
    def after_warmup(self) -> tuple[float, float]:
        """(least, most) RSS in MiB from 5% of the stream to the end of the records."""
        return self.window(0.05, 1.0)[0::2]

    @property
    def slope(self) -> float:
        """Least-squares MiB per million records over 10%..100% (flat: about 0)."""
        points = [(f, kib / 1024) for _, f, kib in self.samples if 0.10 <= f < 1.0]
        if len(points) < 3:
            return float("nan")
        f, mib = np.array(points).T
        return float(np.polyfit(f * self.records / 1e6, mib, 1)[0])


def measure(
    name: str,
    command: list[str],
    data: Path,
    progress: Path,
    records: int,
    *,
    interval: float,
    follow: bool = False,
    scrape_port: int | None = None,
    scrape_every: float = 2.0,
) -> Result:
    """Run ``command`` and sample it until it exits (``run``: SIGTERM once all is learned).

    How far the stream is comes from the size of the ``progress`` file (the
    predictions sink: unlabeled rows are spread evenly through the data), divided
    by its final size: the source's file offset moves in blocks of megabytes.
    """
    size = data.stat().st_size
    result = Result(name, command, records)
    raw: list[tuple[float, int, int]] = []  # (seconds, progress bytes, KiB)
    log_path = progress.with_suffix(".stderr")
    started = time.monotonic()
    with open(log_path, "wb") as log:  # a pipe could fill up and block the child
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    last_scrape = started
    still: tuple[int, float] = (-1, started)  # progress size, since when unchanged
    try:
        while child.poll() is None:
            try:
                status = _status(child.pid)
                offset = _offset(child.pid, data)
            except (FileNotFoundError, ProcessLookupError):
                break
            done = progress.stat().st_size if progress.exists() else 0
            now = time.monotonic()
            if offset is not None and "VmRSS" in status:
                raw.append((now - started, done, status["VmRSS"]))
                result.peak_kib = status.get("VmHWM", result.peak_kib)
            if scrape_port is not None and now - last_scrape >= scrape_every:
                last_scrape = now
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{scrape_port}/metrics", timeout=5
                    ) as response:
                        response.read()
                    result.scrapes += 1
                except (OSError, http.client.HTTPException):
                    pass  # not listening yet, or exiting
            if done != still[0]:
                still = (done, now)
            elif follow and offset is not None and offset >= size and now - still[1] >= 2.0:
                # All read, and no prediction written for 2 s: all learned. Stop it.
                child.send_signal(signal.SIGTERM)
                follow = False
            time.sleep(interval)
        child.wait(timeout=600)
    except BaseException:
        child.kill()
        child.wait()
        raise
    result.seconds = time.monotonic() - started
    stderr = log_path.read_text(errors="replace")
    if child.returncode != 0:
        raise SystemExit(f"{name}: exit {child.returncode}\n{stderr[-3000:]}")
    lines = [line for line in stderr.splitlines() if "learned " in line]
    result.summary = lines[-1] if lines else ""
    final = progress.stat().st_size if progress.exists() else 0
    if not raw or not final:
        raise SystemExit(f"{name}: no RSS sample or no predictions (ran {result.seconds:.1f} s)")
    result.samples = [(t, done / final, kib) for t, done, kib in raw]
    return result


# -- scenarios ---------------------------------------------------------------------------


def sgd_command(data: Path, tmp: Path, tag: str, *extra: str) -> list[str]:
    return [
        str(STREAMLEARN),
        "replay",
        str(data),
        "--state-dir",
        str(tmp / f"state-{tag}"),
        "--reset",
        "--dead-letter",
        str(tmp / f"dead-{tag}.jsonl"),
        "--predictions",
        str(tmp / f"pred-{tag}.jsonl"),
        "--no-progress",
        *extra,
    ]


def pseudo_command(
    data: Path, tmp: Path, tag: str, mode: str, args: argparse.Namespace
) -> list[str]:
    return [
        str(STREAMLEARN),
        mode,
        str(data),
        "--id-column",
        "id",
        "--state-dir",
        str(tmp / f"state-{tag}"),
        "--reset",
        "--dead-letter",
        str(tmp / f"dead-{tag}.jsonl"),
        "--predictions",
        str(tmp / f"pred-{tag}.jsonl"),
        "--pseudo-label",
        "--max-pending-labels",
        str(args.max_pending),
        "--label-ttl",
        args.label_ttl,
        *(["--no-progress"] if mode == "replay" else []),
    ]


def render(results: list[Result], args: argparse.Namespace, files: dict[str, Any]) -> str:
    lines = [
        "command: python " + " ".join(shlex.quote(a) for a in sys.argv),
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}; Python {platform.python_version()}",
        f"date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
    ]
    for tag, info in files.items():
        lines.append(
            f"{tag}: {info['rows']:,} rows ({info['unlabeled']:,} unlabeled, {info['bad']:,} bad, "
            f"{info['stray_labels']:,} labels for unknown ids), "
            f"{info['bytes'] / 2**20:,.0f} MiB, written in {info['seconds']:.1f} s"
        )
    lines += [
        "",
        "RSS in MiB: the median over a tenth of the stream around 10% (5-15% of the records), "
        "50% (45-55%) and the last tenth; growth is of that median from 10% to the end; "
        "range = least and most from 5% on; the fit is over every sample from 10% on; "
        "peak = VmHWM, the final checkpoint and exit included.",
        "",
        "| scenario | records | s | records/s | RSS 10% | RSS 50% | RSS 100% | growth "
        "| range | MiB per 1M records (fit) | peak MiB | samples |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        cells = " | ".join(f"{r.at(p)[1]:.1f}" for p in (0.1, 0.5, 1.0))
        least, most = r.after_warmup
        lines.append(
            f"| {r.name} | {r.records:,} | {r.seconds:.0f} | {r.records / r.seconds:,.0f} "
            f"| {cells} | {r.growth:+.1f}% | {least:.0f}-{most:.0f} | {r.slope:+.2f} "
            f"| {r.peak_kib / 1024:.0f} | {len(r.samples)} |"
        )
    lines += ["", "Median (most) RSS in MiB in each tenth of the stream, 0-10% .. 90-100%:", ""]
    for r in results:
        tenths = " ".join(
            "{:.0f} ({:.0f})".format(*r.window(k / 10, (k + 1) / 10)[1:]) for k in range(10)
        )
        lines.append(f"- {r.name}: {tenths}")
    lines.append("")
    for r in results:
        extra = f"; {r.scrapes} scrapes of /metrics" if r.scrapes else ""
        lines.append(f"- {r.name}: `{' '.join(shlex.quote(a) for a in r.command)}`{extra}")
        if r.summary:
            lines.append(f"  {r.summary.split(': ', 1)[-1] if 'INFO' in r.summary else r.summary}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000, help="rows of the sgd file")
    parser.add_argument("--pseudo-records", type=int, default=1_000_000, help="rows, pseudo")
    parser.add_argument("--max-pending", type=int, default=100_000)
    parser.add_argument(
        "--label-ttl", default="1d", help="longer than the run: only the cap bounds"
    )
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between samples")
    parser.add_argument(
        "--only",
        choices=["sgd", "telemetry", "pseudo", "pseudo-run"],
        action="append",
        help="run only these scenarios (repeatable)",
    )
    parser.add_argument("--scrape-every", type=float, default=2.0, help="seconds between scrapes")
    parser.add_argument("--samples", default=None, help="write every (s, fraction, KiB) here")
    parser.add_argument("--tmp", default=None, help="folder for the files (default: a temp dir)")
    args = parser.parse_args()
    chosen = args.only or ["sgd", "telemetry", "pseudo", "pseudo-run"]
    with tempfile.TemporaryDirectory(prefix="bench-memory-", dir=args.tmp) as folder:
        tmp = Path(folder)
        files: dict[str, Any] = {}
        results: list[Result] = []

        def make(tag: str, rows: int, **kw: Any) -> Path:
            path = tmp / f"{tag}.csv"
            t0 = time.perf_counter()
            info: dict[str, Any] = write_csv(path, rows, **kw)
            info["seconds"] = time.perf_counter() - t0
            info["bytes"] = path.stat().st_size
            files[tag] = info
            print(f"wrote {path.name}: {info}", file=sys.stderr, flush=True)
            return path

        def scenario(name: str, cmd: list[str], data: Path, records: int, **kw: Any) -> None:
            progress = Path(cmd[cmd.index("--predictions") + 1])
            results.append(
                measure(name, cmd, data, progress, records, interval=args.interval, **kw)
            )
            print(f"{name}: done", file=sys.stderr, flush=True)

        if {"sgd", "telemetry"} & set(chosen):
            data = make("sgd", args.records, unlabeled=0.01, bad=0.001, with_ids=False)
            if "sgd" in chosen:
                scenario("sgd, default flags", sgd_command(data, tmp, "sgd"), data, args.records)
            if "telemetry" in chosen:
                port = _free_port()
                scenario(
                    "sgd + --metrics-port (scraped)",
                    sgd_command(data, tmp, "tel", "--metrics-port", str(port)),
                    data,
                    args.records,
                    scrape_port=port,
                    scrape_every=args.scrape_every,
                )
            data.unlink()  # room for the next file
        if {"pseudo", "pseudo-run"} & set(chosen):
            data = make(
                "pseudo",
                args.pseudo_records,
                unlabeled=0.9,
                bad=0.0,
                stray_labels=0.01,
                with_ids=True,
            )
            for mode, tag, label in (
                ("replay", "pseudo", "replay"),
                ("run", "pseudo-run", "run, threaded"),
            ):
                if tag in chosen:
                    scenario(
                        f"pseudo + join, labels never come ({label})",
                        pseudo_command(data, tmp, tag, mode, args),
                        data,
                        args.pseudo_records,
                        follow=mode == "run",
                    )
        print(render(results, args, files))
        if args.samples:
            with open(args.samples, "w") as handle:
                for r in results:
                    for t, f, kib in r.samples:
                        handle.write(f"{r.name}\t{t:.2f}\t{f:.4f}\t{kib}\n")
        failed = [r for r in results if r.name.startswith("sgd") and r.growth >= GROWTH_LIMIT]
        if failed:
            print(
                f"\nFAIL: RSS grew by {GROWTH_LIMIT}% or more in: "
                + ", ".join(r.name for r in failed)
            )
            sys.exit(1)


if __name__ == "__main__":
    main()
