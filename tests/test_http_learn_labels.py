"""``POST /learn`` of a classifier: the body's label goes through the run's class space.

A label is text, as in the stream (a JSON string as it is, a number or a bool as its JSON
text); it is coded by the same ``ClassSpace`` the decoder uses, and a label the space
refuses is answered 400 with the dead letter's reason, nothing of the body learned and the
space unchanged, as a bad regression target is.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_http_write import Daemon

from prom_server import free_port
from streamlearn.app import build
from streamlearn.classify.learner import ClassLearner
from streamlearn.classify.space import ClassSpace
from streamlearn.config import Settings
from streamlearn.models.logistic import LogisticRegression

ROWS = 200


def _rows(seed: int, n: int) -> list[tuple[float, float, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.uniform(-1, 1), rng.uniform(-1, 1)
        out.append((a, b, "yes" if a - b + rng.gauss(0, 0.3) > 0 else "no"))
    return out


def _start(tmp_path: Path, **extra: object) -> Daemon:
    data = tmp_path / "stream.csv"
    data.write_text("a,b,y\n" + "".join(f"{a!r},{b!r},{y}\n" for a, b, y in _rows(1, ROWS)))
    port = free_port()
    options: dict[str, object] = {"model": "logistic", "lr": 0.05, **extra}
    settings = Settings(
        source=str(data),
        follow=True,
        state_dir=None,
        metrics_port=port,
        http_learn=True,
        **options,  # type: ignore[arg-type]
    )
    app = build(settings)
    thread = threading.Thread(target=app.daemon.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while app.daemon.learner.records_learned < ROWS and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.daemon.learner.records_learned == ROWS
    return Daemon(app, port, thread, None)


@pytest.fixture
def on(tmp_path: Path) -> Iterator[Daemon]:
    daemon = _start(tmp_path)
    yield daemon
    daemon.stop()


def _oracle(extra: list[tuple[float, float, str]]) -> ClassLearner:
    learner = ClassLearner(LogisticRegression(lr=0.05), ClassSpace(binary=True))
    for a, b, label in [*_rows(1, ROWS), *extra]:
        code = learner.classes.encode(label)
        assert isinstance(code, float)
        learner.step({"a": a, "b": b}, code)
    return learner


def test_learn_takes_a_classifiers_label_as_the_stream_does(on: Daemon) -> None:
    extra = _rows(2, 30)
    body = [{"x": {"a": a, "b": b}, "y": y} for a, b, y in extra[:20]]
    status, answer = on.post("/learn", body)
    assert (status, answer) == (200, {"learned": 20, "model_version": ROWS + 20})
    for a, b, y in extra[20:]:
        status, answer = on.post("/learn", {"a": a, "b": b, "y": y.upper()})  # any case
        assert status == 200 and answer["learned"] == 1, answer
    learner = on.app.daemon.learner
    assert isinstance(learner, ClassLearner)
    oracle = _oracle(extra)
    with on.app.daemon.lock:
        assert learner.classes.labels == ["no", "yes"]
        assert learner.model.weights == pytest.approx(oracle.model.weights, abs=1e-12, rel=0)
        assert learner.model.intercept == pytest.approx(oracle.model.intercept, abs=1e-12)
        assert learner.summary()["confusion"] == oracle.summary()["confusion"]
        assert learner.records_learned == ROWS + 30


def test_a_bad_label_is_400_with_its_reason_and_nothing_learned(on: Daemon) -> None:
    learner = on.app.daemon.learner
    assert isinstance(learner, ClassLearner)
    weights = dict(learner.model.weights)
    for body, message in (
        ({"x": {"a": 1.0, "b": 2.0}, "y": "maybe"}, "third_class"),
        ({"x": {"a": 1.0, "b": 2.0}, "y": 1}, "third_class"),  # 1/0 is not this stream's pair
        ({"x": {"a": 1.0, "b": 2.0}, "y": ""}, "target 'y' is empty"),
        ({"x": {"a": 1.0, "b": 2.0}, "y": None}, "target 'y' is empty"),
        ({"x": {"a": 1.0, "b": 2.0}, "y": {"k": 1}}, "not a class label"),
        ({"x": {"a": 1.0, "b": 2.0}, "y": "x" * 300}, "too_long"),
        (
            [{"x": {"a": 1.0, "b": 2.0}, "y": "yes"}, {"x": {"a": 1.0, "b": 2.0}, "y": "maybe"}],
            "record 1: ",
        ),
        ({"id": "r9", "y": "perhaps"}, "third_class"),  # a late label is coded too
    ):
        status, answer = on.post("/learn", body)
        assert status == 400, (body, answer)
        assert message in answer["error"], answer
    with on.app.daemon.lock:
        assert learner.records_learned == ROWS
        assert learner.model.weights == weights
        assert learner.classes.labels == ["no", "yes"]
    assert on.app.daemon.counters.records_seen == ROWS


def test_a_late_label_joins_and_is_coded(on: Daemon) -> None:
    status, first = on.post("/predict", {"id": "r1", "x": {"a": 0.5, "b": -0.5}})
    assert status == 200 and set(first["probabilities"]) == {"no", "yes"}
    status, answer = on.post("/learn", {"id": "r1", "y": "No"})
    assert (status, answer) == (200, {"learned": 1, "model_version": ROWS + 1})
    learner = on.app.daemon.learner
    assert isinstance(learner, ClassLearner)
    oracle = _oracle([])
    given = (first["probabilities"]["no"], first["probabilities"]["yes"])
    oracle.step_with_prediction({"a": 0.5, "b": -0.5}, 0.0, given)
    with on.app.daemon.lock:
        # Scored with the probabilities given when the features came, then learned.
        got, want = learner.summary(), oracle.summary()
        assert got.pop("confusion") == want.pop("confusion")
        assert got == pytest.approx(want, abs=1e-12)
        assert learner.model.weights == pytest.approx(oracle.model.weights, abs=1e-12, rel=0)


def test_a_new_class_of_a_refused_body_does_not_grow_the_space(tmp_path: Path) -> None:
    daemon = _start(tmp_path, model="softmax", max_classes=3)
    try:
        learner = daemon.app.daemon.learner
        assert isinstance(learner, ClassLearner)
        assert learner.classes.labels == ["no", "yes"]  # in order of arrival
        body = [{"x": {"a": 1.0, "b": 0.0}, "y": "maybe"}, {"x": {"a": 1.0, "b": 0.0}, "y": "z"}]
        status, answer = daemon.post("/learn", body)
        assert status == 400 and answer["error"].startswith("record 1: "), answer
        assert "too_many_classes" in answer["error"]
        assert learner.classes.labels == ["no", "yes"]
        status, answer = daemon.post("/learn", body[:1])
        assert (status, answer) == (200, {"learned": 1, "model_version": ROWS + 1})
        assert learner.classes.labels == ["no", "yes", "maybe"]
    finally:
        daemon.stop()


def test_a_first_label_of_no_known_pair_is_400_naming_positive_class(tmp_path: Path) -> None:
    data = tmp_path / "stream.csv"
    data.write_text("a,b,y\n")  # nothing yet: the first label comes by HTTP
    settings = Settings(
        source=str(data), follow=True, metrics_port=free_port(), model="logistic", http_learn=True
    )
    app = build(settings)
    thread = threading.Thread(target=app.daemon.run, daemon=True)
    thread.start()
    daemon = Daemon(app, settings.metrics_port or 0, thread, None)
    try:
        status, answer = daemon.post("/learn", {"x": {"a": 1.0, "b": 2.0}, "y": "spam"})
        assert status == 400 and "--positive-class spam" in answer["error"], answer
        status, answer = daemon.post("/learn", {"x": {"a": 1.0, "b": 2.0}, "y": "TRUE"})
        assert (status, answer) == (200, {"learned": 1, "model_version": 1})
        learner = app.daemon.learner
        assert isinstance(learner, ClassLearner) and learner.classes.positive == "TRUE"
    finally:
        daemon.stop()
