"""/predict under load while the daemon learns: latency p50/p99 and both throughputs.

A real `streamlearn run` follows a CSV that a writer thread keeps appending to; client
threads POST /predict on loopback for a bounded time. Run:
    python bench/bench_http.py [--seconds 5] [--clients 4] [--rows-per-second 20000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def writer(path: Path, rate: int, stop: threading.Event) -> None:
    rng = np.random.default_rng(0)
    with open(path, "a") as handle:
        while not stop.is_set():
            X = rng.normal(size=(rate // 20, 3))
            y = X @ np.array([1.5, -2.0, 0.5]) + 3
            handle.write(
                "".join(
                    f"{a:.5f},{b:.5f},{c:.5f},{t:.5f}\n" for (a, b, c), t in zip(X, y, strict=True)
                )
            )
            handle.flush()
            stop.wait(0.05)


def client(port: int, deadline: float, latencies: list[float], statuses: dict[int, int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps({"x1": 0.3, "x2": -0.1, "x3": 1.0})
    while time.monotonic() < deadline:
        started = time.perf_counter()
        connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - started)
        statuses[response.status] = statuses.get(response.status, 0) + 1
    connection.close()


def learned(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/model", timeout=10) as response:
        return int(json.loads(response.read())["records_learned"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rows-per-second", type=int, default=20000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-http-"))
    path = tmp / "live.csv"
    path.write_text("x1,x2,x3,y\n")
    port = free_port()
    stop = threading.Event()
    feeding = threading.Thread(target=writer, args=(path, args.rows_per_second, stop), daemon=True)
    feeding.start()
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlearn.cli",
            "--log-level",
            "warning",
            "run",
            str(path),
            "--state-dir",
            str(tmp / "state"),
            "--metrics-port",
            str(port),
        ]
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the daemon did not become ready") from None
                time.sleep(0.2)
        before = learned(port)
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        end = time.monotonic() + args.seconds
        threads = [
            threading.Thread(target=client, args=(port, end, latencies, statuses))
            for _ in range(args.clients)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        after = learned(port)
    finally:
        stop.set()
        daemon.terminate()
        daemon.wait(timeout=30)
    ms = np.array(latencies) * 1000
    print(f"# {' '.join(sys.argv)}")
    print(
        f"# {platform.node()} {platform.machine()}, python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}, {args.clients} clients for {args.seconds:.0f} s, "
        f"writer at {args.rows_per_second} rows/s"
    )
    print(
        f"requests      {len(latencies)} ({len(latencies) / elapsed:,.0f}/s), statuses {statuses}"
    )
    print(
        f"latency ms    p50 {np.percentile(ms, 50):.2f}  p99 {np.percentile(ms, 99):.2f}  "
        f"max {ms.max():.2f}"
    )
    print(
        f"learned       {after - before} records during the load ({(after - before) / elapsed:,.0f}/s)"
    )


if __name__ == "__main__":
    main()
