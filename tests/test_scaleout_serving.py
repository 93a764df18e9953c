"""Serving a scaled-out keyed run (real broker, real processes): each instance answers
``/predict`` for the keys of the partitions it owns with that key's model, and sends a key it
does not own to its owner (421 with the owner's address); an unknown key is a 404."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from scaleout_helpers import (
    Instance,
    keyed_rows,
    learned,
    metric,
    oracle,
    owners,
    running,
    send_rows,
)

from streamhelpers import wait_for
from streamlearn.broker import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _post(url: str, document: dict[str, object]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"{url}/predict", data=json.dumps(document).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_each_instance_serves_its_keys_and_redirects_the_others(
    kafka_bootstrap: str, kafka_topic_factory, kafka_send, tmp_path: Path
) -> None:
    topic = kafka_topic_factory(2)
    state = tmp_path / "shared"
    rows = keyed_rows(400, keys=8, seed=5)
    ports = {"a": free_port(), "b": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    send_rows(kafka_send, topic, rows)
    instances = {
        name: Instance(kafka_bootstrap, topic, state, name, tmp_path, metrics_port=port)
        for name, port in ports.items()
    }
    with running(instances):
        wait_for(lambda: sorted(owners(state).values()) == ["a", "b"], "one partition each", 40)
        wait_for(lambda: learned(state) == len(rows), "every record learned", 30)
        want = oracle(rows)
        x = {"a": 0.25, "b": -0.5}
        served: dict[str, int] = {"a": 0, "b": 0}
        for key, learner in want.items():
            expected = learner.model.predict_one(x)
            for name, url in urls.items():
                status, answer = _post(url, {"key": key, "x": x})
                if status == 421:  # another instance owns it: ask there
                    owner = next(n for n, u in urls.items() if u == answer["address"])
                    assert owner != name and answer["owner"] == owner, answer
                    status, answer = _post(answer["address"], {"key": key, "x": x})
                else:
                    served[name] += 1
                assert status == 200, answer
                assert answer["prediction"] == pytest.approx(expected, abs=1e-9), key
                assert answer["key"] == key and "fallback" not in answer
        assert served["a"] > 0 and served["b"] > 0 and sum(served.values()) == len(want)
        for url in urls.values():
            status, answer = _post(url, {"key": "never-seen", "x": x})
            assert status == 404 and "never-seen" in str(answer["error"])
        for name, port in ports.items():  # the member's metrics
            mine = [p for p, owner in owners(state).items() if owner == name]
            assert metric(port, "streamlearn_partitions_owned") == len(mine) == 1
            assert (metric(port, "streamlearn_last_rebalance_seconds") or 0) > 0
            wait_for(
                lambda port=port, p=mine[0]: (
                    metric(
                        port,
                        "streamlearn_partition_lag_records",
                        f'partition="{p}",topic="{topic}"',
                    )
                    == 0
                ),
                f"{name}'s lag measured, 0",
                20,
            )
        for instance in instances.values():
            assert instance.stop() == 0
