"""Telemetry of a keyed run: bounded series whatever the number of keys, the keys' histogram
and worst keys equal to what the keys say, promtool clean."""

from __future__ import annotations

import math
import subprocess

from prometheus_client import CollectorRegistry, generate_latest

from prom_server import require_binary
from streamlearn.keys import KeyedModels, LearnerCodec
from streamlearn.keys.scores import MAE_BUCKETS
from streamlearn.learner import Learner
from streamlearn.models.sgd import SGDRegressor
from streamlearn.observe.keys import KeyTelemetry
from streamlearn.state import CheckpointStore


def keyed(tmp_path, keys: int, *, max_live: int = 20, top: int = 5):
    store = CheckpointStore(tmp_path)
    models = KeyedModels(
        LearnerCodec(lambda: Learner(SGDRegressor(lr=1e-300), rolling_window=10)),
        directory=tmp_path / "keys",
        key=store.signing_key,
        max_live=max_live,
    )
    models.scores.worst = top
    registry = CollectorRegistry()
    models.events = KeyTelemetry(registry, top_keys=top, held=models)
    # lr about 0: each key predicts about 0, so its rolling MAE is the mean |y| of its records.
    for i in range(keys):
        for _ in range(3):
            models.get(f"k{i}").step({"x": 1.0}, 0.01 * (i % 997) + 0.001)
    return store, models, registry


def test_histogram_and_worst_keys_are_what_the_keys_say(tmp_path):
    store, models, registry = keyed(tmp_path, 500)
    models.checkpoint()  # every key written: the histogram covers them all
    scores = {key: score for key, _, score in models.entries()}
    assert len(scores) == 500
    for bound in MAE_BUCKETS:
        le = str(bound)
        got = registry.get_sample_value(
            "streamlearn_keys_rolling_metric_bucket", {"metric": "mae", "le": le}
        )
        assert got == sum(score <= bound for score in scores.values()), le
    assert (
        registry.get_sample_value("streamlearn_keys_rolling_metric_gcount", {"metric": "mae"})
        == 500
    )
    gsum = registry.get_sample_value("streamlearn_keys_rolling_metric_gsum", {"metric": "mae"})
    assert math.isclose(gsum, sum(scores.values()), rel_tol=1e-9)
    worst = sorted(scores.items(), key=lambda item: -item[1])[:5]
    for key, score in worst:
        got = registry.get_sample_value(
            "streamlearn_key_worst_rolling_metric", {"metric": "mae", "key": key}
        )
        assert got == score
    assert registry.get_sample_value("streamlearn_keys_live") == 20
    assert registry.get_sample_value("streamlearn_keys_held") == 500
    assert registry.get_sample_value("streamlearn_key_spills_total") == models.spills > 400
    assert registry.get_sample_value("streamlearn_key_spill_seconds_count") == models.spills
    assert registry.get_sample_value("streamlearn_key_loads_total") == models.loads
    models.close()
    store.close()


def test_a_worst_key_that_gets_better_leaves_the_gauges(tmp_path):
    store, models, registry = keyed(tmp_path, 50, top=3)
    models.checkpoint()
    name = "streamlearn_key_worst_rolling_metric"
    assert registry.get_sample_value(name, {"metric": "mae", "key": "k49"}) is not None
    for _ in range(10):  # its window now holds only exact predictions of 0
        models.get("k49").step({"x": 1.0}, 0.0)
    models.checkpoint()
    assert registry.get_sample_value(name, {"metric": "mae", "key": "k49"}) is None
    assert registry.get_sample_value(name, {"metric": "mae", "key": "k46"}) is not None
    models.close()
    store.close()


def series(registry: CollectorRegistry) -> int:
    return sum(
        1 for line in generate_latest(registry).decode().splitlines() if not line.startswith("#")
    )


def test_series_do_not_grow_with_the_keys(tmp_path):
    small = keyed(tmp_path / "a", 30)
    large = keyed(tmp_path / "b", 2000)
    for _, models, _ in (small, large):
        models.checkpoint()
    assert series(small[2]) == series(large[2])
    for store, models, _ in (small, large):
        models.close()
        store.close()


def test_promtool_finds_nothing_to_say(tmp_path):
    promtool = require_binary("promtool")  # under CI=true a missing promtool fails
    store, models, registry = keyed(tmp_path, 100)
    models.checkpoint()
    text = generate_latest(registry)
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    models.close()
    store.close()
