"""The status page at ``/``: one self-contained HTML file, fed by ``/status.json``.

The main test runs a real daemon on a followed CSV file, loads the page in Debian's headless
Chromium (selenium + chromedriver), appends rows, waits until the page's numbers move, and
checks them against ``streamlearn inspect --json`` once the stream is quiet and checkpointed.
Its screenshot is kept under ``$STREAMLEARN_TEST_ARTIFACTS`` (else the test's tmp_path).
Without Chromium or selenium the browser test skips, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from prometheus_client import CollectorRegistry

from prom_server import free_port
from streamhelpers import STREAMLEARN, inspect_json
from streamlearn.observe.http import MetricsServer
from streamlearn.observe.status import describe_position, status_page
from streamlearn.observe.telemetry import Telemetry

ARTIFACTS_ENV = "STREAMLEARN_TEST_ARTIFACTS"

# -- the page and the JSON, without a browser -------------------------------------------------


def test_the_page_is_one_file_that_loads_nothing_from_elsewhere() -> None:
    page = status_page().decode()
    assert page.startswith("<!doctype html>")
    assert "<style>" in page and "<script>" in page
    assert not re.search(r"<script[^>]+src=|<link[^>]+stylesheet|@import|<img|<iframe", page)
    # The only absolute URL is the SVG namespace (an identifier, never fetched).
    assert set(re.findall(r"\w+://[^\s\"')]+", page)) == {"http://www.w3.org/2000/svg"}
    assert 'fetch("status.json"' in page  # relative: works behind a path prefix too


def _get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_root_serves_the_page_and_status_json_the_live_document(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_bytes(b"a,y\n" + b"1,2\n" * 99)  # 400 bytes
    state: dict[str, Any] = {
        "model": "sgd",
        "records_seen": 0,
        "records_learned": 0,
        "records_rejected": 0,
        "rejected_by_reason": {},
        "metrics": {"mae": float("nan"), "rmse": None, "r2": None},
        "rolling_metrics": {"mae": None, "rmse": None, "r2": None},
        "position": {"kind": "file", "path": str(data), "offset": 100},
        "checkpoint": {"generation": 3, "streamlearn": "0.1.0"},
    }
    telemetry = Telemetry(source="file", model_spec="sgd")
    telemetry.checkpoint_ok(time.time() - 2.0)
    server = MetricsServer(
        "127.0.0.1", 0, CollectorRegistry(), model_info=lambda: state, telemetry=telemetry
    )
    with server:
        status, headers, body = _get(server.url + "/")
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        assert body == status_page()
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert _get(server.url + "/", "HEAD")[0] == 200

        status, headers, body = _get(server.url + "/status.json")
        assert status == 200 and headers["Cache-Control"] == "no-store"
        first = json.loads(body)
        assert first["model"] == "sgd" and first["ready"] is True
        assert first["metrics"]["cumulative"]["mae"] is None  # NaN is not JSON
        assert first["source"]["text"] == f"{data} @ byte 100 of 400 (25%)"
        assert first["checkpoint"]["generation"] == 3
        assert 2.0 <= first["checkpoint"]["age_seconds"] < 60
        assert first["last_record_age_seconds"] is None  # no record yet
        assert first["rate"]["seen_per_second"] is None  # one moment is no rate

        time.sleep(1.1)
        state["records_seen"], state["records_learned"] = 600, 550
        second = json.loads(_get(server.url + "/status.json")[2])
        assert second["records"]["learned"] == 550
        assert 300 < second["rate"]["seen_per_second"] <= 600 / 1.1 + 1
        assert second["history"]["learned"] == [0, 550]

        assert _get(server.url + "/", "POST")[0] == 405
        assert _get(server.url + "/status.json", "POST")[0] == 405


def test_a_kafka_position_in_words() -> None:
    position = {"kind": "kafka", "topic": "events", "next_offsets": {"0": 519, "1": 500}}
    assert describe_position(position) == "events: p0=519 p1=500"


# -- in a real browser against a real daemon ---------------------------------------------------


def _missing(message: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must provide it", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Debian Chromium driven by its own chromedriver (no download of either)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (pip install -e '.[test]')")
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        _missing(
            "chromium or chromedriver is missing (Debian: apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1260",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


def _rows(start: int, n: int) -> str:
    """Labelled rows of y = 2a - b + 1, every 10th unlabelled, every 25th malformed."""
    lines = []
    for i in range(start, start + n):
        a, b = (i % 17) / 4 - 2, (i % 11) / 3 - 1.5
        if i % 25 == 7:
            lines.append(f"{a},oops,1\n")
        elif i % 10 == 3:
            lines.append(f"{a},{b},\n")
        else:
            lines.append(f"{a},{b},{2 * a - b + 1}\n")
    return "".join(lines)


def _labelled(start: int, n: int) -> int:
    return sum(1 for i in range(start, start + n) if i % 25 != 7 and i % 10 != 3)


# The page's elements the test reads: text, and the raw number in data-value.
_FIELDS = (
    "model", "state", "learned", "seen", "rejected-2", "unlabeled", "rate", "headline",
    "headline-name", "checkpoint-sub", "source", "updated",
)  # fmt: skip


def _read(driver: Any) -> dict[str, dict[str, str | None]]:
    script = """
        const out = {};
        for (const id of arguments[0]) {
          const e = document.getElementById(id);
          out[id] = {text: e.textContent, value: e.dataset.value ?? null};
        }
        return out;"""
    read: dict[str, dict[str, str | None]] = driver.execute_script(script, list(_FIELDS))
    return read


def _number(page: dict[str, dict[str, str | None]], field: str) -> float | None:
    value = page[field]["value"]
    return None if value in (None, "") else float(value)


def _wait(what: str, until: Callable[[], Any], deadline: float, every: float = 0.2) -> Any:
    while True:
        result = until()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(every)


@pytest.fixture
def live_daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path, Path]]:
    """``streamlearn run`` following a CSV file, with its HTTP face on a free loopback port."""
    data, state = tmp_path / "stream.csv", tmp_path / "state"
    data.write_text("a,b,y\n" + _rows(0, 100))
    port = free_port()
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                *STREAMLEARN, "run", str(data), "--state-dir", str(state),
                "--metrics-port", str(port), "--checkpoint-interval", "0.3",
                "--dead-letter", str(tmp_path / "dead.jsonl"),
            ],
            stderr=log,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 20

        def ready() -> bool:
            assert process.poll() is None, log_path.read_text()
            try:
                return _get(url + "readyz")[0] == 200
            except OSError:
                return False

        _wait("the daemon is ready", ready, deadline)
        yield process, url, data, state
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_the_page_follows_a_live_daemon_and_agrees_with_inspect(
    browser: Any, live_daemon: tuple[subprocess.Popen[bytes], str, Path, Path], tmp_path: Path
) -> None:
    process, url, data, state = live_daemon
    driver = browser
    deadline = time.monotonic() + 45
    driver.get(url)
    first = _labelled(0, 100)
    _wait(
        "the page shows the first rows learned",
        lambda: _number(_read(driver), "learned") == first,
        deadline,
    )

    # Rows arrive while the page watches: its count moves to the total, the rate is measured.
    rates: list[float] = []
    for chunk in range(6):
        with open(data, "a") as handle:
            handle.write(_rows(100 + 50 * chunk, 50))
        time.sleep(0.35)
        page = _read(driver)
        rates.append(_number(page, "rate") or 0.0)
    total = first + _labelled(100, 300)

    def caught_up() -> bool:
        page = _read(driver)
        rates.append(_number(page, "rate") or 0.0)
        return _number(page, "learned") == total

    _wait("the page shows every row learned", caught_up, deadline)
    assert max(rates) > 0, "the page never showed a rate above 0 while rows arrived"

    # Quiet and checkpointed: the page and `inspect --json` read the same state.
    def agreed() -> tuple[dict[str, Any], dict[str, dict[str, str | None]]] | None:
        summary = inspect_json(state)
        page = _read(driver)
        generation = _number(page, "checkpoint-sub")
        if summary["records_learned"] != total or generation != summary["checkpoint"]["generation"]:
            return None
        return summary, page

    summary, page = _wait("the checkpoint holds every row", agreed, deadline, every=0.5)
    artifacts = Path(os.environ.get(ARTIFACTS_ENV) or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    screenshot = artifacts / "status-page.png"
    assert driver.save_screenshot(str(screenshot))
    print(f"status page screenshot: {screenshot}")
    assert page["model"]["text"] == summary["model"] == "sgd"
    assert _number(page, "learned") == summary["records_learned"] == total
    assert _number(page, "seen") == summary["records_seen"] == 400
    assert _number(page, "rejected-2") == summary["records_rejected"] == 400 // 25
    assert _number(page, "unlabeled") == summary["records_unlabeled"]
    assert page["headline-name"]["text"] == "Rolling MAE"
    assert _number(page, "headline") == pytest.approx(summary["rolling_metrics"]["mae"], rel=1e-12)
    position = summary["position"]
    assert summary["settings"]["source"] == str(data) == position["path"]
    assert (
        page["source"]["text"]
        == f"{data} @ byte {position['offset']:,} of {data.stat().st_size:,} (100%)"
    )
    assert page["state"]["text"] in ("learning", "idle")

    # The chart is drawn, nothing came from elsewhere, and the page logged no error.
    assert len(driver.find_elements("css selector", "#chart path")) >= 2
    resources = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert resources and all(name.startswith(url) for name in resources), resources
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []

    # The daemon goes away: the page says so instead of showing stale numbers as live.
    process.terminate()
    process.wait(timeout=15)
    _wait("the page says the daemon is unreachable",
          lambda: _read(driver)["state"]["text"] == "unreachable", deadline)  # fmt: skip
