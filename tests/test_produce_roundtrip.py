"""Every bundled CSV through Kafka: ``produce`` then ``run`` learns what ``replay`` of the file
learns (same records learned, rejected and unlabeled; same weights and metrics). A
classification CSV goes unchanged, its labels as text: the run learns the replay's model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streamhelpers import ROOT, STREAMLEARN, cli, inspect_json
from streamlearn.json_decoder import JsonDecoder
from streamlearn.producers.replay import produce
from streamlearn.records import Record
from streamlearn.sources.base import Raw

EXAMPLES = sorted((ROOT / "examples").glob("*.csv"))
#: The options a bundled CSV is learned with (the README's); the others take the defaults.
OPTIONS: dict[str, tuple[str, ...]] = {
    "churn.csv": ("--target", "churned", "--model", "logistic", "--lr", "0.05"),
}
LEARNED = (
    "records_learned",
    "records_unlabeled",
    "predictions",
    "weights",
    "intercept",
    "metrics",
    "rolling_metrics",
)


def run_topic(bootstrap: str, topic: str, state: Path, seen: int, *options: str) -> dict[str, Any]:
    """``streamlearn run`` on the topic until it has seen ``seen`` records; its summary."""
    log_path = state.parent / "daemon.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                *STREAMLEARN,
                "run",
                f"kafka://{bootstrap}/{topic}?group=roundtrip",
                "--state-dir",
                str(state),
                "--checkpoint-interval",
                "0.2",
                *options,
            ],
            stderr=log,
            env={**os.environ},
        )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            summary = cli("inspect", str(state), "--json", check=False)
            if summary.returncode == 0 and json.loads(summary.stdout)["records_seen"] >= seen:
                break
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return inspect_json(state)


def test_a_number_under_x_is_a_feature_and_only_an_object_the_envelope() -> None:
    decoder = JsonDecoder()
    flat = decoder.decode(Raw(b'{"x": 1.43, "y": 3.58}', offset=0))
    assert isinstance(flat, Record) and (flat.x, flat.y) == ({"x": 1.43}, 3.58)
    nested = decoder.decode(Raw(b'{"x": {"x": 1.43}, "y": 3.58}', offset=0))
    assert isinstance(nested, Record) and (nested.x, nested.y) == ({"x": 1.43}, 3.58)
    both = decoder.decode(Raw(b'{"x": 2, "id": "a", "y": 1}', offset=0))
    assert isinstance(both, Record) and (both.x, both.id) == ({"x": 2.0}, "a")


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.parametrize(
    "csv_path",
    EXAMPLES,
    ids=lambda path: path.name,
)
def test_a_produced_csv_learns_like_its_replay(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    tmp_path: Path,
    csv_path: Path,
) -> None:
    options = OPTIONS.get(csv_path.name, ())
    cli("replay", str(csv_path), "--state-dir", str(tmp_path / "replayed"), *options)
    replayed = inspect_json(tmp_path / "replayed")

    topic = kafka_topic_factory(1)  # one partition: the records keep the file's order
    sent = produce(csv_path, kafka_bootstrap, topic)
    # Rows the producer cannot make an object of (a wrong cell count) are not sent: it says so.
    skipped = replayed["records_seen"] - sent.sent
    assert skipped == sent.skipped
    (tmp_path / "kafka").mkdir()
    state = tmp_path / "kafka" / "state"
    through_kafka = run_topic(kafka_bootstrap, topic, state, sent.sent, *options)

    assert through_kafka["records_seen"] == sent.sent
    assert through_kafka["records_rejected"] + skipped == replayed["records_rejected"]
    assert {k: through_kafka[k] for k in LEARNED} == {k: replayed[k] for k in LEARNED}
    assert replayed["records_learned"] > 0


def test_a_text_column_is_sent_as_written(tmp_path: Path) -> None:
    from streamlearn.producers.rows import RowRules, rows_to_send

    path = tmp_path / "rows.csv"
    path.write_text("a,label\n1,03\n2,1.50\n3,\n4, 7 \n")
    as_text = [line[1] for line in rows_to_send(path, RowRules(text_columns=("label",)))]
    assert as_text == [
        {"a": 1, "label": "03"},
        {"a": 2, "label": "1.50"},
        {"a": 3},  # an empty cell is no value: an unlabeled row
        {"a": 4, "label": " 7 "},
    ]
    by_default = [line[1] for line in rows_to_send(path, RowRules())]
    assert [row.get("label") for row in by_default] == [3, 1.5, None, 7]


@pytest.mark.kafka
@pytest.mark.slow
def test_labels_that_read_as_numbers_arrive_as_written_with_text_column(
    kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], tmp_path: Path
) -> None:
    csv_path = tmp_path / "grades.csv"
    labels = ["03", "3", "1.50", "1e3"]  # four classes, two of them the same number
    rows = [f"{i * 0.37 % 1:.3f},{i * 0.61 % 1:.3f},{labels[i * 7 // 5 % 4]}" for i in range(120)]
    csv_path.write_text("a,b,label\n" + "\n".join(rows) + "\n")
    options = ("--target", "label", "--model", "softmax", "--lr", "0.05")
    cli("replay", str(csv_path), "--state-dir", str(tmp_path / "replayed"), *options)
    replayed = inspect_json(tmp_path / "replayed")
    assert sorted(replayed["classes"]) == sorted(labels)

    topic = kafka_topic_factory(1)
    sent = produce(csv_path, kafka_bootstrap, topic, text_columns=("label",))
    assert sent.sent == 120
    (tmp_path / "kafka").mkdir()
    state = tmp_path / "kafka" / "state"
    through_kafka = run_topic(kafka_bootstrap, topic, state, sent.sent, *options)
    assert through_kafka["classes"] == replayed["classes"]
    learned = (*(k for k in LEARNED if k not in ("weights", "intercept")), "class_weights")
    assert {k: through_kafka[k] for k in learned} == {k: replayed[k] for k in learned}
