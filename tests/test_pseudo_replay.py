"""A pseudo-labeled replay never depends on speed: batch sizes and --rate change nothing.

The pseudo-label window alone says when accepted pseudo-labels are learned. On River's
ChickWeights (578 rows, 90% of the targets blanked) a replay gives the same models,
predictions, metrics and audit, bit for bit, at every internal batch size, from a file
and from a Kafka topic.
"""

from __future__ import annotations

import json
import pickle
import random
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamhelpers import cli
from streamlearn.app import build
from streamlearn.config import Settings
from streamlearn.labels.settings import PseudoSettings
from streamlearn.loop.daemon import RunOptions

SPEC = "StandardScaler | LinearRegression"
BATCH_SIZES = (1, 100, 1000, RunOptions().batch_size)


def chick_weights(path: Path, fmt: str = "csv", labeled: float = 0.1, seed: int = 0) -> int:
    """River's ChickWeights with about ``1 - labeled`` of the targets blanked; returns how many."""
    from river import datasets

    rng = random.Random(seed)
    lines = ["time,chick,diet,weight"] if fmt == "csv" else []
    blanked = 0
    for x, y in datasets.ChickWeights():
        keep = rng.random() < labeled
        blanked += not keep
        if fmt == "csv":
            lines.append(f"{x['time']},{x['chick']},{x['diet']},{y if keep else ''}")
        else:
            lines.append(orjson.dumps({**x, "weight": y if keep else None}).decode())
    path.write_text("\n".join(lines) + "\n")
    return blanked


def settings(
    source: str, out: Path, batch_size: int, pseudo: bool = True, **extra: Any
) -> Settings:
    return Settings(
        source=source,
        follow=source.startswith("kafka://"),
        target="weight",
        model=SPEC,
        batch_size=batch_size,
        predictions=str(out),
        pseudo=PseudoSettings(pseudo_label=pseudo, deterministic=True if pseudo else None),
        **extra,
    )


def outcome(summary: dict[str, Any], model: Any, predictions: Path) -> dict[str, Any]:
    """What a replay produced: its summary (less the wall-clock time), model and predictions."""
    summary = json.loads(json.dumps(summary, default=str))
    summary["checkpoint"].pop("created")
    summary.pop("position", None)
    return {
        "summary": summary,
        "model": pickle.dumps(model),
        "predictions": [line["prediction"] for line in map(json.loads, predictions.open())],
    }


def file_replay(path: Path, tmp: Path, batch_size: int, pseudo: bool = True) -> dict[str, Any]:
    out = tmp / f"predictions-{batch_size}-{pseudo}-{time.monotonic_ns()}.jsonl"
    app = build(settings(str(path), out, batch_size, pseudo))
    try:
        summary = app.daemon.run()
    finally:
        app.close()
    return outcome(summary, app.daemon.learner.model, out)


def test_file_replay_is_the_same_at_every_batch_size(tmp_path: Path):
    path = tmp_path / "chick.csv"
    blanked = chick_weights(path)
    first, *others = [file_replay(path, tmp_path, size) for size in BATCH_SIZES]
    pseudo = first["summary"]["pseudo_labels"]
    assert pseudo["offered"] == blanked and pseudo["queued"] == 0
    assert pseudo["accepted"] > 0
    for size, other in zip(BATCH_SIZES[1:], others, strict=True):
        assert other["summary"] == first["summary"], f"batch size {size}"
        assert other["model"] == first["model"], f"batch size {size}"
        assert other["predictions"] == first["predictions"], f"batch size {size}"
    # And the accepted pseudo-labels were learned: not the replay without them.
    plain = file_replay(path, tmp_path, RunOptions().batch_size, pseudo=False)
    assert plain["predictions"] != first["predictions"]
    assert plain["summary"]["metrics"] != first["summary"]["metrics"]


@pytest.mark.slow
def test_rate_changes_nothing_in_a_replay(tmp_path: Path):
    path = tmp_path / "chick.csv"
    chick_weights(path)
    runs = []
    for rate in ("0", "2000"):  # --rate 2000 reads batches of 100
        out = tmp_path / f"predictions-{rate}.jsonl"
        args = ["replay", str(path), "--target", "weight", "--model", SPEC, "--pseudo-label"]
        args += ["--rate", rate, "--inspect-json", "--no-progress", "--predictions", str(out)]
        args += ["--state-dir", str(tmp_path / f"state-{rate}")]
        summary = json.loads(cli(*args).stdout)
        summary["checkpoint"].pop("created")
        summary["checkpoint"].pop("generation", None)
        runs.append((summary, out.read_bytes()))
    assert runs[0][0]["pseudo_labels"]["accepted"] > 0
    assert runs[1] == runs[0]


@pytest.mark.kafka
def test_kafka_replay_is_the_same_at_every_batch_size_and_as_the_file(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic_factory: Any, kafka_send: Any
):
    path = tmp_path / "chick.jsonl"
    chick_weights(path, fmt="json")
    lines = path.read_bytes().splitlines()
    topic = kafka_topic_factory(1)
    kafka_send(topic, lines)
    from_file = file_replay(path, tmp_path, RunOptions().batch_size)
    for size in BATCH_SIZES:
        out = tmp_path / f"kafka-predictions-{time.monotonic_ns()}.jsonl"
        url = f"kafka://{kafka_bootstrap}/{topic}?group=g{time.monotonic_ns()}"
        app = build(settings(url, out, size, features=("time", "chick", "diet")))
        daemon = app.daemon
        runner = threading.Thread(target=daemon.run)
        try:
            runner.start()
            deadline = time.monotonic() + 60
            while daemon.counters.records_seen < len(lines):
                assert time.monotonic() < deadline, "the daemon did not read the whole topic"
                time.sleep(0.05)
            daemon.stop()
            runner.join(30)
        finally:
            daemon.stop()
            app.close()
        # A followed topic never ends: decide its last, partial window as a replay does.
        assert daemon.pseudo is not None
        daemon.pseudo.flush(daemon.host)
        got = outcome(daemon.inspect(), daemon.learner.model, out)
        for key in ("source", "format"):
            got["summary"]["settings"].pop(key, None)
            from_file["summary"]["settings"].pop(key, None)
        assert got["model"] == from_file["model"], f"batch size {size}"
        assert got["predictions"] == from_file["predictions"], f"batch size {size}"
        for key in ("metrics", "rolling_metrics", "pseudo_labels", "weights", "intercept"):
            assert got["summary"][key] == from_file["summary"][key], f"{key}, batch size {size}"
