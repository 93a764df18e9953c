"""``POST /predict`` never changes the model: a real daemon, thousands of random requests.

An unauthenticated client must not grow or alter the state a checkpoint stores. Features the
model has not learned are ignored and named in the answer (``ignored_features``), or refused
with 400 under ``--strict-features``.
"""

from __future__ import annotations

import http.client
import json
import pickle
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from prom_server import free_port
from streamlearn.app import App, build
from streamlearn.classify.learner import ClassLearner
from streamlearn.classify.space import ClassSpace
from streamlearn.classify.task import binary_only
from streamlearn.config import Settings
from streamlearn.learner import Learner
from streamlearn.models.registry import CLASSIFIERS, MODELS, build_model
from streamlearn.observe.serving import ModelService

ROWS = 300


@dataclass
class Served:
    """A daemon following a file, learned up to its end, with its HTTP face."""

    app: App
    port: int
    thread: threading.Thread

    def learner_bytes(self) -> bytes:
        """What a checkpoint stores of the model and its prequential state."""
        with self.app.daemon.lock:
            return pickle.dumps(self.app.daemon.learner)

    def post(self, connection: http.client.HTTPConnection, path: str, document: object) -> Any:
        connection.request(
            "POST", path, body=json.dumps(document), headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())


def _write_stream(path: Path, fmt: str) -> None:
    rng = random.Random(7)
    lines = ["a,b,y"] if fmt == "csv" else []
    for _ in range(ROWS):
        a, b = rng.uniform(-1, 1), rng.uniform(-1, 1)
        y = 2 * a - b + 0.5
        if fmt == "csv":
            lines.append(f"{a!r},{b!r},{y!r}")
        else:
            lines.append(json.dumps({"a": a, "b": b, "y": y}))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    spec, fmt, strict = request.param
    data = tmp_path / f"stream.{'csv' if fmt == 'csv' else 'jsonl'}"
    _write_stream(data, fmt)
    port = free_port()
    settings = Settings(
        source=str(data),
        follow=True,
        model=spec,
        model_from_flag=True,
        state_dir=tmp_path / "state",
        metrics_port=port,
        strict_features=strict,
    )
    app = build(settings)
    thread = threading.Thread(target=app.daemon.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while app.daemon.learner.records_learned < ROWS and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.daemon.learner.records_learned == ROWS
    try:
        yield Served(app, port, thread)
    finally:
        app.daemon.stop()
        thread.join(30)
        app.close()


SPECS = [
    ("StandardScaler | LinearRegression", "csv", False),
    ("StandardScaler | LinearRegression", "jsonl", False),
    ("MinMaxScaler | HoeffdingTreeRegressor", "jsonl", False),
    ("HoeffdingTreeRegressor", "csv", False),
    ("sgd", "csv", False),
    ("sgd", "jsonl", False),
    ("mlp", "csv", False),
]


@pytest.mark.slow
@pytest.mark.parametrize("served", SPECS, indirect=True, ids=lambda p: f"{p[0]}-{p[1]}")
def test_ten_thousand_random_predictions_leave_the_model_unchanged(served: Served) -> None:
    before = served.learner_bytes()
    rng = random.Random(1)
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    statuses: dict[int, int] = {}
    ignored_seen = 0
    for i in range(10_000):
        features = {"a": rng.uniform(-3, 3), "b": rng.uniform(-3, 3)}
        for _ in range(rng.randrange(4)):
            features[f"z{rng.getrandbits(48):x}"] = rng.uniform(-1e6, 1e6)
        status, answer = served.post(connection, "/predict", features)
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            unknown = sorted(set(features) - {"a", "b"})
            assert answer.get("ignored_features", []) == unknown, (i, answer)
            ignored_seen += bool(unknown)
    connection.close()
    assert statuses == {200: 10_000}
    assert ignored_seen > 5_000
    assert served.learner_bytes() == before


@pytest.mark.parametrize(
    "served", [("StandardScaler | LinearRegression", "jsonl", False)], indirect=True
)
def test_unknown_features_do_not_change_the_answer(served: Served) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    status, plain = served.post(connection, "/predict", {"a": 0.5, "b": -0.25})
    assert status == 200 and "ignored_features" not in plain
    status, padded = served.post(connection, "/predict", {"a": 0.5, "b": -0.25, "zz": 1e9})
    connection.close()
    assert status == 200
    assert padded["prediction"] == plain["prediction"]
    assert padded["ignored_features"] == ["zz"]


@pytest.mark.parametrize("served", [("sgd", "csv", True), ("sgd", "jsonl", True)], indirect=True)
def test_strict_features_refuses_unknown_names(served: Served) -> None:
    before = served.learner_bytes()
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    status, answer = served.post(connection, "/predict", {"a": 1, "b": 2, "zz": 3, "c": 4})
    assert status == 400
    assert answer["error"] == "unknown features: c, zz (the model has not learned them)"
    status, answer = served.post(connection, "/predict", {"a": 1, "b": 2})
    connection.close()
    assert status == 200 and "ignored_features" not in answer
    assert served.learner_bytes() == before


# -- every model the spec language allows --------------------------------------------------

#: Models whose pickle holds a cache a prediction refills: what they learned stays the same.
#: River's BayesianLinearRegression computes its posterior mean at the first prediction after
#: a learn and keeps it: a function of what was learned, so the comparison leaves it out.
CACHES = {
    "BayesianLinearRegression": ("_m_arr", "_m_dirty"),
}
TRANSFORMERS = {
    "StandardScaler",
    "AdaptiveStandardScaler",
    "MinMaxScaler",
    "MaxAbsScaler",
    "Normalizer",
    "PolynomialExtender",
    "RBFSampler",
}


def _learned_state(model: Any, name: str) -> bytes:
    skip = CACHES.get(name, ())
    if not skip:
        return pickle.dumps(model)
    return pickle.dumps({k: v for k, v in vars(model).items() if k not in skip})


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("fixed", [True, False], ids=["header", "open"])
def test_no_registered_model_changes_when_predicted_on(name: str, fixed: bool) -> None:
    spec = f"{name} | LinearRegression" if name in TRANSFORMERS else name
    model = build_model(spec, lr=0.01)
    learner: Learner | ClassLearner = Learner(model)
    space = ClassSpace(binary_only(model))
    if name in CLASSIFIERS:  # the same records, labelled by the sign of the target
        learner = ClassLearner(model, space)
    service = ModelService(
        SimpleNamespace(lock=threading.RLock(), learner=learner), ["a", "b"] if fixed else None
    )
    rng = random.Random(3)
    for _ in range(200):
        a, b = rng.random(), rng.random()
        y = 2 * a - b
        if name in CLASSIFIERS:
            code = space.encode("yes" if y > 0 else "no")
            assert isinstance(code, float)
            y = code
        learner.step({"a": a, "b": b}, y)
    before = _learned_state(learner.model, name)
    probe = {"a": 0.3, "b": 0.6}
    expected = service.predict(probe).prediction
    for i in range(1000):
        answer = service.predict({"a": rng.random(), "b": rng.random(), f"z{i}": 1e6 * i})
        assert answer.ignored_features == (f"z{i}",)
    assert learner.records_learned == 200
    assert _learned_state(learner.model, name) == before
    assert service.predict(probe).prediction == expected


@pytest.mark.parametrize(
    "served",
    [("sgd", "csv", False), ("StandardScaler | LinearRegression", "jsonl", False)],
    indirect=True,
)
def test_an_input_too_large_for_the_model_is_422_with_a_reason(served: Served) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    status, answer = served.post(connection, "/predict", {"a": 1e300, "b": 0.5})
    assert status == 422, answer
    assert answer["error"] == (
        "the prediction for these features is not a finite number: "
        "a value is too large for the model"
    )
    status, answer = served.post(connection, "/predict", {"a": 0.5, "b": 0.5})
    connection.close()
    assert status == 200  # the model is fine
