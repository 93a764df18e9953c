"""A real Prometheus server (and promtool) for tests that are about Prometheus.

``PrometheusServer`` runs the ``prometheus`` binary on a free loopback port with a
temporary config that scrapes given targets every second and loads given rule files,
waits until it is ready, answers PromQL through the HTTP API, and stops it.
``require_binary`` skips a test when a binary is missing, except under ``CI=true``,
where a missing Prometheus is a broken CI machine and fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

__all__ = ["PrometheusError", "PrometheusServer", "free_port", "require_binary"]


def require_binary(name: str) -> str:
    """The path of ``name``; skip the test if missing, fail it under ``CI=true``."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must provide it")
        pytest.skip(message)
    return path


def free_port() -> int:
    """A loopback TCP port free right now (another process may take it before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusError(RuntimeError):
    """Prometheus did not start, or answered a query with an error."""


class PrometheusServer:
    """A throw-away Prometheus scraping ``targets`` (job ``job``) every ``scrape_interval``.

    Use as a context manager; ``query(expr)`` returns the result list of an instant query.
    """

    def __init__(
        self,
        targets: Sequence[str],
        *,
        rule_files: Sequence[str | Path] = (),
        job: str = "streamlearn",
        scrape_interval: str = "1s",
        binary: str | None = None,
    ) -> None:
        self.targets = list(targets)
        self.rule_files = [str(Path(f).resolve()) for f in rule_files]
        self.job = job
        self.scrape_interval = scrape_interval
        self.binary = binary or require_binary("prometheus")
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _config(self) -> str:
        # JSON is YAML: no YAML library needed to write the config.
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
            },
            "rule_files": self.rule_files,
            "scrape_configs": [
                {"job_name": self.job, "static_configs": [{"targets": self.targets}]}
            ],
        }
        return json.dumps(config, indent=2)

    def start(self, timeout: float = 30.0) -> None:
        """Start and wait for ``/-/ready``; retries on a port taken in the meantime."""
        self._workdir = tempfile.TemporaryDirectory(prefix="streamlearn-prom-")
        workdir = Path(self._workdir.name)
        config_path = workdir / "prometheus.yml"
        config_path.write_text(self._config())
        last_log = ""
        for _attempt in range(3):
            self.port = free_port()
            log_path = workdir / f"prometheus-{self.port}.log"
            with log_path.open("wb") as log_file:
                self._process = subprocess.Popen(
                    [
                        self.binary,
                        f"--config.file={config_path}",
                        f"--storage.tsdb.path={workdir / 'data'}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--log.level=warn",
                    ],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            if self._wait_ready(timeout):
                return
            last_log = log_path.read_text(errors="replace")[-2000:]
            self._terminate()
            if "address already in use" not in last_log:
                break
        self.stop()
        raise PrometheusError(f"prometheus did not become ready:\n{last_log}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the ``result`` list (a scalar or string comes back as one item)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                document = json.load(response)
        except urllib.error.HTTPError as exc:
            document = json.load(exc)
        if document.get("status") != "success":
            raise PrometheusError(f"{expr!r}: {document.get('error', document)}")
        data = document["data"]
        if data["resultType"] in ("vector", "matrix"):
            return list(data["result"])
        return [{"value": data["result"]}]

    def wait_until(
        self, expr: str, accept: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """Query ``expr`` until ``accept(result)``; PrometheusError with the last result if not."""
        deadline = time.monotonic() + timeout
        result = self.query(expr)
        while not accept(result):
            if time.monotonic() > deadline:
                raise PrometheusError(f"{expr!r} still {result!r} after {timeout} s")
            time.sleep(0.25)
            result = self.query(expr)
        return result

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def stop(self) -> None:
        """Stop the server and delete its data; safe to call twice."""
        self._terminate()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
