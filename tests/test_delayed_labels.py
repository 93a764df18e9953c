"""Late labels: joined by id to earlier features, scored with the feature-time prediction, audited."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from streamhelpers import STREAMLEARN, cli
from streamlearn.csv_schema import parse_csv_header
from streamlearn.json_decoder import JsonDecoder
from streamlearn.labels.build import build_pseudo
from streamlearn.labels.join import LabelJoin
from streamlearn.labels.pseudo import PseudoLabeler
from streamlearn.labels.settings import PseudoSettings
from streamlearn.learner import Learner
from streamlearn.loop import Daemon, RunOptions, inspect_state
from streamlearn.models.sgd import SGDRegressor
from streamlearn.records import CsvDecoder, Record
from streamlearn.sinks.jsonlines import ListSink
from streamlearn.sources.base import Raw
from streamlearn.sources.file import FileSource
from streamlearn.state import CheckpointStore
from streamlearn.testing import ListSource

LR = 0.05


def delayed_events(n: int, block: int, seed: int) -> list[tuple[str, int, Any]]:
    """Features of block k, then the labels of block k-1: every label comes ``block`` rows late."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = X @ np.array([1.5, -2.0]) + 0.5 + 0.05 * rng.normal(size=n)
    events: list[tuple[str, int, Any]] = []
    for start in range(0, n + block, block):
        events += [("features", i, X[i]) for i in range(start, min(start + block, n))]
        events += [("label", i, float(y[i])) for i in range(start - block, start) if i >= 0]
    return events


def as_jsonl(events: list[tuple[str, int, Any]]) -> bytes:
    lines = []
    for kind, i, value in events:
        if kind == "features":
            obj = {"id": f"r{i}", "a": float(value[0]), "b": float(value[1]), "y": None}
        else:
            obj = {"id": f"r{i}", "y": value}
        lines.append(orjson.dumps(obj))
    return b"\n".join(lines) + b"\n"


def as_csv(events: list[tuple[str, int, Any]]) -> bytes:
    rows = ["id,a,b,y"]
    for kind, i, value in events:
        if kind == "features":
            rows.append(f"r{i},{float(value[0])!r},{float(value[1])!r},")
        else:
            rows.append(f"r{i},,,{value!r}")  # only id and target: a late label
    return ("\n".join(rows) + "\n").encode()


def oracle(events: list[tuple[str, int, Any]], lr: float) -> tuple[np.ndarray, float, float]:
    """The seed's update by hand: predict when the features come, learn when the label does."""
    theta, theta0 = np.zeros(2), 0.0
    features: dict[int, np.ndarray] = {}
    predicted: dict[int, float] = {}
    errors = []
    for kind, i, value in events:
        if kind == "features":
            features[i] = value
            predicted[i] = float(value @ theta + theta0)
        else:
            x = features.pop(i)
            errors.append(abs(value - predicted.pop(i)))
            step = lr * (float(x @ theta + theta0) - value)  # learning uses the model of now
            theta, theta0 = theta - step * x, theta0 - step
    return theta, theta0, float(np.mean(errors))


def file_daemon(path: Path, decoder: Any, join: LabelJoin, **kwargs: Any) -> Daemon:
    return Daemon(
        FileSource(path, follow=False),
        decoder,
        Learner(SGDRegressor(lr=LR)),
        model_spec="sgd",
        join=join,
        **kwargs,
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_late_labels_from_a_file_are_learned_once_scored_at_feature_time(tmp_path, fmt):
    events = delayed_events(300, block=25, seed=1)
    path = tmp_path / f"delayed.{fmt}"
    path.write_bytes(as_jsonl(events) if fmt == "jsonl" else as_csv(events))
    # Labels for ids never seen and repeated labels are dead letters, never learned.
    with open(path, "ab") as handle:
        extra = [b'{"id": "nope", "y": 1}', b'{"id": "r0", "y": 2}']
        handle.write(b"\n".join(extra) + b"\n" if fmt == "jsonl" else b"nope,,,1\nr0,,,2\n")
    if fmt == "jsonl":
        decoder: Any = JsonDecoder()
    else:
        decoder = CsvDecoder(parse_csv_header(path.read_bytes().split(b"\n")[0]), id_column="id")
    dead = ListSink()
    daemon = file_daemon(path, decoder, LabelJoin("1000r"), dead_letters=dead)
    summary = daemon.run()
    theta, theta0, mae = oracle(events, LR)
    assert summary["records_learned"] == 300  # each labeled record learned exactly once
    assert summary["metrics"]["mae"] == pytest.approx(mae, rel=1e-12)
    np.testing.assert_allclose(
        [summary["weights"]["a"], summary["weights"]["b"]], theta, rtol=0, atol=1e-12
    )
    assert summary["intercept"] == pytest.approx(theta0, abs=1e-12)
    assert [entry["reason"] for entry in dead.items] == ["unjoined_label", "unjoined_label"]
    join = summary["pending_labels"]
    assert (join["joined"], join["pending"], join["unjoined"], join["expired"]) == (300, 0, 2, 0)
    position = {("features", i): p for p, (kind, i, _) in enumerate(events) if kind == "features"}
    delays = [
        p - position["features", i] for p, (kind, i, _) in enumerate(events) if kind == "label"
    ]
    assert join["mean_delay_records"] == pytest.approx(np.mean(delays))


def test_expired_and_evicted_features_are_counted_and_forgotten(tmp_path):
    # Features f0..f9, 20 labeled rows, then labels f9..f0: label of f_i comes 39 - 2i rows later.
    lines = [orjson.dumps({"id": f"f{i}", "a": float(i), "y": None}) for i in range(10)]
    lines += [orjson.dumps({"a": 1.0, "y": 1.0}) for _ in range(20)]
    lines += [orjson.dumps({"id": f"f{i}", "y": float(i)}) for i in reversed(range(10))]
    path = tmp_path / "late.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    dead = ListSink()
    summary = file_daemon(path, JsonDecoder(), LabelJoin("30r"), dead_letters=dead).run()
    join = summary["pending_labels"]
    # 39 - 2i > 30 for i = 0..4: those five expired (dropped from memory) before their label.
    assert (join["expired"], join["joined"], join["unjoined"], join["pending"]) == (5, 5, 5, 0)
    assert summary["records_learned"] == 20 + 5
    assert summary["rejected_by_reason"] == {"unjoined_label": 5}

    bounded = LabelJoin("1000r", max_pending=3)
    for i in range(10):
        bounded.remember(Record({"a": 1.0}, None, f"f{i}", Raw(b"", i)), 0.0, i)
    counts = bounded.summary()["pending_labels"]
    assert (counts["pending"], counts["evicted"]) == (3, 7)
    assert list(bounded.pending) == ["f7", "f8", "f9"]  # the newest wait, the oldest went


class FakeClock:
    """A settable wall clock (picklable, unlike a lambda)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_time_ttl_expires_by_wall_clock():
    clock = FakeClock()
    join = LabelJoin("10m", clock=clock)
    for i, record_id in enumerate(["early", "late"]):
        join.remember(Record({"a": 1.0}, None, record_id, Raw(b"", i)), 0.0, i)
        clock.now += 500
    label = type("L", (), {"id": "early", "y": 1.0})
    assert join.take(label, 5) is None  # 1000 s after its features: past 600 s
    label.id = "late"
    assert join.take(label, 6) is not None  # 500 s: still waiting


def test_pending_join_survives_a_checkpoint_and_a_crash(tmp_path):
    events = delayed_events(200, block=50, seed=4)
    lines = as_jsonl(events).splitlines()
    store = CheckpointStore(tmp_path / "state")
    extra = {"label_ttl": "100000r"}
    _, join = build_pseudo(PseudoSettings(**extra), model_spec="sgd", lr=LR, restored=None)
    daemon = Daemon(
        ListSource(lines),
        JsonDecoder(),
        Learner(SGDRegressor(lr=LR)),
        model_spec="sgd",
        store=store,
        join=join,
    )
    daemon.process(daemon.source.next_batch(120))  # 100 features, 20 labels: 80 waiting
    daemon.checkpoint(wait=True)
    daemon.process(daemon.source.next_batch(60))  # 30 more labels, lost in the crash
    assert daemon.learner.records_learned == 50
    store.close()  # the process dies here: no final checkpoint
    del daemon

    store = CheckpointStore(tmp_path / "state")
    state = store.load().state
    _, join = build_pseudo(PseudoSettings(**extra), model_spec="sgd", lr=LR, restored=state)
    assert join is not None and len(join.pending) == 80
    resumed = Daemon(
        ListSource(lines, resume=state["source"]),
        JsonDecoder(),
        state["learner"],
        model_spec="sgd",
        store=store,
        join=join,
        restored=state,
    )
    summary = resumed.run()
    store.close()
    theta, _, mae = oracle(events, LR)
    assert summary["records_learned"] == 200
    assert summary["pending_labels"]["joined"] == 200
    assert summary["pending_labels"]["unjoined"] == 0
    assert summary["metrics"]["mae"] == pytest.approx(mae, rel=1e-12)
    assert summary["weights"]["a"] == pytest.approx(theta[0], abs=1e-12)


class TableTeacher:
    """Pseudo-labels and confidences from a table keyed by the feature ``a`` (picklable)."""

    name = "table"
    ready = True
    target_std = 1.0

    def __init__(self, table: dict[float, tuple[float, float]]) -> None:
        self.table = table
        self.learned = 0

    def learn(self, x: dict[str, float], y: float) -> None:
        self.learned += 1

    def label(self, xs: list[dict[str, float]]) -> list[tuple[float, float]]:
        return [self.table[x["a"]] for x in xs]


def test_audit_of_pseudo_labels_equals_a_hand_computation():
    # Window of 4, at most 2 accepted, threshold 0.5. Teacher: (label, confidence) per record.
    table = {0.0: (3.0, 0.9), 1.0: (5.0, 0.8), 2.0: (7.0, 0.6), 3.0: (9.0, 0.1), 4.0: (1.0, 0.9)}
    join = LabelJoin("100r")
    pseudo = PseudoLabeler(
        TableTeacher(table), threshold=0.5, window=4, max_fraction=0.5, join=join
    )
    lines = [orjson.dumps({"id": f"r{i}", "a": float(i), "y": None}) for i in range(4)]
    # r4 is offered, then its label comes in the same batch, before any decision: superseded.
    lines += [orjson.dumps({"id": "r4", "a": 4.0, "y": None}), orjson.dumps({"id": "r4", "y": 0})]
    truth = {"r0": 2.5, "r1": 6.0, "r2": 7.25, "r3": 11.0}
    lines += [orjson.dumps({"id": key, "y": y}) for key, y in truth.items()]
    daemon = Daemon(
        ListSource(lines),
        JsonDecoder(),
        Learner(SGDRegressor(lr=0.01)),
        model_spec="sgd",
        pseudo=pseudo,
        join=join,
        options=RunOptions(batch_size=4),
    )
    summary = daemon.run()
    pseudo.flush(daemon)
    counts = pseudo.summary()["pseudo_labels"]
    # Accepted: r0 (0.9) and r1 (0.8); r2 passed the threshold but the window was full; r3 did not.
    assert (counts["accepted"], counts["rejected"]) == (2, 3)
    assert counts["rejected_by_reason"] == {"superseded": 1, "threshold": 1, "window_cap": 1}
    assert counts["audited"] == 2
    assert counts["audit_mae"] == (abs(3.0 - 2.5) + abs(5.0 - 6.0)) / 2  # 0.75
    assert counts["audited_rejected"] == 2
    assert counts["audit_mae_rejected"] == (abs(7.0 - 7.25) + abs(9.0 - 11.0)) / 2  # 1.125
    # The student predicted 0 for all four (it had learned nothing when they came).
    assert counts["audit_student_mae"] == (2.5 + 6.0) / 2
    assert summary["records_learned"] == 5  # five true labels, each once
    assert daemon.learner.pseudo_learned == 2


def wired() -> bool:
    from streamlearn.cli.run import replay

    return any(param.name == "label_ttl" for param in replay.params)


def pending_in_latest_checkpoint(state: Path) -> int:
    """Waiting features in the newest checkpoint (read in-process: polling must be quick)."""
    try:
        loaded = CheckpointStore(state, lock=False).load()
    except Exception:  # the directory is being created or a file renamed: look again
        return 0
    if loaded is None:
        return 0
    join = loaded.state.get("extensions", {}).get("join")
    return len(join.pending) if join is not None else 0


def test_sigkill_while_labels_are_pending_then_restart_joins_them_all(tmp_path):
    """A real ``streamlearn replay`` killed with SIGKILL mid-stream; the restart completes the join."""
    if not wired():
        pytest.xfail("wired by lead: replay has no --label-ttl option yet")
    events = delayed_events(600, block=300, seed=9)  # 300 features, then their labels, ...
    path = tmp_path / "delayed.jsonl"
    path.write_bytes(as_jsonl(events))
    state, dead = tmp_path / "state", tmp_path / "dead.jsonl"
    args = [
        "replay",
        str(path),
        "--state-dir",
        str(state),
        "--label-ttl",
        "100000r",
        "--dead-letter",
        str(dead),
        "--lr",
        str(LR),
        "--no-progress",
    ]
    proc = subprocess.Popen(
        [*STREAMLEARN, *args, "--rate", "400", "--checkpoint-every", "20"],
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    killed_with_pending = 0
    while time.monotonic() < deadline and proc.poll() is None:
        waiting = pending_in_latest_checkpoint(state)
        if waiting >= 100:
            proc.send_signal(signal.SIGKILL)
            killed_with_pending = waiting
            break
        time.sleep(0.02)
    proc.wait()
    assert killed_with_pending, "the replay ended before it could be killed mid-join"
    cli(*args)
    loaded = CheckpointStore(state, lock=False).load()
    assert loaded is not None
    summary = inspect_state(loaded.state)
    theta, _, mae = oracle(events, LR)
    assert summary["records_learned"] == 600  # nothing lost, nothing learned twice
    assert summary["pending_labels"]["joined"] == 600
    assert summary["pending_labels"]["pending"] == 0
    assert summary["metrics"]["mae"] == pytest.approx(mae, rel=1e-9)
    assert summary["weights"]["a"] == pytest.approx(theta[0], abs=1e-9)
    assert not dead.exists() or dead.read_text() == ""
    assert summary["records_unlabeled"] == 600
