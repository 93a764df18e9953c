"""A keyed daemon's HTTP face and telemetry: ``POST /predict`` with ``{"key": K, "x": ...}``
answers that key's model (or the fallback's, marked), ``/model?key=K`` describes it, a key
with no model is a 404 with a reason; the ``streamlearn_key*`` series stay bounded and
promtool accepts them."""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from prom_server import free_port, require_binary
from streamlearn.app import App, build
from streamlearn.config import Settings

ROWS = 300


@dataclass
class Keyed:
    app: App
    port: int
    thread: threading.Thread

    def call(self, method: str, path: str, document: object | None = None) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        body = None if document is None else json.dumps(document)
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        status, data = response.status, response.read()
        connection.close()
        return status, json.loads(data) if data.startswith((b"{", b"[")) else data.decode()

    def close(self) -> None:
        self.app.daemon.stop()
        self.thread.join(30)
        self.app.close()


def serve(settings: Settings, rows: int) -> Keyed:
    """The daemon of ``settings`` running in a thread, once it has learned ``rows`` records
    (or 60 s have passed)."""
    assert settings.metrics_port is not None
    app = build(settings)
    thread = threading.Thread(target=app.daemon.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while app.daemon.inspect()["records_learned"] < rows and time.monotonic() < deadline:
        time.sleep(0.05)
    return Keyed(app, settings.metrics_port, thread)


def three_keys(tmp_path: Path) -> Path:
    """``stream.csv``: ``ROWS`` rows of the keys s0, s1, s2 in turn, key sK's y = (K + 1) * a."""
    data = tmp_path / "stream.csv"
    lines = ["store,a,y"]
    for i in range(ROWS):
        key = f"s{i % 3}"
        a = (i % 7) / 7.0
        lines.append(f"{key},{a!r},{(i % 3 + 1) * a!r}")
    data.write_text("\n".join(lines) + "\n")
    return data


def _start(tmp_path: Path, **options: Any) -> Keyed:
    settings = Settings(
        source=str(three_keys(tmp_path)),
        follow=True,
        state_dir=tmp_path / "state",
        metrics_port=free_port(),
        checkpoint_interval=0.2,
        key_by="store",
        **options,
    )
    return serve(settings, ROWS)


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[Keyed]:
    daemon = _start(tmp_path, metrics_top_keys=2)
    yield daemon
    daemon.close()


def test_predict_answers_the_keys_own_model(keyed: Keyed) -> None:
    models = keyed.app.daemon.keyed
    assert models is not None
    status, answer = keyed.call("POST", "/predict", {"key": "s2", "x": {"a": 0.5}})
    assert status == 200, answer
    want = models.models.peek("s2")
    assert want is not None
    assert answer["prediction"] == want.model.predict_one({"a": 0.5})
    assert answer["key"] == "s2" and "fallback" not in answer
    other = keyed.call("POST", "/predict", {"key": "s0", "x": {"a": 0.5}})[1]
    assert other["prediction"] != answer["prediction"]  # each key its own weights
    status, missing = keyed.call("POST", "/predict", {"key": "nope", "x": {"a": 0.5}})
    assert status == 404 and "no model for key 'nope'" in missing["error"]
    status, unkeyed = keyed.call("POST", "/predict", {"x": {"a": 0.5}})
    assert status == 400 and "key" in unkeyed["error"]


def test_model_of_a_key(keyed: Keyed) -> None:
    status, info = keyed.call("GET", "/model?key=s1")
    assert status == 200
    assert info["key"] == "s1" and info["records_learned"] == ROWS // 3
    assert set(info["weights"]) == {"a"}
    status, missing = keyed.call("GET", "/model?key=zz")
    assert status == 404 and "zz" in missing["error"]
    status, whole = keyed.call("GET", "/model")
    assert status == 200 and whole["keys_total"] == 3 and whole["keys_live"] == 3


def test_key_series_are_bounded_and_promtool_clean(keyed: Keyed) -> None:
    keyed.app.daemon.checkpoint(wait=True)  # the keys' scores are written at a checkpoint
    with urllib.request.urlopen(f"http://127.0.0.1:{keyed.port}/metrics") as response:
        text = response.read().decode()
    assert "streamlearn_keys_live 3.0" in text
    assert "streamlearn_keys_held 3.0" in text
    worst = [line for line in text.splitlines() if line.startswith("streamlearn_key_worst_")]
    assert len(worst) == 2  # --metrics-top-keys 2
    assert 'key="s2"' in worst[0] or 'key="s2"' in worst[1]  # the largest targets, worst MAE
    promtool = require_binary("promtool")  # under CI=true a missing promtool fails
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_global_fallback_answers_for_a_new_key(tmp_path: Path) -> None:
    daemon = _start(tmp_path, key_fallback="global")
    try:
        status, answer = daemon.call("POST", "/predict", {"key": "new", "x": {"a": 0.5}})
        assert status == 200, answer
        assert answer["fallback"] == "global" and answer["key"] == "new"
        keyed = daemon.app.daemon.keyed
        assert keyed is not None and keyed.tally.keyed.fallback is not None
        assert answer["prediction"] == keyed.tally.keyed.fallback.model.predict_one({"a": 0.5})
    finally:
        daemon.close()


def test_a_key_is_predicted_on_the_features_it_learned(tmp_path: Path) -> None:
    data = tmp_path / "stream.jsonl"
    events = [{"store": "s", "x": {"a": i / 10}, "y": i / 5} for i in range(50)]
    events += [{"store": "t", "x": {"b": 1.0}, "y": 1.0}]
    data.write_text("".join(json.dumps(event) + "\n" for event in events))
    settings = Settings(
        source=str(data),
        follow=True,
        metrics_port=free_port(),
        key_by="store",
        model="StandardScaler | LinearRegression",
    )
    daemon = serve(settings, 51)
    try:
        status, answer = daemon.call("POST", "/predict", {"key": "s", "x": {"a": 1.0, "b": 9.0}})
        assert status == 200, answer
        assert answer["ignored_features"] == ["b"]  # another key's feature: never reaches s
        keyed = daemon.app.daemon.keyed
        assert keyed is not None
        learner = keyed.models.peek("s")
        assert learner is not None
        assert sorted(learner.model["StandardScaler"].means) == ["a"]
    finally:
        daemon.close()


def test_learn_by_key_and_a_predicted_id_learned_by_its_key(tmp_path: Path) -> None:
    daemon = _start(tmp_path, http_learn=True)
    try:
        keyed = daemon.app.daemon.keyed
        assert keyed is not None
        status, learned = daemon.call("POST", "/learn", {"key": "s9", "x": {"a": 1.0}, "y": 2.0})
        assert status == 200 and learned["learned"] == 1, learned
        nine = keyed.models.peek("s9")
        assert nine is not None and nine.records_learned == 1
        status, bad = daemon.call("POST", "/learn", {"x": {"a": 1.0}, "y": 2.0})
        assert status == 400 and "key" in bad["error"]
        one = keyed.models.peek("s1")
        assert one is not None
        before = one.records_learned
        status, answer = daemon.call("POST", "/predict", {"key": "s1", "id": "p1", "x": {"a": 0.5}})
        assert status == 200, answer
        status, learned = daemon.call("POST", "/learn", {"id": "p1", "y": 1.0})
        assert status == 200 and learned["learned"] == 1, learned
        one = keyed.models.peek("s1")
        assert one is not None and one.records_learned == before + 1
    finally:
        daemon.close()
