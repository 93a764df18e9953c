"""JSON values from Kafka, learned a fetch at a time (``streamlearn.fast.jsonblock``), exactly.

The same topic is learned with the block path and record by record (``STREAMLEARN_FASTPATH=0``):
weights and metrics the same to the last bit, the same dead letters (reasons, raw text, Kafka
positions), predictions (ids included) and counts; the weights those of the numpy oracle on the
rows learned. Both Kafka clients, with and without ``--features``. The topic mixes good rows
(``json.dumps``'s and compact separators, integers, message keys) with every kind of row the
block path must leave to ``JsonDecoder``: missing, extra and reordered keys, bools, strings,
NaN, 1e999, null and missing targets, ids, late labels, bad JSON, empty and nested values.
Also: the parser against ``JsonDecoder`` on random blocks, and JSON Lines replayed from a file.
"""

# ruff: noqa: UP031 (the special messages read best as %-templates of JSON)

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamhelpers import make_regression, read_jsonl, run_until_seen, sgd_oracle
from streamlearn.app import build
from streamlearn.config import Settings
from streamlearn.fast import block as fastpath
from streamlearn.json_decoder import JsonDecoder
from streamlearn.records import Label, Record, Rejected

ROWS = 3000
LR = 0.01
FEATURES = ("x0", "x1", "x2")
#: Rows (and the same + 1500) whose message is special: (value, x9, learned without
#: --features, learned with --features). x9 is the extra feature's value (or None).
SPECIAL_AT = (100, 1600)


def _special(i: int, x: np.ndarray, y: float) -> tuple[bytes, dict[str, Any]] | None:
    a, b, c = (repr(float(v)) for v in x)
    t = repr(float(y))
    kinds: dict[int, tuple[str, dict[str, Any]]] = {
        0: ('{"x0": %s, "x2": %s, "y": %s}' % (a, c, t), {"none": True, "drop": 1}),
        1: ('{"x0": %s, "x1": %s, "x2": %s, "x9": 0.5, "y": %s}' % (a, b, c, t), {"x9": 0.5}),
        2: ('{"x0": %s, "x1": true, "x2": %s, "y": %s}' % (a, c, t), {"learned": False}),
        3: ('{"x0": %s, "x1": %s, "x2": "1.5", "y": %s}' % (a, b, t), {"learned": False}),
        4: ('{"x0": NaN, "x1": %s, "x2": %s, "y": %s}' % (b, c, t), {"learned": False}),
        5: ('{"x0": 1e999, "x1": %s, "x2": %s, "y": %s}' % (b, c, t), {"learned": False}),
        6: ('{"x0": %s, "x1": %s, "x2": %s, "y": null}' % (a, b, c), {"learned": False}),
        7: ('{"id": "r%d", "x0": %s, "x1": %s, "x2": %s}' % (i, a, b, c), {"learned": False}),
        8: ('{"id": "7", "y": 3.5}', {"learned": False}),
        9: ("not json", {"learned": False}),
        10: ("", {"learned": False}),
        11: ('{"x": {"x0": %s, "x1": %s, "x2": %s}, "y": %s}' % (a, b, c, t), {}),
        12: ('{"x0": %s, "x1": %s, "x2": %s, "y": true}' % (a, b, c), {"learned": False}),
        13: ('{"x0": -0, "x1": %s, "x2": %s, "y": %s}' % (b, c, t), {"zero": True}),
        14: ('{"x0": 01, "x1": %s, "x2": %s, "y": %s}' % (b, c, t), {"learned": False}),
        15: ('{"x0": +1, "x1": %s, "x2": %s, "y": %s}' % (b, c, t), {"learned": False}),
        16: ('{"x1": %s, "x0": %s, "y": %s, "x2": %s}' % (b, a, t, c), {}),
        17: ('{"x0": %s, "x1": [1], "x2": %s, "y": %s}' % (a, c, t), {"learned": False}),
        18: ('{"x0": %s, "x1": %s, "x2": %s, "y": "3"}' % (a, b, c), {"learned": False}),
        19: ('{"x0": %s,\n "x1": %s, "x2": %s, "y": %s}' % (a, b, c, t), {}),
        20: ('{"x0": %s, "x1": %s, "x2": %s}' % (a, b, c), {"learned": False}),
        21: ('{"x0": %s , "x1": %s, "x2": %s, "y": %s}' % (a, b, c, t), {}),
    }
    for start in SPECIAL_AT:
        if start <= i < start + len(kinds):
            text, how = kinds[i - start]
            return text.encode(), how
    return None


def topic_rows() -> tuple[list[bytes], list[bytes | None], np.ndarray, np.ndarray, dict]:
    """Message values and keys, the features (x0, x1, x2, x9) and targets, each row's kind."""
    X, y, _ = make_regression(ROWS, d=3, seed=5)
    X = np.column_stack([X, np.zeros(ROWS)])
    X[::7, 0] = np.round(X[::7, 0] * 4)  # some integers ("2" in the JSON, not "2.0")
    values: list[bytes] = []
    keys: list[bytes | None] = []
    kinds: dict[int, dict[str, Any]] = {}
    for i in range(ROWS):
        special = _special(i, X[i, :3], y[i])
        if special is not None:
            values.append(special[0])
            kinds[i] = special[1]
        else:
            obj: dict[str, Any] = {
                f"x{j}": int(X[i, j]) if i % 7 == 0 and j == 0 else float(X[i, j]) for j in range(3)
            }
            obj["y"] = float(y[i])
            compact = i % 11 == 3
            values.append(json.dumps(obj, separators=(",", ":") if compact else None).encode())
        keys.append(b"k%d" % i if i % 3 == 0 else None)
    return values, keys, X, y, kinds


def oracle_rows(X: np.ndarray, kinds: dict, fixed: bool) -> tuple[np.ndarray, np.ndarray]:
    """The rows the model learns (and their features) with or without --features."""
    X = X.copy()
    learned = np.ones(ROWS, dtype=bool)
    for i, how in kinds.items():
        if not how.get("learned", True):
            learned[i] = False
        if "drop" in how:  # x1 missing: a rejection with --features, a record without
            learned[i] = not fixed
            X[i, how["drop"]] = 0.0
        if "x9" in how and not fixed:
            X[i, 3] = how["x9"]
        if how.get("zero"):
            X[i, 0] = 0.0
    return X, learned


def learn(
    bootstrap: str, topic: str, client: str, tmp: Path, features: tuple[str, ...] | None
) -> tuple[dict[str, Any], list[dict], list[dict], Any]:
    dead, predictions = tmp / "dead.jsonl", tmp / "predictions.jsonl"
    settings = Settings(
        source=f"kafka://{bootstrap}/{topic}",
        follow=True,
        features=features,
        lr=LR,
        state_dir=tmp / "state",
        dead_letter=str(dead),
        predictions=str(predictions),
        kafka_client=client,
    )
    app = build(settings)
    summary = run_until_seen(app, ROWS)
    dead_letters, predicted = read_jsonl(dead, predictions)
    return summary, dead_letters, predicted, app.daemon.block_learner


CLIENTS = [
    "kafka-python",
    pytest.param(
        "confluent",
        marks=pytest.mark.skipif(
            not __import__("importlib").util.find_spec("confluent_kafka"),
            reason="confluent-kafka is not installed",
        ),
    ),
]


@pytest.mark.kafka
@pytest.mark.skipif(fastpath.compiled_kernels() is None, reason="the kernels are not built")
@pytest.mark.parametrize("fixed", [False, True], ids=["own-features", "--features"])
@pytest.mark.parametrize("client", CLIENTS)
def test_json_values_from_kafka_learn_as_record_by_record(
    kafka_bootstrap: str,
    kafka_topic_factory: Callable[..., str],
    kafka_send: Callable[..., None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    client: str,
    fixed: bool,
) -> None:
    topic = kafka_topic_factory(1)
    values, keys, X, y, kinds = topic_rows()
    kafka_send(topic, values, partition=0, keys=keys)
    features = FEATURES if fixed else None

    (tmp_path / "fast").mkdir()
    summary, dead, predicted, fast = learn(
        kafka_bootstrap, topic, client, tmp_path / "fast", features
    )
    monkeypatch.setenv("STREAMLEARN_FASTPATH", "0")
    (tmp_path / "slow").mkdir()
    slow_summary, slow_dead, slow_predicted, _ = learn(
        kafka_bootstrap, topic, client, tmp_path / "slow", features
    )

    assert fast is not None and fast.inner is not None, "the JSON block path never learned a block"
    assert summary["weights"] == slow_summary["weights"]  # to the last bit
    assert summary["intercept"] == slow_summary["intercept"]
    assert summary["metrics"] == slow_summary["metrics"]
    assert summary["rolling_metrics"] == slow_summary["rolling_metrics"]
    for count in ("records_seen", "records_learned", "records_rejected", "records_unlabeled"):
        assert summary[count] == slow_summary[count], count
    assert summary["rejected_by_reason"] == slow_summary["rejected_by_reason"]
    assert dead == slow_dead
    assert predicted == slow_predicted

    X4, learned = oracle_rows(X, kinds, fixed)
    assert summary["records_learned"] == learned.sum()
    assert summary["records_seen"] == ROWS
    # Dead letters in stream order, with their Kafka positions and raw text.
    wrong = [i for i in range(ROWS) if not learned[i] and i in kinds and "drop" not in kinds[i]]
    wrong = [
        i for i in wrong if kinds[i].get("learned") is False and i % 1500 - 100 not in (6, 7, 20)
    ]
    if fixed:
        wrong = sorted([*wrong, *(i for i, how in kinds.items() if "drop" in how)])
    assert [entry["position"]["offset"] for entry in dead] == wrong
    assert [entry["raw"] for entry in dead] == [values[i].decode() for i in wrong]
    reasons = {entry["position"]["offset"] - SPECIAL_AT[0]: entry["reason"] for entry in dead}
    assert reasons[2] == reasons[3] == reasons[12] == reasons[17] == "non_numeric"
    assert reasons[4] == reasons[5] == "non_finite"
    assert reasons[9] == reasons[14] == reasons[15] == "bad_json"
    assert (reasons[8], reasons[10]) == ("unjoined_label", "empty")
    # Predictions of the unlabeled rows, with the id of the message key or the id field.
    unlabeled = sorted(i for i, how in kinds.items() if i % 1500 - 100 in (6, 7, 20))
    assert [entry["position"]["offset"] for entry in predicted] == unlabeled
    ids = [(f"k{i}" if i % 3 == 0 else None) for i in unlabeled]
    ids[1::3] = [f"r{i}" for i in unlabeled[1::3]]
    assert [entry["id"] for entry in predicted] == ids

    theta, theta0, _ = sgd_oracle(X4, y, LR, labeled=learned)
    weights = summary["weights"]
    np.testing.assert_allclose([weights[f"x{j}"] for j in range(3)], theta[:3], rtol=0, atol=1e-12)
    assert abs(summary["intercept"] - theta0) < 1e-12
    if not fixed:
        assert abs(weights["x9"] - theta[3]) < 1e-12


# -- the parser against the decoder, message by message (no broker) -------------------------

_ODD_NUMBERS = [
    "0", "-0", "-0.0", "1", "01", "+1", ".5", "5.", "1.e5", "1e5", "1E+5", "1e-05", "-1.25",
    "12345678901234567", "1234567890123456789012", "9007199254740993", "1e400", "NaN",
    "Infinity", "-", "1e", "0.1", "-0e1", "00", "1.5.2", "true", "null", '"1"', "[1]", "1 2",
    "2e-0", "1e22", "1e23", "-12.5e-3", "7", "0.30000000000000004", "-1e-22", "1e-23",
]  # fmt: skip


def _random_message(rng: random.Random) -> bytes:
    def number() -> str:
        if rng.random() < 0.1:  # any bytes numbers are made of
            return "".join(rng.choice("0123456789.eE+-") for _ in range(rng.randint(1, 7)))
        if rng.random() < 0.75:
            return repr(round(rng.gauss(0, 3), rng.randint(0, 17)))
        return rng.choice(_ODD_NUMBERS)

    keys = ["x0", "x1", "e2", "y"]
    r = rng.random()
    if r < 0.05:
        rng.shuffle(keys)
    elif r < 0.08:
        keys.remove(rng.choice(keys))
    elif r < 0.12:
        keys.insert(rng.randint(0, 4), rng.choice(["id", "x9", "x"]))
    elif r < 0.13:
        keys = ["id", "y"]
    colon, comma = (": ", ", ") if rng.random() < 0.5 else (":", ",")
    if rng.random() < 0.03:
        colon = " : "
    body = "{" + comma.join(f'"{key}"{colon}{number()}' for key in keys) + "}"
    r = rng.random()
    if r < 0.02:
        body = body[:-1]
    elif r < 0.04:
        body = " " + body
    elif r < 0.05:
        body = body.replace('"x1"', '"x\\u0031"')
    elif r < 0.06:
        body = ""
    elif r < 0.07:
        body += "5"
    elif r < 0.08:
        body = body.replace("{", "{5", 1)
    elif r < 0.09:
        body = body.replace(":", ":\t", 1)
    return body.encode()


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (
        a == b and math.copysign(1, a) == math.copysign(1, b)
    )


@pytest.mark.skipif(fastpath.compiled_kernels() is None, reason="the kernels are not built")
@pytest.mark.parametrize("features", [None, ("x1", "x0", "e2")])
def test_parsed_rows_are_what_the_decoder_makes(features: tuple[str, ...] | None) -> None:
    from streamlearn.fast.jsonblock import JsonBlockLearner
    from streamlearn.learner import Learner
    from streamlearn.models.sgd import SGDRegressor
    from streamlearn.sources.kafka_fetch import Fetched, KafkaBlock

    rng = random.Random(3)
    decoder = JsonDecoder(features=features, skip_blank=False)
    learner = Learner(SGDRegressor(initial_weights={"x0": 0.1, "x1": 0.1, "e2": 0.1}))
    fast = JsonBlockLearner(decoder, learner, fastpath.compiled_kernels())
    read_fast = 0
    for _ in range(30):
        values = [_random_message(rng) for _ in range(400)]
        values[0] = b'{"x0": 1.5, "x1": 2, "e2": -3.25, "y": 4}'
        keys = [None if rng.random() < 0.5 else b"k%d" % i for i in range(len(values))]
        block = KafkaBlock.of(Fetched(values, list(range(400)), [0] * 400, keys, None), "t")
        parsed = fast.parse(block, decoder)
        assert parsed is not None
        for row in range(parsed.stop):
            item = decoder.decode(block.locate(row))
            status = int(parsed.status[row])
            judged = parsed.judged.get(row)
            if row not in parsed.judged:
                read_fast += 1
            elif type(item) is Label:
                assert type(judged) is Rejected and judged.reason == "unjoined_label"
            else:
                assert judged == item
            if type(item) is Record:
                assert list(item.x) == parsed.features, "a record of other features: a stop"
                assert status == (fastpath.UNLABELED if item.y is None else fastpath.LABELED)
                expected = [*item.x.values(), math.nan if item.y is None else item.y]
                got = parsed.values[row].tolist()
                assert all(map(_same, expected, got)), (values[row], expected, got)
            elif item is None:
                assert status == fastpath.NOTHING
            else:
                assert status == fastpath.REJECTED, (values[row], item)
        if parsed.stop < parsed.rows:
            item = decoder.decode(block.locate(parsed.stop))
            assert type(item) is Record and list(item.x) != parsed.features
    assert read_fast > (100 if features is None else 1000)  # good rows skip the decoder


# -- JSON Lines replayed from a file --------------------------------------------------------


@pytest.mark.skipif(fastpath.compiled_kernels() is None, reason="the kernels are not built")
def test_json_lines_file_replays_as_record_by_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = topic_rows()[0]
    path = tmp_path / "rows.jsonl"
    # A newline inside a value makes two lines of a file: leave that one out here.
    lines = [v for v in values if b"\n" not in v]
    path.write_bytes(b"\n".join(lines) + b"\n")

    def replay(name: str) -> tuple[dict[str, Any], str, str, Any]:
        out = tmp_path / name
        out.mkdir()
        settings = Settings(
            source=str(path),
            follow=False,
            lr=LR,
            dead_letter=str(out / "dead.jsonl"),
            predictions=str(out / "predictions.jsonl"),
        )
        app = build(settings)
        try:
            summary = app.daemon.run()
        finally:
            app.close()
        texts = [(out / f).read_text() for f in ("dead.jsonl", "predictions.jsonl")]
        return summary, texts[0], texts[1], app.daemon.block_learner

    fast = replay("fast")
    monkeypatch.setenv("STREAMLEARN_FASTPATH", "0")
    slow = replay("slow")
    assert fast[3] is not None and fast[3].inner is not None
    for key in ("weights", "intercept", "metrics", "records_seen", "records_learned"):
        assert fast[0][key] == slow[0][key], key
    assert fast[0]["rejected_by_reason"] == slow[0]["rejected_by_reason"]
    assert fast[1:3] == slow[1:3]
    assert fast[1].count("\n") > 20
