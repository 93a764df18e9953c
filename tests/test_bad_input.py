"""Bad input is data: each bad row goes to the dead letters once, never to the model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamhelpers import cli, sgd_oracle
from streamlearn.json_decoder import JsonDecoder
from streamlearn.learner import Learner
from streamlearn.loop.daemon import Daemon, RunOptions
from streamlearn.models.sgd import SGDRegressor
from streamlearn.records import CsvDecoder
from streamlearn.sinks.jsonlines import JsonLinesSink
from streamlearn.sources.base import Raw
from streamlearn.sources.file import FileSource

MAX_LINE = 200

BAD_ROWS = {
    "field_count": st.sampled_from([b"1.0,2.0", b"1,2,3,4", b"1"]),
    "non_numeric": st.text(alphabet="abcxyz!?", min_size=1, max_size=8).map(
        lambda t: f"1.0,{t},3.0".encode()
    ),
    "non_finite": st.sampled_from(
        [b"nan,1,2", b"1,inf,2", b"1,-inf,2", b"1e999,1,2", b"1,2,NaN", b"1,2,-1e400"]
    ),
    "out_of_range": st.sampled_from([b"1,2,1e300", b"1,2,-1e200", b"1,2,1e150", b"1,2,-1e150"]),
    "undecodable": st.sampled_from([b"1,\xff\xfe,2", b"\x80,1,2"]),
    "too_long": st.integers(MAX_LINE + 1, MAX_LINE * 3).map(lambda n: b"1" * n),
}


@st.composite
def corpora(draw):
    rows = []
    for _ in range(draw(st.integers(5, 40))):
        if draw(st.booleans()):
            a, b = draw(st.floats(-10, 10)), draw(st.floats(-10, 10))
            rows.append(("good", f"{a!r},{b!r},{2 * a - b + 1!r}".encode()))
        else:
            reason = draw(st.sampled_from(sorted(BAD_ROWS)))
            rows.append((reason, draw(BAD_ROWS[reason])))
    return rows


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=corpora())
def test_every_bad_row_is_dead_lettered_once_and_never_learned(tmp_path_factory, rows):
    tmp = tmp_path_factory.mktemp("bad")
    path = tmp / "rows.csv"
    path.write_bytes(b"a,b,y\n" + b"".join(line + b"\n" for _, line in rows))
    dead = tmp / "dead.jsonl"
    sink = JsonLinesSink(dead)
    source = FileSource(path, follow=False, max_line_bytes=MAX_LINE, read_size=64)
    daemon = Daemon(
        source,
        CsvDecoder(["a", "b", "y"]),
        Learner(SGDRegressor(lr=0.01)),
        model_spec="sgd",
        dead_letters=sink,
    )
    summary = daemon.run()
    sink.close()
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    bad = [(reason, line) for reason, line in rows if reason != "good"]
    assert [entry["reason"] for entry in letters] == [reason for reason, _ in bad]
    assert summary["records_rejected"] == len(bad)
    good = [line for reason, line in rows if reason == "good"]
    assert summary["records_learned"] == len(good)
    # Positions are the byte offsets of each bad line: exactly once each.
    offsets = [entry["position"]["offset"] for entry in letters]
    assert len(set(offsets)) == len(offsets)
    if good:
        data = np.array([[float(v) for v in line.split(b",")] for line in good])
        theta, theta0, _ = sgd_oracle(data[:, :2], data[:, 2], lr=0.01)
        assert abs(summary["weights"]["a"] - theta[0]) < 1e-12
        assert abs(summary["weights"]["b"] - theta[1]) < 1e-12
        assert abs(summary["intercept"] - theta0) < 1e-12
    assert all(np.isfinite(v) for v in summary["weights"].values())


def test_dead_letter_holds_reason_raw_text_and_position(tmp_path: Path):
    decoder = JsonDecoder()
    rejected = decoder.decode(Raw(b'{"x": {"a": "high"}, "y": 1}', offset=42))
    entry = rejected.dead_letter("file:s.jsonl")
    assert entry["reason"] == "non_numeric"
    assert entry["raw"] == '{"x": {"a": "high"}, "y": 1}'
    assert entry["position"] == {"offset": 42}
    binary = decoder.decode(Raw(b"\xff\x00", offset=0, partition=2, topic="t")).dead_letter("k")
    assert binary["raw_encoding"] == "base64" and binary["raw"] == "/wA="
    assert binary["position"] == {"topic": "t", "partition": 2, "offset": 0}


def test_json_rejections_name_the_reason():
    decoder = JsonDecoder()
    cases = {
        b"not json": "bad_json",
        b"[1, 2]": "bad_shape",
        b'{"x": {"a": NaN}, "y": 1}': "non_finite",
        b'{"a": 1e999, "y": 1}': "non_finite",
        b'{"a": Infinity, "y": 1}': "non_finite",
        # Integers beyond float range: the standard library reads them, float() would raise.
        b'{"a": 1' + b"0" * 400 + b', "y": 1}': "non_finite",
        b'{"a": 1, "y": -1' + b"0" * 400 + b"}": "non_finite",
        b'{"id": "r1", "y": 1' + b"0" * 309 + b"}": "non_finite",
        b'{"a": true, "y": 1}': "non_numeric",
        b'{"a": 1, "y": "high"}': "non_numeric",
        b'{"x": [3], "y": 1}': "non_numeric",  # only an object under x is the envelope
        b"\xff\xfe": "undecodable",
    }
    for raw, reason in cases.items():
        assert decoder.decode(Raw(raw, offset=0)).reason == reason, raw
    assert JsonDecoder(skip_blank=False).decode(Raw(b"", offset=0)).reason == "empty"


def test_a_json_integer_beyond_float_range_is_a_dead_letter_not_a_crash(tmp_path: Path):
    big = "1" + "0" * 400
    bad = [f'{{"a": {big}, "y": 1}}', f'{{"a": 1, "y": -{big}}}']
    lines = ['{"a": 1, "y": 2}', *bad, '{"a": 2, "y": 3}']
    path, dead = tmp_path / "big.jsonl", tmp_path / "dead.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = cli("replay", str(path), "--no-progress", "--inspect-json", "--dead-letter", str(dead))
    assert "Traceback" not in result.stderr
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(e["reason"], e["raw"]) for e in letters] == [("non_finite", f"{b}\n") for b in bad]
    summary = json.loads(result.stdout)
    assert summary["records_learned"] == 2 and summary["records_rejected"] == 2


def test_missing_empty_or_null_target_is_unlabeled_not_an_error():
    csv = CsvDecoder(["a", "y"])
    assert csv.decode(Raw(b"1,\n", 0)).y is None
    assert csv.decode(Raw(b"1,null\n", 0)).y is None
    js = JsonDecoder()
    assert js.decode(Raw(b'{"a": 1}', 0)).y is None
    assert js.decode(Raw(b'{"a": 1, "y": null}', 0)).y is None
    assert js.decode(Raw(b'{"x": {"a": 1}, "y": ""}', 0)).y is None


def test_csv_with_id_column_and_chosen_features():
    decoder = CsvDecoder(["id", "a", "b", "noise", "y"], features=["a", "b"], id_column="id")
    record = decoder.decode(Raw(b"r7,1,2,zzz,3\n", 0))
    assert (record.id, record.x, record.y) == ("r7", {"a": 1.0, "b": 2.0}, 3.0)
    label = decoder.decode(Raw(b"r7,,,,3\n", 0))
    assert (type(label).__name__, label.id, label.y) == ("Label", "r7", 3.0)


def test_a_diverging_model_never_crashes_never_serves_or_stores_nan(tmp_path: Path):
    from streamlearn.state import CheckpointStore

    # x up to 300 with lr 0.01: the seed's update explodes within a few records.
    lines = [f'{{"a": {float(i)}, "y": {2.0 * i}}}'.encode() for i in range(300)]
    lines += [b'{"a": 1.0}']  # unlabeled: its prediction must be finite
    predictions = tmp_path / "pred.jsonl"
    from streamlearn.testing import ListSource

    store = CheckpointStore(tmp_path / "state")
    daemon = Daemon(
        ListSource(lines),
        JsonDecoder(),
        Learner(SGDRegressor(lr=0.01)),
        model_spec="sgd",
        store=store,
        predictions=JsonLinesSink(predictions),
        model_factory=lambda: SGDRegressor(lr=0.01),
        options=RunOptions(checkpoint_every=25),
    )
    summary = daemon.run()
    daemon.predictions.close()
    assert summary["divergence_events"] > 0
    assert summary["records_seen"] == 301
    assert all(np.isfinite(v) for v in summary["weights"].values())
    assert np.isfinite(summary["intercept"])
    assert all(v is None or np.isfinite(v) for v in summary["metrics"].values())
    stored = store.load().state["learner"].model
    assert all(np.isfinite(v) for v in stored.weights.values())
    served = [json.loads(line)["prediction"] for line in predictions.read_text().splitlines()]
    assert len(served) == 1 and np.isfinite(served[0])
    store.close()
