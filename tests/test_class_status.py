"""The status page of a classifier: ``/status.json`` charts accuracy and lists the classes,
and the page (in headless Chromium, as ``test_status_page.py``) shows accuracy, log loss and
the classes as ``inspect --json`` says."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_status_page import _get, _number, _read, _wait, browser  # noqa: F401 - a fixture

from prom_server import free_port
from streamhelpers import STREAMLEARN, inspect_json
from streamlearn.observe.status import StatusBoard

ROWS = 300


def _rows(start: int, n: int) -> tuple[str, list[str]]:
    """Rows of a yes/no stream: ``yes`` when a > b (a deterministic pattern, every 7th noisy)."""
    lines, labels = [], []
    for i in range(start, start + n):
        a, b = (i % 13) / 6 - 1, (i % 7) / 3 - 1
        label = "yes" if (a > b) != (i % 7 == 3) else "no"
        lines.append(f"{a},{b},{label}\n")
        labels.append(label)
    return "".join(lines), labels


def test_a_classifiers_document_charts_accuracy_and_lists_its_classes() -> None:
    now = [100.0]
    state: dict[str, Any] = {
        "model": "logistic",
        "task": "classification",
        "records_seen": 0,
        "records_learned": 0,
        "metrics": {"accuracy": None, "log_loss": None, "f1": None, "roc_auc": None,
                    "confusion": {}},
        "rolling_metrics": {"accuracy": None, "log_loss": None, "confusion": {}},
    }  # fmt: skip
    board = StatusBoard(lambda: state, clock=lambda: now[0])
    first = board.document()
    assert (first["task"], first["headline"], first["classes"]) == (
        "classification",
        "accuracy",
        [],
    )
    now[0] = 102.0
    state["records_learned"] = state["records_seen"] = 20
    state["metrics"] = {
        "accuracy": 0.75,
        "log_loss": 0.5,
        "f1": 0.8,
        "roc_auc": 0.7,
        "confusion": {"no": {"no": 5, "yes": 3}, "yes": {"no": 2, "yes": 10}},
    }
    state["rolling_metrics"] = {"accuracy": 0.8, "log_loss": 0.4, "confusion": {}}
    state["baseline_metrics"] = {"accuracy": 0.6, "log_loss": 0.9, "confusion": {}}
    doc = board.document()  # fmt: skip
    assert doc["metrics"]["cumulative"] == {"accuracy": 0.75, "log_loss": 0.5, "f1": 0.8,
                                            "roc_auc": 0.7}  # fmt: skip
    assert doc["metrics"]["baseline"] == {"accuracy": 0.6, "log_loss": 0.9}
    assert doc["classes"] == [
        {"class": "yes", "labels": 12, "predictions": 13, "correct": 10},
        {"class": "no", "labels": 8, "predictions": 7, "correct": 5},
    ]
    history = doc["history"]
    assert history["accuracy"] == [None, 0.75] and history["rolling_accuracy"] == [None, 0.8]
    assert history["baseline_accuracy"] == [None, 0.6] and "mae" not in history


@pytest.fixture
def live_classifier(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """``streamlearn run`` of ``logistic`` following a yes/no CSV, its HTTP face on a port."""
    data, state = tmp_path / "clicks.csv", tmp_path / "state"
    text, labels = _rows(0, ROWS)
    data.write_text("a,b,y\n" + text)
    port = free_port()
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                *STREAMLEARN, "run", str(data), "--model", "logistic", "--lr", "0.5",
                "--state-dir", str(state), "--metrics-port", str(port),
                "--checkpoint-interval", "0.3", "--rolling-window", "100",
                "--drift-detector", "none",
            ],
            stderr=log,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:

        def ready() -> bool:
            assert process.poll() is None, log_path.read_text()
            try:
                return _get(url + "readyz")[0] == 200
            except OSError:
                return False

        _wait("the daemon is ready", ready, time.monotonic() + 20)
        yield url, state, labels
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _classes_table(driver: Any) -> list[list[str]]:
    script = """
        return [...document.querySelectorAll('#classes table tr')].slice(1)
          .map((tr) => [...tr.children].map((td) => td.textContent));"""
    rows: list[list[str]] = driver.execute_script(script)
    return rows


def _metric_rows(driver: Any) -> dict[str, list[str]]:
    script = """
        return [...document.querySelectorAll('#metrics tr')]
          .map((tr) => [...tr.children].map((td) => td.textContent));"""
    return {row[0]: row[1:] for row in driver.execute_script(script)}


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_the_page_shows_a_classifiers_accuracy_log_loss_and_classes(
    browser: Any,  # noqa: F811 - the fixture imported above
    live_classifier: tuple[str, Path, list[str]],
) -> None:
    url, state, labels = live_classifier
    driver = browser
    deadline = time.monotonic() + 45
    driver.get(url)

    def agreed() -> tuple[dict[str, Any], dict[str, dict[str, str | None]]] | None:
        summary = inspect_json(state)
        page = _read(driver)
        if summary["records_learned"] != ROWS or _number(page, "learned") != ROWS:
            return None
        if _number(page, "checkpoint-sub") != summary["checkpoint"]["generation"]:
            return None
        # The chart needs two samples a second apart: 300 rows can all land before the
        # page's second poll, so a user (and this test) waits for it.
        if len(driver.find_elements("css selector", "#chart path")) < 2:
            return None
        return summary, page

    summary, page = _wait(
        "the page, its chart and the checkpoint hold every row", agreed, deadline, 0.5
    )
    rolling = summary["rolling_metrics"]
    assert page["headline-name"]["text"] == "Rolling accuracy"
    assert _number(page, "headline") == rolling["accuracy"]
    assert driver.find_element("id", "headline-sub").text == f"log loss {rolling['log_loss']:.4g}"
    assert driver.find_element("id", "chart-name").get_attribute("textContent") == (
        "Prequential accuracy"
    )
    metrics = _metric_rows(driver)
    assert set(metrics) == {"accuracy", "log loss", "F1", "ROC AUC"}
    assert float(metrics["log loss"][0]) == pytest.approx(summary["metrics"]["log_loss"], 1e-3)
    # Every record of a fresh logistic model is scored (it answers 50/50 before learning).
    table = {row[0]: row[1:] for row in _classes_table(driver)}
    assert {name: int(row[0].replace(",", "")) for name, row in table.items()} == Counter(labels)
    confusion = summary["metrics"]["confusion"]
    for name, (_, predicted, _recall) in table.items():
        assert int(predicted) == sum(row.get(name, 0) for row in confusion.values())
    assert {
        p.get_attribute("class") for p in driver.find_elements("css selector", "#chart path")
    } >= {"rolling", "cumulative"}
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
