"""The write endpoints of the HTTP face, chantilly's habits: a real daemon following a file.

``POST /predict`` with an ``id`` remembers the features for a later ``POST /learn`` with that
id and its label; ``/predict`` takes a JSON array too; ``POST /learn`` (``--http-learn``)
learns test-then-train under the loop's lock, counted like stream records; ``GET
/model/download`` (``--http-download``) sends the latest checkpoint file. Every write
endpoint is off by default and says so.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from prom_server import free_port
from streamlearn.app import App, build
from streamlearn.config import Settings
from streamlearn.learner import Learner
from streamlearn.models.sgd import SGDRegressor

ROWS = 200


def _rows(seed: int, n: int) -> list[tuple[float, float, float]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.uniform(-1, 1), rng.uniform(-1, 1)
        out.append((a, b, 2 * a - b + 0.5))
    return out


@dataclass
class Daemon:
    app: App
    port: int
    thread: threading.Thread
    state_dir: Path | None

    def request(
        self, method: str, path: str, document: object | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        body = None if document is None else json.dumps(document)
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.status, dict(response.getheaders()), response.read()
        connection.close()
        return answer

    def post(self, path: str, document: object) -> tuple[int, Any]:
        status, _, body = self.request("POST", path, document)
        return status, json.loads(body)

    def stop(self) -> None:
        self.app.daemon.stop()
        self.thread.join(30)
        self.app.close()


def _start(tmp_path: Path, *, state: bool = True, **http: bool) -> Daemon:
    data = tmp_path / "stream.csv"
    data.write_text("a,b,y\n" + "".join(f"{a!r},{b!r},{y!r}\n" for a, b, y in _rows(1, ROWS)))
    port = free_port()
    settings = Settings(
        source=str(data),
        follow=True,
        state_dir=tmp_path / "state" if state else None,
        metrics_port=port,
        checkpoint_interval=0.2,
        **http,
    )
    app = build(settings)
    thread = threading.Thread(target=app.daemon.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while app.daemon.learner.records_learned < ROWS and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.daemon.learner.records_learned == ROWS
    return Daemon(app, port, thread, settings.state_dir)


@pytest.fixture
def off(tmp_path: Path) -> Iterator[Daemon]:
    daemon = _start(tmp_path)
    yield daemon
    daemon.stop()


@pytest.fixture
def on(tmp_path: Path) -> Iterator[Daemon]:
    daemon = _start(tmp_path, http_learn=True, http_download=True)
    yield daemon
    daemon.stop()


def test_write_endpoints_are_off_by_default_and_say_so(off: Daemon) -> None:
    weights = dict(off.app.daemon.learner.model.weights)
    status, answer = off.post("/learn", {"x": {"a": 1.0, "b": 2.0}, "y": 3.0})
    assert status == 403
    assert "--http-learn" in answer["error"]
    status, headers, body = off.request("GET", "/model/download")
    assert status == 403 and headers["Content-Type"] == "application/json"
    assert "--http-download" in json.loads(body)["error"]
    assert off.app.daemon.learner.records_learned == ROWS
    assert off.app.daemon.learner.model.weights == weights
    # A prediction with an id is answered, and remembers nothing while /learn is off.
    status, answer = off.post("/predict", {"id": "r1", "x": {"a": 1.0, "b": 2.0}})
    assert status == 200 and "prediction" in answer


def test_learn_is_test_then_train_counted_like_stream_records(on: Daemon) -> None:
    extra = _rows(2, 50)
    status, answer = on.post("/learn", [{"x": {"a": a, "b": b}, "y": y} for a, b, y in extra[:20]])
    assert (status, answer) == (200, {"learned": 20, "model_version": ROWS + 20})
    for a, b, y in extra[20:]:
        status, answer = on.post("/learn", {"a": a, "b": b, "y": y})  # flat, one at a time
        assert status == 200 and answer["learned"] == 1
    daemon = on.app.daemon
    assert daemon.learner.records_learned == ROWS + 50
    assert daemon.counters.records_seen == ROWS + 50
    assert daemon.telemetry is not None
    assert daemon.telemetry.value("streamlearn_records_learned_total", label="true") == ROWS + 50
    # The same records in the same order, learned by a learner of its own: the same weights.
    oracle = Learner(SGDRegressor(lr=0.01))
    for a, b, y in [*_rows(1, ROWS), *extra]:
        oracle.step({"a": a, "b": b}, y)
    with daemon.lock:
        assert daemon.learner.model.weights == oracle.model.weights
        assert daemon.learner.model.intercept == oracle.model.intercept
        assert daemon.learner.summary() == oracle.summary()


#: A target whose squared error would overflow (``records.TARGET_LIMIT``).
_BEYOND = "target 'y' is {}: beyond ±1e+150, its squared error would overflow"


def test_learn_says_what_is_wrong(on: Daemon) -> None:
    for body, message in (
        ({"x": {"a": 1.0, "b": 2.0}}, "no target 'y'"),
        ({"x": {"a": 1.0, "b": 2.0}, "y": "3"}, "target 'y' must be a finite number"),
        ({"a": 1.0, "b": 2.0, "y": 1e300}, _BEYOND.format("1e+300")),
        ({"id": "r1", "y": -1e150}, _BEYOND.format("-1e+150")),  # a late label too
        (
            [{"a": 1.0, "b": 2.0, "y": 1.0}, {"a": 1.0, "b": 2.0, "y": 1e200}],
            "record 1: " + _BEYOND.format("1e+200"),
        ),
        ({"x": {"a": 1.0}, "y": 3.0}, "missing features: b"),
        ([], "no records"),
        ([{"a": 1.0, "b": 1.0, "y": 1.0}] * 1001, "at most 1000 records"),
    ):
        status, answer = on.post("/learn", body)
        assert status == 400, (body, answer)
        assert message in answer["error"]
    assert on.app.daemon.learner.records_learned == ROWS


def test_learn_takes_a_target_just_inside_the_bound(on: Daemon) -> None:
    status, answer = on.post("/learn", [{"a": 1.0, "b": 2.0, "y": y} for y in (9.9e149, -9.9e149)])
    assert (status, answer) == (200, {"learned": 2, "model_version": ROWS + 2})
    oracle = Learner(SGDRegressor(lr=0.01))
    for a, b, y in [*_rows(1, ROWS), (1.0, 2.0, 9.9e149), (1.0, 2.0, -9.9e149)]:
        oracle.step({"a": a, "b": b}, y)
    with on.app.daemon.lock:
        assert on.app.daemon.learner.summary() == oracle.summary()
        assert on.app.daemon.learner.model.weights == oracle.model.weights


def test_a_prediction_with_an_id_is_learned_when_its_label_comes(on: Daemon) -> None:
    daemon = on.app.daemon
    status, first = on.post("/predict", {"id": "r1", "x": {"a": 0.5, "b": -0.5}})
    assert status == 200
    status, answer = on.post("/predict", {"id": "r2", "a": 0.1, "b": 0.2})  # flat, with an id
    assert status == 200
    assert daemon.learner.records_learned == ROWS  # nothing learned yet
    oracle = Learner(SGDRegressor(lr=0.01))
    for a, b, y in _rows(1, ROWS):
        oracle.step({"a": a, "b": b}, y)
    oracle.step_with_prediction({"a": 0.5, "b": -0.5}, 2.0, first["prediction"])

    status, answer = on.post("/learn", {"id": "r1", "y": 2.0})
    assert (status, answer) == (200, {"learned": 1, "model_version": ROWS + 1})
    with daemon.lock:
        # Scored with the prediction made when the features came, then learned.
        assert daemon.learner.summary() == oracle.summary()
        assert daemon.learner.model.weights == oracle.model.weights
    status, answer = on.post("/learn", {"id": "r1", "y": 2.0})  # each label joins once
    assert status == 404
    assert answer["error"] == "no features wait for id 'r1' (predicted with that id?)"
    status, answer = on.post("/learn", {"id": "nope", "y": 1.0})
    assert status == 404
    assert daemon.learner.records_learned == ROWS + 1


def test_predict_takes_a_json_array(on: Daemon) -> None:
    queries = [{"a": a, "b": b} for a, b, _ in _rows(3, 25)]
    singles = [on.post("/predict", query)[1] for query in queries]
    status, answers = on.post("/predict", queries)
    assert status == 200
    assert answers == singles
    status, answer = on.post("/predict", [{"a": 1.0, "b": 1.0}] * 1001)
    assert status == 400 and "at most 1000 records" in answer["error"]
    status, answer = on.post("/predict", [{"a": 1.0, "b": 1.0}, {"a": 1.0}])
    assert status == 400 and answer["error"] == "record 1: missing features: b"
    status, answer = on.post("/predict", [])
    assert status == 400 and "no records" in answer["error"]


def test_model_download_sends_the_latest_checkpoint(on: Daemon) -> None:
    assert on.state_dir is not None
    deadline = time.monotonic() + 30
    while not list(on.state_dir.glob("gen-*.ckpt")) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # the stream is quiet: no checkpoint comes after this one
    status, headers, body = on.request("GET", "/model/download")
    latest = max(path for path in on.state_dir.glob("gen-*.ckpt") if path.stem != "gen-0000000000")
    assert status == 200
    assert body == latest.read_bytes()
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"] == f'attachment; filename="{latest.name}"'


def test_model_download_without_a_state_dir_is_404(tmp_path: Path) -> None:
    daemon = _start(tmp_path, state=False, http_download=True)
    try:
        status, _, body = daemon.request("GET", "/model/download")
        assert status == 404
        assert "--state-dir" in json.loads(body)["error"]
    finally:
        daemon.stop()
