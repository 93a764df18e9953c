"""A regression target beyond ±``records.TARGET_LIMIT`` (1e150) is an ``out_of_range`` dead
letter on every path that reads one: its squared error would overflow (``error**2`` raised
``OverflowError`` in the metrics, River's too, and the daemon died with a traceback). The
compiled parser leaves such a number to the decoder. Features are not bounded (a huge one
makes a huge prediction, the divergence guard's), and a classifier's target is a label.

Each replay with bad targets is compared with the replay of the same file without them: the
same weights, bit for bit, and the same metrics.
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_delayed_labels import as_csv, as_jsonl, delayed_events, oracle
from test_fastpath import assert_same_run, run_daemon
from test_keyed_run import learners
from test_keys_compiled_run import replay as keyed_replay
from test_keys_compiled_run import write as write_keyed

from streamhelpers import cli, sgd_oracle
from streamlearn.fast import _kernels, spec
from streamlearn.json_decoder import JsonDecoder
from streamlearn.learner import DIVERGED
from streamlearn.records import REJECT_REASONS, TARGET_LIMIT, CsvDecoder, Label, Record, Rejected
from streamlearn.sources.base import Raw

PATHS = [pytest.param("1", id="blocks"), pytest.param("0", id="records")]
RIVER = "StandardScaler | LinearRegression"
MODELS = [pytest.param("sgd", id="sgd"), pytest.param(RIVER, id="river")]
#: Targets the metrics cannot square, and their reasons.
BAD = [
    ("1e300", "out_of_range"),
    ("-1e200", "out_of_range"),
    ("1e150", "out_of_range"),
    ("-1e150", "out_of_range"),
    ("1.7976931348623157e308", "out_of_range"),
    ("1e309", "non_finite"),
]
#: Where the bad rows go among the good ones: early, and inside the first and later blocks.
AT = [3, 200, 1500, 1501, 2400, 2999]


def test_the_limit_is_the_divergence_bound_and_a_closed_reason() -> None:
    assert TARGET_LIMIT == DIVERGED == _kernels.DIVERGED == 1e150
    assert "out_of_range" in REJECT_REASONS
    # The largest error two values within the bounds make squares to a finite float.
    assert math.isfinite((math.nextafter(TARGET_LIMIT, 0) * 2) ** 2)


def good_rows(n: int, d: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + 0.5 + 0.1 * rng.normal(size=n)
    pairs = zip(X.tolist(), y.tolist(), strict=True)
    return [",".join(map(repr, [*row, target])) for row, target in pairs]


def with_bad(rows: list[str], bad: list[str]) -> list[str]:
    """``rows`` with ``bad`` put in at ``AT`` (positions in the result)."""
    out = list(rows)
    for at, line in zip(AT, bad, strict=True):
        out.insert(at, line)
    return out


def write_pair(tmp_path: Path, header: str, rows: list[str], bad: list[str]) -> tuple[Path, Path]:
    clean, dirty = tmp_path / "clean.csv", tmp_path / "dirty.csv"
    clean.write_text("\n".join([header, *rows]) + "\n")
    dirty.write_text("\n".join([header, *with_bad(rows, bad)]) + "\n")
    return clean, dirty


def replay(path: Path, *args: str, fast: str = "1") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A replay as a user runs it: exit 0 (``cli`` checks), no traceback; its summary and
    its dead letters."""
    dead = path.with_suffix(".dead")
    result = cli("replay", str(path), "--no-progress", "--inspect-json", "--dead-letter", str(dead),
                 *args, env={"STREAMLEARN_FASTPATH": fast})  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    letters = [json.loads(line) for line in dead.read_text().splitlines()] if dead.exists() else []
    return json.loads(result.stdout), letters


def assert_same_model(got: dict[str, Any], want: dict[str, Any]) -> None:
    for name in ("weights", "intercept", "metrics", "rolling_metrics", "records_learned",
                 "drift_events", "divergence_events"):  # fmt: skip
        assert got[name] == want[name], name


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("fast", PATHS)
def test_a_csv_replay_dead_letters_targets_out_of_range(tmp_path: Path, fast: str, model: str):
    rows = good_rows(3000, 3, seed=1)
    bad = [f"0.5,-0.25,1.5,{target}" for target, _ in BAD]
    clean, dirty = write_pair(tmp_path, "x0,x1,x2,y", rows, bad)
    got, letters = replay(dirty, "--model", model, fast=fast)
    want, none = replay(clean, "--model", model, fast=fast)
    assert none == []
    assert [(e["reason"], e["raw"]) for e in letters] == [
        (reason, line + "\n") for line, (_, reason) in zip(bad, BAD, strict=True)
    ]
    assert letters[0]["detail"] == (
        "target 'y' is 1e+300: beyond ±1e+150, its squared error would overflow"
    )
    assert got["rejected_by_reason"] == {"out_of_range": 5, "non_finite": 1}
    assert got["records_learned"] == 3000 and got["divergence_events"] == 0
    assert_same_model(got, want)
    if model == "sgd":
        data = np.array([[float(v) for v in row.split(",")] for row in rows])
        theta, theta0, _ = sgd_oracle(data[:, :3], data[:, 3], 0.01)
        weights = [got["weights"][f"x{j}"] for j in range(3)]
        np.testing.assert_allclose(weights, theta, rtol=0, atol=1e-12)
        assert got["intercept"] == pytest.approx(theta0, abs=1e-12)


def test_the_block_path_leaves_them_to_the_decoder_as_the_record_path(tmp_path, monkeypatch):
    """In process, where the path is seen: the compiled parser doubts the rows, the decoder
    rejects them, and the run is the record path's (summary, learner, dead letters)."""
    rows = good_rows(3000, 4, seed=2)
    bad = [f"1,2,3,4,{target}" for target, _ in BAD]
    path = tmp_path / "dirty.csv"
    path.write_text("\n".join(["x0,x1,x2,x3,y", *with_bad(rows, bad)]) + "\n")
    fast = run_daemon(path, tmp_path / "fast", fast=True, monkeypatch=monkeypatch)
    slow = run_daemon(path, tmp_path / "slow", fast=False, monkeypatch=monkeypatch)
    assert_same_run(fast, slow)  # blocks, then record by record: the same run, bit for bit
    fast_learner = fast[1]["learner"]
    summary = fast[0]
    assert summary["records_learned"] == 3000
    assert summary["rejected_by_reason"] == {"out_of_range": 5, "non_finite": 1}
    clean = tmp_path / "clean.csv"
    clean.write_text("\n".join(["x0,x1,x2,x3,y", *rows]) + "\n")
    want = run_daemon(clean, tmp_path / "clean", fast=True, monkeypatch=monkeypatch)
    assert pickle.dumps(want[1]["learner"].model) == pickle.dumps(fast_learner.model)
    assert want[1]["learner"].summary() == fast_learner.summary()


@pytest.mark.parametrize(
    ("model", "path_line"),
    [
        pytest.param(("--model", "sgd", "--lr", "0.05"), "compiled keyed path", id="sgd"),
        pytest.param(("--model", RIVER), "learns parsed rows a block at a time", id="river"),
    ],
)
@pytest.mark.parametrize("fast", [True, False], ids=["blocks", "records"])
def test_a_keyed_replay_dead_letters_them(tmp_path: Path, model, path_line: str, fast: bool):
    clean = tmp_path / "clean.csv"
    write_keyed(clean, 3000, 8, seed=5, messy=False)
    header, *rows = clean.read_text().splitlines()
    bad = [f"0.5,store-{k},0.25,-1.0,{target}" for k, (target, _) in enumerate(BAD)]
    dirty = tmp_path / "dirty.csv"
    dirty.write_text("\n".join([header, *with_bad(rows, bad)]) + "\n")
    got = keyed_replay(dirty, tmp_path, "dirty", fast=fast, model=model, path_line=path_line)
    want = keyed_replay(clean, tmp_path, "clean", fast=fast, model=model, path_line=path_line)
    letters = [json.loads(line) for line in (tmp_path / "dirty.dead").read_text().splitlines()]
    assert [(e["reason"], e["raw"]) for e in letters] == [
        (reason, line + "\n") for line, (_, reason) in zip(bad, BAD, strict=True)
    ]
    assert got["records_learned"] == want["records_learned"] == 3000
    assert got["metrics"] == want["metrics"]
    dirty_keys, clean_keys = learners(tmp_path / "dirty"), learners(tmp_path / "clean")
    assert sorted(dirty_keys) == sorted(clean_keys)
    for key, learner in clean_keys.items():
        assert pickle.dumps(dirty_keys[key].model) == pickle.dumps(learner.model), key
        assert dirty_keys[key].summary() == learner.summary(), key


@pytest.mark.parametrize("fast", PATHS)
def test_a_json_lines_replay_dead_letters_them(tmp_path: Path, fast: str) -> None:
    def line(values: list[str]) -> str:
        x0, x1, y = values
        return f'{{"x0": {x0}, "x1": {x1}, "y": {y}}}'

    rows = [line(row.split(",")) for row in good_rows(3000, 2, seed=3)]
    bad = [line(["0.5", "-0.25", target]) for target, _ in BAD]
    clean, dirty = tmp_path / "clean.jsonl", tmp_path / "dirty.jsonl"
    clean.write_text("\n".join(rows) + "\n")
    dirty.write_text("\n".join(with_bad(rows, bad)) + "\n")
    got, letters = replay(dirty, fast=fast)
    want, _ = replay(clean, fast=fast)
    # 1e309: orjson refuses it, the standard library reads inf (non_finite).
    assert [(e["reason"], e["raw"]) for e in letters] == [
        (reason, text + "\n") for text, (_, reason) in zip(bad, BAD, strict=True)
    ]
    detail = "target is 1e+300: beyond ±1e+150, its squared error would overflow"
    assert letters[0]["detail"] == detail
    assert got["records_learned"] == 3000
    assert_same_model(got, want)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_late_label_out_of_range_is_a_dead_letter_its_features_wait(tmp_path, fmt):
    events = delayed_events(300, block=25, seed=4)
    labels = [i for i, (kind, _, _) in enumerate(events) if kind == "label"]
    wrong = {labels[5]: 1e300, labels[100]: -1e200, labels[200]: 1e150}
    sent = [(k, i, wrong.get(n, v)) for n, (k, i, v) in enumerate(events)]
    path = tmp_path / f"late.{fmt}"
    path.write_bytes(as_jsonl(sent) if fmt == "jsonl" else as_csv(sent))
    extra = ("--id-column", "id") if fmt == "csv" else ()
    summary, letters = replay(path, "--label-ttl", "100000r", "--lr", "0.05", *extra)
    assert [e["reason"] for e in letters] == ["out_of_range"] * 3
    assert summary["records_learned"] == 297
    assert summary["pending_labels"]["pending"] == 3  # their features wait for a label
    theta, theta0, mae = oracle([e for n, e in enumerate(events) if n not in wrong], 0.05)
    assert summary["metrics"]["mae"] == pytest.approx(mae, rel=1e-12)
    weights = [summary["weights"]["a"], summary["weights"]["b"]]
    np.testing.assert_allclose(weights, theta, rtol=0, atol=1e-12)
    assert summary["intercept"] == pytest.approx(theta0, abs=1e-12)


# -- the bound itself, each decoder ---------------------------------------------------------

INSIDE = ["9.9e149", "-9.9e149", "9.999999999999998e149", "1e149", "0"]
OUTSIDE = [target for target, reason in BAD if reason == "out_of_range"] + ["-1e300"]


def decoders() -> list[tuple[str, Any]]:
    csv = CsvDecoder(["a", "y"])
    json_decoder = JsonDecoder()
    return [
        ("csv", lambda text: csv.decode(Raw(f"1.5,{text}\n".encode(), 0))),
        ("csv batch", lambda text: csv.decode_batch([Raw(f"1.5,{text}\n".encode(), 0)])[0]),
        ("csv spaced", lambda text: csv.decode(Raw(f" 1.5 , {text} \n".encode(), 0))),
        ("json", lambda text: json_decoder.decode(Raw(f'{{"a": 1.5, "y": {text}}}'.encode(), 0))),
    ]


@pytest.mark.parametrize("text", INSIDE)
def test_a_target_inside_the_bound_is_a_record(text: str) -> None:
    for name, decode in decoders():
        record = decode(text)
        assert type(record) is Record and record.y == float(text), name


@pytest.mark.parametrize("text", OUTSIDE)
def test_a_target_beyond_the_bound_is_out_of_range(text: str) -> None:
    for name, decode in decoders():
        rejected = decode(text)
        assert type(rejected) is Rejected and rejected.reason == "out_of_range", name
        assert rejected.detail.endswith(
            f"is {float(text)!r}: beyond ±1e+150, its squared error would overflow"
        )


def test_late_label_rows_are_bounded_too() -> None:
    csv = CsvDecoder(["id", "a", "y"], id_column="id")
    assert csv.decode(Raw(b"r1,,9.9e149\n", 0)) == Label("r1", 9.9e149, Raw(b"r1,,9.9e149\n", 0))
    assert csv.decode(Raw(b"r1,,1e300\n", 0)).reason == "out_of_range"
    assert JsonDecoder().decode(Raw(b'{"id": "r1", "y": -1e150}', 0)).reason == "out_of_range"


def test_features_are_not_bounded_nor_class_labels() -> None:
    from streamlearn.classify.space import ClassSpace

    record = CsvDecoder(["a", "y"]).decode(Raw(b"1e300,2\n", 0))
    assert type(record) is Record and record.x == {"a": 1e300} and record.y == 2.0
    record = JsonDecoder().decode(Raw(b'{"a": -1e300, "y": 2}', 0))
    assert type(record) is Record and record.x == {"a": -1e300}
    labels = CsvDecoder(["a", "y"], classes=ClassSpace(binary=False))
    assert labels.decode(Raw(b"1,1e300\n", 0)).y == 0.0  # the label "1e300", class 0


@pytest.mark.parametrize("model", MODELS)
def test_targets_just_inside_the_bound_are_learned_and_scored(tmp_path: Path, model: str):
    rows = good_rows(300, 2, seed=6)
    rows[100:104] = ["0.5,0.5,9.9e149", "0.5,0.5,-9.9e149", "1,1,9.999999999999998e149", "1,1,0"]
    path = tmp_path / "edge.csv"
    path.write_text("\n".join(["x0,x1,y", *rows]) + "\n")
    blocks, letters = replay(path, "--model", model, fast="1")
    records, _ = replay(path, "--model", model, fast="0")
    assert letters == []
    assert blocks["records_learned"] == 300 and blocks["divergence_events"] == 0
    scores = [*blocks["metrics"].values(), *blocks["rolling_metrics"].values()]
    assert all(isinstance(v, float) and math.isfinite(v) for v in scores), scores
    assert blocks["metrics"]["rmse"] > 1e148  # the huge errors were scored
    assert_same_model(blocks, records)
    if model == "sgd":
        data = np.array([[float(v) for v in row.split(",")] for row in rows])
        theta, theta0, _ = sgd_oracle(data[:, :2], data[:, 2], 0.01)
        weights = [blocks["weights"]["x0"], blocks["weights"]["x1"]]
        np.testing.assert_allclose(weights, theta, rtol=1e-9)
        assert blocks["intercept"] == pytest.approx(theta0, rel=1e-9)


# -- the compiled parser and its specification ------------------------------------------------

NEAR = ["1e150", "-1e150", "9.999999999999998e149", "1.0000000000000002e150", "9.9e149",
        "1e149", "1e300", "-1e200", "1.7976931348623157e308", "1e309", "123456789e142",
        "1234567890123456789e131", "1e22", "1e42"]  # fmt: skip


@pytest.mark.parametrize("parse", [_kernels.parse_lines, spec.parse_lines], ids=["c", "python"])
def test_the_parser_leaves_numbers_beyond_the_bound_to_the_decoder(parse) -> None:
    lines = [f"{a},{b}\n" for a in NEAR for b in NEAR]
    data = "".join(lines).encode()
    values = np.full((len(lines), 2), -1.0)
    status = np.full(len(lines), -1, dtype=np.int8)
    starts = np.zeros(len(lines) + 1, dtype=np.int64)
    assert parse(data, 2, values, status, starts) == len(lines)
    for row, line in enumerate(lines):
        numbers = [float(t) for t in line.strip().split(",")]
        inside = all(abs(v) < DIVERGED for v in numbers)
        assert status[row] == (spec.LABELED if inside else spec.DOUBT), line
        if inside:
            assert [float(v).hex() for v in values[row]] == [v.hex() for v in numbers], line


def test_the_compiled_parser_and_the_specification_agree_near_the_bound() -> None:
    lines = [f"{a},{b}\n" for a in NEAR for b in NEAR]
    data = "".join(lines).encode()
    out = []
    for parse in (_kernels.parse_lines, spec.parse_lines):
        values, status = np.zeros((len(lines), 2)), np.zeros(len(lines), dtype=np.int8)
        parse(data, 2, values, status, np.zeros(len(lines) + 1, dtype=np.int64))
        read = status == spec.LABELED
        out.append((status.tolist(), [float(v).hex() for v in values[read].ravel()]))
    assert out[0] == out[1]
