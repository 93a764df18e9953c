"""End to end: a real classifier daemon follows a CSV stream while a real Prometheus scrapes it.

The dashboard's classification row and the classification rules return data; a live scrape
passes ``promtool check metrics``; the accuracy Prometheus stores equals ``inspect --json``'s,
and the per-class counters equal the labels counted in the CSV.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from deploy_files import (
    CLASSIFICATION_GROUP,
    CLASSIFICATION_ROW,
    RULES,
    dashboard_queries,
    load_dashboard,
    load_rules,
    selectors,
    substitute,
)
from prom_server import PrometheusError, PrometheusServer, free_port, require_binary
from streamhelpers import STREAMLEARN, inspect_json

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

#: Three classes, two of them awkward in a label value (a quote, a backslash).
CLASSES = ("cat", 'dog "big"', "eel\\x")


def _rows(rng: np.random.Generator, n: int) -> tuple[str, list[str]]:
    """``n`` CSV rows of a three-class stream (the class a function of a, b plus noise)."""
    lines, labels = [], []
    for a, b, noise in zip(rng.normal(size=n), rng.normal(size=n), rng.random(n), strict=True):
        label = CLASSES[0] if a > 0.5 else CLASSES[1] if b > 0 else CLASSES[2]
        if noise < 0.1:
            label = CLASSES[int(noise * 30)]
        labels.append(label)
        lines.append(f'{a:.5f},{b:.5f},"{label.replace(chr(34), chr(34) * 2)}"\n')
    return "".join(lines), labels


class Live:
    """The daemon's port, its state dir, every label written, and the Prometheus."""

    def __init__(self, prom: PrometheusServer, port: int, state: Path, labels: list[str]):
        self.prom, self.port, self.state, self.labels = prom, port, state, labels


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    require_binary("prometheus")
    work = tmp_path_factory.mktemp("class-e2e")
    data, state = work / "animals.csv", work / "state"
    rng = np.random.default_rng(4)
    text, labels = _rows(rng, 400)
    data.write_text("a,b,y\n" + text)
    port = free_port()
    with open(work / "daemon.log", "wb") as log:
        daemon = subprocess.Popen(
            [
                *STREAMLEARN, "run", str(data), "--model", "softmax", "--lr", "0.05",
                "--state-dir", str(state), "--metrics-port", str(port),
                "--checkpoint-interval", "0.3", "--rolling-window", "200",
                "--drift-detector", "none",
            ],
            stderr=log,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _status(f"http://127.0.0.1:{port}/readyz") != 200:
            assert daemon.poll() is None, (work / "daemon.log").read_text()
            assert time.monotonic() < deadline, "the daemon never became ready"
            time.sleep(0.2)
        with PrometheusServer(
            [f"127.0.0.1:{port}"], rule_files=[RULES], scrape_interval="1s"
        ) as prom:
            # Rows keep coming while Prometheus scrapes: the counters' rates are not 0.
            for _ in range(6):
                text, more = _rows(rng, 100)
                with open(data, "a") as handle:
                    handle.write(text)
                labels += more
                time.sleep(0.7)
            prom.wait_until('count_over_time(up{job="streamlearn"}[1m]) >= 4', bool, timeout=40)
            yield Live(prom, port, state, labels)
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        finally:
            daemon.kill()


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except OSError:
        return None


def _returns_data(prom: PrometheusServer, expr: str) -> str | None:
    try:
        prom.wait_until(expr, bool, timeout=15)
    except PrometheusError as exc:
        return str(exc)
    return None


def test_the_classification_row_and_rules_return_data(live: Live) -> None:
    failures = {}
    queries = dashboard_queries(load_dashboard(), row=CLASSIFICATION_ROW)
    assert len(queries) >= 6
    for where, expr in queries:
        problem = _returns_data(live.prom, substitute(expr))
        if problem:
            failures[where] = problem
    for rule in load_rules(group=CLASSIFICATION_GROUP):
        if "record" in rule:
            problem = _returns_data(live.prom, rule["record"])
            if problem:
                failures[rule["record"]] = problem
        for selector in selectors(rule["expr"]):
            problem = _returns_data(live.prom, selector)
            if problem:
                failures[f"{rule.get('alert') or rule['record']}: {selector}"] = problem
    assert failures == {}, "\n".join(f"{k}: {v}" for k, v in failures.items())


def test_a_live_scrape_passes_promtool(live: Live) -> None:
    promtool = require_binary("promtool")
    with urllib.request.urlopen(f"http://127.0.0.1:{live.port}/metrics", timeout=10) as response:
        exposition = response.read()
    assert b'streamlearn_class_labels_total{class="dog \\"big\\""}' in exposition
    assert b'streamlearn_class_labels_total{class="eel\\\\x"}' in exposition
    assert b"streamlearn_prediction_abs_error" not in exposition  # a regressor's histogram
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr.decode()
    assert (result.stdout + result.stderr).decode().strip() == ""


def test_prometheus_holds_what_inspect_says(live: Live) -> None:
    total = len(live.labels)

    def checkpointed() -> dict | None:
        summary = inspect_json(live.state)
        return summary if summary["records_learned"] == total else None

    deadline = time.monotonic() + 30
    while (summary := checkpointed()) is None:
        assert time.monotonic() < deadline, "the checkpoint never held every row"
        time.sleep(0.3)
    metrics = summary["metrics"]
    for name in ("accuracy", "cross_entropy", "macro_f1"):
        expr = f'streamlearn_model_metric{{metric="{name}", window="cumulative"}}'
        live.prom.wait_until(expr, lambda r, n=name: float(r[0]["value"][1]) == metrics[n])
    rolling = summary["rolling_metrics"]["accuracy"]
    live.prom.wait_until(
        'streamlearn_model_metric{metric="accuracy", window="rolling"}',
        lambda r: float(r[0]["value"][1]) == rolling,
    )
    # softmax knows no class before its first record: that one is learned unscored (River's
    # progressive_val_score skips it too); every other label is counted under its class.
    expected = Counter(live.labels[1:])
    counts = live.prom.wait_until(
        "streamlearn_class_labels_total",
        lambda r: sum(float(s["value"][1]) for s in r) == total - 1,
    )
    assert {s["metric"]["class"]: float(s["value"][1]) for s in counts} == expected
    confusion = metrics["confusion"]
    predicted = {label: sum(row.get(label, 0) for row in confusion.values()) for label in CLASSES}
    right = {label: confusion[label].get(label, 0) for label in CLASSES}
    for name, want in (("predictions", predicted), ("correct", right)):
        got = live.prom.query(f"streamlearn_class_{name}_total")
        assert {s["metric"]["class"]: float(s["value"][1]) for s in got} == want, name
