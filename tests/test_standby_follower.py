"""A hot standby in one process: it serves the newest generation of a shared state dir.

An active store writes generations of a real learner; the standby (``Follower``) loads each
one as it lands, answers ``/predict`` exactly as the learner it loaded would, says
``standby`` on ``/readyz`` and ``/metrics``, and never writes to the directory.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from streamlearn.config import Settings
from streamlearn.learner import Learner
from streamlearn.models.registry import build_model
from streamlearn.standby.follower import Follower
from streamlearn.standby.role import Role
from streamlearn.state import CheckpointStore


def _state(learner: Learner) -> dict[str, Any]:
    return {"learner": learner, "model_spec": "sgd", "settings": {"features": ["a", "b"]}}


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def _predict(url: str, x: dict[str, float]) -> dict[str, Any]:
    request = urllib.request.Request(f"{url}/predict", data=json.dumps(x).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


def _files(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


def test_a_standby_serves_each_new_generation_and_writes_nothing(tmp_path: Path) -> None:
    active = CheckpointStore(tmp_path, shared=True)
    active.take_over()
    learner = Learner(build_model("sgd", lr=0.05), rolling_window=10)
    for i in range(20):
        learner.step({"a": float(i % 5), "b": 1.0}, 2.0 * (i % 5))
    active.save(_state(learner))
    settings = Settings(
        source="kafka://127.0.0.1:9092/t?group=g", follow=True, state_dir=tmp_path, metrics_port=0
    )
    follower = Follower(settings, Role())
    try:
        assert follower.server is not None
        url = follower.server.url
        x = {"a": 3.0, "b": 1.0}
        assert _get(f"{url}/readyz") == (200, "ready: standby\n")
        metrics = _get(f"{url}/metrics")[1]
        assert 'streamlearn_role{role="standby"} 1.0' in metrics
        assert 'streamlearn_role{role="active"} 0.0' in metrics
        answer = _predict(url, x)
        assert answer["prediction"] == learner.predict(x)
        assert answer["model_version"] == 20
        files = _files(tmp_path)
        assert not follower.refresh()  # nothing new
        for i in range(30):
            learner.step({"a": float(i % 3), "b": -1.0}, float(i % 3))
        active.save(_state(learner))
        assert follower.refresh()
        answer = _predict(url, x)
        assert answer["prediction"] == learner.predict(x)
        assert answer["model_version"] == 50
        files_now = _files(tmp_path)
        assert {k: v for k, v in files_now.items() if k != "gen-0000000002.ckpt"} == {
            k: v for k, v in files.items() if k in files_now
        }
    finally:
        follower.close()
        active.close()


def test_a_standby_before_any_checkpoint_answers_503_with_a_reason(tmp_path: Path) -> None:
    settings = Settings(
        source="kafka://127.0.0.1:9092/t?group=g", follow=True, state_dir=tmp_path, metrics_port=0
    )
    follower = Follower(settings, Role())
    try:
        assert follower.server is not None
        request = urllib.request.Request(
            f"{follower.server.url}/predict", data=b'{"a": 1.0}', method="POST"
        )
        try:
            urllib.request.urlopen(request, timeout=5)
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
            assert "no checkpoint of the active instance yet" in exc.read().decode()
        else:
            raise AssertionError("a standby without a model answered 200")
    finally:
        follower.close()
